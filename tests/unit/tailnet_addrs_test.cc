// The node's tailnet IPv6 addresses as workers read them (common/tailnet_addrs.h): published and
// read back, cleared, and a writer racing readers on real threads never lets a reader take a
// copy that mixes two publications.
#include "common/tailnet_addrs.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace exitgw {
namespace {

using dp::kMaxTailnetAddrs;
using dp::TailnetAddrs6;

// Two addresses of publication k: every byte of the first k, of the second ~k.
void addresses_of(uint8_t k, uint8_t (*out)[16]) {
  std::memset(out[0], k, 16);
  std::memset(out[1], static_cast<uint8_t>(~k), 16);
}

TEST(TailnetAddrs6, PublishedAddressesReadBackMatchedAndCleared) {
  TailnetAddrs6 t;
  uint64_t own[kMaxTailnetAddrs][2];
  EXPECT_EQ(t.load(own), 0u) << "none before the first publication";
  uint8_t a[2][16] = {{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  t.publish(a, 1);
  ASSERT_EQ(t.load(own), 1u);
  EXPECT_TRUE(dp::tailnet_addr6_is(own, a[0]));
  uint8_t other[16];
  std::memcpy(other, a[0], 16);
  other[15] = 2;
  EXPECT_FALSE(dp::tailnet_addr6_is(own, other));
  const uint8_t zero[16] = {};
  EXPECT_FALSE(dp::tailnet_addr6_is(own, zero)) << "an empty entry matches nothing";
  addresses_of(7, a);
  t.publish(a, 2);
  ASSERT_EQ(t.load(own), 2u);
  EXPECT_TRUE(dp::tailnet_addr6_is(own, a[0]));
  EXPECT_TRUE(dp::tailnet_addr6_is(own, a[1]));
  t.publish(nullptr, 0);
  EXPECT_EQ(t.load(own), 0u);
  EXPECT_FALSE(dp::tailnet_addr6_is(own, a[0]));
}

TEST(TailnetAddrs6, AWriterRacingReadersNeverLetsOneTakeATornCopy) {
  TailnetAddrs6 t;
  uint8_t a[2][16];
  addresses_of(1, a);
  t.publish(a, 2);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, torn{0};
  auto reader = [&] {
    uint64_t own[kMaxTailnetAddrs][2];
    uint64_t n = 0, bad = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      t.load(own);
      uint8_t b[2][16];
      std::memcpy(b, own, sizeof(b));
      // One publication's: every byte of the first address equal, the second its complement.
      for (unsigned i = 0; i < 16; ++i)
        bad += b[0][i] != b[0][0] || b[1][i] != static_cast<uint8_t>(~b[0][0]);
      ++n;
    }
    reads += n;
    torn += bad;
  };
  std::vector<std::thread> threads;
  threads.emplace_back(reader);
  threads.emplace_back(reader);
  threads.emplace_back([&] {
    for (uint8_t k = 2; !stop.load(std::memory_order_relaxed); ++k) {
      addresses_of(k, a);
      t.publish(a, 2);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_GT(reads.load(), 1000u);
  EXPECT_EQ(torn.load(), 0u);
}

}  // namespace
}  // namespace exitgw
