// Policy compilation on the control thread: policy + peers + node identity -> per-peer class
// ids and one ordered rule list per IP family (built-in egress safety first) for the two
// rte_acl classifiers.
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
#include "control/policy/prefix.h"

namespace exitgw::policy {

// What the compiler needs of a peer (from PeerConfig): its slot in the peer table and its
// tailnet identity. `addresses` are its allowed IPs (host order, canonical).
struct PolicyPeer {
  uint32_t slot = 0;
  std::string user;
  std::vector<std::string> tags;
  std::vector<Ipv4Prefix> addresses;
  std::vector<Ipv6Prefix> addresses6;
  bool operator==(const PolicyPeer&) const = default;
};

inline constexpr Ipv4Prefix kTailnetRange{0x64400000, 10};  // 100.64.0.0/10
// The tailnet's IPv6 ULA (Tailscale's fd7a:115c:a1e0::/48).
inline constexpr Ipv6Prefix kTailnetRange6 = make_prefix6({0xfd7a, 0x115c, 0xa1e0}, 48);

struct NodeIdentity {
  std::string user;
  std::vector<std::string> tags;
  bool exit_advertised = false;
  std::vector<uint32_t> own_addresses;  // the gateway's addresses (host order): never egress
  std::vector<std::array<uint8_t, 16>> own_addresses6;  // its IPv6 addresses: never egress
  std::vector<Ipv4Prefix> tailnet_ranges{kTailnetRange};
  std::vector<Ipv6Prefix> tailnet_ranges6{kTailnetRange6};
};

enum class RuleAction : uint8_t { kDeny = 0, kAllow = 1 };

// Class 0: peers no rule applies to (and unknown slots). Its packets match no allow rule.
inline constexpr uint32_t kNoAccessClass = 0;
// Counter 0 is the default deny (nothing matched).
inline constexpr uint32_t kDefaultDenyCounter = 0;

// One classifier rule of either family (Prefix: Ipv4Prefix or Ipv6Prefix).
template <typename Prefix>
struct BasicCompiledRule {
  uint32_t class_id = 0;
  bool any_class = false;  // built-in safety denies apply to every class
  Prefix dst;
  uint8_t proto = kProtoAny;
  uint16_t port_lo = 0;
  uint16_t port_hi = 65535;
  RuleAction action = RuleAction::kDeny;
  uint32_t rule_index = 0;  // index into CompiledPolicy::rule_names: the per-rule counter
  bool operator==(const BasicCompiledRule&) const = default;
};
using CompiledRule = BasicCompiledRule<Ipv4Prefix>;
using CompiledRule6 = BasicCompiledRule<Ipv6Prefix>;

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
  uint32_t class_count = 1;           // including class 0
  std::vector<CompiledRule> rules;    // IPv4, first match wins
  std::vector<CompiledRule6> rules6;  // IPv6, first match wins
  // Counter labels, one index space for both families' rules: [0] "default-deny", then
  // "builtin:<range>" for the safety ranges (IPv4's, then IPv6's not already named; a label
  // such as builtin:loopback counts both families), then the policy's "acls[i]" / "grants[i]"
  // (one counter per rule whatever the family of the packet it matched).
  std::vector<std::string> rule_names;
  ExitApproval exit;
  std::vector<std::string> notes;
};

// rte_acl builds ~10k rules in a fraction of a second; far beyond 100k the build takes
// seconds and hundreds of MB, which a policy reload must not cost the control thread.
inline constexpr size_t kMaxCompiledRules = 100000;

template <typename Prefix>
struct BasicBuiltinRange {
  Prefix prefix;
  std::string_view label;
};
using BuiltinRange = BasicBuiltinRange<Ipv4Prefix>;
using BuiltinRange6 = BasicBuiltinRange<Ipv6Prefix>;
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

// The IPv6 ones, from RFC 6890 and the IANA IPv6 Special-Purpose Address Registry, plus the
// unique-local and multicast space (RFC 4193, RFC 4291). Same rule: denied unless a rule names
// the range or a sub-range.
inline constexpr BuiltinRange6 kBuiltinDenyRanges6[] = {
    {make_prefix6({}, 128), "builtin:unspecified"},                          // ::/128, RFC 4291
    {make_prefix6({0, 0, 0, 0, 0, 0, 0, 1}, 128), "builtin:loopback"},       // ::1/128, RFC 4291
    {make_prefix6({0, 0, 0, 0, 0, 0xffff}, 96), "builtin:ipv4-mapped"},      // RFC 4291
    {make_prefix6({0x64, 0xff9b}, 96), "builtin:nat64"},                     // RFC 6052
    {make_prefix6({0x64, 0xff9b, 1}, 48), "builtin:ipv4-ipv6-translation"},  // RFC 8215
    {make_prefix6({0x100}, 64), "builtin:discard-only"},                     // RFC 6666
    {make_prefix6({0x2001}, 23), "builtin:ietf-protocol"},                   // RFC 2928, 6890
    {make_prefix6({0x2001, 0x20}, 28), "builtin:orchid"},                    // ORCHIDv2, RFC 7343
    {make_prefix6({0x2001, 0xdb8}, 32), "builtin:documentation"},            // RFC 3849
    {make_prefix6({0x3fff}, 20), "builtin:documentation"},                   // RFC 9637
    {make_prefix6({0xfc00}, 7), "builtin:unique-local"},                     // RFC 4193
    {make_prefix6({0xfe80}, 10), "builtin:link-local"},                      // RFC 4291
    {make_prefix6({0xff00}, 8), "builtin:multicast"},                        // RFC 4291
};

// Globally reachable assignments inside 2001::/23 (IANA special-purpose registry: forwardable
// and globally reachable, or Teredo's "N/A"): left out of builtin:ietf-protocol's deny, so
// autogroup:internet reaches them. Teredo (RFC 4380) relays are ordinary internet hosts;
// 2001:1::/32 holds only the PCP, TURN and DNS-SD SRP anycast addresses (RFC 7723, 8155, 9665).
// Benchmarking 2001:2::/48 (RFC 5180) and the deprecated ORCHID 2001:10::/28 stay denied.
inline constexpr Ipv6Prefix kBuiltinDenyHoles6[] = {
    make_prefix6({0x2001, 0}, 32),         // Teredo, RFC 4380
    make_prefix6({0x2001, 1}, 32),         // anycast services, RFC 7723, 8155, 9665
    make_prefix6({0x2001, 3}, 32),         // AMT, RFC 7450
    make_prefix6({0x2001, 4, 0x112}, 48),  // AS112-v6, RFC 7535
    make_prefix6({0x2001, 0x30}, 28),      // DRIP entity tags, RFC 9374
};

// Whether a principal covers a peer (also used for autoApprovers against the node itself).
bool principal_matches(const Policy& policy, const Principal& principal, const PolicyPeer& peer);

// Never throws. Fails on duplicate slots or a rule count above kMaxCompiledRules.
Result<CompiledPolicy> compile_policy(const Policy& policy, std::span<const PolicyPeer> peers,
                                      const NodeIdentity& node, const Approvals& approvals);

}  // namespace exitgw::policy
