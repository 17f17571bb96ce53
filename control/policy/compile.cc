// Compilation: peers are grouped into classes by the exact set of permissions whose sources
// cover them, so the rule list grows with distinct rule sets, not with peers; the built-in
// egress safety is a block of class-independent denies ordered by specificity, with explicit
// grants of those ranges carved out above them; the same for IPv4 and IPv6, one rule list each.
#include "control/policy/compile.h"

#include <algorithm>
#include <exception>
#include <iterator>
#include <map>
#include <set>
#include <span>
#include <utility>

#include "control/policy/prefix.h"

namespace exitgw::policy {
namespace {

bool has_tag(const std::vector<std::string>& tags, const std::string& tag) {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

// Compile notes repeat on every peer change, so they are capped for the log.
constexpr size_t kMaxCompileNotes = 100;
void add_note(CompiledPolicy& out, std::string text) {
  if (out.notes.size() < kMaxCompileNotes) {
    out.notes.push_back(std::move(text));
  } else if (out.notes.size() == kMaxCompileNotes) {
    out.notes.push_back("more compile notes not shown");
  }
}

// A family's safety ranges and the rules that end up in its classifier.
template <typename Prefix>
struct FamilyRules {
  std::vector<BasicBuiltinRange<Prefix>> safety;   // as named, the gateway's and tailnet's first
  std::vector<uint32_t> safety_counter;            // rule_names index of safety[i]
  std::vector<std::vector<Prefix>> safety_pieces;  // safety[i] without its holes
  // Named grants inside a safety range, each with the length it sorts by (the grant's own).
  std::vector<std::pair<uint8_t, BasicCompiledRule<Prefix>>> exceptions;
  std::vector<BasicCompiledRule<Prefix>> regular;
};

bool overlaps(const auto& a, const auto& b) {
  return prefix_contains(a, b) || prefix_contains(b, a);
}

// `range` minus `holes`, as the fewest prefixes.
template <typename Prefix>
void subtract(const Prefix& range, std::span<const Prefix> holes, std::vector<Prefix>& out) {
  if (std::none_of(holes.begin(), holes.end(), [&](const Prefix& h) { return overlaps(h, range); }))
    return out.push_back(range);
  if (std::any_of(holes.begin(), holes.end(),
                  [&](const Prefix& h) { return prefix_contains(h, range); }))
    return;
  const auto [lo, hi] = split_prefix(range);
  subtract(lo, holes, out);
  subtract(hi, holes, out);
}

// Registers the family's safety ranges' labels (one counter per distinct label, shared by the
// families) and cuts the holes out of the built-in ones.
template <typename Prefix>
void add_safety(FamilyRules<Prefix>& f, std::span<const BasicBuiltinRange<Prefix>> builtin,
                std::span<const Prefix> holes, std::map<std::string_view, uint32_t>& label_index,
                CompiledPolicy& out) {
  const size_t own = f.safety.size();
  f.safety.insert(f.safety.end(), builtin.begin(), builtin.end());
  for (size_t i = 0; i < f.safety.size(); ++i) {
    auto [it, inserted] =
        label_index.emplace(f.safety[i].label, static_cast<uint32_t>(out.rule_names.size()));
    if (inserted) out.rule_names.emplace_back(f.safety[i].label);
    f.safety_counter.push_back(it->second);
    f.safety_pieces.emplace_back();
    subtract(f.safety[i].prefix, i < own ? std::span<const Prefix>{} : holes,
             f.safety_pieces.back());
  }
}

// An allow rule for a target: inside a safety range it is an exception and sits in the safety
// block (sorted by its own length), otherwise it follows the block. An exception covers only
// the range's denied pieces: where the range has holes (globally reachable assignments), the
// grant stays a regular rule in file order there, as it would be outside any range.
template <typename Prefix>
void add_allow(FamilyRules<Prefix>& f, uint32_t class_id, const Target& t, const Prefix& dst,
               uint32_t counter) {
  BasicCompiledRule<Prefix> r;
  r.class_id = class_id;
  r.dst = dst;
  r.proto = t.proto;
  r.port_lo = t.port_lo;
  r.port_hi = t.port_hi;
  r.action = RuleAction::kAllow;
  r.rule_index = counter;
  bool in_range = false, over_hole = false;
  std::vector<Prefix> clipped;  // dst within the denied pieces of the ranges that hold it
  for (size_t i = 0; t.named && i < f.safety.size(); ++i) {
    if (!prefix_contains(f.safety[i].prefix, dst)) continue;
    in_range = true;
    bool covered = false;
    for (const Prefix& piece : f.safety_pieces[i]) {
      if (prefix_contains(dst, piece) || prefix_contains(piece, dst)) {
        const Prefix part = dst.len >= piece.len ? dst : piece;
        if (std::find(clipped.begin(), clipped.end(), part) == clipped.end())
          clipped.push_back(part);
        covered |= prefix_contains(piece, dst);
      }
    }
    over_hole |= !covered;  // only a range with holes leaves part of dst uncovered
  }
  for (const Prefix& part : clipped) {
    BasicCompiledRule<Prefix> e = r;
    e.dst = part;
    f.exceptions.emplace_back(dst.len, e);
  }
  if (!in_range || over_hole) f.regular.push_back(r);
}

// The family's rule list: the safety block, then the regular allows. In the block, most
// specific first (a range cut into pieces keeps its own length); on equal length the
// explicit grant (allow) before the deny. Then an explicit grant of P inside range S wins over
// S's deny, and any safety range strictly inside P (say the gateway's own address inside a
// granted 10.0.0.0/8) still wins over it.
template <typename Prefix>
std::vector<BasicCompiledRule<Prefix>> order_rules(FamilyRules<Prefix>& f) {
  std::vector<std::pair<uint8_t, BasicCompiledRule<Prefix>>> block = f.exceptions;
  for (size_t i = 0; i < f.safety.size(); ++i) {
    for (const Prefix& piece : f.safety_pieces[i]) {
      BasicCompiledRule<Prefix> r;
      r.any_class = true;
      r.dst = piece;
      r.action = RuleAction::kDeny;
      r.rule_index = f.safety_counter[i];
      block.emplace_back(f.safety[i].prefix.len, r);
    }
  }
  std::stable_sort(block.begin(), block.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return a.second.action == RuleAction::kAllow && b.second.action == RuleAction::kDeny;
  });
  std::vector<BasicCompiledRule<Prefix>> rules;
  rules.reserve(block.size() + f.regular.size());
  for (auto& [len, r] : block) rules.push_back(r);
  rules.insert(rules.end(), f.regular.begin(), f.regular.end());
  return rules;
}

ExitApproval decide_exit(const Policy& policy, const NodeIdentity& node,
                         const Approvals& approvals) {
  ExitApproval exit;
  exit.advertised = node.exit_advertised;
  if (!node.exit_advertised) {
    exit.reason = "not advertised as an exit node";
    return exit;
  }
  if (approvals.exit_node) {
    exit.approved = *approvals.exit_node;
    exit.reason = std::string(exit.approved ? "approved" : "unapproved") +
                  " in the approvals file (line " + std::to_string(approvals.exit_node_line) + ")";
    return exit;
  }
  PolicyPeer self;
  self.user = node.user;
  self.tags = node.tags;
  for (uint32_t a : node.own_addresses) self.addresses.push_back({a, 32});
  for (const auto& a : node.own_addresses6) self.addresses6.push_back(Ipv6Prefix{a, 128});
  for (const Principal& p : policy.exit_node_approvers) {
    if (principal_matches(policy, p, self)) {
      exit.approved = true;
      exit.reason = "auto-approved by autoApprovers.exitNode " +
                    (p.name.empty() ? std::string("principal") : p.name);
      return exit;
    }
  }
  exit.reason = "advertised, awaiting approval (approvals file or autoApprovers.exitNode)";
  return exit;
}

Result<CompiledPolicy> compile(const Policy& policy, std::span<const PolicyPeer> peers,
                               const NodeIdentity& node, const Approvals& approvals) {
  CompiledPolicy out;
  out.exit = decide_exit(policy, node, approvals);

  // Safety ranges: the gateway's own addresses and the tailnet first, so that on equal
  // prefixes their (more telling) label is the one counted.
  FamilyRules<Ipv4Prefix> v4;
  FamilyRules<Ipv6Prefix> v6;
  for (uint32_t a : node.own_addresses) v4.safety.push_back({{a, 32}, "builtin:gateway-address"});
  for (const auto& a : node.own_addresses6)
    v6.safety.push_back({{a, 128}, "builtin:gateway-address"});
  for (const Ipv4Prefix& r : node.tailnet_ranges)
    v4.safety.push_back({canonical(r), "builtin:tailnet"});
  for (const Ipv6Prefix& r : node.tailnet_ranges6)
    v6.safety.push_back({canonical(r), "builtin:tailnet"});
  out.rule_names.push_back("default-deny");
  std::map<std::string_view, uint32_t> label_index;
  add_safety<Ipv4Prefix>(v4, kBuiltinDenyRanges, {}, label_index, out);
  add_safety<Ipv6Prefix>(v6, kBuiltinDenyRanges6, kBuiltinDenyHoles6, label_index, out);

  // Permissions that apply on this node, each with the targets that concern exit traffic: a
  // named destination inside the tailnet or inside a peer's addresses is peer-to-peer traffic
  // that never arrives through the exit, so it is dropped (with a note), not carved out.
  struct Active {
    const Permission* perm;
    uint32_t counter;
    std::vector<const Target*> targets;
  };
  std::vector<Active> active;
  for (const Permission& perm : policy.permissions) {
    if (!perm.via_tags.empty() &&
        std::none_of(perm.via_tags.begin(), perm.via_tags.end(),
                     [&](const std::string& t) { return has_tag(node.tags, t); })) {
      add_note(out, perm.label + ": via other exit nodes only; not applied here");
      continue;
    }
    Active a{&perm, static_cast<uint32_t>(out.rule_names.size()), {}};
    for (const Target& t : perm.targets) {
      bool tailnet = false;
      if (t.named && t.ipv6) {
        for (const Ipv6Prefix& r : node.tailnet_ranges6) tailnet |= prefix_contains(r, t.prefix6);
        for (const PolicyPeer& peer : peers) {
          for (const Ipv6Prefix& addr : peer.addresses6)
            tailnet |= prefix_contains(addr, t.prefix6);
        }
      } else if (t.named) {
        for (const Ipv4Prefix& r : node.tailnet_ranges) tailnet |= prefix_contains(r, t.prefix);
        for (const PolicyPeer& peer : peers) {
          for (const Ipv4Prefix& addr : peer.addresses) tailnet |= prefix_contains(addr, t.prefix);
        }
      }
      if (tailnet) {
        add_note(out, perm.label + ": " + t.text +
                          " is a tailnet address, reached over the tailnet and never through "
                          "the exit; ignored");
        continue;
      }
      a.targets.push_back(&t);
    }
    if (a.targets.empty()) continue;
    out.rule_names.push_back(perm.label);
    active.push_back(std::move(a));
  }

  // Classes: the set of active permissions covering a peer. Class 0 is the empty set.
  std::map<std::vector<uint32_t>, uint32_t> class_of_set;
  class_of_set[{}] = kNoAccessClass;
  std::vector<const std::vector<uint32_t>*> sets{nullptr};
  std::set<uint32_t> slots;
  std::vector<std::pair<uint32_t, std::map<std::vector<uint32_t>, uint32_t>::iterator>> peer_sets;
  peer_sets.reserve(peers.size());
  // Without address principals a peer's set depends only on (user, tags): memoised, so ten
  // thousand peers of a few identities cost a few evaluations.
  bool by_address = false;
  for (const Active& a : active) {
    for (const Principal& p : a.perm->src) by_address |= p.kind == PrincipalKind::kPrefix;
  }
  std::map<std::pair<std::string, std::vector<std::string>>, std::vector<uint32_t>> memo;
  for (const PolicyPeer& peer : peers) {
    if (!slots.insert(peer.slot).second) {
      return make_error("peer slot " + std::to_string(peer.slot) + " listed twice");
    }
    auto evaluate = [&] {
      std::vector<uint32_t> set;
      for (uint32_t i = 0; i < active.size(); ++i) {
        const auto& src = active[i].perm->src;
        if (std::any_of(src.begin(), src.end(),
                        [&](const Principal& p) { return principal_matches(policy, p, peer); })) {
          set.push_back(i);
        }
      }
      return set;
    };
    std::vector<uint32_t> set;
    if (by_address) {
      set = evaluate();
    } else {
      std::pair<std::string, std::vector<std::string>> identity{peer.user, peer.tags};
      std::sort(identity.second.begin(), identity.second.end());
      auto found = memo.find(identity);
      if (found == memo.end()) found = memo.emplace(std::move(identity), evaluate()).first;
      set = found->second;
    }
    peer_sets.emplace_back(peer.slot, class_of_set.emplace(std::move(set), 0).first);
  }
  // Class ids in the order of the sets (the empty set, class 0, first): the rules depend on
  // which classes exist, never on the order the peers came in.
  for (auto it = std::next(class_of_set.begin()); it != class_of_set.end(); ++it) {
    it->second = static_cast<uint32_t>(sets.size());
    sets.push_back(&it->first);
  }
  for (const auto& [slot, it] : peer_sets) {
    if (slot >= out.class_by_slot.size()) out.class_by_slot.resize(slot + 1, 0);
    out.class_by_slot[slot] = it->second;
  }
  out.class_count = static_cast<uint32_t>(sets.size());

  // Allow rules per class, each in its family's list.
  size_t total = 0;
  for (uint32_t c = 1; c < sets.size(); ++c) {
    for (uint32_t i : *sets[c]) {
      for (const Target* t : active[i].targets) {
        if (++total > kMaxCompiledRules) {
          return make_error("the policy compiles to more than " +
                            std::to_string(kMaxCompiledRules) + " classifier rules (" +
                            std::to_string(out.class_count) +
                            " peer classes); simplify the rules or the groups");
        }
        if (t->ipv6) {
          add_allow(v6, c, *t, t->prefix6, active[i].counter);
        } else {
          add_allow(v4, c, *t, t->prefix, active[i].counter);
        }
      }
    }
  }
  out.rules = order_rules(v4);
  out.rules6 = order_rules(v6);
  if (out.rules.size() + out.rules6.size() > kMaxCompiledRules) {
    return make_error("the policy compiles to more than " + std::to_string(kMaxCompiledRules) +
                      " classifier rules; simplify the rules or the groups");
  }
  out.notes.insert(out.notes.begin(), policy.notes.begin(), policy.notes.end());
  return out;
}

}  // namespace

bool principal_matches(const Policy& policy, const Principal& principal, const PolicyPeer& peer) {
  switch (principal.kind) {
    case PrincipalKind::kAll:
      return true;
    case PrincipalKind::kUser:
      // A tagged device belongs to its tags, not to the user who tagged it.
      return peer.tags.empty() && !peer.user.empty() && peer.user == principal.name;
    case PrincipalKind::kGroup: {
      if (!peer.tags.empty() || peer.user.empty()) return false;
      const auto it = policy.group_users.find(principal.name);
      return it != policy.group_users.end() && it->second.contains(peer.user);
    }
    case PrincipalKind::kTag:
      return has_tag(peer.tags, principal.name);
    case PrincipalKind::kMember:
      return !peer.user.empty() && peer.tags.empty();
    case PrincipalKind::kTagged:
      return !peer.tags.empty();
    case PrincipalKind::kPrefix: {
      // Classes are per peer: a peer matches only if every source of the prefix's family it
      // may use (its allowed IPs) is inside the prefix, so a partial overlap never widens
      // access. A peer with IPv4 allowed IPs is named by them (as before IPv6 sources
      // existed); an IPv6 source names only peers without any, since its grant would
      // otherwise cover IPv4 addresses (say a 10.1.0.0/16 route) that no source names. A
      // coordination server lists each node's addresses of both families together, so its
      // dual-stack nodes match through their IPv4 ones and its IPv6-only nodes through these.
      const auto inside = [&](const auto& addresses, const auto& prefix) {
        return !addresses.empty() &&
               std::all_of(addresses.begin(), addresses.end(),
                           [&](const auto& a) { return prefix_contains(prefix, a); });
      };
      return principal.ipv6 ? peer.addresses.empty() && inside(peer.addresses6, principal.prefix6)
                            : inside(peer.addresses, principal.prefix);
    }
  }
  return false;
}

Result<CompiledPolicy> compile_policy(const Policy& policy, std::span<const PolicyPeer> peers,
                                      const NodeIdentity& node, const Approvals& approvals) {
  try {
    return compile(policy, peers, node, approvals);
  } catch (const std::exception& e) {
    return make_error(std::string("cannot compile policy: ") + e.what());
  }
}

}  // namespace exitgw::policy
