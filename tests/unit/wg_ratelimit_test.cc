// Handshake rate limiter: burst then throttle, refill with time, per-source buckets, bounded table.
#include "control/wg/ratelimit.h"

#include <gtest/gtest.h>

namespace exitgw::wg {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kStart = 1'000'000 * kMs;

Endpoint v4(uint8_t last, uint16_t port = 1234) {
  return Endpoint::ipv4({10, 0, 0, last}, port);
}

TEST(WgRateLimit, AllowsBurstOfFiveThenThrottles) {
  RateLimiter limiter;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.allow(v4(1), kStart)) << "packet " << i;
  EXPECT_FALSE(limiter.allow(v4(1), kStart));
  EXPECT_FALSE(limiter.allow(v4(1), kStart + 10 * kMs));
}

TEST(WgRateLimit, RefillsOneTokenEvery50Ms) {
  RateLimiter limiter;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(limiter.allow(v4(1), kStart));
  ASSERT_FALSE(limiter.allow(v4(1), kStart));
  EXPECT_FALSE(limiter.allow(v4(1), kStart + 49 * kMs));
  EXPECT_TRUE(limiter.allow(v4(1), kStart + 50 * kMs));
  EXPECT_FALSE(limiter.allow(v4(1), kStart + 50 * kMs));
  // A long pause refills only up to the burst.
  const uint64_t later = kStart + 10'000 * kMs;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.allow(v4(1), later));
  EXPECT_FALSE(limiter.allow(v4(1), later));
}

TEST(WgRateLimit, SustainedRateIsTwentyPerSecond) {
  RateLimiter limiter;
  int allowed = 0;
  for (uint64_t t = 0; t < 10'000 * kMs; t += kMs) allowed += limiter.allow(v4(1), kStart + t);
  EXPECT_GE(allowed, 200);
  EXPECT_LE(allowed, 205);  // 20/s for 10 s plus the initial burst
}

TEST(WgRateLimit, SourcesHaveSeparateBucketsButPortsShareOne) {
  RateLimiter limiter;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(limiter.allow(v4(1, static_cast<uint16_t>(i)), kStart));
  EXPECT_FALSE(limiter.allow(v4(1, 9999), kStart));
  EXPECT_TRUE(limiter.allow(v4(2), kStart));
}

TEST(WgRateLimit, Ipv6SourcesShareABucketPerSlash64) {
  RateLimiter limiter;
  std::array<uint8_t, 16> a = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
  for (int i = 0; i < 5; ++i) {
    a[15] = static_cast<uint8_t>(i);  // different hosts in one /64
    ASSERT_TRUE(limiter.allow(Endpoint::ipv6(a, 1), kStart));
  }
  EXPECT_FALSE(limiter.allow(Endpoint::ipv6(a, 1), kStart));
  a[7] = 2;  // another /64
  EXPECT_TRUE(limiter.allow(Endpoint::ipv6(a, 1), kStart));
  // An IPv4 address whose bytes equal the IPv6 prefix's first four is still a different source.
  EXPECT_TRUE(limiter.allow(Endpoint::ipv4({0x20, 0x01, 0x0d, 0xb8}, 1), kStart));
}

TEST(WgRateLimit, TableIsBoundedAndEvictsLeastRecentlySeen) {
  RateLimiter limiter(4);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(limiter.allow(v4(1), kStart));
  ASSERT_FALSE(limiter.allow(v4(1), kStart));
  for (uint8_t s = 2; s < 100; ++s) {
    limiter.allow(v4(s), kStart);
    EXPECT_LE(limiter.size(), 4u);
  }
  // Source 1 was evicted, so it starts over with a full bucket.
  EXPECT_TRUE(limiter.allow(v4(1), kStart));
  // The most recent sources are still tracked: 99 has spent one token and keeps its bucket.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter.allow(v4(99), kStart));
  EXPECT_FALSE(limiter.allow(v4(99), kStart));
}

TEST(WgRateLimit, GarbageCollectionForgetsIdleSources) {
  RateLimiter limiter;
  for (uint8_t s = 0; s < 50; ++s) limiter.allow(v4(s), kStart);
  EXPECT_EQ(limiter.size(), 50u);
  limiter.allow(v4(200), kStart + 999 * kMs);
  limiter.collect_garbage(kStart + 1000 * kMs);
  EXPECT_EQ(limiter.size(), 1u);  // only the source seen within the last second
  // allow() runs the collection itself once a second.
  limiter.allow(v4(201), kStart + 3000 * kMs);
  EXPECT_EQ(limiter.size(), 1u);
}

TEST(WgRateLimit, ClockGoingBackwardsGrantsNoTokens) {
  RateLimiter limiter;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(limiter.allow(v4(1), kStart));
  EXPECT_FALSE(limiter.allow(v4(1), kStart - 500 * kMs));
}

}  // namespace
}  // namespace exitgw::wg
