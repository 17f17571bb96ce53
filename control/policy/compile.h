// Policy compilation on the control thread: policy + peers + node identity -> per-peer class
// ids and one ordered rule list (built-in egress safety first) for the rte_acl classifier.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "control/net_parse.h"
#include "control/policy/approvals.h"
#include "control/policy/policy.h"

namespace exitgw::policy {

// What the compiler needs of a peer (from PeerConfig): its slot in the peer table and its
// tailnet identity. `addresses` are its allowed IPs (host order, canonical).
struct PolicyPeer {
  uint32_t slot = 0;
  std::string user;
  std::vector<std::string> tags;
  std::vector<Ipv4Prefix> addresses;
  bool operator==(const PolicyPeer&) const = default;
};

inline constexpr Ipv4Prefix kTailnetRange{0x64400000, 10};  // 100.64.0.0/10

struct NodeIdentity {
  std::string user;
  std::vector<std::string> tags;
  bool exit_advertised = false;
  std::vector<uint32_t> own_addresses;  // the gateway's addresses (host order): never egress
  std::vector<Ipv4Prefix> tailnet_ranges{kTailnetRange};
};

enum class RuleAction : uint8_t { kDeny = 0, kAllow = 1 };

// Class 0: peers no rule applies to (and unknown slots). Its packets match no allow rule.
inline constexpr uint32_t kNoAccessClass = 0;
// Counter 0 is the default deny (nothing matched).
inline constexpr uint32_t kDefaultDenyCounter = 0;

struct CompiledRule {
  uint32_t class_id = 0;
  bool any_class = false;  // built-in safety denies apply to every class
  Ipv4Prefix dst;
  uint8_t proto = kProtoAny;
  uint16_t port_lo = 0;
  uint16_t port_hi = 65535;
  RuleAction action = RuleAction::kDeny;
  uint32_t rule_index = 0;  // index into CompiledPolicy::rule_names: the per-rule counter
  bool operator==(const CompiledRule&) const = default;
};

struct ExitApproval {
  bool advertised = false;
  bool approved = false;  // the gateway forwards to the internet only when true
  std::string reason;     // for the log and /readyz
};

struct CompiledPolicy {
  // slot -> class id; slots not listed -> class 0. Class ids follow the order of the classes'
  // permission sets, not of the peers: adding or removing a peer of an identity that keeps other
  // peers leaves the rules unchanged, so the running classifier serves the new classes at once.
  std::vector<uint32_t> class_by_slot;
  uint32_t class_count = 1;         // including class 0
  std::vector<CompiledRule> rules;  // first match wins
  // Counter labels: [0] "default-deny", then "builtin:<range>" for the safety ranges, then
  // the policy's "acls[i]" / "grants[i]".
  std::vector<std::string> rule_names;
  ExitApproval exit;
  std::vector<std::string> notes;
};

// rte_acl builds ~10k rules in a fraction of a second; far beyond 100k the build takes
// seconds and hundreds of MB, which a policy reload must not cost the control thread.
inline constexpr size_t kMaxCompiledRules = 100000;

struct BuiltinRange {
  Ipv4Prefix prefix;
  std::string_view label;
};
// Exit traffic never goes to these unless a rule names the range or a sub-range explicitly.
inline constexpr BuiltinRange kBuiltinDenyRanges[] = {
    {{0x00000000, 8}, "builtin:this-network"},   {{0x0a000000, 8}, "builtin:private-10"},
    {{0x64400000, 10}, "builtin:shared-cgnat"},  {{0x7f000000, 8}, "builtin:loopback"},
    {{0xa9fe0000, 16}, "builtin:link-local"},    {{0xac100000, 12}, "builtin:private-172"},
    {{0xc0000000, 24}, "builtin:ietf-protocol"}, {{0xc0000200, 24}, "builtin:test-net-1"},
    {{0xc0a80000, 16}, "builtin:private-192"},   {{0xc6120000, 15}, "builtin:benchmarking"},
    {{0xc6336400, 24}, "builtin:test-net-2"},    {{0xcb007100, 24}, "builtin:test-net-3"},
    {{0xe0000000, 4}, "builtin:multicast"},      {{0xf0000000, 4}, "builtin:reserved"},
    {{0xffffffff, 32}, "builtin:broadcast"},
};

// Whether a principal covers a peer (also used for autoApprovers against the node itself).
bool principal_matches(const Policy& policy, const Principal& principal, const PolicyPeer& peer);

// Never throws. Fails on duplicate slots or a rule count above kMaxCompiledRules.
Result<CompiledPolicy> compile_policy(const Policy& policy, std::span<const PolicyPeer> peers,
                                      const NodeIdentity& node, const Approvals& approvals);

}  // namespace exitgw::policy
