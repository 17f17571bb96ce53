// The tailnet filter (PUT /v1/filter): bad input named by rule index and field, and the filter
// compiled into the same rte_acl classifier as the HuJSON policy, with autogroup:internet's
// ranges as the coordination server sends them.
#include "control/policy/tailnet_filter.h"

#include <gtest/gtest.h>

#include <string_view>

#include <rte_byteorder.h>

#include "control/policy/acl_classifier.h"
#include "control/policy/compile.h"
#include "control/policy/prefix.h"
#include "tests/support/eal_environment.h"

namespace exitgw::policy {
namespace {

EXITGW_EAL_ENVIRONMENT("policy_tailnet_filter_test", 128);

using nlohmann::json;

// autogroup:internet as Headscale/Tailscale send it (TAILNET.md), expanded to CIDRs the way
// the connector does.
const char* const kInternet[] = {
    "0.0.0.0/5",      "8.0.0.0/7",      "11.0.0.0/8",     "12.0.0.0/6",     "16.0.0.0/4",
    "32.0.0.0/3",     "64.0.0.0/3",     "96.0.0.0/6",     "100.0.0.0/10",   "100.128.0.0/9",
    "101.0.0.0/8",    "102.0.0.0/7",    "104.0.0.0/5",    "112.0.0.0/4",    "128.0.0.0/3",
    "160.0.0.0/5",    "168.0.0.0/8",    "169.0.0.0/9",    "169.128.0.0/10", "169.192.0.0/11",
    "169.224.0.0/12", "169.240.0.0/13", "169.248.0.0/14", "169.252.0.0/15", "169.255.0.0/16",
    "170.0.0.0/7",    "172.0.0.0/12",   "172.32.0.0/11",  "172.64.0.0/10",  "172.128.0.0/9",
    "173.0.0.0/8",    "174.0.0.0/7",    "176.0.0.0/4",    "192.0.0.0/9",    "192.128.0.0/11",
    "192.160.0.0/13", "192.169.0.0/16", "192.170.0.0/15", "192.172.0.0/14", "192.176.0.0/12",
    "192.192.0.0/10", "193.0.0.0/8",    "194.0.0.0/7",    "196.0.0.0/6",    "200.0.0.0/5",
    "208.0.0.0/4",    "224.0.0.0/3"};

json internet_rule(const json& src) {
  json dst = json::array();
  for (const char* p : kInternet) dst.push_back({{"prefix", p}, {"ports", {0, 65535}}});
  return {{"src", src}, {"dst", dst}};
}

std::string parse_error(const json& body) {
  auto f = tailnet_filter_from_json(body);
  EXPECT_FALSE(f.ok()) << body.dump();
  return f.ok() ? "" : f.error();
}

TEST(TailnetFilter, BadInputIsNamedByRuleIndexAndField) {
  const json good = {{"src", {"100.64.0.1/32"}},
                     {"dst", {{{"prefix", "0.0.0.0/0"}, {"ports", {0, 65535}}}}}};
  auto with = [&](const std::string& field, const json& value) {
    json r = good;
    r[field] = value;
    return json{{"rules", {good, r}}};
  };
  EXPECT_NE(parse_error(with("src", {"100.64.0.1/32", "fd7a::1/129"})).find("rules[1].src[1]"),
            std::string::npos);
  EXPECT_NE(parse_error(with("src", {"100.64.0.1/24"}))
                .find("rules[1].src[0]: \"100.64.0.1/24\" "
                      "has host bits set: write "
                      "100.64.0.0/24"),
            std::string::npos);
  EXPECT_NE(parse_error(with("src", json::array())).find("rules[1].src: is empty"),
            std::string::npos);
  EXPECT_NE(parse_error(with("dst", {{{"prefix", "1.2.3.4"}, {"ports", {80, 22}}}}))
                .find("rules[1].dst[0].ports: first 80 is above last 22"),
            std::string::npos);
  EXPECT_NE(parse_error(with("dst", {{{"prefix", "1.2.3.4"}, {"ports", {0, 70000}}}}))
                .find("rules[1].dst[0].ports"),
            std::string::npos);
  EXPECT_NE(parse_error(with("dst", {{{"prefix", "1.2.3.4"}}}))
                .find("rules[1].dst[0].ports: is "
                      "missing"),
            std::string::npos);
  EXPECT_NE(parse_error(with("dst", {{{"prefix", "nope"}, {"ports", {0, 1}}}}))
                .find("rules[1].dst[0].prefix"),
            std::string::npos);
  EXPECT_NE(parse_error(with("protocols", {6, 0})).find("rules[1].protocols[1]"),
            std::string::npos);
  EXPECT_NE(parse_error(with("caps", json::array())).find("rules[1]: unknown field \"caps\""),
            std::string::npos);
  EXPECT_NE(parse_error(json{{"rules", {good}}, {"extra", 1}}).find("unknown field"),
            std::string::npos);
  EXPECT_NE(parse_error(json::array()).find("{\"rules\""), std::string::npos);
}

TEST(TailnetFilter, JsonRoundTrips) {
  json body = {{"rules",
                {internet_rule({"100.64.0.0/10"}),
                 {{"src", {"100.64.0.7/32"}},
                  {"dst", {{{"prefix", "203.0.113.0/24"}, {"ports", {443, 443}}}}},
                  {"protocols", {6}}}}}};
  auto f = tailnet_filter_from_json(body);
  ASSERT_TRUE(f.ok()) << f.error();
  ASSERT_EQ(f->rules.size(), 2u);
  EXPECT_EQ(f->rules[0].dst.size(), std::size(kInternet));
  auto again = tailnet_filter_from_json(tailnet_filter_to_json(*f));
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(tailnet_filter_to_json(*again), tailnet_filter_to_json(*f));
}

// Compiles a filter with the peers and classifies one packet from `slot`.
class Classify {
 public:
  Classify(const json& body, std::vector<PolicyPeer> peers) {
    auto f = tailnet_filter_from_json(body);
    EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error());
    NodeIdentity node;
    node.exit_advertised = true;
    node.own_addresses = {0xc6336401};  // 198.51.100.1
    auto compiled = compile_policy(policy_from_tailnet_filter(*f), peers, node, {});
    EXPECT_TRUE(compiled.ok()) << (compiled.ok() ? "" : compiled.error());
    compiled_ = std::move(*compiled);
    auto snap = build_snapshot(compiled_);
    EXPECT_TRUE(snap.ok()) << (snap.ok() ? "" : snap.error());
    snapshot_ = std::move(*snap);
  }
  // "allow:<counter>" or "deny:<counter>".
  std::string operator()(uint32_t slot, uint8_t proto, const char* dst, uint16_t port) const {
    if (std::string_view(dst).find(':') != std::string_view::npos)
      return v6(slot, proto, dst, port);
    AclKeyV4 key;
    fill_acl_key_v4(key, snapshot_->class_of(slot), proto,
                    rte_cpu_to_be_32(parse_prefix(dst)->prefix.addr), rte_cpu_to_be_16(port));
    const uint8_t* data[1] = {reinterpret_cast<const uint8_t*>(&key)};
    uint32_t result = 0;
    snapshot_->classifier.classify(data, &result, 1);
    return std::string(acl_result_allows(result) ? "allow:" : "deny:") +
           snapshot_->rule_names[acl_result_counter(result)];
  }
  const CompiledPolicy& compiled() const { return compiled_; }

 private:
  std::string v6(uint32_t slot, uint8_t proto, const char* dst, uint16_t port) const {
    AclKeyV6 key;
    fill_acl_key_v6(key, snapshot_->class_of(slot), proto, parse_prefix6(dst)->prefix.addr.data(),
                    rte_cpu_to_be_16(port));
    const uint8_t* data[1] = {reinterpret_cast<const uint8_t*>(&key)};
    uint32_t result = 0;
    snapshot_->classifier6.classify(data, &result, 1);
    return std::string(acl_result_allows(result) ? "allow:" : "deny:") +
           snapshot_->rule_names[acl_result_counter(result)];
  }

 private:
  CompiledPolicy compiled_;
  std::unique_ptr<PolicySnapshot> snapshot_;
};

PolicyPeer peer(uint32_t slot, const char* address) {
  PolicyPeer p;
  p.slot = slot;
  p.addresses = {parse_prefix(address)->prefix};
  return p;
}

TEST(TailnetFilter, InternetRangesGrantedToOnePeerOnly) {
  // Peer 0 (100.64.0.1) has the grant, peer 1 (100.64.0.2) has none.
  const Classify c(json{{"rules", {internet_rule({"100.64.0.1/32"})}}},
                   {peer(0, "100.64.0.1/32"), peer(1, "100.64.0.2/32")});
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.34", 443), "allow:tailnet[0]");
  EXPECT_EQ(c(0, kProtoUdp, "8.8.8.8", 53), "allow:tailnet[0]");
  EXPECT_EQ(c(0, kProtoIcmp, "1.1.1.1", 0), "allow:tailnet[0]");
  // Not in the default protocols (TCP, UDP, ICMP).
  EXPECT_EQ(c(0, 47, "1.1.1.1", 0), "deny:default-deny");
  // The ranges leave out private space; the built-in safety denies it first anyway.
  EXPECT_EQ(c(0, kProtoTcp, "10.1.2.3", 80), "deny:builtin:private-10");
  EXPECT_EQ(c(0, kProtoTcp, "192.168.1.1", 80), "deny:builtin:private-192");
  // A peer without a grant reaches nothing.
  EXPECT_EQ(c(1, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");
  EXPECT_EQ(c(1, kProtoIcmp, "1.1.1.1", 0), "deny:default-deny");
  EXPECT_EQ(c(7, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");  // no such slot
}

TEST(TailnetFilter, BuiltinSafetyStaysOnTopOfAnAllGrant) {
  const Classify c(json{{"rules",
                         {{{"src", {"0.0.0.0/0"}},
                           {"dst", {{{"prefix", "0.0.0.0/0"}, {"ports", {0, 65535}}}}}}}}},
                   {peer(0, "100.64.0.1/32")});
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.34", 80), "allow:tailnet[0]");
  EXPECT_EQ(c(0, kProtoTcp, "10.0.0.1", 80), "deny:builtin:private-10");
  EXPECT_EQ(c(0, kProtoTcp, "100.64.0.9", 80), "deny:builtin:tailnet");
  EXPECT_EQ(c(0, kProtoUdp, "198.51.100.1", 53), "deny:builtin:gateway-address");
  EXPECT_EQ(c(0, kProtoTcp, "127.0.0.1", 80), "deny:builtin:loopback");
}

TEST(TailnetFilter, PortsAndProtocolsAndIcmpWithoutPorts) {
  auto rule = [](const char* prefix, int lo, int hi, int proto) {
    return json{{"src", {"100.64.0.0/10"}},
                {"dst", {{{"prefix", prefix}, {"ports", {lo, hi}}}}},
                {"protocols", {proto}}};
  };
  const Classify c(
      json{{"rules",
            {rule("93.184.216.0/24", 443, 443, kProtoTcp), rule("9.9.9.0/24", 80, 80, kProtoIcmp),
             rule("1.1.1.0/24", 0, 65535, kProtoIcmp)}}},
      {peer(0, "100.64.0.1/32")});
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.5", 443), "allow:tailnet[0]");
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.5", 80), "deny:default-deny");
  EXPECT_EQ(c(0, kProtoUdp, "93.184.216.5", 443), "deny:default-deny");
  // ICMP has no ports: a rule limited to port 80 never matches it, an all-ports rule does.
  EXPECT_EQ(c(0, kProtoIcmp, "9.9.9.9", 0), "deny:default-deny");
  EXPECT_EQ(c(0, kProtoIcmp, "1.1.1.1", 0), "allow:tailnet[2]");
  EXPECT_EQ(c(0, kProtoTcp, "1.1.1.1", 0), "deny:default-deny");
}

TEST(TailnetFilter, ExplicitGrantOfASafetyRangeLiftsItThereOnly) {
  // The lab's "internet" is TEST-NET-2: reachable only where a rule names it.
  json internet = internet_rule({"100.64.0.1/32"});
  const Classify c(json{{"rules",
                         {internet,
                          {{"src", {"100.64.0.1/32"}},
                           {"dst", {{{"prefix", "198.51.100.0/24"}, {"ports", {0, 65535}}}}}},
                          {{"src", {"100.64.0.1/32"}},
                           {"dst", {{{"prefix", "100.64.0.0/10"}, {"ports", {0, 65535}}}}}}}}},
                   {peer(0, "100.64.0.1/32"), peer(1, "100.64.0.2/32")});
  EXPECT_EQ(c(0, kProtoTcp, "198.51.100.10", 80), "allow:tailnet[1]");
  EXPECT_EQ(c(1, kProtoTcp, "198.51.100.10", 80), "deny:builtin:test-net-2");
  EXPECT_EQ(c(0, kProtoTcp, "203.0.113.10", 80), "deny:builtin:test-net-3");
  // A tailnet destination never goes through the exit, whatever the rule says.
  EXPECT_EQ(c(0, kProtoTcp, "100.64.0.2", 80), "deny:builtin:tailnet");
  bool noted = false;
  for (const std::string& n : c.compiled().notes) noted |= n.find("tailnet[2]") == 0;
  EXPECT_TRUE(noted);
}

TEST(TailnetFilter, PeerWithAnAddressOutsideTheSourcesIsNotCovered) {
  PolicyPeer two = peer(0, "100.64.0.1/32");
  two.addresses.push_back(parse_prefix("100.100.0.0/24")->prefix);
  const Classify c(json{{"rules", {internet_rule({"100.64.0.1/32"})}}}, {two});
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");
}

TEST(TailnetFilter, Ipv6DstPortsAreGrantedAndTheIpv6SafetyRangesStayOnTop) {
  // As the coordination server sends autogroup:internet: IPv4 ranges and 2000::/3; the sources
  // name a peer by both its tailnet addresses.
  json rule = internet_rule({"100.64.0.1/32", "fd7a:115c:a1e0::1/128"});
  rule["dst"].push_back({{"prefix", "2000::/3"}, {"ports", {0, 65535}}});
  const Classify c(json{{"rules", {rule}}}, {peer(0, "100.64.0.1/32"), peer(1, "100.64.0.2/32")});
  EXPECT_EQ(c(0, kProtoTcp, "2606:4700::1111", 443), "allow:tailnet[0]");
  EXPECT_EQ(c(0, kProtoIcmpv6, "2606:4700::1111", 0), "allow:tailnet[0]");
  // The default protocols in IPv6 are TCP, UDP and ICMPv6, not ICMP.
  EXPECT_EQ(c(0, kProtoIcmp, "2606:4700::1111", 0), "deny:default-deny");
  EXPECT_EQ(c(0, kProtoTcp, "2001:db8::1", 443), "deny:builtin:documentation");
  EXPECT_EQ(c(0, kProtoTcp, "fe80::1", 443), "deny:builtin:link-local");
  EXPECT_EQ(c(0, kProtoTcp, "fd7a:115c:a1e0::2", 443), "deny:builtin:tailnet");
  EXPECT_EQ(c(1, kProtoTcp, "2606:4700::1111", 443), "deny:default-deny");
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.34", 443), "allow:tailnet[0]");
}

TEST(TailnetFilter, Ipv6SourcesNameIpv6OnlyNodesAndDualStackOnesGoByIpv4) {
  // An IPv6-only node (the connector keeps them) is named by its IPv6 source; a dual-stack
  // node by its IPv4 one (the server lists both; an IPv6 source alone does not name it, or
  // its grant would cover an IPv4 address no source names).
  json rule = internet_rule(
      {"fd7a:115c:a1e0::1/128", "100.64.0.2/32", "fd7a:115c:a1e0::2/128", "fd7a:115c:a1e0::3/128"});
  rule["dst"].push_back({{"prefix", "2000::/3"}, {"ports", {0, 65535}}});
  PolicyPeer v6only;
  v6only.slot = 0;
  v6only.addresses6 = {parse_prefix6("fd7a:115c:a1e0::1/128")->prefix};
  PolicyPeer dual = peer(1, "100.64.0.2/32");
  dual.addresses6 = {parse_prefix6("fd7a:115c:a1e0::2/128")->prefix};
  PolicyPeer other = peer(2, "100.64.0.3/32");
  other.addresses6 = {parse_prefix6("fd7a:115c:a1e0::3/128")->prefix};
  const Classify c(json{{"rules", {rule}}}, {v6only, dual, other});
  EXPECT_EQ(c(0, kProtoTcp, "2606:4700::1111", 443), "allow:tailnet[0]");
  EXPECT_EQ(c(1, kProtoTcp, "2606:4700::1111", 443), "allow:tailnet[0]");
  EXPECT_EQ(c(1, kProtoTcp, "93.184.216.34", 443), "allow:tailnet[0]");
  EXPECT_EQ(c(2, kProtoTcp, "2606:4700::1111", 443), "deny:default-deny");
  EXPECT_EQ(c(2, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");
}

TEST(TailnetFilter, ExplicitIpv6GrantOfASafetyRangeLiftsItThereOnly) {
  const Classify c(json{{"rules",
                         {{{"src", {"100.64.0.1/32"}},
                           {"dst", {{{"prefix", "fd00:1::/32"}, {"ports", {22, 22}}}}},
                           {"protocols", {kProtoTcp}}}}}},
                   {peer(0, "100.64.0.1/32")});
  EXPECT_EQ(c(0, kProtoTcp, "fd00:1::9", 22), "allow:tailnet[0]");
  EXPECT_EQ(c(0, kProtoTcp, "fd00:1::9", 23), "deny:builtin:unique-local");
  EXPECT_EQ(c(0, kProtoTcp, "fd00:2::9", 22), "deny:builtin:unique-local");
}

TEST(TailnetFilter, Ipv6EntriesRoundTripAndBadOnesAreNamed) {
  json body = {{"rules",
                {{{"src", {"100.64.0.7/32", "fd7a:115c:a1e0::7/128"}},
                  {"dst",
                   {{{"prefix", "2001:db8::/32"}, {"ports", {443, 443}}},
                    {{"prefix", "2000::/3"}, {"ports", {0, 65535}}}}},
                  {"protocols", {6}}}}}};
  auto f = tailnet_filter_from_json(body);
  ASSERT_TRUE(f.ok()) << f.error();
  ASSERT_EQ(f->rules[0].src6.size(), 1u);
  ASSERT_EQ(f->rules[0].dst.size(), 2u);
  EXPECT_TRUE(f->rules[0].dst[0].ipv6);
  const json out = tailnet_filter_to_json(*f);
  EXPECT_EQ(out["rules"][0]["dst"][1]["prefix"], "2000::/3");
  auto again = tailnet_filter_from_json(out);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_EQ(tailnet_filter_to_json(*again), out);
  body["rules"][0]["dst"][0]["prefix"] = "2001:db8::1/32";
  EXPECT_NE(parse_error(body).find("rules[0].dst[0].prefix: \"2001:db8::1/32\" has host bits "
                                   "set: write 2001:db8::/32"),
            std::string::npos);
  body["rules"][0]["dst"][0]["prefix"] = "2001:db8::/200";
  EXPECT_NE(parse_error(body).find("rules[0].dst[0].prefix: \"2001:db8::/200\" is not an IPv6 "
                                   "address or prefix: the prefix length"),
            std::string::npos);
}

TEST(TailnetFilter, EmptyFilterDeniesEveryone) {
  const Classify c(json{{"rules", json::array()}}, {peer(0, "100.64.0.1/32")});
  EXPECT_EQ(c(0, kProtoTcp, "93.184.216.34", 443), "deny:default-deny");
}

}  // namespace
}  // namespace exitgw::policy
