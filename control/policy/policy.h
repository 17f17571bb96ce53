// The tailnet policy file (HuJSON) as the exit gateway reads it: the parts that decide who may
// send what through the exit, validated completely, plus notes on everything it ignores.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/result.h"
#include "control/net_parse.h"

namespace exitgw::policy {

// Who a rule is for. Groups are expanded to their users at parse time.
enum class PrincipalKind : uint8_t {
  kAll,     // "*": every peer, tagged or not
  kUser,    // "alice@example.com": the user's untagged peers
  kGroup,   // "group:x": untagged peers of any user in the (expanded) group
  kTag,     // "tag:x": peers carrying the tag
  kMember,  // "autogroup:member": peers with a user and no tags
  kTagged,  // "autogroup:tagged": peers with at least one tag
  kPrefix,  // an address, prefix or hosts name: peers whose every tailnet address is inside
};

struct Principal {
  PrincipalKind kind = PrincipalKind::kAll;
  std::string name;   // user, group or tag name as written; empty for the others
  Ipv4Prefix prefix;  // kPrefix only, IPv4
  bool ipv6 = false;  // kPrefix only: prefix6 is the principal
  Ipv6Prefix prefix6{};
};

// IP protocol numbers the rules use; 0 means any protocol.
inline constexpr uint8_t kProtoAny = 0;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// autogroup:internet in IPv6: the global unicast space 2000::/3, as Tailscale expands it.
inline constexpr Ipv6Prefix kInternet6{{0x20}, 3};

// One destination a rule grants: an IPv4 prefix, or with `ipv6` an IPv6 one (autogroup:internet
// is 0.0.0.0/0 and 2000::/3, "*" is 0.0.0.0/0 and ::/0), one protocol and one port range.
// `named` is true when the rule spelled the prefix out (an address, a prefix, a hosts name):
// only such targets lift the built-in egress safety.
struct Target {
  Ipv4Prefix prefix;  // when !ipv6
  bool named = false;
  uint8_t proto = kProtoAny;
  uint16_t port_lo = 0;
  uint16_t port_hi = 65535;
  std::string text;  // the destination as written, for notes
  bool ipv6 = false;
  Ipv6Prefix prefix6;  // when ipv6

  auto key() const {
    return std::tuple(ipv6, prefix.addr, prefix.len, prefix6.addr, prefix6.len, named, proto,
                      port_lo, port_hi);
  }
};

// One acls[] or grants[] entry, normalised: sources, and every exit-relevant target.
struct Permission {
  std::string label;  // "acls[3]" or "grants[0]": the rule's counter name
  std::vector<Principal> src;
  std::vector<Target> targets;
  // grants[].via: the rule applies only on exit nodes carrying one of these tags; empty = all.
  std::vector<std::string> via_tags;
};

struct Policy {
  std::vector<Permission> permissions;  // acls in file order, then grants in file order
  std::map<std::string, std::set<std::string>> group_users;  // "group:x" -> users, expanded
  std::set<std::string> tags;                                // every tag defined in tagOwners
  std::vector<Principal> exit_node_approvers;                // autoApprovers.exitNode
  // What was accepted but ignored, one line each, for the log.
  std::vector<std::string> notes;
  bool is_default = false;
};

inline constexpr std::string_view kDefaultPolicyText = R"({
  // No policy file: every member (a peer with a user and no tags) may use the exit.
  "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["*"]}],
})";

// Parses and validates a whole policy file. Errors read "origin:line:column: path: problem".
// Never throws.
Result<Policy> parse_policy(std::string_view text, std::string_view origin);

// The policy that applies when there is no policy file (kDefaultPolicyText).
Policy default_policy();

}  // namespace exitgw::policy
