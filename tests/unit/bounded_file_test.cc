// Watched files are read without ever blocking and with a bound: a FIFO, a directory, a device
// or a socket in place of the file is refused with an error naming the file and what it is, a
// file over the bound is refused, and a file still being written is reported only once it has
// stood still.
#include "control/bounded_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include "common/log_escape.h"
#include "tests/support/test_files.h"

namespace exitgw {
namespace {

class BoundedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/bounded_file_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/peers.conf";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // read_bounded_file on another thread, so a read that blocks fails the test instead of
  // hanging it (the FIFO is then opened for writing to set the reader free).
  Result<std::string> read_within_a_second(size_t max_bytes = 1024) {
    auto read = std::async(std::launch::async,
                           [&] { return read_bounded_file(path_, "peers file", max_bytes); });
    if (read.wait_for(std::chrono::seconds(1)) != std::future_status::ready) {
      ADD_FAILURE() << "reading " << path_ << " blocked";
      const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) ::close(fd);
    }
    return read.get();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(BoundedFileTest, ARegularFileIsReadWhole) {
  test::write_file(path_, "[Peer]\nPublicKey = x\n");
  auto text = read_within_a_second();
  ASSERT_TRUE(text.ok()) << text.error();
  EXPECT_EQ(*text, "[Peer]\nPublicKey = x\n");
  test::write_file(path_, "");
  EXPECT_EQ(*read_within_a_second(), "");
}

TEST_F(BoundedFileTest, AFifoIsRefusedWithoutWaitingForAWriter) {
  const uint64_t before = bounded_file_counters().not_regular.load();
  ASSERT_NO_FATAL_FAILURE(test::make_fifo(path_));
  auto text = read_within_a_second();
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.error().find("peers file " + path_ + " is a FIFO, not a regular file"),
            std::string::npos)
      << text.error();
  EXPECT_EQ(bounded_file_counters().not_regular.load(), before + 1);
}

TEST_F(BoundedFileTest, ADirectoryIsRefusedNotReadAsAnEmptyFile) {
  ASSERT_TRUE(std::filesystem::create_directory(path_));
  auto text = read_within_a_second();
  ASSERT_FALSE(text.ok()) << "a directory read as '" << *text << "'";
  EXPECT_NE(text.error().find("is a directory, not a regular file"), std::string::npos)
      << text.error();
}

TEST_F(BoundedFileTest, ADeviceBehindTheNameIsRefused) {
  std::filesystem::create_symlink("/dev/zero", path_);
  auto text = read_within_a_second();
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.error().find("is a character device"), std::string::npos) << text.error();
}

TEST_F(BoundedFileTest, ASocketIsRefused) {
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path_.size(), sizeof(addr.sun_path));
  std::copy(path_.begin(), path_.end(), addr.sun_path);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto text = read_within_a_second();
  ::close(sock);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.error().find("not a regular file"), std::string::npos) << text.error();
}

TEST_F(BoundedFileTest, AFileOverTheBoundIsRefusedNamingTheBound) {
  const uint64_t before = bounded_file_counters().too_large.load();
  test::write_file(path_, std::string(1025, 'x'));
  auto text = read_within_a_second(1024);
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.error().find("has 1025 bytes, more than the 1024 allowed"), std::string::npos)
      << text.error();
  EXPECT_EQ(bounded_file_counters().too_large.load(), before + 1);
  test::write_file(path_, std::string(1024, 'x'));
  EXPECT_TRUE(read_within_a_second(1024).ok());
}

// The buffer follows the file, not the bound: a 1 KiB file under a bound no machine could
// allocate is read (a reader that reserved the bound first would throw).
TEST_F(BoundedFileTest, TheBufferIsSizedByTheFileNotByTheBound) {
  test::write_file(path_, std::string(1024, 'x'));
  for (const size_t bound : {size_t{1} << 62, SIZE_MAX}) {
    auto text = read_regular_file(path_, "peers file", bound);
    ASSERT_TRUE(text.ok()) << text.error();
    EXPECT_EQ(text->size(), 1024u);
  }
}

// Secrets: owner-only, as the admin token and the private key are checked; the refusal says why.
TEST_F(BoundedFileTest, OwnerOnlyRefusesAFileGroupOrOthersMayRead) {
  test::write_file(path_, "secret\n");
  ASSERT_EQ(::chmod(path_.c_str(), 0640), 0);
  ReadRefusal why = ReadRefusal::kNone;
  auto text = read_regular_file(path_, "token file", 64, true, &why);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(why, ReadRefusal::kNotOwnerOnly);
  EXPECT_NE(text.error().find("has mode 0640"), std::string::npos) << text.error();
  EXPECT_EQ(text.error().find("secret"), std::string::npos) << "the content is never echoed";
  ASSERT_EQ(::chmod(path_.c_str(), 0600), 0);
  EXPECT_EQ(*read_regular_file(path_, "token file", 64, true, &why), "secret\n");
  EXPECT_EQ(why, ReadRefusal::kNone);
  EXPECT_FALSE(read_regular_file(path_, "token file", 6, true, &why).ok());
  EXPECT_EQ(why, ReadRefusal::kTooLarge);
}

// Log lines quote what the file system holds through one escaping helper, which counts.
TEST_F(BoundedFileTest, ControlBytesInTheFileNameAreEscapedInTheErrorAndCounted) {
  path_ = dir_ + "/peers\x1b[2J.conf";
  ASSERT_TRUE(std::filesystem::create_directory(path_));
  const uint64_t escaped = g_log_bytes_escaped.load();
  auto text = read_within_a_second();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(g_log_bytes_escaped.load(), escaped + 1);
  EXPECT_EQ(text.error().find('\x1b'), std::string::npos) << text.error();
  EXPECT_NE(text.error().find("peers\\x1b[2J.conf"), std::string::npos) << text.error();
}

// A writer that has created the file and is still writing it (no close yet) is not applied
// half-way: the watch is due only once size and mtime stood still across a settle period.
TEST_F(BoundedFileTest, AFileStillBeingWrittenIsDueOnlyOnceItStandsStill) {
  constexpr uint64_t kSettle = 200'000'000;
  StableFileWatch watch(kSettle);
  ASSERT_TRUE(watch.watch(path_).ok());
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);  // IN_CREATE
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "[Peer]\n", 7), 7);
  uint64_t now = 1'000'000'000;
  EXPECT_FALSE(watch.due(now));  // the change is seen; the file is looked at again later
  EXPECT_FALSE(watch.due(now + kSettle / 2));
  ASSERT_EQ(::write(fd, "PublicKey = x\n", 14), 14);  // still writing: no inotify event
  now += kSettle;
  EXPECT_FALSE(watch.due(now)) << "due while the file was still growing";
  ::close(fd);  // IN_CLOSE_WRITE: the change restarts the settle period
  now += kSettle;
  EXPECT_FALSE(watch.due(now));
  now += kSettle;
  EXPECT_TRUE(watch.due(now));
  EXPECT_FALSE(watch.due(now + kSettle)) << "due twice for one change";
}

// A FIFO (or anything) swapped in by rename is reported like any change, so the reader refuses
// it; the watch itself never opens the path.
TEST_F(BoundedFileTest, AFifoRenamedIntoPlaceIsDueWithoutBeingOpened) {
  test::write_file(path_, "");
  StableFileWatch watch(1);
  ASSERT_TRUE(watch.watch(path_).ok());
  const std::string fifo = dir_ + "/x";
  ASSERT_NO_FATAL_FAILURE(test::make_fifo(fifo));
  std::filesystem::rename(fifo, path_);
  EXPECT_FALSE(watch.due(10));
  EXPECT_TRUE(watch.due(20));
}

}  // namespace
}  // namespace exitgw
