// NPTv6 (common/nptv6.h) against RFC 6296: the example of its section 3.6 / appendix B, the
// checksum neutrality the whole design rests on (3.2), and the addresses it must refuse.
#include "common/nptv6.h"

#include <gtest/gtest.h>

#include <array>
#include <random>

#include "control/net_parse.h"

namespace exitgw {
namespace {

using dp::Nptv6;
using Addr = std::array<uint8_t, 16>;

Addr ip6(const char* text) {
  auto a = parse_ipv6(text);
  EXPECT_TRUE(a.ok()) << text;
  return a.ok() ? *a : Addr{};
}

Nptv6 make(const char* inside, const char* outside, uint8_t len) {
  return Nptv6(ip6(inside).data(), ip6(outside).data(), len);
}

// The one's-complement sum of an address's eight words: what a pseudo-header checksum sees.
uint16_t sum(const Addr& a) {
  uint32_t s = 0;
  for (unsigned i = 0; i < 8; ++i) s += uint32_t{a[2 * i]} << 8 | a[2 * i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

TEST(Nptv6, Rfc6296ExampleTranslatesBothWays) {
  // RFC 6296: inside FD01:0203:0405::/48, outside 2001:0DB8:0001::/48; the host
  // FD01:0203:0405:0001::1234 is seen outside as 2001:0DB8:0001:D550::1234.
  const Nptv6 npt = make("fd01:203:405::", "2001:db8:1::", 48);
  Addr a = ip6("fd01:203:405:1::1234");
  ASSERT_EQ(npt.to_outside(a.data()), Nptv6::Result::kTranslated);
  EXPECT_EQ(format_ipv6(a.data()), "2001:db8:1:d550::1234");
  ASSERT_EQ(npt.to_inside(a.data()), Nptv6::Result::kTranslated);
  EXPECT_EQ(format_ipv6(a.data()), "fd01:203:405:1::1234");
}

TEST(Nptv6, EveryTranslationKeepsTheAddressSumAndRoundTrips) {
  std::mt19937 rng(6296);
  for (uint8_t len : {48, 47, 40, 33, 32, 20, 8}) {
    const Nptv6 npt = make("fd7a:115c:a1e0::", "2001:db8:77::", len);
    for (int i = 0; i < 2000; ++i) {
      Addr a;
      for (auto& b : a) b = static_cast<uint8_t>(rng());
      std::memcpy(a.data(), npt.inside(), len / 8);  // the prefix's whole bytes
      if (len % 8) {
        const auto mask = static_cast<uint8_t>(0xff00 >> (len % 8));
        a[len / 8] = static_cast<uint8_t>((a[len / 8] & ~mask) | npt.inside()[len / 8]);
      }
      if (a[6] == 0xff && a[7] == 0xff) continue;
      const Addr before = a;
      ASSERT_EQ(npt.to_outside(a.data()), Nptv6::Result::kTranslated) << int(len);
      EXPECT_TRUE(npt.in_outside(a.data()));
      EXPECT_EQ(sum(a), sum(before)) << "len " << int(len) << " " << format_ipv6(a.data());
      ASSERT_EQ(npt.to_inside(a.data()), Nptv6::Result::kTranslated);
      EXPECT_EQ(a, before) << "len " << int(len);
    }
  }
}

TEST(Nptv6, AdjustedWordOfAllOnesBecomesZeroAndMapsBack) {
  const Nptv6 npt = make("fd01:203:405::", "2001:db8:1::", 48);
  // The adjustment here is 0xd54f (0x0001 -> 0xd550 above): 0x2ab0 + 0xd54f = 0xffff.
  Addr a = ip6("fd01:203:405:2ab0::1");
  ASSERT_EQ(npt.to_outside(a.data()), Nptv6::Result::kTranslated);
  EXPECT_EQ(format_ipv6(a.data()), "2001:db8:1::1");
  ASSERT_EQ(npt.to_inside(a.data()), Nptv6::Result::kTranslated);
  EXPECT_EQ(format_ipv6(a.data()), "fd01:203:405:2ab0::1");
}

TEST(Nptv6, AddressesOutsideThePrefixOrWithWordFfffAreNotTranslated) {
  const Nptv6 npt = make("fd7a:115c:a1e0::", "2001:db8:77::", 48);
  Addr other = ip6("fd7a:115c:a1e1::5");
  const Addr before = other;
  EXPECT_EQ(npt.to_outside(other.data()), Nptv6::Result::kNotInPrefix);
  EXPECT_EQ(other, before);
  Addr pub = ip6("2001:db8:78::5");
  EXPECT_EQ(npt.to_inside(pub.data()), Nptv6::Result::kNotInPrefix);
  Addr ffff = ip6("fd7a:115c:a1e0:ffff::5");
  EXPECT_EQ(npt.to_outside(ffff.data()), Nptv6::Result::kUntranslatable);
  EXPECT_FALSE(Nptv6().on());
}

}  // namespace
}  // namespace exitgw
