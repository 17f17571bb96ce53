// The reference evaluator (policy_reference.h): each packet is decided by walking the rules.
#include "tests/support/policy_reference.h"

#include <arpa/inet.h>

#include <algorithm>

namespace exitgw::policy::reference {
namespace {

using Json = nlohmann::ordered_json;

// The egress safety ranges of DESIGN.md (private, loopback, link-local, multicast, broadcast,
// shared, documentation, and the rest of RFC 6890's not-globally-reachable IPv4 blocks),
// written out here independently of compile.h.
struct SafetyRange {
  uint32_t addr;
  uint8_t len;
  const char* label;
};
constexpr SafetyRange kSafety[] = {
    {0x00000000, 8, "builtin:this-network"},    // 0.0.0.0/8
    {0x0a000000, 8, "builtin:private-10"},      // 10.0.0.0/8
    {0x64400000, 10, "builtin:shared-cgnat"},   // 100.64.0.0/10
    {0x7f000000, 8, "builtin:loopback"},        // 127.0.0.0/8
    {0xa9fe0000, 16, "builtin:link-local"},     // 169.254.0.0/16
    {0xac100000, 12, "builtin:private-172"},    // 172.16.0.0/12
    {0xc0000000, 24, "builtin:ietf-protocol"},  // 192.0.0.0/24
    {0xc0000200, 24, "builtin:test-net-1"},     // 192.0.2.0/24
    {0xc0a80000, 16, "builtin:private-192"},    // 192.168.0.0/16
    {0xc6120000, 15, "builtin:benchmarking"},   // 198.18.0.0/15
    {0xc6336400, 24, "builtin:test-net-2"},     // 198.51.100.0/24
    {0xcb007100, 24, "builtin:test-net-3"},     // 203.0.113.0/24
    {0xe0000000, 4, "builtin:multicast"},       // 224.0.0.0/4
    {0xf0000000, 4, "builtin:reserved"},        // 240.0.0.0/4
    {0xffffffff, 32, "builtin:broadcast"},      // 255.255.255.255/32
};

// IPv6 (RFC 6890, the IANA special-purpose registry, RFC 4193, RFC 4291), and the globally
// reachable assignments inside 2001::/23 that are not denied.
struct SafetyRange6 {
  const char* text;
  const char* label;
};
constexpr SafetyRange6 kSafety6[] = {
    {"::/128", "builtin:unspecified"},
    {"::1/128", "builtin:loopback"},
    {"::ffff:0:0/96", "builtin:ipv4-mapped"},
    {"64:ff9b::/96", "builtin:nat64"},
    {"64:ff9b:1::/48", "builtin:ipv4-ipv6-translation"},
    {"100::/64", "builtin:discard-only"},
    {"2001::/23", "builtin:ietf-protocol"},
    {"2001:20::/28", "builtin:orchid"},
    {"2001:db8::/32", "builtin:documentation"},
    {"3fff::/20", "builtin:documentation"},
    {"fc00::/7", "builtin:unique-local"},
    {"fe80::/10", "builtin:link-local"},
    {"ff00::/8", "builtin:multicast"},
};
constexpr const char* kHoles6[] = {"2001::/32", "2001:1::/32", "2001:3::/32", "2001:4:112::/48",
                                   "2001:30::/28"};
constexpr const char* kTailnet6 = "fd7a:115c:a1e0::/48";

std::optional<uint32_t> number(const std::string& s, uint32_t max) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + uint32_t(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

std::optional<Ipv4Prefix> prefix(const std::string& s) {
  const size_t slash = s.find('/');
  const std::string a = s.substr(0, slash);
  uint32_t addr = 0;
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    const size_t dot = i < 3 ? a.find('.', start) : a.size();
    if (dot == std::string::npos) return std::nullopt;
    const auto octet = number(a.substr(start, dot - start), 255);
    if (!octet) return std::nullopt;
    addr = addr << 8 | *octet;
    start = dot + 1;
  }
  if (start != a.size() + 1) return std::nullopt;
  uint32_t len = 32;
  if (slash != std::string::npos) {
    const auto l = number(s.substr(slash + 1), 32);
    if (!l) return std::nullopt;
    len = *l;
  }
  return Ipv4Prefix{addr, uint8_t(len)};
}

bool is_ipv6(const std::string& s) {
  return s.find(':') != std::string::npos;
}

using Net = ReferencePolicy::Net;

Net net(const Ipv4Prefix& p) {
  Net n;
  n.bytes = {uint8_t(p.addr >> 24), uint8_t(p.addr >> 16), uint8_t(p.addr >> 8), uint8_t(p.addr)};
  n.len = p.len;
  return n;
}
Net net6(const std::array<uint8_t, 16>& a, int len) {
  return Net{true, a, len};
}

// "addr" or "addr/len" in either family.
std::optional<Net> parse_net(const std::string& s) {
  if (!is_ipv6(s)) {
    const auto p = prefix(s);
    if (!p) return std::nullopt;
    return net(*p);
  }
  const size_t slash = s.find('/');
  Net n{true, {}, 128};
  if (inet_pton(AF_INET6, s.substr(0, slash).c_str(), n.bytes.data()) != 1) return std::nullopt;
  if (slash != std::string::npos) {
    const auto l = number(s.substr(slash + 1), 128);
    if (!l) return std::nullopt;
    n.len = int(*l);
  }
  return n;
}

bool contains(const Net& outer, const Net& inner) {
  if (outer.ipv6 != inner.ipv6 || inner.len < outer.len) return false;
  for (int bit = 0; bit < outer.len; ++bit) {
    const uint8_t m = uint8_t(0x80 >> (bit % 8));
    if ((outer.bytes[bit / 8] & m) != (inner.bytes[bit / 8] & m)) return false;
  }
  return true;
}

std::optional<int> protocol(const std::string& s) {
  static const std::map<std::string, int> names = {
      {"icmp", 1}, {"igmp", 2},       {"ipv4", 4},  {"ip-in-ip", 4}, {"tcp", 6},
      {"egp", 8},  {"igp", 9},        {"udp", 17},  {"gre", 47},     {"esp", 50},
      {"ah", 51},  {"ipv6-icmp", 58}, {"sctp", 132}};
  if (const auto it = names.find(s); it != names.end()) return it->second;
  if (const auto n = number(s, 255); n && *n > 0) return int(*n);
  return std::nullopt;
}

// "*" -> empty (every port); "80,443,8000-8080" -> ranges.
std::optional<std::vector<std::pair<uint16_t, uint16_t>>> ports(const std::string& s) {
  std::vector<std::pair<uint16_t, uint16_t>> out;
  if (s == "*") return out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(start, comma - start);
    const size_t dash = item.find('-');
    const auto lo = number(item.substr(0, dash), 65535);
    const auto hi = dash == std::string::npos ? lo : number(item.substr(dash + 1), 65535);
    if (!lo || !hi) return std::nullopt;
    out.emplace_back(uint16_t(*lo), uint16_t(*hi));
    start = comma + 1;
  }
  // 0-65535 is every port, the same as "*".
  if (out.size() == 1 && out[0].first == 0 && out[0].second == 65535) out.clear();
  return out;
}

bool has_ports(int proto) {
  return proto == 6 || proto == 17 || proto == 132;
}

std::vector<std::string> strings(const Json& j) {
  std::vector<std::string> out;
  for (const Json& s : j) out.push_back(s.get<std::string>());
  return out;
}

}  // namespace

Result<ReferencePolicy> ReferencePolicy::load(const Json& root) {
  ReferencePolicy ref;
  try {
    if (const auto it = root.find("groups"); it != root.end())
      for (const auto& [name, members] : it->items()) ref.groups_[name] = strings(members);
    if (const auto it = root.find("hosts"); it != root.end()) {
      for (const auto& [name, value] : it->items()) {
        const std::string text = value.get<std::string>();
        if (const auto p = parse_net(text)) {
          ref.hosts_[name] = *p;
        } else {
          return make_error("hosts." + name + ": not understood");
        }
      }
    }
    if (const auto it = root.find("autoApprovers"); it != root.end() && it->contains("exitNode"))
      ref.exit_approvers_ = strings(it->at("exitNode"));

    if (const auto it = root.find("acls"); it != root.end()) {
      for (size_t i = 0; i < it->size(); ++i) {
        const Json& acl = (*it)[i];
        Rule rule;
        rule.label = "acls[" + std::to_string(i) + "]";
        rule.src = strings(acl.at("src"));
        std::optional<int> proto;
        if (acl.contains("proto")) {
          const Json& p = acl.at("proto");
          proto = p.is_string() ? protocol(p.get<std::string>()) : std::optional<int>(p.get<int>());
          if (!proto) return make_error(rule.label + ": proto not understood");
        }
        for (const std::string& entry : strings(acl.at("dst"))) {
          const size_t colon = entry.rfind(':');
          std::string target = entry.substr(0, colon);
          if (target.size() > 2 && target.front() == '[' && target.back() == ']')
            target = target.substr(1, target.size() - 2);
          const auto p = ports(entry.substr(colon + 1));
          if (!p) return make_error(rule.label + ": ports not understood in " + entry);
          const auto d = ref.destination(target);
          if (!d) continue;
          std::vector<ProtoPorts> specs;
          if (proto) {
            specs.push_back({*proto, *p});
          } else {
            // No proto: TCP and UDP on the ports, and ICMP (ICMPv6 in IPv6) when the rule
            // names every port.
            specs.push_back({6, *p});
            specs.push_back({17, *p});
            if (p->empty()) specs.push_back({1, {}});
            if (p->empty()) specs.push_back({58, {}});
          }
          rule.dst.emplace_back(*d, specs);
        }
        ref.rules_.push_back(std::move(rule));
      }
    }
    if (const auto it = root.find("grants"); it != root.end()) {
      for (size_t i = 0; i < it->size(); ++i) {
        const Json& grant = (*it)[i];
        Rule rule;
        rule.label = "grants[" + std::to_string(i) + "]";
        rule.src = strings(grant.at("src"));
        if (grant.contains("via")) rule.via = strings(grant.at("via"));
        std::vector<ProtoPorts> specs;
        if (grant.contains("ip")) {
          for (const std::string& ip : strings(grant.at("ip"))) {
            const size_t colon = ip.find(':');
            if (ip == "*") {
              specs.push_back({0, {}});
            } else if (colon != std::string::npos) {
              const auto proto = protocol(ip.substr(0, colon));
              const auto p = ports(ip.substr(colon + 1));
              if (!proto || !p) return make_error(rule.label + ": ip not understood: " + ip);
              specs.push_back({*proto, *p});
            } else if (const auto p = ports(ip)) {
              // Bare ports (digits are read as ports first): TCP and UDP.
              specs.push_back({6, *p});
              specs.push_back({17, *p});
            } else if (const auto proto = protocol(ip)) {
              specs.push_back({*proto, {}});
            } else {
              return make_error(rule.label + ": ip not understood: " + ip);
            }
          }
        }
        for (const std::string& target : strings(grant.at("dst"))) {
          if (const auto d = ref.destination(target)) rule.dst.emplace_back(*d, specs);
        }
        ref.rules_.push_back(std::move(rule));
      }
    }
  } catch (const std::exception& e) {
    return make_error(std::string("reference cannot read the policy: ") + e.what());
  }
  return ref;
}

std::optional<ReferencePolicy::Destination> ReferencePolicy::destination(
    const std::string& s) const {
  if (s == "*" || s == "autogroup:internet") return Destination{true, {}, s};
  if (const auto p = parse_net(s)) return Destination{false, *p, s};
  if (const auto it = hosts_.find(s); it != hosts_.end()) return Destination{false, it->second, s};
  return std::nullopt;  // users, groups, tags, autogroup:self/member/tagged: tailnet devices
}

bool ReferencePolicy::user_in_group(const std::string& user, const std::string& group,
                                    int depth) const {
  if (depth > 64) return false;
  const auto it = groups_.find(group);
  if (it == groups_.end()) return false;
  for (const std::string& m : it->second) {
    if (m == user) return true;
    if (m.starts_with("group:") && user_in_group(user, m, depth + 1)) return true;
  }
  return false;
}

bool ReferencePolicy::principal_matches(const std::string& s, const PolicyPeer& peer) const {
  const bool tagged = !peer.tags.empty();
  // A tagged device belongs to its tags, not to the user who tagged it.
  const bool member = !peer.user.empty() && !tagged;
  if (s == "*") return true;
  if (s == "autogroup:member") return member;
  if (s == "autogroup:tagged") return tagged;
  if (s.starts_with("tag:"))
    return std::find(peer.tags.begin(), peer.tags.end(), s) != peer.tags.end();
  if (s.starts_with("group:")) return member && user_in_group(peer.user, s, 0);
  if (s.find('@') != std::string::npos) return member && peer.user == s;
  std::optional<Net> p = parse_net(s);
  if (!p) {
    const auto it = hosts_.find(s);
    if (it == hosts_.end()) return false;
    p = it->second;
  }
  // An address principal covers a peer only if every address of its family the peer may send
  // from is inside it: a partial overlap never widens access. An IPv6 one names only peers
  // with no IPv4 address (a peer's grant covers all its traffic, so naming a dual-stack peer
  // by its IPv6 addresses would grant IPv4 ones nobody named).
  std::vector<Net> mine;
  if (p->ipv6) {
    if (!peer.addresses.empty()) return false;
    for (const Ipv6Prefix& a : peer.addresses6) mine.push_back(net6(a.addr, a.len));
  } else {
    for (const Ipv4Prefix& a : peer.addresses) mine.push_back(net(a));
  }
  if (mine.empty()) return false;
  for (const Net& a : mine)
    if (!contains(*p, a)) return false;
  return true;
}

bool ReferencePolicy::exit_approved(const NodeIdentity& node, const Approvals& approvals) const {
  if (!node.exit_advertised) return false;
  if (approvals.exit_node) return *approvals.exit_node;  // the file decides, either way
  PolicyPeer self;
  self.user = node.user;
  self.tags = node.tags;
  for (uint32_t a : node.own_addresses) self.addresses.push_back({a, 32});
  for (const auto& a : node.own_addresses6) self.addresses6.push_back({a, 128});
  for (const std::string& p : exit_approvers_)
    if (principal_matches(p, self)) return true;
  return false;
}

namespace {

struct Range {
  Net net;
  const char* label;
  bool has_holes;
};

// The safety ranges of the packet's family: the gateway's own addresses, the tailnet, the
// fixed list (in that order, which decides the label on equal lengths).
std::vector<Range> safety_ranges(const NodeIdentity& node, bool ipv6) {
  std::vector<Range> out;
  if (!ipv6) {
    for (uint32_t a : node.own_addresses)
      out.push_back({net({a, 32}), "builtin:gateway-address", false});
    for (const Ipv4Prefix& t : node.tailnet_ranges)
      out.push_back({net(t), "builtin:tailnet", false});
    for (const SafetyRange& r : kSafety) out.push_back({net({r.addr, r.len}), r.label, false});
    return out;
  }
  for (const auto& a : node.own_addresses6)
    out.push_back({net6(a, 128), "builtin:gateway-address", false});
  for (const Ipv6Prefix& t : node.tailnet_ranges6)
    out.push_back({net6(t.addr, t.len), "builtin:tailnet", false});
  for (const SafetyRange6& r : kSafety6) out.push_back({*parse_net(r.text), r.label, true});
  return out;
}

// Whether `dst` is denied by `r`: inside it, and not in one of the holes (fixed IPv6 list only).
bool in_range(const Range& r, const Net& dst) {
  if (!contains(r.net, dst)) return false;
  if (r.has_holes)
    for (const char* h : kHoles6)
      if (contains(*parse_net(h), dst)) return false;
  return true;
}

Net destination_of(const Packet& p) {
  return p.ipv6 ? net6(p.dst6, 128) : net({p.dst, 32});
}

}  // namespace

bool ReferencePolicy::in_safety_range(const NodeIdentity& node, const Packet& packet) const {
  const Net dst = destination_of(packet);
  for (const Range& r : safety_ranges(node, packet.ipv6))
    if (in_range(r, dst)) return true;
  return false;
}

Decision ReferencePolicy::decide(std::span<const PolicyPeer> peers, const NodeIdentity& node,
                                 const Approvals& approvals, const Packet& packet) const {
  if (!exit_approved(node, approvals)) return {false, "exit-not-approved"};
  const Net dst_addr = destination_of(packet);

  // The most specific safety range holding the destination. On equal length the gateway's
  // own addresses come first, then the tailnet, then the fixed list.
  const char* range_label = nullptr;
  int range_len = -1;
  for (const Range& r : safety_ranges(node, packet.ipv6)) {
    if (in_range(r, dst_addr) && r.net.len > range_len) {
      range_len = r.net.len;
      range_label = r.label;
    }
  }

  const PolicyPeer* peer = nullptr;
  for (const PolicyPeer& p : peers)
    if (p.slot == packet.slot) peer = &p;

  // The rule that allows it: outside the safety ranges, the first rule (acls, then grants, in
  // file order) with a matching destination; inside one, only a destination the rule names
  // explicitly and that is at least as specific as that range, the most specific first.
  const Rule* allowed_by = nullptr;
  int allowed_len = -1;
  for (const Rule& rule : rules_) {
    if (peer == nullptr) break;
    if (!rule.via.empty() && std::none_of(rule.via.begin(), rule.via.end(), [&](const auto& t) {
          return std::find(node.tags.begin(), node.tags.end(), t) != node.tags.end();
        }))
      continue;  // a via grant applies only on exit nodes with one of those tags
    if (std::none_of(rule.src.begin(), rule.src.end(),
                     [&](const std::string& s) { return principal_matches(s, *peer); }))
      continue;
    for (const auto& [dst, specs] : rule.dst) {
      // autogroup:internet is 0.0.0.0/0 and 2000::/3; "*" is 0.0.0.0/0 and ::/0.
      Net where = dst.prefix;
      if (dst.internet)
        where = !packet.ipv6 ? Net{} : dst.text == "*" ? net6({}, 0) : *parse_net("2000::/3");
      if (!contains(where, dst_addr)) continue;
      if (!dst.internet) {
        // A named tailnet address (or one of a peer's routes) is peer-to-peer traffic that
        // never arrives through the exit: that destination is not applied.
        bool tailnet = false;
        if (packet.ipv6) {
          tailnet |= contains(*parse_net(kTailnet6), where);
          for (const PolicyPeer& p : peers)
            for (const Ipv6Prefix& a : p.addresses6)
              tailnet |= contains(net6(a.addr, a.len), where);
        } else {
          for (const Ipv4Prefix& t : node.tailnet_ranges) tailnet |= contains(net(t), where);
          for (const PolicyPeer& p : peers)
            for (const Ipv4Prefix& a : p.addresses) tailnet |= contains(net(a), where);
        }
        if (tailnet) continue;
      }
      const bool proto_port_ok = std::any_of(specs.begin(), specs.end(), [&](const ProtoPorts& s) {
        // icmp (1) names IPv4's ICMP and ipv6-icmp (58) IPv6's: neither admits the other family.
        if (s.proto == (packet.ipv6 ? 1 : 58)) return false;
        if (s.proto != 0 && s.proto != packet.proto) return false;
        if (s.ports.empty()) return true;
        if (!has_ports(packet.proto)) return false;
        return std::any_of(s.ports.begin(), s.ports.end(), [&](const auto& r) {
          return packet.port >= r.first && packet.port <= r.second;
        });
      });
      if (!proto_port_ok) continue;
      if (range_label == nullptr) {
        if (allowed_by == nullptr) allowed_by = &rule;
      } else if (!dst.internet && where.len >= range_len && where.len > allowed_len) {
        allowed_by = &rule;
        allowed_len = where.len;
      }
    }
  }
  if (allowed_by != nullptr) return {true, allowed_by->label};
  if (range_label != nullptr) return {false, range_label};
  return {false, "default-deny"};
}

}  // namespace exitgw::policy::reference
