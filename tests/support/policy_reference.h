// A plain reference evaluator of the tailnet policy for exit traffic, for differential tests:
// it reads the policy document as the HuJSON reader produced it (the JSON tree, before
// parse_policy normalises anything) and answers one packet at a time by walking acls and
// grants in file order. Written from the semantics (DESIGN.md, issue 5, compile.h), never by
// calling the compiler, and slow on purpose: nothing is precomputed but string parsing.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/net_parse.h"
#include "control/policy/approvals.h"
#include "control/policy/compile.h"

namespace exitgw::policy::reference {

struct Packet {
  uint32_t slot = 0;  // the sending peer's slot (maybe no peer's)
  bool ipv6 = false;
  uint32_t dst = 0;                // IPv4, host order
  std::array<uint8_t, 16> dst6{};  // IPv6
  uint8_t proto = 0;
  uint16_t port = 0;  // destination port; 0 for protocols without ports
};

struct Decision {
  bool allow = false;
  // Why, in the gateway's counter names: "acls[i]" / "grants[i]" (the rule that allowed it),
  // "builtin:<range>" (the safety range that denied it), "default-deny", or
  // "exit-not-approved" (the node may not forward anything).
  std::string reason;
  friend bool operator==(const Decision&, const Decision&) = default;
};

class ReferencePolicy {
 public:
  // `root` must be a policy the real parser accepts; returns an error for what this reference
  // does not understand, so a generator drifting from it is noticed.
  static Result<ReferencePolicy> load(const nlohmann::ordered_json& root);

  // Whether the node forwards internet traffic at all.
  bool exit_approved(const NodeIdentity& node, const Approvals& approvals) const;

  Decision decide(std::span<const PolicyPeer> peers, const NodeIdentity& node,
                  const Approvals& approvals, const Packet& packet) const;

  // Whether the packet's destination lies in a safety range (built-in, tailnet, or the node's
  // own address), not in one of the globally reachable holes cut out of them.
  bool in_safety_range(const NodeIdentity& node, const Packet& packet) const;

  // An address or prefix of either family (IPv4 in the first 4 bytes).
  struct Net {
    bool ipv6 = false;
    std::array<uint8_t, 16> bytes{};
    int len = 0;
  };

 private:
  // A destination of one rule, as far as exit traffic goes.
  struct Destination {
    bool internet = false;  // "*" / autogroup:internet: every address, names no range
    Net prefix;             // when !internet: an address, prefix or hosts entry
    std::string text;
  };
  // One protocol and its ports; proto 0 = any protocol.
  struct ProtoPorts {
    int proto = 0;
    std::vector<std::pair<uint16_t, uint16_t>> ports;  // empty: every port
  };
  struct Rule {
    std::string label;
    std::vector<std::string> src;
    // Each destination with the protocols/ports it is granted on.
    std::vector<std::pair<Destination, std::vector<ProtoPorts>>> dst;
    std::vector<std::string> via;
  };

  bool principal_matches(const std::string& principal, const PolicyPeer& peer) const;
  bool user_in_group(const std::string& user, const std::string& group, int depth) const;
  // Exit-relevant destination or nullopt (tailnet devices).
  std::optional<Destination> destination(const std::string& s) const;

  std::vector<Rule> rules_;  // acls in file order, then grants in file order
  std::map<std::string, std::vector<std::string>> groups_;  // as written (nested)
  std::map<std::string, Net> hosts_;
  std::vector<std::string> exit_approvers_;
};

}  // namespace exitgw::policy::reference
