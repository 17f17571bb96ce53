// Whole random policies, written as HuJSON text, read by the real parser, compiled with random
// peers and node identities and built into the real rte_acl classifier (the snapshot workers
// read), against the plain reference evaluator walking the same document: every packet must
// get the same verdict and the same counter (the allowing rule or the denying range). Packets
// are biased toward rule edges: prefix first/last addresses and their neighbours, port range
// ends and their neighbours, the built-in ranges and the gateway's own addresses.
// Deterministic: seeds 1..kPolicies; POLICYDIFF_SEED=<n> runs one seed and prints its policy.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <rte_acl.h>
#include <rte_eal.h>

#include "common/acl_layout.h"
#include "control/policy/acl_classifier.h"
#include "control/policy/compile.h"
#include "control/policy/hujson.h"
#include "control/policy/policy.h"
#include "control/policy/prefix.h"
#include "tests/support/policy_reference.h"
#include "tests/support/eal_environment.h"

namespace exitgw::policy {
namespace {

constexpr uint32_t kPolicies = 400;
constexpr uint32_t kPacketsPerPolicy = 4000;

EXITGW_EAL_ENVIRONMENT("policy_differential_test", 256);

std::string quote(const std::string& s) {
  return "\"" + s + "\"";
}

// One random world: a policy text, the peers, the node, the approvals, and the prefixes and
// ports the policy mentions (where the packets aim).
class World {
 public:
  explicit World(uint32_t seed) : rng_(seed) {
    make_identities();
    make_text();
  }

  std::string text;
  std::vector<PolicyPeer> peers;
  NodeIdentity node;
  Approvals approvals;

  reference::Packet packet() {
    reference::Packet p;
    p.slot = chance(10) ? uint32_t(pick(40)) : peers[pick(peers.size())].slot;
    p.ipv6 = chance(40);
    if (p.ipv6) {
      p.dst6 = destination6();
    } else {
      p.dst = destination();
    }
    static constexpr uint8_t kProtos[] = {6, 6, 6, 6, 17, 17, 17, 1, 1, 58, 58, 132, 47, 50};
    p.proto = chance(8) ? uint8_t(1 + pick(255)) : kProtos[pick(std::size(kProtos))];
    if (p.proto == 6 || p.proto == 17 || p.proto == 132) p.port = port();
    return p;
  }

 private:
  size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool chance(int percent) { return int(pick(100)) < percent; }
  template <typename T>
  const T& one_of(const std::vector<T>& v) {
    return v[pick(v.size())];
  }

  static std::string format_address(uint32_t a) {
    return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
           std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
  }
  std::string format(const Ipv4Prefix& p) {
    // A /32 is written as a bare address half of the time.
    if (p.len == 32 && chance(50)) return format_address(p.addr);
    return format_prefix(p);
  }

  // A prefix near the interesting places: a built-in range, inside one, around one, a public
  // range, the gateway's own address, a peer's address or route.
  Ipv4Prefix random_prefix() {
    static const std::vector<Ipv4Prefix> kBases = {
        {0x0a000000, 8},  {0xc0a80000, 16}, {0xac100000, 12}, {0x64400000, 10}, {0xa9fe0000, 16},
        {0xe0000000, 4},  {0x7f000000, 8},  {0xc0000200, 24}, {0xc6336400, 24}, {0xcb007100, 24},
        {0xffffffff, 32}, {0x00000000, 8},  {0xf0000000, 4},  {0xc6120000, 15}, {0xc0000000, 24},
        {0x0a000000, 7},  {0xc0a80000, 15}, {0x00000000, 1},  {0x80000000, 1},  {0xc0000000, 8},
        {0x08080800, 24}, {0x01010101, 32}, {0x5db8d800, 22}, {0x2d000000, 8},  {0xac000000, 11},
        {0x64000000, 8},  {0x00000000, 0}};
    Ipv4Prefix base;
    const size_t which = pick(10);
    if (which == 0 && !node.own_addresses.empty()) {
      base = {node.own_addresses[pick(node.own_addresses.size())], 32};
      if (chance(50)) base.len = uint8_t(16 + pick(17));
    } else if (which == 1 && !peers.empty()) {
      base = one_of(one_of(peers).addresses);
    } else {
      base = one_of(kBases);
    }
    Ipv4Prefix p = base;
    if (chance(60)) {  // a sub-range
      p.len = uint8_t(base.len + pick(33 - base.len));
      p.addr = base.addr | (uint32_t(rng_()) & ~base.mask());
    } else if (chance(30) && base.len > 0) {  // a super-range
      p.len = uint8_t(pick(base.len));
    }
    p.addr &= p.mask();
    return p;
  }

  // IPv6: prefixes near the safety ranges, their holes, the tailnet, global unicast and the
  // gateway's own addresses, written in RFC 5952 text.
  static std::array<uint8_t, 16> address6(const char* text) {
    std::array<uint8_t, 16> a{};
    inet_pton(AF_INET6, text, a.data());
    return a;
  }
  static std::string format6(const std::array<uint8_t, 16>& a) {
    char buf[INET6_ADDRSTRLEN];
    return inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  }
  std::string format(const Ipv6Prefix& p) {
    if (p.len == 128 && chance(50)) return format6(p.addr);
    return format6(p.addr) + "/" + std::to_string(p.len);
  }
  Ipv6Prefix random_prefix6() {
    static const std::vector<std::pair<const char*, int>> kBases = {{"::", 128},
                                                                    {"::1", 128},
                                                                    {"::ffff:0:0", 96},
                                                                    {"64:ff9b::", 96},
                                                                    {"64:ff9b:1::", 48},
                                                                    {"100::", 64},
                                                                    {"2001::", 23},
                                                                    {"2001::", 32},
                                                                    {"2001:1::", 32},
                                                                    {"2001:2::", 48},
                                                                    {"2001:3::", 32},
                                                                    {"2001:4:112::", 48},
                                                                    {"2001:10::", 28},
                                                                    {"2001:20::", 28},
                                                                    {"2001:30::", 28},
                                                                    {"2001:db8::", 32},
                                                                    {"3fff::", 20},
                                                                    {"fc00::", 7},
                                                                    {"fd7a:115c:a1e0::", 48},
                                                                    {"fe80::", 10},
                                                                    {"ff00::", 8},
                                                                    {"2000::", 3},
                                                                    {"2606:4700::", 32},
                                                                    {"2a00::", 12},
                                                                    {"::", 0},
                                                                    {"8000::", 1},
                                                                    {"fe00::", 9},
                                                                    {"2001::", 16}};
    Ipv6Prefix base;
    if (chance(10) && !node.own_addresses6.empty()) {
      base = {one_of(node.own_addresses6), 128};
      if (chance(50)) base.len = uint8_t(64 + pick(65));
    } else {
      const auto& [text, len] = one_of(kBases);
      base = {address6(text), uint8_t(len)};
    }
    Ipv6Prefix p = base;
    if (chance(60)) {  // a sub-range
      p.len = uint8_t(base.len + pick(129 - base.len));
      for (int bit = base.len; bit < 128; ++bit)
        if (chance(50)) p.addr[bit / 8] ^= uint8_t(0x80 >> (bit % 8));
    } else if (chance(30) && base.len > 0) {  // a super-range
      p.len = uint8_t(pick(base.len));
    }
    return canonical(p);
  }

  std::string port_spec() {
    static const std::vector<std::string> kPorts = {"*",
                                                    "80",
                                                    "443",
                                                    "80,443",
                                                    "8000-8080",
                                                    "53",
                                                    "0-65535",
                                                    "1-1023",
                                                    "22,25,110-143",
                                                    "0",
                                                    "65535",
                                                    "1024-65535",
                                                    "5353,53",
                                                    "443,8443-8445,9000"};
    return one_of(kPorts);
  }

  void make_identities() {
    for (int i = 0; i < 6; ++i) users_.push_back("u" + std::to_string(i) + "@x.com");
    users_.push_back("v0@y.org");
    for (int i = 0; i < 5; ++i) tags_.push_back("tag:t" + std::to_string(i));
    // The node: maybe a user, maybe tags (via grants and autoApprovers look at them).
    node.exit_advertised = !chance(5);
    if (chance(50)) node.user = one_of(users_);
    if (chance(50)) node.tags.push_back(one_of(tags_));
    if (chance(20)) node.tags.push_back(one_of(tags_));
    static const std::vector<uint32_t> kOwn = {0xc0000201, 0xcb007201, 0x0a000001, 0x5db8d822,
                                               0x08080808, 0x64400001, 0xc6336407};
    node.own_addresses.push_back(one_of(kOwn));
    if (chance(30)) node.own_addresses.push_back(one_of(kOwn));
    static const std::vector<const char*> kOwn6 = {"2a01:4f8::1",     "fe80::1", "2001:db8::1",
                                                   "2606:4700::1111", "fd00::5", "2001::7"};
    if (chance(80)) node.own_addresses6.push_back(address6(one_of(kOwn6)));
    if (chance(30)) node.own_addresses6.push_back(address6(one_of(kOwn6)));
    const size_t a = pick(10);
    if (a < 8) approvals.exit_node = true;  // mostly approved, so rules decide
    if (a == 8) approvals.exit_node = false;
    // Peers: slots unique, tailnet addresses, a few with wider allowed IPs or a route.
    const size_t n = 3 + pick(8);
    std::set<uint32_t> slots;
    while (slots.size() < n) slots.insert(uint32_t(pick(40)));
    uint32_t host = 1;
    for (uint32_t slot : slots) {
      PolicyPeer p;
      p.slot = slot;
      if (chance(80)) p.user = one_of(users_);
      if (chance(30)) p.tags.push_back(one_of(tags_));
      if (chance(10)) p.tags.push_back(one_of(tags_));
      std::sort(p.tags.begin(), p.tags.end());
      p.tags.erase(std::unique(p.tags.begin(), p.tags.end()), p.tags.end());
      host += uint32_t(1 + pick(120));
      p.addresses.push_back({0x64400000 + host, 32});
      if (chance(10)) p.addresses.push_back({0x0a630000 + (uint32_t(pick(256)) << 8), 24});
      if (chance(5)) p.addresses = {{0x64400000 + (uint32_t(pick(4)) << 8), 24}};
      // Most have a tailnet IPv6 address as well; a few an IPv6 route, inside the tailnet's
      // ULA or out in global unicast (a named destination there is a peer's, not the exit's).
      if (chance(70)) {
        Ipv6Prefix a{address6("fd7a:115c:a1e0::"), 128};
        a.addr[14] = uint8_t(host >> 8);
        a.addr[15] = uint8_t(host);
        p.addresses6.push_back(a);
      }
      if (chance(10)) {
        Ipv6Prefix r{address6(chance(50) ? "fd7a:115c:a1e0:99::" : "2606:4700:99::"), 64};
        r.addr[7] = uint8_t(pick(4));
        p.addresses6.push_back(r);
      }
      peers.push_back(std::move(p));
    }
  }

  std::string source() {
    switch (pick(14)) {
      case 0:
      case 12:
        return "*";
      case 13:
        return "autogroup:member";
      case 1:
        return "autogroup:member";
      case 2:
        return "autogroup:tagged";
      case 3:
      case 4:
        return one_of(users_);
      case 5:
      case 6:
        if (!groups_.empty()) return one_of(groups_);
        return "*";
      case 7:
      case 8:
        return one_of(defined_tags_);
      case 9: {  // a peer's address, or a tailnet prefix around some, in either family
        const PolicyPeer& peer = one_of(peers);
        if (!peer.addresses6.empty() && chance(40)) {
          Ipv6Prefix a = one_of(peer.addresses6);
          if (chance(50)) a.len = uint8_t(std::min<int>(a.len, 100 + int(pick(29))));
          return format(canonical(a));
        }
        const Ipv4Prefix a = peer.addresses.front();
        if (chance(50)) return format(a);
        Ipv4Prefix wide{a.addr, uint8_t(22 + pick(9))};
        wide.addr &= wide.mask();
        return format_prefix(wide);
      }
      case 10:
        if (!source_hosts_.empty()) return one_of(source_hosts_);
        return "*";
      default:
        return chance(50) ? "100.64.0.0/10" : "fd7a:115c:a1e0::/48";
    }
  }
  std::string sources() {
    std::string out;
    const size_t n = 1 + pick(3);
    for (size_t i = 0; i < n; ++i) out += (i ? ", " : "") + quote(source());
    return "[" + out + "]";
  }

  // A destination without ports.
  std::string target() {
    const size_t k = pick(20);
    if (k < 4) return "autogroup:internet";
    if (k < 6) return "*";
    if (k < 13 && chance(40)) {
      const Ipv6Prefix p = random_prefix6();
      targets6_.push_back(p);
      return format(p);
    }
    if (k < 13) {
      const Ipv4Prefix p = random_prefix();
      targets_.push_back(p);
      return format(p);
    }
    if (k < 16 && !dst_hosts_.empty()) return one_of(dst_hosts_);
    switch (k) {
      case 16:
        return one_of(defined_tags_);
      case 17:
        return groups_.empty() ? "autogroup:self" : one_of(groups_);
      case 18:
        return one_of(users_);
      default:
        return "fd7a:115c:a1e0::1";
    }
  }

  std::string acl() {
    std::ostringstream o;
    o << "{\"action\": \"accept\", \"src\": " << sources();
    static const std::vector<std::string> kProtos = {"tcp", "udp", "icmp", "sctp",     "17",
                                                     "gre", "6",   "esp",  "ipv6-icmp"};
    std::string proto;
    if (chance(35)) proto = one_of(kProtos);
    const bool portless = !proto.empty() && proto != "tcp" && proto != "udp" && proto != "sctp" &&
                          proto != "17" && proto != "6";
    o << ", \"dst\": [";
    const size_t n = 1 + pick(3);
    for (size_t i = 0; i < n; ++i) {
      std::string t = target();
      if (t.find(':') != std::string::npos && t.rfind("tag:", 0) != 0 &&
          t.rfind("group:", 0) != 0 && t.rfind("autogroup:", 0) != 0)
        t = "[" + t + "]";
      const std::string ports = portless ? "*" : port_spec();
      note_ports(ports);
      o << (i ? ", " : "") << quote(t + ":" + ports);
    }
    o << "]";
    if (!proto.empty()) {
      const bool numeric = std::isdigit(static_cast<unsigned char>(proto[0]));
      o << ", \"proto\": " << (numeric && chance(50) ? proto : quote(proto));
    }
    o << "}";
    return o.str();
  }

  std::string grant() {
    std::ostringstream o;
    o << "{\"src\": " << sources() << ", \"dst\": [";
    const size_t n = 1 + pick(3);
    for (size_t i = 0; i < n; ++i) o << (i ? ", " : "") << quote(target());
    o << "], \"ip\": [";
    static const std::vector<std::string> kIp = {
        "*",      "tcp:443",   "udp:53",     "tcp:8000-8080", "icmp:*",        "443",   "80,443",
        "sctp:*", "gre:*",     "tcp:0-1023", "udp:*",         "47:*",          "tcp:*", "6:22,80",
        "udp:0",  "tcp:65535", "icmp",       "ipv6-icmp:*",   "udp:1024-65535"};
    const size_t m = 1 + pick(3);
    for (size_t i = 0; i < m; ++i) {
      const std::string ip = one_of(kIp);
      const size_t colon = ip.find(':');
      note_ports(colon == std::string::npos ? ip : ip.substr(colon + 1));
      o << (i ? ", " : "") << quote(ip);
    }
    o << "]";
    if (chance(15)) o << ", \"via\": [" << quote(one_of(defined_tags_)) << "]";
    if (chance(5)) o << ", \"app\": {\"example.com/cap/x\": [{}]}";
    o << "}";
    return o.str();
  }

  void note_ports(const std::string& spec) {
    size_t start = 0;
    while (start <= spec.size()) {
      size_t comma = spec.find(',', start);
      if (comma == std::string::npos) comma = spec.size();
      const std::string item = spec.substr(start, comma - start);
      const size_t dash = item.find('-');
      for (const std::string& s :
           {item.substr(0, dash), dash == std::string::npos ? "" : item.substr(dash + 1)}) {
        if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0]))) continue;
        const int v = std::stoi(s);
        for (int d : {-1, 0, 1})
          if (v + d >= 0 && v + d <= 65535) ports_.push_back(uint16_t(v + d));
      }
      start = comma + 1;
    }
  }

  void make_text() {
    std::ostringstream o;
    o << "// random policy\n{\n";
    // tagOwners: most tags defined.
    for (const std::string& t : tags_)
      if (chance(85) || defined_tags_.empty()) defined_tags_.push_back(t);
    o << "  \"tagOwners\": {";
    for (size_t i = 0; i < defined_tags_.size(); ++i)
      o << (i ? ", " : "") << quote(defined_tags_[i]) << ": [" << quote(one_of(users_)) << "]";
    o << "},\n";
    // groups: group i may include groups of higher index (nesting, never a cycle).
    const size_t n_groups = pick(5);
    for (size_t i = 0; i < n_groups; ++i) groups_.push_back("group:g" + std::to_string(i));
    if (n_groups > 0) {
      o << "  \"groups\": {\n";
      for (size_t i = 0; i < n_groups; ++i) {
        std::vector<std::string> members;
        const size_t m = pick(4);
        for (size_t j = 0; j < m; ++j) members.push_back(one_of(users_));
        if (i + 1 < n_groups && chance(40))
          members.push_back(groups_[i + 1 + pick(n_groups - i - 1)]);
        o << "    " << quote(groups_[i]) << ": [";
        for (size_t j = 0; j < members.size(); ++j) o << (j ? ", " : "") << quote(members[j]);
        o << "],  // group " << i << "\n";
      }
      o << "  },\n";
    }
    // hosts: some for sources (tailnet), some for destinations, maybe an IPv6 one.
    o << "  \"hosts\": {";
    const size_t n_hosts = pick(5);
    for (size_t i = 0; i < n_hosts; ++i) {
      const std::string name = "h" + std::to_string(i) + ".lab";
      std::string value;
      const PolicyPeer& peer = one_of(peers);
      if (chance(10) && !peer.addresses6.empty()) {
        value =
            format(canonical(Ipv6Prefix{one_of(peer.addresses6).addr, uint8_t(104 + pick(25))}));
        source_hosts_.push_back(name);
      } else if (chance(30)) {
        Ipv4Prefix a = one_of(peers).addresses.front();
        if (chance(50)) {
          a.len = uint8_t(22 + pick(10));
          a.addr &= a.mask();
        }
        value = format(a);
        source_hosts_.push_back(name);
      } else if (chance(10)) {
        value = "fd7a:115c:a1e0::7";
        dst_hosts_.push_back(name);
      } else if (chance(30)) {
        const Ipv6Prefix p = random_prefix6();
        targets6_.push_back(p);
        value = format(p);
        dst_hosts_.push_back(name);
      } else {
        const Ipv4Prefix p = random_prefix();
        targets_.push_back(p);
        value = format(p);
        dst_hosts_.push_back(name);
      }
      o << (i ? ", " : "") << quote(name) << ": " << quote(value);
    }
    o << "},\n";
    if (chance(30))
      o << "  \"ssh\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*\"]}],\n";
    if (chance(30)) o << "  \"nodeAttrs\": [{\"target\": [\"*\"], \"attr\": [\"funnel\"]}],\n";
    if (chance(20)) o << "  \"tests\": [],\n";
    const size_t n_acls = 1 + pick(6);
    o << "  \"acls\": [\n";
    for (size_t i = 0; i < n_acls; ++i) o << "    " << acl() << ",\n";
    o << "  ],\n";
    const size_t n_grants = 1 + pick(6);
    if (n_grants > 0 || chance(50)) {
      o << "  \"grants\": [\n";
      for (size_t i = 0; i < n_grants; ++i) o << "    " << grant() << ",\n";
      o << "  ],\n";
    }
    if (chance(40)) {
      o << "  \"autoApprovers\": {\"exitNode\": " << sources() << "},\n";
    }
    o << "}\n";
    text = o.str();
  }

  uint16_t port() {
    const size_t k = pick(10);
    if (k < 6 && !ports_.empty()) return one_of(ports_);
    if (k == 6) return uint16_t(pick(2) ? 0 : 65535);
    return uint16_t(rng_());
  }

  uint32_t destination() {
    std::vector<Ipv4Prefix> near = targets_;
    static const std::vector<Ipv4Prefix> kRanges = {
        {0x00000000, 8},  {0x0a000000, 8},  {0x64400000, 10}, {0x7f000000, 8},  {0xa9fe0000, 16},
        {0xac100000, 12}, {0xc0000000, 24}, {0xc0000200, 24}, {0xc0a80000, 16}, {0xc6120000, 15},
        {0xc6336400, 24}, {0xcb007100, 24}, {0xe0000000, 4},  {0xf0000000, 4},  {0xffffffff, 32}};
    const size_t k = pick(10);
    if (k < 5 && !near.empty()) {
      const Ipv4Prefix p = one_of(near);
      return edge(p);
    }
    if (k < 8) return edge(one_of(kRanges));
    if (k == 8) return node.own_addresses[pick(node.own_addresses.size())] + uint32_t(pick(3)) - 1;
    return uint32_t(rng_());
  }
  std::array<uint8_t, 16> destination6() {
    static const std::vector<std::pair<const char*, int>> kRanges = {{"::", 128},
                                                                     {"::1", 128},
                                                                     {"::ffff:0:0", 96},
                                                                     {"64:ff9b::", 96},
                                                                     {"64:ff9b:1::", 48},
                                                                     {"100::", 64},
                                                                     {"2001::", 23},
                                                                     {"2001::", 32},
                                                                     {"2001:1::", 32},
                                                                     {"2001:3::", 32},
                                                                     {"2001:4:112::", 48},
                                                                     {"2001:20::", 28},
                                                                     {"2001:30::", 28},
                                                                     {"2001:db8::", 32},
                                                                     {"3fff::", 20},
                                                                     {"fc00::", 7},
                                                                     {"fd7a:115c:a1e0::", 48},
                                                                     {"fe80::", 10},
                                                                     {"ff00::", 8},
                                                                     {"2000::", 3}};
    const size_t k = pick(10);
    if (k < 4 && !targets6_.empty()) return edge6(one_of(targets6_));
    if (k < 6) {
      const auto& [text, len] = one_of(kRanges);
      return edge6({address6(text), uint8_t(len)});
    }
    if (k == 6 && !node.own_addresses6.empty()) return one_of(node.own_addresses6);
    std::array<uint8_t, 16> a;
    for (auto& b : a) b = uint8_t(rng_());
    if (!chance(20)) a[0] = uint8_t(0x20 | (a[0] & 0x1f));  // global unicast, mostly
    return a;
  }
  // The same edges in IPv6 (128-bit arithmetic on the bytes).
  std::array<uint8_t, 16> edge6(const Ipv6Prefix& p) {
    std::array<uint8_t, 16> first = canonical(p).addr, last = first;
    for (int bit = p.len; bit < 128; ++bit) last[bit / 8] |= uint8_t(0x80 >> (bit % 8));
    auto step = [](std::array<uint8_t, 16> a, int d) {
      for (int i = 15; i >= 0; --i) {
        const int v = a[i] + d;
        a[i] = uint8_t(v);
        if (v >= 0 && v <= 255) break;
      }
      return a;
    };
    switch (pick(5)) {
      case 0:
        return first;
      case 1:
        return last;
      case 2:
        return step(first, -1);
      case 3:
        return step(last, 1);
      default: {
        std::array<uint8_t, 16> a = first;
        for (int bit = p.len; bit < 128; ++bit)
          if (chance(50)) a[bit / 8] |= uint8_t(0x80 >> (bit % 8));
        return a;
      }
    }
  }

  // The first or last address of a prefix, one beyond either, or one inside.
  uint32_t edge(const Ipv4Prefix& p) {
    const uint32_t first = p.addr & p.mask();
    const uint32_t last = first | ~p.mask();
    switch (pick(5)) {
      case 0:
        return first;
      case 1:
        return last;
      case 2:
        return first - 1;
      case 3:
        return last + 1;
      default:
        return first | (uint32_t(rng_()) & ~p.mask());
    }
  }

  std::mt19937 rng_;
  std::vector<std::string> users_, tags_, defined_tags_, groups_, source_hosts_, dst_hosts_;
  std::vector<Ipv4Prefix> targets_;
  std::vector<Ipv6Prefix> targets6_;
  std::vector<uint16_t> ports_;
};

std::string describe(const PolicyPeer* peer, const reference::Packet& p) {
  std::ostringstream o;
  o << "packet from slot " << p.slot;
  if (peer != nullptr) {
    o << " (user '" << peer->user << "', tags [";
    for (const auto& t : peer->tags) o << t << " ";
    o << "], addresses [";
    for (const auto& a : peer->addresses) o << format_prefix(a) << " ";
    for (const auto& a : peer->addresses6) o << format_prefix(a) << " ";
    o << "])";
  } else {
    o << " (no such peer)";
  }
  o << " to "
    << (p.ipv6 ? format_prefix(Ipv6Prefix{p.dst6, 128}) : format_prefix(Ipv4Prefix{p.dst, 32}))
    << " proto " << int(p.proto) << " port " << p.port;
  return o.str();
}

std::string describe(const NodeIdentity& node, const Approvals& a) {
  std::ostringstream o;
  o << "node user '" << node.user << "' tags [";
  for (const auto& t : node.tags) o << t << " ";
  o << "] own [";
  for (uint32_t x : node.own_addresses) o << format_prefix(Ipv4Prefix{x, 32}) << " ";
  for (const auto& x : node.own_addresses6) o << format_prefix(Ipv6Prefix{x, 128}) << " ";
  o << "] advertised " << node.exit_advertised << " approvals file "
    << (a.exit_node ? (*a.exit_node ? "approved" : "unapproved") : "silent");
  return o.str();
}

struct Outcome {
  size_t packets = 0, allowed = 0, mismatches = 0;
  size_t allowed_in_builtin = 0, denied_by_builtin = 0, not_approved = 0;
  size_t ipv6 = 0, allowed6 = 0, allowed6_in_builtin = 0, denied6_by_builtin = 0;
};

// One seed: the whole path the gateway takes (parse, compile, snapshot, classify) against the
// reference. Returns the counts; records failures with the seed and the packet.
Outcome run_seed(uint32_t seed, bool verbose) {
  Outcome out;
  World world(seed);
  if (verbose) std::printf("seed %u policy:\n%s\n", seed, world.text.c_str());
  auto doc = parse_hujson(world.text, "random");
  if (!doc.ok()) {
    ADD_FAILURE() << "seed " << seed << ": HuJSON rejected: " << doc.error() << "\n" << world.text;
    return out;
  }
  auto parsed = parse_policy(world.text, "random");
  if (!parsed.ok()) {
    ADD_FAILURE() << "seed " << seed
                  << ": the generator wrote a policy the parser rejects: " << parsed.error() << "\n"
                  << world.text;
    return out;
  }
  auto ref = reference::ReferencePolicy::load(doc->root);
  if (!ref.ok()) {
    ADD_FAILURE() << "seed " << seed << ": " << ref.error();
    return out;
  }
  auto compiled = compile_policy(*parsed, world.peers, world.node, world.approvals);
  if (!compiled.ok()) {
    ADD_FAILURE() << "seed " << seed << ": compile: " << compiled.error();
    return out;
  }
  auto snapshot = build_snapshot(*compiled);
  if (!snapshot.ok()) {
    ADD_FAILURE() << "seed " << seed << ": snapshot: " << snapshot.error();
    return out;
  }
  const PolicySnapshot& snap = **snapshot;
  if (snap.exit_approved != ref->exit_approved(world.node, world.approvals)) {
    ADD_FAILURE() << "seed " << seed << ": exit approval: gateway " << snap.exit_approved
                  << ", reference " << !snap.exit_approved << "; "
                  << describe(world.node, world.approvals) << "\n"
                  << world.text;
    ++out.mismatches;
    return out;
  }
  std::vector<reference::Packet> packets(kPacketsPerPolicy);
  for (auto& p : packets) p = world.packet();
  // As dataplane/exit_policy.cc: approval first, then one classify call per burst of 32 and
  // family (the IPv4 packets on the IPv4 context, the IPv6 ones on the IPv6 context).
  for (size_t base = 0; base < packets.size(); base += 32) {
    const uint32_t n = uint32_t(std::min<size_t>(32, packets.size() - base));
    AclKeyV4 keys[32];
    AclKeyV6 keys6[32];
    const uint8_t* data[32];
    const uint8_t* data6[32];
    uint32_t index[32], index6[32], n4 = 0, n6 = 0;
    uint32_t results[32] = {}, results4[32] = {}, results6[32] = {};
    for (uint32_t i = 0; i < n; ++i) {
      const reference::Packet& p = packets[base + i];
      if (p.ipv6) {
        fill_acl_key_v6(keys6[n6], snap.class_of(p.slot), p.proto, p.dst6.data(),
                        rte_cpu_to_be_16(p.port));
        data6[n6] = reinterpret_cast<const uint8_t*>(&keys6[n6]);
        index6[n6++] = i;
      } else {
        fill_acl_key_v4(keys[n4], snap.class_of(p.slot), p.proto, rte_cpu_to_be_32(p.dst),
                        rte_cpu_to_be_16(p.port));
        data[n4] = reinterpret_cast<const uint8_t*>(&keys[n4]);
        index[n4++] = i;
      }
    }
    if (snap.exit_approved && snap.classifier.context() != nullptr && n4 > 0)
      rte_acl_classify(snap.classifier.context(), data, results4, n4, 1);
    if (snap.exit_approved && snap.classifier6.context() != nullptr && n6 > 0)
      rte_acl_classify(snap.classifier6.context(), data6, results6, n6, 1);
    for (uint32_t i = 0; i < n4; ++i) results[index[i]] = results4[i];
    for (uint32_t i = 0; i < n6; ++i) results[index6[i]] = results6[i];
    for (uint32_t i = 0; i < n; ++i) {
      const reference::Packet& p = packets[base + i];
      reference::Decision got;
      if (!snap.exit_approved) {
        got = {false, "exit-not-approved"};
      } else {
        got.allow = acl_result_allows(results[i]);
        const uint32_t counter = acl_result_counter(results[i]);
        got.reason = counter < snap.rule_names.size() ? snap.rule_names[counter] : "?";
      }
      const reference::Decision want = ref->decide(world.peers, world.node, world.approvals, p);
      ++out.packets;
      out.allowed += want.allow;
      const bool in_builtin = ref->in_safety_range(world.node, p);
      out.allowed_in_builtin += want.allow && in_builtin;
      out.denied_by_builtin += want.reason.starts_with("builtin:");
      out.not_approved += want.reason == "exit-not-approved";
      out.ipv6 += p.ipv6;
      out.allowed6 += p.ipv6 && want.allow;
      out.allowed6_in_builtin += p.ipv6 && want.allow && in_builtin;
      out.denied6_by_builtin += p.ipv6 && want.reason.starts_with("builtin:");
      if (got == want) continue;
      const PolicyPeer* peer = nullptr;
      for (const PolicyPeer& q : world.peers)
        if (q.slot == p.slot) peer = &q;
      if (++out.mismatches <= 3) {
        ADD_FAILURE() << "seed " << seed << ": " << describe(peer, p) << ": gateway "
                      << (got.allow ? "allow:" : "deny:") << got.reason << ", reference "
                      << (want.allow ? "allow:" : "deny:") << want.reason << "; "
                      << describe(world.node, world.approvals)
                      << (out.mismatches == 1 ? "\n" + world.text : std::string());
      }
    }
  }
  return out;
}

TEST(PolicyDifferential, ClassifierAgreesWithReferenceOnRandomWholePolicies) {
  if (const char* one = std::getenv("POLICYDIFF_SEED")) {
    const Outcome o = run_seed(uint32_t(std::strtoul(one, nullptr, 10)), true);
    std::printf("%zu packets, %zu allowed, %zu mismatches\n", o.packets, o.allowed, o.mismatches);
    return;
  }
  Outcome total;
  size_t failing_policies = 0;
  for (uint32_t seed = 1; seed <= kPolicies; ++seed) {
    const Outcome o = run_seed(seed, false);
    total.packets += o.packets;
    total.allowed += o.allowed;
    total.mismatches += o.mismatches;
    total.allowed_in_builtin += o.allowed_in_builtin;
    total.denied_by_builtin += o.denied_by_builtin;
    total.not_approved += o.not_approved;
    total.ipv6 += o.ipv6;
    total.allowed6 += o.allowed6;
    total.allowed6_in_builtin += o.allowed6_in_builtin;
    total.denied6_by_builtin += o.denied6_by_builtin;
    failing_policies += o.mismatches > 0;
  }
  std::printf(
      "%u policies, %zu packets: %zu allowed (%zu inside a built-in range), %zu denied by a "
      "built-in range, %zu with the exit not approved; %zu mismatches in %zu policies\n",
      kPolicies, total.packets, total.allowed, total.allowed_in_builtin, total.denied_by_builtin,
      total.not_approved, total.mismatches, failing_policies);
  std::printf("IPv6: %zu packets, %zu allowed (%zu inside a built-in range), %zu denied by one\n",
              total.ipv6, total.allowed6, total.allowed6_in_builtin, total.denied6_by_builtin);
  EXPECT_EQ(total.mismatches, 0u);
  EXPECT_EQ(total.packets, size_t{kPolicies} * kPacketsPerPolicy);
  // The packets must exercise both verdicts, or agreement proves little.
  EXPECT_GT(total.allowed, total.packets / 15);
  EXPECT_LT(total.allowed, total.packets * 9 / 10);
  EXPECT_GT(total.allowed_in_builtin, total.packets / 200);  // explicit grants of safe ranges
  EXPECT_GT(total.denied_by_builtin, total.packets / 10);
  // And both families, each with both verdicts and with explicit grants of safety ranges.
  EXPECT_GT(total.ipv6, total.packets / 4);
  EXPECT_GT(total.allowed6, total.ipv6 / 15);
  EXPECT_GT(total.allowed6_in_builtin, total.ipv6 / 200);
  EXPECT_GT(total.denied6_by_builtin, total.ipv6 / 10);
}

}  // namespace
}  // namespace exitgw::policy
