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
      // Only the prefix's bits and the adjusted word (bits 48-63) change (RFC 6296 3.5).
      for (unsigned bit = len; bit < 128; ++bit) {
        if (bit >= 48 && bit < 64) continue;
        const auto m = static_cast<uint8_t>(0x80 >> (bit % 8));
        ASSERT_EQ(a[bit / 8] & m, before[bit / 8] & m) << "bit " << bit << " len " << int(len);
      }
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

// The table behind --nptv6_map: first match by inside (outbound) and by outside (inbound),
// each address through its own mapping, nothing for an address no mapping holds.
TEST(Nptv6Table, EachAddressTakesTheFirstMappingThatHoldsItAndNoneOtherwise) {
  dp::Nptv6Table t;
  EXPECT_FALSE(t.on());
  ASSERT_TRUE(t.add(make("fd01:203:405::", "2001:db8:1::", 48)));  // RFC 6296's example
  ASSERT_TRUE(t.add(make("fd7a:115c:a1e0::", "2001:db8:77::", 48)));
  ASSERT_TRUE(t.add(make("fd00:5173::", "2001:db8:300::", 32)));
  EXPECT_EQ(t.size(), 3u);
  Addr a = ip6("fd01:203:405:1::1234");
  EXPECT_EQ(t.find_inside(a.data()), 0u);
  ASSERT_EQ(t.to_outside(a.data()), Nptv6::Result::kTranslated);
  EXPECT_EQ(format_ipv6(a.data()), "2001:db8:1:d550::1234");  // RFC 6296 3.6
  EXPECT_EQ(t.find_outside(a.data()), 0u);
  ASSERT_EQ(t.to_inside(a.data()), Nptv6::Result::kTranslated);
  EXPECT_EQ(format_ipv6(a.data()), "fd01:203:405:1::1234");
  Addr b = ip6("fd00:5173:9:7::20");
  EXPECT_EQ(t.find_inside(b.data()), 2u);
  ASSERT_EQ(t.to_outside(b.data()), Nptv6::Result::kTranslated);
  EXPECT_TRUE(t.in_outside(b.data()));
  EXPECT_EQ(t.find_outside(b.data()), 2u);
  Addr none = ip6("fd7b::1");
  const Addr before = none;
  EXPECT_EQ(t.find_inside(none.data()), dp::Nptv6Table::kNone);
  EXPECT_EQ(t.to_outside(none.data()), Nptv6::Result::kNotInPrefix);
  EXPECT_EQ(t.to_inside(none.data()), Nptv6::Result::kNotInPrefix);
  EXPECT_FALSE(t.in_outside(none.data()));
  EXPECT_EQ(none, before);
}

TEST(Nptv6Table, FirstMatchWinsAndTheTableHoldsSixteenAtMost) {
  dp::Nptv6Table t;
  // Overlapping insides (control refuses them; the table's rule is still first match).
  ASSERT_TRUE(t.add(make("fd00::", "2001:db8:1::", 16)));
  ASSERT_TRUE(t.add(make("fd00:1::", "2001:db8:2::", 32)));
  Addr a = ip6("fd00:1::9");
  EXPECT_EQ(t.find_inside(a.data()), 0u);
  EXPECT_FALSE(t.add(Nptv6())) << "an off mapping is not added";
  for (unsigned i = t.size(); i < dp::Nptv6Table::kMax; ++i)
    ASSERT_TRUE(t.add(make("fd10::", "2001:db8:9::", 48)));
  EXPECT_FALSE(t.add(make("fd11::", "2001:db8:a::", 48)));
  EXPECT_EQ(t.size(), dp::Nptv6Table::kMax);
  // One mapping as a table (DataplaneContext::nptv6 from --nat_pool6 alone); off: empty.
  EXPECT_EQ(dp::Nptv6Table(make("fd7a:115c:a1e0::", "2001:db8:77::", 48)).size(), 1u);
  EXPECT_FALSE(dp::Nptv6Table(Nptv6()).on());
}

}  // namespace
}  // namespace exitgw
