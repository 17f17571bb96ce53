// The on-disk spool: order across segments, prepend, restart, limit (drops oldest), torn tail.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "control/export/spool.h"

namespace exitgw::exporter {
namespace {

class ExportSpool : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/export_spool_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static EncodedRecord rec(uint32_t key) {
    NatRecord n;
    n.time_ms = key;
    n.subscriber = key;
    return encode_nat(n);
  }
  static std::vector<EncodedRecord> recs(uint32_t from, uint32_t to) {
    std::vector<EncodedRecord> v;
    for (uint32_t k = from; k < to; ++k) v.push_back(rec(k));
    return v;
  }
  // Reads the spool dry, oldest first, as replay does.
  static std::vector<EncodedRecord> drain(Spool& s) {
    std::vector<EncodedRecord> out;
    while (!s.empty()) {
      auto b = s.read_oldest();
      EXPECT_TRUE(b.ok());
      out.insert(out.end(), b->records.begin(), b->records.end());
      EXPECT_TRUE(s.remove(b->segment).ok());
    }
    return out;
  }
  SpoolOptions options(uint64_t max_bytes = 1 << 20, uint64_t segment = 4096) {
    return SpoolOptions{dir_, max_bytes, segment, true};
  }
  std::string dir_;
};

TEST_F(ExportSpool, ReplaysRecordsInWriteOrderAcrossSegments) {
  auto s = Spool::open(options());
  ASSERT_TRUE(s.ok()) << s.error();
  for (uint32_t i = 0; i < 1000; i += 100) ASSERT_TRUE((*s)->append(recs(i, i + 100)).ok());
  EXPECT_GT((*s)->segment_count(), 3u);  // 4 KiB segments
  EXPECT_EQ((*s)->records(), 1000u);
  EXPECT_EQ(drain(**s), recs(0, 1000));
  EXPECT_EQ((*s)->bytes(), 0u);
}

TEST_F(ExportSpool, PrependedRecordsComeBeforeEverythingSpooled) {
  auto s = Spool::open(options());
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->append(recs(100, 200)).ok());
  ASSERT_TRUE((*s)->prepend(recs(50, 100)).ok());
  ASSERT_TRUE((*s)->prepend(recs(0, 50)).ok());
  ASSERT_TRUE((*s)->append(recs(200, 250)).ok());
  EXPECT_EQ(drain(**s), recs(0, 250));
}

TEST_F(ExportSpool, SurvivesARestartAndNeverAppendsToAnOldSegment) {
  {
    auto s = Spool::open(options());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->append(recs(0, 30)).ok());
  }
  auto s = Spool::open(options());
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_EQ((*s)->records(), 30u);
  const size_t before = (*s)->segment_count();
  ASSERT_TRUE((*s)->append(recs(30, 40)).ok());
  EXPECT_EQ((*s)->segment_count(), before + 1);
  EXPECT_EQ(drain(**s), recs(0, 40));
}

TEST_F(ExportSpool, OverTheLimitTheOldestSegmentsAreDroppedAndCounted) {
  auto s = Spool::open(options(64 * 1024, 4096));
  ASSERT_TRUE(s.ok());
  // ~37 bytes per record on disk: 10000 records are ~370 KB, far over 64 KiB.
  for (uint32_t i = 0; i < 10000; i += 100) ASSERT_TRUE((*s)->append(recs(i, i + 100)).ok());
  EXPECT_LE((*s)->bytes(), 64u * 1024);
  EXPECT_GT((*s)->dropped_records(), 0u);
  const std::vector<EncodedRecord> left = drain(**s);
  EXPECT_EQ(left.size() + (*s)->dropped_records(), 10000u);
  // What is left is the newest, contiguous, ending at the last record written.
  const uint32_t first = uint32_t(10000 - left.size());
  EXPECT_EQ(left, recs(first, 10000));
}

TEST_F(ExportSpool, ATornTailIsCutAtTheLastWholeRecord) {
  {
    auto s = Spool::open(options());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->append(recs(0, 10)).ok());
  }
  std::string seg;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) seg = e.path();
  std::filesystem::resize_file(seg, std::filesystem::file_size(seg) - 5);
  auto s = Spool::open(options());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->records(), 9u);
  EXPECT_EQ((*s)->corrupt_records(), 1u);
  EXPECT_EQ(drain(**s), recs(0, 9));
}

TEST_F(ExportSpool, AnUnwritableDirectoryIsAStartupError) {
  std::ofstream(dir_ + "/file") << "x";
  auto s = Spool::open(SpoolOptions{dir_ + "/file/sub", 1 << 20, 4096, false});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("cannot create"), std::string::npos) << s.error();
  EXPECT_FALSE(Spool::open(SpoolOptions{dir_, 1000, 4096, false}).ok());  // limit too small
}

}  // namespace
}  // namespace exitgw::exporter
