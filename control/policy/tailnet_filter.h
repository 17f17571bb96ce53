// The tailnet's packet filter for this node, as the coordination server compiled it and
// exitgw-connector translated it (PUT /v1/filter): parsed and validated whole, then turned into
// a Policy the same compiler and rte_acl classifier run, so there is one classifier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/net_parse.h"
#include "control/policy/policy.h"

namespace exitgw::policy {

struct TailnetFilterDst {
  Ipv4Prefix prefix;  // when !ipv6
  uint16_t port_lo = 0;
  uint16_t port_hi = 65535;
  bool ipv6 = false;
  Ipv6Prefix prefix6;  // when ipv6
};

// A packet matches when its inner source is in `src`, its destination and port in one of `dst`
// and its protocol in `protocols` (empty: TCP, UDP and ICMP or ICMPv6 by the destination's
// family, as tailcfg.FilterRule's IPProto).
struct TailnetFilterRule {
  std::vector<Ipv4Prefix> src;
  std::vector<TailnetFilterDst> dst;
  std::vector<uint8_t> protocols;
  // IPv6 sources (the tailnet's fd7a:115c:a1e0::/48 addresses): kept, but they cover no peer,
  // whose policy addresses are IPv4 (a peer is covered through its IPv4 entries in `src`).
  std::vector<Ipv6Prefix> src6;
};

struct TailnetFilter {
  std::vector<TailnetFilterRule> rules;
};

// Far beyond what a coordination server sends one node; keeps a hostile body cheap.
inline constexpr size_t kMaxTailnetFilterRules = 10000;
inline constexpr size_t kMaxTailnetFilterEntries = 100000;  // src + dst entries, all rules

// {"rules": [{"src": ["a.b.c.d/len", ...], "dst": [{"prefix": "...", "ports": [lo, hi]}, ...],
//  "protocols"?: [n, ...]}, ...]}. Prefixes are IPv4 or IPv6, canonical; ports 0..65535, lo <= hi;
// protocols 1..255. Unknown fields and wrong types are refused; every error names the rule
// index and the field ("rules[2].dst[0].ports: ...").
Result<TailnetFilter> tailnet_filter_from_json(const nlohmann::json& body);
// The body tailnet_filter_from_json reads back to the same filter.
nlohmann::json tailnet_filter_to_json(const TailnetFilter& filter);

// Rule i becomes permission "tailnet[i]": its sources are address principals (a peer is covered
// when every allowed IP it has lies in one src prefix), its targets are dst x protocols, each
// "named" as in the HuJSON policy: the built-in egress safety ranges apply on top except where a
// dst lies inside one (an explicit grant of that range); autogroup:internet's ranges each
// contain or avoid the safety ranges, so they never lift one. Approval stays with the
// approvals file or the approval override (the connector's POST /v1/approval).
Policy policy_from_tailnet_filter(const TailnetFilter& filter);

}  // namespace exitgw::policy
