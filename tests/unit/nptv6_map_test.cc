// --nptv6_map (control/nptv6_map.h): what it accepts, and each refusal named with the flag and
// the prefixes at fault.
#include "control/nptv6_map.h"

#include <gtest/gtest.h>

#include <string>

namespace exitgw {
namespace {

Ipv6Prefix prefix(const char* text) {
  auto p = parse_ipv6_prefix(text);
  EXPECT_TRUE(p.ok()) << text;
  return p.ok() ? *p : Ipv6Prefix{};
}

// The refusal of `map` in `context`, or "" when it was accepted.
std::string refusal(const std::string& map, const Nptv6MapContext& context = {}) {
  auto r = parse_nptv6_map(map, context);
  return r.ok() ? std::string() : r.error();
}

// The message names the flag and each of `parts`.
void expect_refused(const std::string& map, std::initializer_list<const char*> parts,
                    const Nptv6MapContext& context = {}) {
  const std::string e = refusal(map, context);
  ASSERT_FALSE(e.empty()) << map << " was accepted";
  EXPECT_EQ(e.rfind("--nptv6_map: ", 0), 0u) << e;
  for (const char* p : parts) EXPECT_NE(e.find(p), std::string::npos) << e << " lacks " << p;
}

TEST(Nptv6Map, EmptyIsNoneAndPairsParseInOrder) {
  auto none = parse_nptv6_map("", {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto two = parse_nptv6_map("fd00:5173:1::/48=2001:db8:300::/48,fd00:6000::/32=2001:db9::/32", {});
  ASSERT_TRUE(two.ok()) << two.error();
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].inside, prefix("fd00:5173:1::/48"));
  EXPECT_EQ((*two)[0].outside, prefix("2001:db8:300::/48"));
  EXPECT_EQ((*two)[1].inside, prefix("fd00:6000::/32"));
  EXPECT_EQ((*two)[1].outside, prefix("2001:db9::/32"));
}

TEST(Nptv6Map, BadSyntaxLengthsAndSpecialPrefixesRefused) {
  expect_refused("fd00::/48", {"'fd00::/48'", "INSIDE=OUTSIDE"});
  expect_refused("fd00::/48=nonsense", {"'fd00::/48=nonsense'"});
  expect_refused("fd00::/48=2001:db8::/48,,fd01::/48=2001:db9::/48", {"''", "INSIDE=OUTSIDE"});
  expect_refused("fd00::/48=2001:db8::/40", {"fd00::/48=2001:db8::/40", "same length"});
  expect_refused("fd00::/56=2001:db8::/56", {"fd00::/56=2001:db8::/56", "/1 to /48"});
  expect_refused("::/0=::/0", {"::/0=::/0", "/1 to /48"});
  expect_refused("ff00::/8=2001::/8", {"ff00::/8", "multicast"});
  expect_refused("fe80::/16=2001::/16", {"fe80::/16", "link-local"});
  expect_refused("fd00::/48=::/48", {"::/48", "unspecified"});
  // A short prefix whose first address is ordinary still holds special ones.
  expect_refused("8000::/1=2001::/1", {"8000::/1", "multicast"});
  expect_refused("fc00::/6=2001::/6", {"fc00::/6", "link-local"});
  expect_refused("fd00::/16=0:0:1::/16", {"0:0:1::/16", "bits set past /16"});
  expect_refused("fd00::1/48=2001:db8::/48", {"fd00::1/48", "bits set past /48"});
  expect_refused("fd00::/48=2001:db8::/48,", {"trailing comma", "fd00::/48=2001:db8::/48"});
  EXPECT_EQ(refusal("fd00::/48=2001:db8::/48"), "");
}

TEST(Nptv6Map, OverlapsBetweenMappingsRefusedNamingBoth) {
  // Two insides, two outsides, an inside on an outside (another pair's, and its own).
  expect_refused("fd00:1::/32=2001:db8::/32,fd00:1:2::/48=2001:db9:1::/48",
                 {"fd00:1:2::/48", "overlaps the inside fd00:1::/32"});
  expect_refused("fd00:1::/48=2001:db8::/48,fd00:2::/48=2001:db8::/48",
                 {"fd00:2::/48", "overlaps the outside 2001:db8::/48"});
  expect_refused("fd00:1::/48=2001:db8::/48,2001:db8::/48=2001:db9::/48",
                 {"the inside 2001:db8::/48 overlaps the outside 2001:db8::/48"});
  expect_refused("fd00:1::/48=2001:db8::/48,fd00:2::/48=fd00:1::/48",
                 {"the outside fd00:1::/48 overlaps the inside fd00:1::/48"});
  expect_refused("2001:db8::/32=2001:db8:1::/48", {"/48"});  // unequal, caught first
  expect_refused("2001:db8::/32=2001:db8::/32",
                 {"the inside 2001:db8::/32 overlaps the outside 2001:db8::/32"});
}

TEST(Nptv6Map, CollisionsWithThePoolsAndTheGatewaysAddressesRefused) {
  Nptv6MapContext stateful;
  stateful.stateful_pool6 = {prefix("2001:db8:100::1/128")};
  expect_refused("fd00::/32=2001:db8::/32", {"2001:db8::/32", "--nat_pool6 2001:db8:100::1/128"},
                 stateful);
  EXPECT_EQ(refusal("fd00::/48=2001:db8:300::/48", stateful), "");
  // An inside on the pool too: the pool's addresses are the gateway's, never a peer's.
  expect_refused("2001:db8::/32=2001:db9::/32",
                 {"the inside 2001:db8::/32", "--nat_pool6 2001:db8:100::1/128"}, stateful);
  Nptv6MapContext nptv6;
  nptv6.existing = {{prefix("fd7a:115c:a1e0::/48"), prefix("2001:db8:100::/48")}};
  expect_refused("fd7a:115c::/32=2001:db9::/32",
                 {"--nat_inside6/--nat_pool6", "overlaps the inside fd7a:115c:a1e0::/48"}, nptv6);
  expect_refused("fd00::/48=2001:db8:100::/48",
                 {"--nat_inside6/--nat_pool6", "overlaps the outside 2001:db8:100::/48"}, nptv6);
  Nptv6MapContext own;
  own.own_addresses6 = {prefix("2001:db8:5::2").addr};
  expect_refused("fd00::/48=2001:db8:5::/48", {"2001:db8:5::/48", "own address 2001:db8:5::2"},
                 own);
}

TEST(Nptv6Map, MoreThanSixteenMappingsInAllRefused) {
  std::string map;
  for (int i = 0; i < 16; ++i)
    map += (i ? "," : "") +
           ("fd00:" + std::to_string(i + 1) + "::/32=2001:" + std::to_string(i + 1) + "::/32");
  EXPECT_EQ(refusal(map), "");
  expect_refused(map + ",fd00:99::/32=2001:99::/32", {"17 mappings", "at most 16"});
  Nptv6MapContext nptv6;
  nptv6.existing = {{prefix("fd7a:115c:a1e0::/48"), prefix("2001:db8:100::/48")}};
  expect_refused(map, {"16 mappings beside --nat_inside6/--nat_pool6's", "at most 16"}, nptv6);
}

}  // namespace
}  // namespace exitgw
