// Policy compilation: principals, peer classes, the default policy, built-in egress safety,
// ports and protocols, exit approval. Decisions are read with a naive first-match matcher over
// the compiled rules (the rte_acl classifier is checked against the same matcher elsewhere).
#include "control/policy/compile.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "common/acl_layout.h"
#include "control/policy/prefix.h"

namespace exitgw::policy {
namespace {

uint32_t ip(const char* s) {
  return *parse_address(s);
}

std::array<uint8_t, 16> ip6(const char* s) {
  return parse_prefix6(s)->prefix.addr;
}

// First match over one family's rules (c.rules or c.rules6).
template <typename Rule, typename Address>
uint32_t naive_match(const CompiledPolicy& c, const std::vector<Rule>& rules, uint32_t slot,
                     uint8_t proto, const Address& dst, uint16_t port) {
  const uint32_t cls = slot < c.class_by_slot.size() ? c.class_by_slot[slot] : 0;
  for (const Rule& r : rules) {
    if ((r.any_class || r.class_id == cls) && (r.proto == kProtoAny || r.proto == proto) &&
        prefix_contains_address(r.dst, dst) && port >= r.port_lo && port <= r.port_hi) {
      return acl_result_encode(r.rule_index, r.action == RuleAction::kAllow);
    }
  }
  return 0;
}

std::string verdict(const CompiledPolicy& c, uint32_t result) {
  return std::string(acl_result_allows(result) ? "allow:" : "deny:") +
         c.rule_names.at(acl_result_counter(result));
}

// "allow:<counter name>" or "deny:<counter name>".
std::string decide(const CompiledPolicy& c, uint32_t slot, uint8_t proto, const char* dst,
                   uint16_t port = 0) {
  return verdict(c, naive_match(c, c.rules, slot, proto, ip(dst), port));
}

// The same for an IPv6 destination.
std::string decide6(const CompiledPolicy& c, uint32_t slot, uint8_t proto, const char* dst,
                    uint16_t port = 0) {
  return verdict(c, naive_match(c, c.rules6, slot, proto, ip6(dst), port));
}

Policy parse(const char* text) {
  auto p = parse_policy(text, "p");
  EXPECT_TRUE(p.ok()) << p.error();
  return p.ok() ? std::move(p.value()) : Policy{};
}

PolicyPeer peer(uint32_t slot, std::string user, std::vector<std::string> tags, const char* addr) {
  PolicyPeer p;
  p.slot = slot;
  p.user = std::move(user);
  p.tags = std::move(tags);
  const auto pre = parse_prefix(addr);
  p.addresses.push_back(pre->prefix);
  return p;
}

CompiledPolicy compile_ok(const Policy& p, const std::vector<PolicyPeer>& peers,
                          const NodeIdentity& node = {}, const Approvals& a = {}) {
  auto c = compile_policy(p, peers, node, a);
  EXPECT_TRUE(c.ok()) << c.error();
  return c.ok() ? std::move(c.value()) : CompiledPolicy{};
}

const char* kGroups = R"({
  "groups": {"group:eng": ["alice@x.com", "group:ops"], "group:ops": ["bob@x.com"]},
  "tagOwners": {"tag:srv": [], "tag:exit": []},
  "hosts": {"office": "100.64.1.0/24"},
)";

TEST(PolicyCompile, PrincipalsResolveToTheRightPeers) {
  Policy p = parse((std::string(kGroups) + "}").c_str());
  const PolicyPeer alice = peer(0, "alice@x.com", {}, "100.64.0.1/32");
  const PolicyPeer bob = peer(1, "bob@x.com", {}, "100.64.1.2/32");
  const PolicyPeer alice_tagged = peer(2, "alice@x.com", {"tag:srv"}, "100.64.0.3/32");
  const PolicyPeer anonymous = peer(3, "", {}, "100.64.1.4/32");
  const PolicyPeer subnet = peer(4, "", {}, "100.64.0.0/16");  // wider than "office"
  auto matches = [&](Principal pr, const PolicyPeer& who) { return principal_matches(p, pr, who); };
  const Principal user{PrincipalKind::kUser, "alice@x.com", {}};
  EXPECT_TRUE(matches(user, alice));
  EXPECT_FALSE(matches(user, alice_tagged));  // a tagged device is not the user's
  const Principal eng{PrincipalKind::kGroup, "group:eng", {}};
  EXPECT_TRUE(matches(eng, alice));
  EXPECT_TRUE(matches(eng, bob));  // through the nested group:ops
  EXPECT_FALSE(matches(eng, alice_tagged));
  const Principal tag{PrincipalKind::kTag, "tag:srv", {}};
  EXPECT_TRUE(matches(tag, alice_tagged));
  EXPECT_FALSE(matches(tag, alice));
  const Principal member{PrincipalKind::kMember, "", {}};
  EXPECT_TRUE(matches(member, alice));
  EXPECT_FALSE(matches(member, alice_tagged));
  EXPECT_FALSE(matches(member, anonymous));
  const Principal tagged{PrincipalKind::kTagged, "", {}};
  EXPECT_TRUE(matches(tagged, alice_tagged));
  EXPECT_FALSE(matches(tagged, bob));
  const Principal all{PrincipalKind::kAll, "", {}};
  for (const auto* who : {&alice, &bob, &alice_tagged, &anonymous}) EXPECT_TRUE(matches(all, *who));
  const Principal office{PrincipalKind::kPrefix, "", {ip("100.64.1.0"), 24}};
  EXPECT_TRUE(matches(office, bob));
  EXPECT_TRUE(matches(office, anonymous));
  EXPECT_FALSE(matches(office, alice));
  EXPECT_FALSE(matches(office, subnet));  // partly outside: never widens access
}

TEST(PolicyCompile, HostNameAndAddressSourcesGrantThosePeers) {
  Policy p = parse((std::string(kGroups) + R"(
    "grants": [{"src": ["office", "100.64.0.7"], "dst": ["autogroup:internet"], "ip": ["*"]}]})")
                       .c_str());
  auto c = compile_ok(p, {peer(0, "", {}, "100.64.1.9/32"), peer(1, "", {}, "100.64.0.7/32"),
                          peer(2, "", {}, "100.64.0.8/32")});
  EXPECT_EQ(decide(c, 0, kProtoTcp, "1.1.1.1", 443), "allow:grants[0]");
  EXPECT_EQ(decide(c, 1, kProtoTcp, "1.1.1.1", 443), "allow:grants[0]");
  EXPECT_EQ(decide(c, 2, kProtoTcp, "1.1.1.1", 443), "deny:default-deny");
}

// An IPv6 source names the peers that have only IPv6 allowed IPs, every one inside it (a
// partial overlap grants nothing). A peer with IPv4 allowed IPs is named by those: its grant
// covers all its traffic, so an IPv6 source naming it would grant IPv4 addresses (here a
// 10.1.0.0/16 route) that no source names. A named IPv6 destination that is a peer's route is
// peer-to-peer traffic, not the exit's.
TEST(PolicyCompile, Ipv6SourcesNameIpv6OnlyPeersByTheirAllowedIps) {
  Policy p = parse(R"({"hosts": {"pair6": "fd7a:115c:a1e0::/126"},
    "grants": [{"src": ["pair6", "fd7a:115c:a1e0::9", "fd7a:115c:a1e0::7"],
                "dst": ["autogroup:internet"], "ip": ["*"]},
               {"src": ["*"], "dst": ["2001:db8:99:1::/80"], "ip": ["*"]}]})");
  auto only6 = [](uint32_t slot, std::vector<const char*> a6) {
    PolicyPeer x;
    x.slot = slot;
    for (const char* a : a6) x.addresses6.push_back(parse_prefix6(a)->prefix);
    return x;
  };
  PolicyPeer subnet = peer(6, "", {}, "10.1.0.0/16");  // a dual-stack peer with an IPv4 route
  subnet.addresses6.push_back(parse_prefix6("fd7a:115c:a1e0::7/128")->prefix);
  auto c = compile_ok(p, {only6(0, {"fd7a:115c:a1e0::1/128"}), only6(1, {"fd7a:115c:a1e0::2/128"}),
                          // one address outside the /126: a partial overlap grants nothing
                          only6(2, {"fd7a:115c:a1e0::3/128", "fd7a:115c:a1e0::40/128"}),
                          only6(3, {"fd7a:115c:a1e0::9/128"}),
                          peer(4, "", {}, "100.64.0.4/32"),  // IPv4 only: not named
                          only6(5, {"2001:db8:99:1::/64"}), subnet});
  for (uint32_t slot : {0u, 1u, 3u}) {
    EXPECT_EQ(decide6(c, slot, kProtoTcp, "2606:4700::1111", 443), "allow:grants[0]") << slot;
    EXPECT_EQ(decide(c, slot, kProtoTcp, "1.1.1.1", 443), "allow:grants[0]") << slot;
  }
  for (uint32_t slot : {2u, 4u, 5u, 6u}) {
    EXPECT_EQ(decide6(c, slot, kProtoTcp, "2606:4700::1111", 443), "deny:default-deny") << slot;
    EXPECT_EQ(decide(c, slot, kProtoTcp, "1.1.1.1", 443), "deny:default-deny") << slot;
  }
  // grants[1] names a part of peer 5's route: not applied to exit traffic (a note says so).
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "2001:db8:99:1::7", 443), "deny:builtin:documentation");
  bool noted = false;
  for (const std::string& n : c.notes) noted |= n.find("grants[1]") == 0;
  EXPECT_TRUE(noted);
}

TEST(PolicyCompile, ThousandPeersInThreeGroupsShareThreeClasses) {
  Policy p = parse(R"({
    "groups": {"group:a": ["a0@x.com"], "group:b": ["b0@x.com"], "group:c": ["c0@x.com"]},
    "grants": [
      {"src": ["group:a"], "dst": ["autogroup:internet"], "ip": ["*"]},
      {"src": ["group:b"], "dst": ["autogroup:internet"], "ip": ["tcp:443"]},
      {"src": ["group:a", "group:c"], "dst": ["8.8.8.0/24"], "ip": ["udp:53"]},
    ]})");
  // Users a0..a332 etc.: put each user in its group by editing the expanded membership.
  std::vector<PolicyPeer> peers;
  for (uint32_t i = 0; i < 1000; ++i) {
    const char g = "abc"[i % 3];
    const std::string user = std::string(1, g) + std::to_string(i) + "@x.com";
    p.group_users["group:" + std::string(1, g)].insert(user);
    peers.push_back(peer(i, user, {}, "100.64.0.1/32"));
    peers.back().addresses[0].addr += i;
  }
  auto c = compile_ok(p, peers);
  EXPECT_EQ(c.class_count, 4u);  // three groups + class 0 (nobody here)
  EXPECT_NE(c.class_by_slot[0], c.class_by_slot[1]);
  EXPECT_EQ(c.class_by_slot[0], c.class_by_slot[3]);
  EXPECT_EQ(c.class_by_slot[2], c.class_by_slot[998]);
  // The rule count depends on classes, not peers.
  std::vector<PolicyPeer> few(peers.begin(), peers.begin() + 3);
  auto small = compile_ok(p, few);
  EXPECT_EQ(small.rules.size(), c.rules.size());
  EXPECT_EQ(decide(c, 1, kProtoTcp, "1.1.1.1", 443), "allow:grants[1]");
  EXPECT_EQ(decide(c, 1, kProtoTcp, "1.1.1.1", 80), "deny:default-deny");
  EXPECT_EQ(decide(c, 2, kProtoUdp, "8.8.8.8", 53), "allow:grants[2]");
  EXPECT_EQ(decide(c, 2, kProtoUdp, "1.1.1.1", 53), "deny:default-deny");
}

TEST(PolicyCompile, DefaultPolicyLetsMembersUseTheExitAndNobodyElse) {
  const Policy p = default_policy();
  auto c = compile_ok(
      p, {peer(0, "alice@x.com", {}, "100.64.0.1/32"),
          peer(1, "bob@x.com", {"tag:srv"}, "100.64.0.2/32"), peer(2, "", {}, "100.64.0.3/32")});
  EXPECT_EQ(decide(c, 0, kProtoTcp, "93.184.216.34", 443), "allow:grants[0]");
  EXPECT_EQ(decide(c, 0, kProtoIcmp, "93.184.216.34"), "allow:grants[0]");
  EXPECT_EQ(decide(c, 0, 47, "93.184.216.34"), "allow:grants[0]");
  EXPECT_EQ(decide(c, 1, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");
  EXPECT_EQ(decide(c, 2, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");
  EXPECT_EQ(decide(c, 99, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");  // unknown slot
  EXPECT_EQ(decide(c, 0, kProtoTcp, "10.0.0.1", 443), "deny:builtin:private-10");
}

TEST(PolicyCompile, InternetGrantNeverReachesBuiltinRanges) {
  const Policy p = parse(R"({"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]})");
  NodeIdentity node;
  node.own_addresses = {ip("203.0.114.1")};
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")}, node);
  const std::pair<const char*, const char*> cases[] = {
      {"0.1.2.3", "builtin:this-network"},      {"10.9.9.9", "builtin:private-10"},
      {"100.64.0.2", "builtin:tailnet"},        {"100.127.255.255", "builtin:tailnet"},
      {"127.0.0.1", "builtin:loopback"},        {"169.254.169.254", "builtin:link-local"},
      {"172.31.0.1", "builtin:private-172"},    {"192.0.0.8", "builtin:ietf-protocol"},
      {"192.0.2.1", "builtin:test-net-1"},      {"192.168.1.1", "builtin:private-192"},
      {"198.19.0.1", "builtin:benchmarking"},   {"198.51.100.7", "builtin:test-net-2"},
      {"203.0.113.9", "builtin:test-net-3"},    {"224.0.0.251", "builtin:multicast"},
      {"239.255.255.250", "builtin:multicast"}, {"240.0.0.1", "builtin:reserved"},
      {"255.255.255.255", "builtin:broadcast"}, {"203.0.114.1", "builtin:gateway-address"},
  };
  for (const auto& [dst, label] : cases) {
    EXPECT_EQ(decide(c, 0, kProtoUdp, dst, 53), std::string("deny:") + label) << dst;
  }
  // Just outside the ranges: allowed.
  for (const char* dst : {"11.0.0.1", "100.128.0.1", "172.32.0.1", "192.0.3.1", "198.20.0.1",
                          "203.0.114.2", "223.255.255.255", "1.1.1.1"}) {
    EXPECT_EQ(decide(c, 0, kProtoUdp, dst, 53), "allow:acls[0]") << dst;
  }
}

TEST(PolicyCompile, ExplicitGrantOfBuiltinRangeOrSubRangeLiftsTheDenyOnlyThere) {
  const Policy p = parse(R"({"grants": [
      {"src": ["*"], "dst": ["autogroup:internet"], "ip": ["*"]},
      {"src": ["*"], "dst": ["10.1.0.0/16"], "ip": ["tcp:443"]},
      {"src": ["*"], "dst": ["198.51.100.0/24", "192.0.2.0/24"], "ip": ["*"]},
      {"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["udp:5353"]},
      {"src": ["*"], "dst": ["192.168.0.0/15"], "ip": ["*"]},
    ]})");
  NodeIdentity node;
  node.own_addresses = {ip("192.0.2.1")};
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")}, node);
  EXPECT_EQ(decide(c, 0, kProtoTcp, "10.1.2.3", 443), "allow:grants[1]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "10.1.2.3", 80), "deny:builtin:private-10");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "10.2.0.1", 443), "deny:builtin:private-10");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "198.51.100.7", 22), "allow:grants[2]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "192.0.2.77", 22), "allow:grants[2]");
  // The gateway's own address inside an explicitly granted range stays denied.
  EXPECT_EQ(decide(c, 0, kProtoTcp, "192.0.2.1", 22), "deny:builtin:gateway-address");
  // 0.0.0.0/0 is a super-range: it does not name the private ranges.
  EXPECT_EQ(decide(c, 0, kProtoUdp, "10.1.2.3", 5353), "deny:builtin:private-10");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "224.0.0.251", 5353), "deny:builtin:multicast");
  // 192.168.0.0/15 contains 192.168.0.0/16 but does not name it.
  EXPECT_EQ(decide(c, 0, kProtoUdp, "192.168.1.1", 1), "deny:builtin:private-192");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "192.169.1.1", 1), "allow:grants[0]");
}

TEST(PolicyCompile, Ipv6InternetGrantReachesGlobalUnicastButNeverTheIpv6SafetyRanges) {
  const Policy p = parse(R"({"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]})");
  NodeIdentity node;
  node.own_addresses6 = {ip6("2a01:4f8::1")};
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")}, node);
  const std::pair<const char*, const char*> cases[] = {
      {"::", "builtin:unspecified"},
      {"::1", "builtin:loopback"},
      {"::ffff:8.8.8.8", "builtin:ipv4-mapped"},
      {"64:ff9b::808:808", "builtin:nat64"},
      {"64:ff9b:1::1", "builtin:ipv4-ipv6-translation"},
      {"100::1", "builtin:discard-only"},
      {"2001:2::1", "builtin:ietf-protocol"},   // benchmarking, RFC 5180
      {"2001:10::1", "builtin:ietf-protocol"},  // deprecated ORCHID
      {"2001:1ff:ffff::1", "builtin:ietf-protocol"},
      {"2001:20::1", "builtin:orchid"},
      {"2001:db8::1", "builtin:documentation"},
      {"3fff:fff::1", "builtin:documentation"},
      {"fc00::1", "builtin:unique-local"},
      {"fd12:3456::1", "builtin:unique-local"},
      {"fd7a:115c:a1e0::5", "builtin:tailnet"},
      {"fe80::1", "builtin:link-local"},
      {"febf:ffff::1", "builtin:link-local"},
      {"ff02::1", "builtin:multicast"},
      {"2a01:4f8::1", "builtin:gateway-address"},
  };
  for (const auto& [dst, label] : cases) {
    EXPECT_EQ(decide6(c, 0, kProtoUdp, dst, 53), std::string("deny:") + label) << dst;
  }
  // Globally reachable, including the assignments inside 2001::/23 the registry marks so.
  for (const char* dst :
       {"2606:4700:4700::1111", "2001::1", "2001:1::1", "2001:3::1", "2001:4:112::1", "2001:30::1",
        "2001:200::1", "2a01:4f8::2", "3fff:1000::1"}) {
    EXPECT_EQ(decide6(c, 0, kProtoUdp, dst, 53), "allow:acls[0]") << dst;
  }
  // Another peer's class covers neither family.
  EXPECT_EQ(decide6(c, 7, kProtoUdp, "2606:4700:4700::1111", 53), "deny:default-deny");
}

TEST(PolicyCompile, AutogroupInternetInIpv6IsOnlyTheGlobalUnicastSpace) {
  const Policy p = default_policy();
  auto c = compile_ok(p, {peer(0, "alice@x.com", {}, "100.64.0.1/32")});
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "2606:4700::1", 443), "allow:grants[0]");
  EXPECT_EQ(decide6(c, 0, kProtoIcmpv6, "2606:4700::1"), "allow:grants[0]");
  // Outside 2000::/3 and in no safety range (unassigned space): the default deny.
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "4000::1", 443), "deny:default-deny");
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "1::1", 443), "deny:default-deny");
}

TEST(PolicyCompile, ExplicitGrantOfAnIpv6SafetyRangeOrSubRangeLiftsTheDenyOnlyThere) {
  const Policy p = parse(R"({"hosts": {"lab6": "fd00:1::/32"}, "grants": [
      {"src": ["*"], "dst": ["autogroup:internet"], "ip": ["*"]},
      {"src": ["*"], "dst": ["lab6"], "ip": ["tcp:443"]},
      {"src": ["*"], "dst": ["64:ff9b::/96", "2001:db8::/32"], "ip": ["*"]},
      {"src": ["*"], "dst": ["2001::/23"], "ip": ["udp:9"]},
      {"src": ["*"], "dst": ["fe00::/9"], "ip": ["*"]},
    ]})");
  NodeIdentity node;
  node.own_addresses6 = {ip6("2001:db8::1")};
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")}, node);
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "fd00:1::5", 443), "allow:grants[1]");
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "fd00:1::5", 80), "deny:builtin:unique-local");
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "fd00:2::5", 443), "deny:builtin:unique-local");
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "64:ff9b::808:808", 443), "allow:grants[2]");
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "2001:db8::77", 22), "allow:grants[2]");
  // The gateway's own address inside an explicitly granted range stays denied.
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "2001:db8::1", 22), "deny:builtin:gateway-address");
  // Naming 2001::/23 lifts the whole range, its pieces around the holes included; the
  // more specific ORCHIDv2 range inside it stays denied.
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2001:2::1", 9), "allow:grants[3]");
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2001:1ff::1", 9), "allow:grants[3]");
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2001:2::1", 10), "deny:builtin:ietf-protocol");
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2001:20::1", 9), "deny:builtin:orchid");
  // In a hole of 2001::/23 (Teredo) a named grant is an ordinary rule in file order; in the
  // denied part it is the exception.
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2001::1", 9), "allow:grants[0]");
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2001:2::1", 9), "allow:grants[3]");
  // fe00::/9 is beside link-local fe80::/10, not around it: fe80::/10 stays denied.
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "fe80::1", 1), "deny:builtin:link-local");
}

TEST(PolicyCompile, OneCounterListSpansBothFamilies) {
  const Policy p = parse(R"({"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]})");
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")});
  // A label both families use is one counter; the rule's counter is the same for both.
  EXPECT_EQ(std::count(c.rule_names.begin(), c.rule_names.end(), "builtin:loopback"), 1);
  EXPECT_EQ(std::count(c.rule_names.begin(), c.rule_names.end(), "builtin:tailnet"), 1);
  EXPECT_EQ(std::count(c.rule_names.begin(), c.rule_names.end(), "builtin:nat64"), 1);
  EXPECT_EQ(decide(c, 0, kProtoUdp, "127.0.0.1", 1), "deny:builtin:loopback");
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "::1", 1), "deny:builtin:loopback");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "1.1.1.1", 1), "allow:grants[0]");
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "2606:4700::1", 1), "allow:grants[0]");
  EXPECT_EQ(c.rule_names.back(), "grants[0]");
  // "*" in IPv6 is ::/0: the unassigned space outside 2000::/3 too.
  EXPECT_EQ(decide6(c, 0, kProtoUdp, "4000::1", 1), "allow:grants[0]");
}

TEST(PolicyCompile, Ipv6TailnetDestinationsAreIgnoredWithANoteAndStayDenied) {
  const Policy p = parse(R"({"grants": [
      {"src": ["*"], "dst": ["fd7a:115c:a1e0::2", "fd7a:115c:a1e0:ab12::/64"], "ip": ["*"]}]})");
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")});
  EXPECT_EQ(decide6(c, 0, kProtoTcp, "fd7a:115c:a1e0::2", 22), "deny:builtin:tailnet");
  int notes = 0;
  for (const auto& n : c.notes) notes += n.find("is a tailnet address") != std::string::npos;
  EXPECT_EQ(notes, 2);
}

TEST(PolicyCompile, GatewayAddressNamedExactlyIsAllowed) {
  const Policy p = parse(R"({"grants": [{"src": ["*"], "dst": ["192.0.2.1"], "ip": ["icmp:*"]}]})");
  NodeIdentity node;
  node.own_addresses = {ip("192.0.2.1")};
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")}, node);
  EXPECT_EQ(decide(c, 0, kProtoIcmp, "192.0.2.1"), "allow:grants[0]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "192.0.2.1", 80), "deny:builtin:gateway-address");
}

TEST(PolicyCompile, TailnetDestinationsAreIgnoredWithANoteAndStayDenied) {
  const Policy p = parse(R"({"grants": [
      {"src": ["*"], "dst": ["100.64.0.2", "10.9.0.0/24"], "ip": ["*"]}]})");
  PolicyPeer router = peer(1, "", {}, "100.64.0.2/32");
  router.addresses.push_back({ip("10.9.0.0"), 24});  // a peer's subnet route
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32"), router});
  EXPECT_EQ(decide(c, 0, kProtoTcp, "100.64.0.2", 22), "deny:builtin:tailnet");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "10.9.0.5", 22), "deny:builtin:private-10");
  int notes = 0;
  for (const auto& n : c.notes) notes += n.find("is a tailnet address") != std::string::npos;
  EXPECT_EQ(notes, 2);
}

TEST(PolicyCompile, PortsAndProtocolsMatchExactly) {
  const Policy p = parse(R"({
    "acls": [
      {"action": "accept", "src": ["*"], "dst": ["autogroup:internet:80,443,8000-8080"],
       "proto": "tcp"},
      {"action": "accept", "src": ["*"], "dst": ["1.1.1.1:53"]},
      {"action": "accept", "src": ["*"], "dst": ["9.9.9.9:*"]},
      {"action": "accept", "src": ["*"], "dst": ["8.8.4.4:*"], "proto": 17},
    ],
    "grants": [{"src": ["*"], "dst": ["8.8.8.8"], "ip": ["udp:53", "icmp:*"]}]})");
  auto c = compile_ok(p, {peer(0, "a@x.com", {}, "100.64.0.1/32")});
  EXPECT_EQ(decide(c, 0, kProtoTcp, "5.5.5.5", 80), "allow:acls[0]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "5.5.5.5", 8080), "allow:acls[0]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "5.5.5.5", 8081), "deny:default-deny");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "5.5.5.5", 79), "deny:default-deny");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "5.5.5.5", 443), "deny:default-deny");
  EXPECT_EQ(decide(c, 0, kProtoIcmp, "5.5.5.5"), "deny:default-deny");
  // No proto: TCP and UDP on the ports; ICMP only when the ports are *.
  EXPECT_EQ(decide(c, 0, kProtoUdp, "1.1.1.1", 53), "allow:acls[1]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "1.1.1.1", 53), "allow:acls[1]");
  EXPECT_EQ(decide(c, 0, kProtoIcmp, "1.1.1.1"), "deny:default-deny");
  EXPECT_EQ(decide(c, 0, kProtoIcmp, "9.9.9.9"), "allow:acls[2]");
  EXPECT_EQ(decide(c, 0, 47, "9.9.9.9"), "deny:default-deny");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "8.8.4.4", 1), "allow:acls[3]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "8.8.4.4", 1), "deny:default-deny");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "8.8.8.8", 53), "allow:grants[0]");
  EXPECT_EQ(decide(c, 0, kProtoIcmp, "8.8.8.8"), "allow:grants[0]");
  EXPECT_EQ(decide(c, 0, kProtoTcp, "8.8.8.8", 53), "deny:default-deny");
}

TEST(PolicyCompile, ViaGrantAppliesOnlyOnNodesWithThatTag) {
  const Policy p = parse(R"({"tagOwners": {"tag:exit-eu": []}, "grants": [
      {"src": ["*"], "dst": ["autogroup:internet"], "ip": ["*"], "via": ["tag:exit-eu"]}]})");
  const std::vector<PolicyPeer> peers{peer(0, "a@x.com", {}, "100.64.0.1/32")};
  NodeIdentity eu;
  eu.tags = {"tag:exit-eu"};
  EXPECT_EQ(decide(compile_ok(p, peers, eu), 0, kProtoTcp, "1.1.1.1", 443), "allow:grants[0]");
  EXPECT_EQ(decide(compile_ok(p, peers, {}), 0, kProtoTcp, "1.1.1.1", 443), "deny:default-deny");
}

TEST(PolicyCompile, DuplicatePeerSlotIsAnError) {
  const Policy p = default_policy();
  auto c = compile_policy(p,
                          std::vector<PolicyPeer>{peer(3, "a@x.com", {}, "100.64.0.1/32"),
                                                  peer(3, "b@x.com", {}, "100.64.0.2/32")},
                          {}, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("slot 3"), std::string::npos);
}

TEST(PolicyCompile, ExitApprovalNeedsAdvertisementAndApprovalOrAutoApprover) {
  const Policy p = parse(R"({"groups": {"group:ops": ["ops@x.com"]},
      "tagOwners": {"tag:exit": []},
      "autoApprovers": {"exitNode": ["tag:exit", "group:ops"]}})");
  NodeIdentity node;
  node.exit_advertised = false;
  node.tags = {"tag:exit"};
  Approvals approved;
  approved.exit_node = true;
  EXPECT_FALSE(compile_ok(p, {}, node, approved).exit.approved);  // not advertised
  node.exit_advertised = true;
  EXPECT_TRUE(compile_ok(p, {}, node, {}).exit.approved);  // auto: tag:exit
  NodeIdentity untagged;
  untagged.exit_advertised = true;
  untagged.user = "ops@x.com";
  EXPECT_TRUE(compile_ok(p, {}, untagged, {}).exit.approved);  // auto: group:ops
  untagged.user = "dev@x.com";
  auto pending = compile_ok(p, {}, untagged, {});
  EXPECT_FALSE(pending.exit.approved);
  EXPECT_NE(pending.exit.reason.find("awaiting"), std::string::npos);
  EXPECT_TRUE(compile_ok(p, {}, untagged, approved).exit.approved);  // via the file
  Approvals revoked;
  revoked.exit_node = false;
  revoked.exit_node_line = 3;
  auto r = compile_ok(p, {}, node, revoked);  // explicit revocation beats auto-approval
  EXPECT_FALSE(r.exit.approved);
  EXPECT_NE(r.exit.reason.find("line 3"), std::string::npos);
  // Default policy has no autoApprovers: approval must come from the file.
  EXPECT_FALSE(compile_ok(default_policy(), {}, node, {}).exit.approved);
}

TEST(PolicyCompile, LabPolicyAllowsMembersToDocumentationRangesAndNotContractors) {
  const Policy p = parse(R"({
    "groups": {"group:lab": ["alice@example.com"], "group:contractors": ["carol@example.net"]},
    "hosts": {"lab-net-2": "198.51.100.0/24"},
    "grants": [
      {"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["*"]},
      {"src": ["group:lab"], "dst": ["lab-net-2", "203.0.113.0/24"], "ip": ["*"]}]})");
  auto c = compile_ok(p, {peer(0, "alice@example.com", {}, "100.64.0.11/32"),
                          peer(1, "carol@example.net", {}, "100.64.0.12/32")});
  EXPECT_EQ(decide(c, 0, kProtoTcp, "198.51.100.10", 80), "allow:grants[1]");
  EXPECT_EQ(decide(c, 0, kProtoUdp, "203.0.113.10", 5201), "allow:grants[1]");
  EXPECT_EQ(decide(c, 1, kProtoTcp, "198.51.100.10", 80), "deny:builtin:test-net-2");
  EXPECT_EQ(decide(c, 1, kProtoTcp, "93.184.216.34", 80), "allow:grants[0]");
}

}  // namespace
}  // namespace exitgw::policy
