// Every SIMD code path of the Internet checksum (the ones this CPU runs) against the baseline
// and rte_raw_cksum, on random buffers of every length, alignment and starting sum.
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "dataplane/checksum.h"

namespace exitgw::dp {
namespace {

using checksum_detail::add_avx2;
using checksum_detail::add_avx512;
using checksum_detail::add_sse;

TEST(ChecksumSimd, EveryCodePathEqualsTheBaselineForEveryLengthAndAlignment) {
  std::mt19937 rng(3);
  std::vector<uint8_t> buf(4096 + 64);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const bool avx2 = __builtin_cpu_supports("avx2");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  for (size_t off = 0; off < 64; off += 7)
    for (size_t len = 0; len <= 2100; ++len) {
      const uint64_t start = rng() % 3 == 0 ? rng() : 0;
      const uint64_t want = add_sse(buf.data() + off, len, start);
      if (start == 0) {
        ASSERT_EQ(checksum_fold(want), rte_raw_cksum(buf.data() + off, len)) << len;
      }
      if (avx2) {
        ASSERT_EQ(checksum_fold(add_avx2(buf.data() + off, len, start)), checksum_fold(want))
            << "avx2 offset " << off << " length " << len;
      }
      if (avx512) {
        ASSERT_EQ(checksum_fold(add_avx512(buf.data() + off, len, start)), checksum_fold(want))
            << "avx512 offset " << off << " length " << len;
      }
      ASSERT_EQ(checksum_fold(checksum_add(buf.data() + off, len, start)), checksum_fold(want));
    }
}

TEST(ChecksumSimd, AllOnesBuffersDoNotOverflowAnyLane) {
  std::vector<uint8_t> buf(65535, 0xff);
  const uint16_t want = rte_raw_cksum(buf.data(), buf.size());
  if (__builtin_cpu_supports("avx2")) {
    EXPECT_EQ(checksum_fold(add_avx2(buf.data(), buf.size(), 0)), want);
  }
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
    EXPECT_EQ(checksum_fold(add_avx512(buf.data(), buf.size(), 0)), want);
  }
  EXPECT_EQ(checksum(buf.data(), buf.size()), want);
}

// The masked tail load must not touch memory past the buffer: buffers that end where an
// inaccessible page begins.
TEST(ChecksumSimd, TailLoadStaysInsideTheBuffer) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* map = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(map, MAP_FAILED);
  auto* base = static_cast<uint8_t*>(map);
  ASSERT_EQ(mprotect(base + page, page, PROT_NONE), 0);
  for (size_t i = 0; i < page; ++i) base[i] = static_cast<uint8_t>(i * 7);
  for (size_t len = 0; len < 300; ++len) {
    const uint8_t* p = base + page - len;
    EXPECT_EQ(checksum(p, len), rte_raw_cksum(p, len)) << len;
  }
  munmap(map, 2 * page);
}

}  // namespace
}  // namespace exitgw::dp
