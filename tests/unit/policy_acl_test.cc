// The rte_acl classifier against a naive first-match matcher: random rule sets and 100k
// random packets, compiled policies, empty and failing builds, and the snapshot.
#include "control/policy/acl_classifier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include <rte_eal.h>

#include "control/policy/prefix.h"
#include "tests/support/eal_environment.h"

namespace exitgw::policy {
namespace {

EXITGW_EAL_ENVIRONMENT("policy_acl_test", 128);

struct Packet {
  uint32_t class_id;
  uint8_t proto;
  uint32_t dst;
  uint16_t port;
};

// First match over either family's rules.
template <typename Rule, typename P>
uint32_t naive(const std::vector<Rule>& rules, const P& p) {
  for (const Rule& r : rules) {
    if ((r.any_class || r.class_id == p.class_id) && (r.proto == kProtoAny || r.proto == p.proto) &&
        prefix_contains_address(r.dst, p.dst) && p.port >= r.port_lo && p.port <= r.port_hi) {
      return acl_result_encode(r.rule_index, r.action == RuleAction::kAllow);
    }
  }
  return 0;
}

void fill_key(AclKeyV4& key, const Packet& p) {
  fill_acl_key_v4(key, p.class_id, p.proto, rte_cpu_to_be_32(p.dst), rte_cpu_to_be_16(p.port));
}
std::string format_dst(const Packet& p) {
  return format_prefix(Ipv4Prefix{p.dst, 32});
}

// Classifies `packets` in bursts of 32 and compares each result with the naive matcher;
// returns the number of disagreements (the first five reported).
template <typename Key, typename Rule, typename P>
size_t mismatches(const AclClassifier& acl, const std::vector<Rule>& rules,
                  const std::vector<P>& packets) {
  std::vector<Key> keys(packets.size());
  for (size_t i = 0; i < packets.size(); ++i) fill_key(keys[i], packets[i]);
  size_t count = 0;
  for (size_t base = 0; base < packets.size(); base += 32) {
    const uint32_t n = static_cast<uint32_t>(std::min<size_t>(32, packets.size() - base));
    const uint8_t* data[32];
    uint32_t results[32];
    for (uint32_t i = 0; i < n; ++i) data[i] = reinterpret_cast<const uint8_t*>(&keys[base + i]);
    acl.classify(data, results, n);
    for (uint32_t i = 0; i < n; ++i) {
      const P& p = packets[base + i];
      const uint32_t want = naive(rules, p);
      if (results[i] != want && ++count <= 5) {
        ADD_FAILURE() << "class " << p.class_id << " proto " << int(p.proto) << " dst "
                      << format_dst(p) << " port " << p.port << ": acl " << results[i] << " naive "
                      << want;
      }
    }
  }
  return count;
}

void expect_same_as_naive(const AclClassifier& acl, const std::vector<CompiledRule>& rules,
                          const std::vector<Packet>& packets) {
  EXPECT_EQ(mismatches<AclKeyV4>(acl, rules, packets), 0u);
}

void random_dst(std::mt19937& rng, Ipv4Prefix& dst) {
  dst.len = static_cast<uint8_t>(rng() % 33);
  dst.addr = rng() & dst.mask();
}
// Prefixes of every length, with set bits in all four 32-bit words of the address.
void random_dst(std::mt19937& rng, Ipv6Prefix& dst) {
  for (auto& b : dst.addr) b = static_cast<uint8_t>(rng());
  dst.len = static_cast<uint8_t>(rng() % 129);
  dst = canonical(dst);
}

// Random rules of either family; `icmp` is the family's ICMP protocol.
template <typename Rule>
std::vector<Rule> random_rules_of(std::mt19937& rng, size_t count, uint32_t classes, uint8_t icmp) {
  std::vector<Rule> rules;
  const uint8_t protos[] = {kProtoAny, kProtoTcp, kProtoUdp, icmp, 47};
  for (size_t i = 0; i < count; ++i) {
    Rule r;
    r.any_class = rng() % 10 == 0;
    r.class_id = 1 + rng() % classes;
    random_dst(rng, r.dst);
    r.proto = protos[rng() % 5];
    if (r.proto == kProtoTcp || r.proto == kProtoUdp) {
      const uint16_t a = static_cast<uint16_t>(rng() % 1200);
      const uint16_t b = static_cast<uint16_t>(rng() % 1200);
      r.port_lo = std::min(a, b);
      r.port_hi = rng() % 4 == 0 ? 65535 : std::max(a, b);
    }
    r.action = rng() % 3 == 0 ? RuleAction::kDeny : RuleAction::kAllow;
    r.rule_index = 1 + static_cast<uint32_t>(i % 1000);
    rules.push_back(r);
  }
  return rules;
}

std::vector<CompiledRule> random_rules(std::mt19937& rng, size_t count, uint32_t classes) {
  return random_rules_of<CompiledRule>(rng, count, classes, kProtoIcmp);
}

// Packets biased toward the rules' own prefixes and ports so that many of them match.
std::vector<Packet> random_packets(std::mt19937& rng, const std::vector<CompiledRule>& rules,
                                   size_t count, uint32_t classes) {
  std::vector<Packet> packets;
  const uint8_t protos[] = {kProtoTcp, kProtoUdp, kProtoIcmp, 47, 132};
  for (size_t i = 0; i < count; ++i) {
    Packet p;
    p.class_id = rng() % (classes + 1);
    p.proto = protos[rng() % 5];
    p.dst = rng();
    p.port = static_cast<uint16_t>(rng() % 1300);
    if (!rules.empty() && rng() % 4 != 0) {
      const CompiledRule& r = rules[rng() % rules.size()];
      p.dst = (r.dst.addr & r.dst.mask()) | (rng() & ~r.dst.mask());
      if (rng() % 2) p.class_id = r.class_id;
      if (rng() % 2) p.port = r.port_lo;
    }
    packets.push_back(p);
  }
  return packets;
}

TEST(PolicyAcl, ClassifierAgreesWithNaiveMatcherOnRandomRuleSets) {
  std::mt19937 rng(12345);
  for (size_t count : {1, 10, 100, 1000}) {
    const uint32_t classes = 1 + rng() % 20;
    const auto rules = random_rules(rng, count, classes);
    auto acl = AclClassifier::build(rules);
    ASSERT_TRUE(acl.ok()) << acl.error();
    EXPECT_EQ(acl->rule_count(), count);
    expect_same_as_naive(*acl, rules, random_packets(rng, rules, 100000, classes));
  }
}

TEST(PolicyAcl, ClassifierAgreesWithNaiveMatcherOnACompiledPolicy) {
  auto policy = parse_policy(R"({
    "groups": {"group:a": ["a@x.com"], "group:b": ["b@x.com"]},
    "tagOwners": {"tag:srv": []},
    "grants": [
      {"src": ["group:a"], "dst": ["autogroup:internet"], "ip": ["*"]},
      {"src": ["group:b"], "dst": ["autogroup:internet"], "ip": ["tcp:80,443", "udp:53"]},
      {"src": ["*"], "dst": ["10.20.0.0/16", "192.168.7.0/24", "198.51.100.0/24"],
       "ip": ["tcp:22", "icmp:*"]},
    ],
    "acls": [{"action": "accept", "src": ["tag:srv"], "dst": ["203.0.113.0/24:8000-9000"]}]})",
                             "p");
  ASSERT_TRUE(policy.ok()) << policy.error();
  std::vector<PolicyPeer> peers;
  const char* users[] = {"a@x.com", "b@x.com", "", "a@x.com"};
  for (uint32_t i = 0; i < 4; ++i) {
    PolicyPeer p;
    p.slot = i;
    p.user = users[i];
    if (i == 3) p.tags = {"tag:srv"};
    p.addresses = {{0x64400001u + i, 32}};
    peers.push_back(p);
  }
  NodeIdentity node;
  node.own_addresses = {0xc0000201};
  auto compiled = compile_policy(*policy, peers, node, {});
  ASSERT_TRUE(compiled.ok()) << compiled.error();
  auto acl = AclClassifier::build(compiled->rules);
  ASSERT_TRUE(acl.ok()) << acl.error();
  std::mt19937 rng(7);
  auto packets = random_packets(rng, compiled->rules, 100000, compiled->class_count);
  expect_same_as_naive(*acl, compiled->rules, packets);
}

TEST(PolicyAcl, EmptyRuleSetDeniesEverything) {
  auto acl = AclClassifier::build(std::span<const CompiledRule>{});
  ASSERT_TRUE(acl.ok()) << acl.error();
  AclKeyV4 key;
  fill_acl_key_v4(key, 1, kProtoTcp, rte_cpu_to_be_32(0x01010101), rte_cpu_to_be_16(443));
  const uint8_t* data[1] = {reinterpret_cast<const uint8_t*>(&key)};
  uint32_t result = 99;
  acl->classify(data, &result, 1);
  EXPECT_EQ(result, 0u);
}

TEST(PolicyAcl, RuleWithoutCounterFailsTheBuildWhole) {
  std::vector<CompiledRule> rules(3);
  for (auto& r : rules) r.rule_index = 1;
  rules[2].rule_index = 0;  // userdata would be 0, which rte_acl reserves for "no match"
  auto acl = AclClassifier::build(rules);
  ASSERT_FALSE(acl.ok());
  EXPECT_NE(acl.error().find("rule 2"), std::string::npos);
}

TEST(PolicyAcl, SnapshotCarriesClassesApprovalAndRuleNames) {
  NodeIdentity node;
  node.exit_advertised = true;
  Approvals approvals;
  approvals.exit_node = true;
  PolicyPeer alice;
  alice.slot = 5;
  alice.user = "alice@x.com";
  alice.addresses = {{0x6440000b, 32}};
  auto compiled = compile_policy(default_policy(), std::vector<PolicyPeer>{alice}, node, approvals);
  ASSERT_TRUE(compiled.ok()) << compiled.error();
  auto snap = build_snapshot(*compiled);
  ASSERT_TRUE(snap.ok()) << snap.error();
  const PolicySnapshot& s = **snap;
  EXPECT_TRUE(s.exit_approved);
  EXPECT_EQ(s.class_of(5), 1u);
  EXPECT_EQ(s.class_of(4), kNoAccessClass);
  EXPECT_EQ(s.class_of(1000000), kNoAccessClass);
  AclKeyV4 keys[3];
  fill_acl_key_v4(keys[0], s.class_of(5), kProtoTcp, rte_cpu_to_be_32(0x5db8d822),
                  rte_cpu_to_be_16(443));
  fill_acl_key_v4(keys[1], s.class_of(5), kProtoUdp, rte_cpu_to_be_32(0x0a000001),
                  rte_cpu_to_be_16(53));
  fill_acl_key_v4(keys[2], s.class_of(4), kProtoTcp, rte_cpu_to_be_32(0x5db8d822),
                  rte_cpu_to_be_16(443));
  const uint8_t* data[3];
  for (int i = 0; i < 3; ++i) data[i] = reinterpret_cast<const uint8_t*>(&keys[i]);
  uint32_t results[3];
  s.classifier.classify(data, results, 3);
  EXPECT_TRUE(acl_result_allows(results[0]));
  EXPECT_EQ(s.rule_names.at(acl_result_counter(results[0])), "grants[0]");
  EXPECT_FALSE(acl_result_allows(results[1]));
  EXPECT_EQ(s.rule_names.at(acl_result_counter(results[1])), "builtin:private-10");
  EXPECT_EQ(results[2], 0u);
}

// IPv6: the same comparison on AclKeyV6 keys and the IPv6 context.
struct Packet6 {
  uint32_t class_id;
  uint8_t proto;
  std::array<uint8_t, 16> dst;
  uint16_t port;
};

void fill_key(AclKeyV6& key, const Packet6& p) {
  fill_acl_key_v6(key, p.class_id, p.proto, p.dst.data(), rte_cpu_to_be_16(p.port));
}
std::string format_dst(const Packet6& p) {
  return format_prefix(Ipv6Prefix{p.dst, 128});
}

// Biased toward the rules' prefixes: inside one, with random host bits (so each of the four
// words is tested on both sides of a prefix boundary).
std::vector<Packet6> random_packets6(std::mt19937& rng, const std::vector<CompiledRule6>& rules,
                                     size_t count, uint32_t classes) {
  std::vector<Packet6> packets;
  const uint8_t protos[] = {kProtoTcp, kProtoUdp, kProtoIcmpv6, 47, 132};
  for (size_t i = 0; i < count; ++i) {
    Packet6 p;
    p.class_id = rng() % (classes + 1);
    p.proto = protos[rng() % 5];
    for (auto& b : p.dst) b = static_cast<uint8_t>(rng());
    p.port = static_cast<uint16_t>(rng() % 1300);
    if (!rules.empty() && rng() % 4 != 0) {
      const CompiledRule6& r = rules[rng() % rules.size()];
      Ipv6Prefix host{p.dst, 128};
      for (unsigned bit = 0; bit < r.dst.len; ++bit) {
        const uint8_t m = static_cast<uint8_t>(0x80 >> (bit % 8));
        host.addr[bit / 8] =
            static_cast<uint8_t>((host.addr[bit / 8] & ~m) | (r.dst.addr[bit / 8] & m));
      }
      // Sometimes one bit off the prefix: just outside it.
      if (r.dst.len > 0 && rng() % 4 == 0) {
        const unsigned bit = rng() % r.dst.len;
        host.addr[bit / 8] ^= static_cast<uint8_t>(0x80 >> (bit % 8));
      }
      p.dst = host.addr;
      if (rng() % 2) p.class_id = r.class_id;
      if (rng() % 2) p.port = r.port_lo;
    }
    packets.push_back(p);
  }
  return packets;
}

TEST(PolicyAcl, Ipv6ClassifierAgreesWithNaiveMatcherOnRandomRuleSets) {
  std::mt19937 rng(6543);
  for (size_t count : {1, 10, 100, 1000}) {
    const uint32_t classes = 1 + rng() % 20;
    const auto rules = random_rules_of<CompiledRule6>(rng, count, classes, kProtoIcmpv6);
    auto acl = AclClassifier::build(rules);
    ASSERT_TRUE(acl.ok()) << acl.error();
    EXPECT_EQ(acl->rule_count(), count);
    EXPECT_EQ(mismatches<AclKeyV6>(*acl, rules, random_packets6(rng, rules, 50000, classes)), 0u);
  }
}

TEST(PolicyAcl, EmptyIpv6RuleSetBuildsAndDeniesEverything) {
  auto acl = AclClassifier::build(std::span<const CompiledRule6>{});
  ASSERT_TRUE(acl.ok()) << acl.error();
  EXPECT_EQ(acl->context(), nullptr);  // the worker's default deny
  AclKeyV6 key;
  const uint8_t dst[16] = {0x26, 0x06, 0x47, 0};
  fill_acl_key_v6(key, 1, kProtoTcp, dst, rte_cpu_to_be_16(443));
  const uint8_t* data[1] = {reinterpret_cast<const uint8_t*>(&key)};
  uint32_t result = 99;
  acl->classify(data, &result, 1);
  EXPECT_EQ(result, 0u);
}

TEST(PolicyAcl, SnapshotCarriesAnIpv6ClassifierWithTheSameClassesAndCounters) {
  NodeIdentity node;
  PolicyPeer alice;
  alice.slot = 5;
  alice.user = "alice@x.com";
  alice.addresses = {{0x6440000b, 32}};
  auto compiled = compile_policy(default_policy(), std::vector<PolicyPeer>{alice}, node, {});
  ASSERT_TRUE(compiled.ok()) << compiled.error();
  auto snap = build_snapshot(*compiled);
  ASSERT_TRUE(snap.ok()) << snap.error();
  const PolicySnapshot& s = **snap;
  ASSERT_NE(s.classifier6.context(), nullptr);
  EXPECT_EQ(s.classifier6.rule_count(), compiled->rules6.size());
  const auto addr = [](const char* text) { return parse_prefix6(text)->prefix.addr; };
  AclKeyV6 keys[4];
  fill_acl_key_v6(keys[0], s.class_of(5), kProtoTcp, addr("2606:4700::1111").data(),
                  rte_cpu_to_be_16(443));
  fill_acl_key_v6(keys[1], s.class_of(5), kProtoUdp, addr("fe80::1").data(), rte_cpu_to_be_16(53));
  fill_acl_key_v6(keys[2], s.class_of(4), kProtoTcp, addr("2606:4700::1111").data(),
                  rte_cpu_to_be_16(443));
  fill_acl_key_v6(keys[3], s.class_of(5), kProtoUdp, addr("::1").data(), rte_cpu_to_be_16(53));
  const uint8_t* data[4];
  for (int i = 0; i < 4; ++i) data[i] = reinterpret_cast<const uint8_t*>(&keys[i]);
  uint32_t results[4];
  s.classifier6.classify(data, results, 4);
  EXPECT_TRUE(acl_result_allows(results[0]));
  EXPECT_EQ(s.rule_names.at(acl_result_counter(results[0])), "grants[0]");
  EXPECT_FALSE(acl_result_allows(results[1]));
  EXPECT_EQ(s.rule_names.at(acl_result_counter(results[1])), "builtin:link-local");
  EXPECT_EQ(results[2], 0u);
  EXPECT_EQ(s.rule_names.at(acl_result_counter(results[3])), "builtin:loopback");
  // The IPv4 loopback deny counts on the same counter.
  AclKeyV4 key4;
  fill_acl_key_v4(key4, s.class_of(5), kProtoUdp, rte_cpu_to_be_32(0x7f000001),
                  rte_cpu_to_be_16(53));
  const uint8_t* data4[1] = {reinterpret_cast<const uint8_t*>(&key4)};
  uint32_t result4 = 0;
  s.classifier.classify(data4, &result4, 1);
  EXPECT_EQ(acl_result_counter(result4), acl_result_counter(results[3]));
}

TEST(PolicyAcl, ManyContextsCanCoexistForRcuSwap) {
  // Building a new snapshot while the old one is alive must give a distinct context.
  std::mt19937 rng(3);
  const auto rules_a = random_rules(rng, 50, 4);
  const auto rules_b = random_rules(rng, 50, 4);
  auto a = AclClassifier::build(rules_a);
  auto b = AclClassifier::build(rules_b);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto packets = random_packets(rng, rules_a, 5000, 4);
  expect_same_as_naive(*a, rules_a, packets);
  expect_same_as_naive(*b, rules_b, packets);
  AclClassifier moved = std::move(*a);
  expect_same_as_naive(moved, rules_a, packets);
}

}  // namespace
}  // namespace exitgw::policy
