// Policy file validation: every section the exit cares about is checked completely and
// normalised into Permissions; sections that cannot affect exit traffic are noted and skipped;
// anything whose omission would change what exit traffic is allowed is refused.
#include "control/policy/policy.h"

#include <algorithm>
#include <exception>
#include <functional>
#include <optional>

#include "control/policy/hujson.h"
#include "control/policy/prefix.h"

namespace exitgw::policy {
namespace {

using Json = nlohmann::ordered_json;

// Top-level sections that say nothing about exit traffic (SSH, device attributes, posture
// definitions, policy tests, DERP...): accepted so one policy file serves the whole tailnet.
constexpr std::string_view kIgnoredSections[] = {
    "tests",
    "sshTests",
    "ssh",
    "nodeAttrs",
    "postures",
    "derpMap",
    "randomizeClientPort",
    "disableIPv4",
    "OneCGNATRoute",
    "ipsets",
    "attrs",
};
constexpr std::string_view kKnownSections[] = {
    "groups", "tagOwners", "hosts", "acls", "grants", "autoApprovers", "defaultSrcPosture"};

// Bounds on groups: how deep they nest, and how many members all groups hold once expanded
// (each group counted with its nested groups' users), so no policy text costs the control
// thread more than milliseconds to expand.
constexpr size_t kMaxGroupDepth = 32;
constexpr size_t kMaxGroupMembers = 1u << 18;

// autogroups exitgw cannot resolve from a peer's user and tags (roles, sharing, OS users).
constexpr std::string_view kUnresolvableAutogroups[] = {
    "autogroup:admin",         "autogroup:owner",         "autogroup:it-admin",
    "autogroup:network-admin", "autogroup:billing-admin", "autogroup:auditor",
    "autogroup:shared",        "autogroup:nonroot",       "autogroup:danger-all"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool valid_name_chars(std::string_view s, bool allow_dot) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || (allow_dot && c == '.');
    if (!ok) return false;
  }
  return true;
}

bool valid_user(std::string_view s) {
  const size_t at = s.find('@');
  if (at == 0 || at == std::string_view::npos || s.find('@', at + 1) != std::string_view::npos ||
      at + 1 == s.size() || s.size() > 256) {
    return false;
  }
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '*' || c == ',' || c == '"') return false;
  }
  return true;
}

struct ProtoName {
  std::string_view name;
  int number;
};
// Names as the tailnet policy language spells them; icmp (1) occurs only in IPv4 and
// ipv6-icmp (58) only in IPv6.
constexpr ProtoName kProtoNames[] = {{"icmp", 1},  {"igmp", 2}, {"ipv4", 4}, {"ip-in-ip", 4},
                                     {"tcp", 6},   {"egp", 8},  {"igp", 9},  {"udp", 17},
                                     {"gre", 47},  {"esp", 50}, {"ah", 51},  {"ipv6-icmp", 58},
                                     {"sctp", 132}};

std::optional<int> parse_proto(std::string_view s) {
  for (const ProtoName& p : kProtoNames) {
    if (s == p.name) return p.number;
  }
  if (s.empty() || s.size() > 3) return std::nullopt;
  int value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < 1 || value > 255 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  return value;
}

bool proto_has_ports(int proto) {
  return proto == 6 || proto == 17 || proto == 132;
}

struct PortRange {
  uint16_t lo = 0;
  uint16_t hi = 65535;
  bool all() const { return lo == 0 && hi == 65535; }
};

std::optional<uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

// "*", "22", "80,443", "8000-8080,9000"; empty optional on a syntax error.
std::optional<std::vector<PortRange>> parse_ports(std::string_view s) {
  if (s == "*") return std::vector<PortRange>{PortRange{}};
  std::vector<PortRange> out;
  while (true) {
    const size_t comma = s.find(',');
    const std::string_view item = s.substr(0, comma);
    const size_t dash = item.find('-');
    const auto lo = parse_port(item.substr(0, dash));
    const auto hi = dash == std::string_view::npos ? lo : parse_port(item.substr(dash + 1));
    if (!lo || !hi || *lo > *hi) return std::nullopt;
    out.push_back({*lo, *hi});
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
    if (out.size() > 1024) return std::nullopt;
  }
  return out;
}

// A destination as written, classified.
struct DestinationTarget {
  enum Kind { kInternet, kNamedPrefix, kDevice } kind = kInternet;
  bool ipv6 = false;   // kNamedPrefix: which of the prefixes
  Ipv4Prefix prefix;   // kNamedPrefix, IPv4
  Ipv6Prefix prefix6;  // kNamedPrefix, IPv6
  bool every = false;  // kInternet: "*" (IPv6 ::/0) rather than autogroup:internet (2000::/3)
};

class Parser {
 public:
  Parser(const HujsonDocument& doc, std::string_view origin) : doc_(doc), origin_(origin) {}

  Result<Policy> run() {
    const Json& root = doc_.root;
    if (!root.is_object()) return fail({}, "a policy file is one JSON object");
    for (const auto& [key, value] : root.items()) {
      if (std::find(std::begin(kKnownSections), std::end(kKnownSections), key) !=
          std::end(kKnownSections)) {
        continue;
      }
      if (std::find(std::begin(kIgnoredSections), std::end(kIgnoredSections), key) !=
          std::end(kIgnoredSections)) {
        note({key}, "section \"" + key + "\" does not affect exit traffic; ignored");
        continue;
      }
      std::string hint;
      for (std::string_view known : kKnownSections) {
        if (lower(known) == lower(key)) hint = " (did you mean \"" + std::string(known) + "\"?)";
      }
      for (std::string_view known : kIgnoredSections) {
        if (lower(known) == lower(key)) hint = " (did you mean \"" + std::string(known) + "\"?)";
      }
      return fail({key}, "unknown section \"" + printable(key) + "\"" + hint);
    }
    // Definitions first, whatever their order in the file, then the rules that use them.
    if (!section("tagOwners", &Parser::tag_owners) || !section("groups", &Parser::groups) ||
        !section("hosts", &Parser::hosts) || !section("defaultSrcPosture", &Parser::posture) ||
        !section("acls", &Parser::acls) || !section("grants", &Parser::grants) ||
        !section("autoApprovers", &Parser::auto_approvers)) {
      return make_error(error_);
    }
    if (suppressed_notes_ > 0) {
      policy_.notes.push_back(std::string(origin_) + ": " + std::to_string(suppressed_notes_) +
                              " more notes not shown");
    }
    return std::move(policy_);
  }

 private:
  using Handler = bool (Parser::*)(const Json&);

  bool section(const std::string& name, Handler handler) {
    const auto it = doc_.root.find(name);
    if (it == doc_.root.end()) return true;
    return (this->*handler)(*it);
  }

  std::string at(const JsonPath& path) const {
    const TextPosition pos = doc_.locate(path);
    std::string out(origin_);
    if (pos.line > 0) out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    return out + ": " + format_path(path) + ": ";
  }
  Error fail(const JsonPath& path, const std::string& problem) {
    error_ = at(path) + problem;
    return make_error(error_);
  }
  bool reject(const JsonPath& path, const std::string& problem) {
    error_ = at(path) + problem;
    return false;
  }
  // Notes are for the log: the first kMaxNotes carry line:column (each costs a scan of the
  // text), the rest are only counted, so a huge policy cannot make validation quadratic.
  void note(const JsonPath& path, const std::string& text) {
    if (policy_.notes.size() < kMaxNotes) {
      policy_.notes.push_back(at(path) + text);
    } else {
      ++suppressed_notes_;
    }
  }
  static constexpr size_t kMaxNotes = 100;

  static JsonPath join(JsonPath path, PathStep step) {
    path.push_back(std::move(step));
    return path;
  }

  // The value at path must be an array of strings.
  bool string_array(const Json& value, const JsonPath& path) {
    if (!value.is_array()) return reject(path, "must be a list of strings");
    for (size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_string()) return reject(join(path, i), "must be a string");
    }
    return true;
  }

  // ---- definitions --------------------------------------------------------------------

  bool tag_owners(const Json& section) {
    const JsonPath base{"tagOwners"};
    if (!section.is_object()) return reject(base, "must be an object of tag:name -> owners");
    for (const auto& [tag, owners] : section.items()) {
      const JsonPath path = join(base, tag);
      if (tag.rfind("tag:", 0) != 0 || !valid_name_chars(tag.substr(4), false)) {
        return reject(path, "\"" + printable(tag) +
                                "\" is not a tag (tag:<name>, letters, digits, '-', '_')");
      }
      if (!string_array(owners, path)) return false;
      policy_.tags.insert(tag);
    }
    return true;
  }

  bool groups(const Json& section) {
    const JsonPath base{"groups"};
    if (!section.is_object()) return reject(base, "must be an object of group:name -> members");
    for (const auto& [group, members] : section.items()) {
      const JsonPath path = join(base, group);
      if (group.rfind("group:", 0) != 0 || !valid_name_chars(group.substr(6), true)) {
        return reject(path, "\"" + printable(group) +
                                "\" is not a group (group:<name>, letters, digits, '-', '_', '.')");
      }
      if (!string_array(members, path)) return false;
      for (size_t i = 0; i < members.size(); ++i) {
        const std::string& m = members[i].get_ref<const std::string&>();
        if (m.rfind("group:", 0) == 0) {
          if (!section.contains(m)) {
            return reject(join(path, i), "group \"" + printable(m) + "\" is not defined");
          }
        } else if (!valid_user(m)) {
          return reject(join(path, i),
                        "\"" + printable(m) + "\" is not a user (user@domain) or a group:name");
        }
      }
    }
    // Expand nested groups, each once (memoised: a group listed twice by each of 30 nested
    // groups costs 30 expansions, not 2^30); a cycle is an error because its meaning is unclear.
    std::map<std::string, bool> expanded;  // group -> finished (false: on the current path)
    size_t members = 0;
    for (const auto& [group, unused] : section.items()) {
      std::vector<std::string> stack;
      if (!expand_group(section, group, expanded, stack, members)) return false;
    }
    return true;
  }

  // Fills policy_.group_users[group] from its members, expanding the nested groups first.
  // `members` counts the users of every expanded group so far, against kMaxGroupMembers.
  bool expand_group(const Json& section, const std::string& group,
                    std::map<std::string, bool>& expanded, std::vector<std::string>& stack,
                    size_t& members) {
    if (auto it = expanded.find(group); it != expanded.end()) {
      if (it->second) return true;
      std::string cycle;
      for (const auto& g : stack) cycle += printable(g) + " -> ";
      return reject({"groups", group}, "groups include each other: " + cycle + printable(group));
    }
    if (stack.size() >= kMaxGroupDepth) {
      return reject({"groups", group},
                    "groups nested deeper than " + std::to_string(kMaxGroupDepth) + " (group \"" +
                        printable(stack.front()) + "\" reaches \"" + printable(group) + "\")");
    }
    expanded[group] = false;
    stack.push_back(group);
    std::set<std::string> users;
    for (const Json& member : section.at(group)) {
      const std::string& m = member.get_ref<const std::string&>();
      if (m.rfind("group:", 0) == 0) {
        if (!expand_group(section, m, expanded, stack, members)) return false;
        const std::set<std::string>& nested = policy_.group_users.at(m);
        users.insert(nested.begin(), nested.end());
      } else {
        users.insert(m);
      }
    }
    stack.pop_back();
    members += users.size();
    if (members > kMaxGroupMembers) {
      return reject({"groups", group},
                    "groups expand to more than " + std::to_string(kMaxGroupMembers) +
                        " members in all (at group \"" + printable(group) + "\")");
    }
    policy_.group_users[group] = std::move(users);
    expanded[group] = true;
    return true;
  }

  bool hosts(const Json& section) {
    const JsonPath base{"hosts"};
    if (!section.is_object()) return reject(base, "must be an object of name -> address");
    for (const auto& [name, value] : section.items()) {
      const JsonPath path = join(base, name);
      if (!valid_name_chars(name, true) || parse_prefix(name) || name == "*") {
        return reject(path, "\"" + printable(name) +
                                "\" is not a host name (letters, digits, '-', '_', '.', not an "
                                "address)");
      }
      if (!value.is_string()) return reject(path, "must be an address or prefix string");
      const std::string& text = value.get_ref<const std::string&>();
      if (looks_like_ipv6(text)) {
        if (!ipv6_prefix(text, path, hosts6_[name])) return false;
        continue;
      }
      const auto parsed = parse_prefix(text);
      if (!parsed) return reject(path, "\"" + printable(text) + "\" is not an address or prefix");
      if (!parsed->canonical) {
        return reject(path, "\"" + printable(text) + "\" has host bits set (did you mean " +
                                format_prefix(canonical(parsed->prefix)) + "?)");
      }
      hosts_[name] = parsed->prefix;
    }
    return true;
  }

  // An IPv6 address or canonical prefix into `out`; the error names what is wrong.
  bool ipv6_prefix(const std::string& text, const JsonPath& path, Ipv6Prefix& out) {
    const auto parsed = parse_prefix6(text);
    if (!parsed) {
      return reject(path, "\"" + printable(text) + "\" is not an IPv6 address or prefix: " +
                              printable(parsed.error(), 120));
    }
    if (!parsed->canonical) {
      return reject(path, "\"" + printable(text) + "\" has host bits set (did you mean " +
                              format_prefix(canonical(parsed->prefix)) + "?)");
    }
    out = parsed->prefix;
    return true;
  }

  bool posture(const Json& section) {
    if (section.is_array() && section.empty()) return true;
    return reject({"defaultSrcPosture"},
                  "device posture cannot be checked by exitgw, and ignoring it would let "
                  "non-compliant peers use the exit; remove it or serve this gateway a "
                  "policy without posture conditions");
  }

  // ---- principals -----------------------------------------------------------------------

  // A source principal. `unresolvable` collects what exitgw cannot evaluate (the caller
  // decides: refused when the rule reaches the exit, else noted).
  bool principal(const std::string& s, const JsonPath& path, std::vector<Principal>& out,
                 std::vector<std::string>& unresolvable) {
    Principal p;
    if (s == "*") {
      p.kind = PrincipalKind::kAll;
    } else if (s == "autogroup:member") {
      p.kind = PrincipalKind::kMember;
    } else if (s == "autogroup:tagged") {
      p.kind = PrincipalKind::kTagged;
    } else if (s == "autogroup:internet" || s == "autogroup:self") {
      return reject(path, printable(s) + " is a destination, not a source");
    } else if (std::find(std::begin(kUnresolvableAutogroups), std::end(kUnresolvableAutogroups),
                         s) != std::end(kUnresolvableAutogroups)) {
      unresolvable.push_back(s + " (exitgw knows peers' users and tags, not their roles)");
      return true;
    } else if (s.rfind("autogroup:", 0) == 0) {
      return reject(path, "unknown autogroup \"" + printable(s) + "\"");
    } else if (s.rfind("ipset:", 0) == 0) {
      unresolvable.push_back(s + " (ipsets are not supported)");
      return true;
    } else if (s.rfind("group:", 0) == 0) {
      if (!policy_.group_users.contains(s)) {
        return reject(path, "group \"" + printable(s) + "\" is not defined in groups");
      }
      p.kind = PrincipalKind::kGroup;
      p.name = s;
    } else if (s.rfind("tag:", 0) == 0) {
      if (!policy_.tags.contains(s)) {
        return reject(path, "tag \"" + printable(s) + "\" is not defined in tagOwners");
      }
      p.kind = PrincipalKind::kTag;
      p.name = s;
    } else if (s.find('@') != std::string::npos) {
      if (!valid_user(s)) return reject(path, "\"" + printable(s) + "\" is not a valid user");
      p.kind = PrincipalKind::kUser;
      p.name = s;
    } else if (looks_like_ipv6(s)) {
      p.kind = PrincipalKind::kPrefix;
      p.ipv6 = true;
      if (!ipv6_prefix(s, path, p.prefix6)) return false;
    } else if (const auto host6 = hosts6_.find(s); host6 != hosts6_.end()) {
      p.kind = PrincipalKind::kPrefix;
      p.ipv6 = true;
      p.prefix6 = host6->second;
    } else if (const auto parsed = parse_prefix(s)) {
      if (!parsed->canonical) {
        return reject(path, "\"" + printable(s) + "\" has host bits set");
      }
      p.kind = PrincipalKind::kPrefix;
      p.prefix = parsed->prefix;
    } else if (const auto host = hosts_.find(s); host != hosts_.end()) {
      p.kind = PrincipalKind::kPrefix;
      p.prefix = host->second;
    } else {
      return reject(path, "\"" + printable(s) +
                              "\" is not a user, group:, tag:, autogroup:, address, prefix or "
                              "hosts name");
    }
    out.push_back(std::move(p));
    return true;
  }

  bool sources(const Json& value, const JsonPath& path, std::vector<Principal>& out,
               std::vector<std::string>& unresolvable) {
    if (!string_array(value, path)) return false;
    if (value.empty()) return reject(path, "must name at least one source");
    for (size_t i = 0; i < value.size(); ++i) {
      if (!principal(value[i].get_ref<const std::string&>(), join(path, i), out, unresolvable)) {
        return false;
      }
    }
    return true;
  }

  // A destination without ports (grants, or the part of an acl dst before the last ':').
  bool destination(const std::string& s, const JsonPath& path, DestinationTarget& out) {
    if (s == "*" || s == "autogroup:internet") {
      out.kind = DestinationTarget::kInternet;
      out.every = s == "*";
      return true;
    }
    out.kind = DestinationTarget::kDevice;
    if (s == "autogroup:self" || s == "autogroup:member" || s == "autogroup:tagged") return true;
    if (s.rfind("autogroup:", 0) == 0) {
      return reject(path, "\"" + printable(s) + "\" is not a valid destination");
    }
    if (s.rfind("ipset:", 0) == 0) {
      return reject(path, "ipsets are not supported by exitgw; ignoring " + printable(s) +
                              " could change which exit destinations are allowed");
    }
    if (s.rfind("group:", 0) == 0) {
      if (!policy_.group_users.contains(s)) {
        return reject(path, "group \"" + printable(s) + "\" is not defined in groups");
      }
      return true;
    }
    if (s.rfind("tag:", 0) == 0) {
      if (!policy_.tags.contains(s)) {
        return reject(path, "tag \"" + printable(s) + "\" is not defined in tagOwners");
      }
      return true;
    }
    if (s.find('@') != std::string::npos) {
      if (!valid_user(s)) return reject(path, "\"" + printable(s) + "\" is not a valid user");
      return true;
    }
    if (looks_like_ipv6(s)) {
      out.kind = DestinationTarget::kNamedPrefix;
      out.ipv6 = true;
      return ipv6_prefix(s, path, out.prefix6);
    }
    if (const auto host = hosts6_.find(s); host != hosts6_.end()) {
      out.kind = DestinationTarget::kNamedPrefix;
      out.ipv6 = true;
      out.prefix6 = host->second;
      return true;
    }
    if (const auto parsed = parse_prefix(s)) {
      if (!parsed->canonical) return reject(path, "\"" + printable(s) + "\" has host bits set");
      out.kind = DestinationTarget::kNamedPrefix;
      out.prefix = parsed->prefix;
      return true;
    }
    if (const auto host = hosts_.find(s); host != hosts_.end()) {
      out.kind = DestinationTarget::kNamedPrefix;
      out.prefix = host->second;
      return true;
    }
    return reject(path, "\"" + printable(s) +
                            "\" is not autogroup:internet, *, an address, a prefix, a hosts name "
                            "or a tailnet principal");
  }

  // Appends a destination's targets for one (proto, ports) pair: autogroup:internet and "*"
  // in both families, a prefix in its own. ICMP (1) is left out of IPv6 and ICMPv6 (58) out of
  // IPv4: neither occurs there.
  static void add_targets(Permission& perm, const DestinationTarget& dst, const std::string& text,
                          uint8_t proto, const std::vector<PortRange>& ports) {
    const auto add = [&](bool ipv6, const Ipv4Prefix& prefix, const Ipv6Prefix& prefix6) {
      if (proto == (ipv6 ? kProtoIcmp : kProtoIcmpv6)) return;
      for (const PortRange& range : ports) {
        Target t;
        t.ipv6 = ipv6;
        t.prefix = prefix;
        t.prefix6 = prefix6;
        t.named = dst.kind == DestinationTarget::kNamedPrefix;
        t.proto = proto;
        t.port_lo = range.lo;
        t.port_hi = range.hi;
        t.text = text;
        perm.targets.push_back(std::move(t));
      }
    };
    if (dst.kind == DestinationTarget::kInternet) {
      add(false, Ipv4Prefix{}, {});
      add(true, {}, dst.every ? Ipv6Prefix{} : kInternet6);
    } else {
      add(dst.ipv6, dst.prefix, dst.prefix6);
    }
  }

  // Keeps a permission that reaches the exit; notes one that does not; refuses one whose
  // sources cannot be evaluated but that reaches the exit.
  bool finish(Permission perm, const JsonPath& path, const std::vector<std::string>& unresolvable,
              bool had_device) {
    if (perm.targets.empty()) {
      note(path,
           "no exit destination (only tailnet devices, or ICMP of the other IP family); "
           "ignored");
      return true;
    }
    if (!unresolvable.empty()) {
      return reject(path, "source " + printable(unresolvable.front(), 120) +
                              " cannot be evaluated, and this rule grants exit destinations: "
                              "ignoring it would change who may use the exit; name the users, "
                              "groups or tags instead");
    }
    if (had_device) {
      note(path, "tailnet-device destinations ignored (not exit traffic)");
    }
    std::sort(perm.targets.begin(), perm.targets.end(),
              [](const Target& a, const Target& b) { return a.key() < b.key(); });
    perm.targets.erase(
        std::unique(perm.targets.begin(), perm.targets.end(),
                    [](const Target& a, const Target& b) { return a.key() == b.key(); }),
        perm.targets.end());
    if (perm.targets.size() > kMaxTargetsPerRule) {
      return reject(path, "expands to more than " + std::to_string(kMaxTargetsPerRule) +
                              " destination/port entries");
    }
    policy_.permissions.push_back(std::move(perm));
    return true;
  }

  static constexpr size_t kMaxTargetsPerRule = 65536;

  bool posture_key(const Json& rule, const JsonPath& path) {
    const auto it = rule.find("srcPosture");
    if (it == rule.end() || (it->is_array() && it->empty())) return true;
    return reject(join(path, "srcPosture"),
                  "device posture cannot be checked by exitgw, and ignoring it would let "
                  "non-compliant peers use the exit; serve this gateway a policy without "
                  "posture conditions on exit rules");
  }

  bool unknown_keys(const Json& rule, const JsonPath& path,
                    std::initializer_list<std::string_view> allowed) {
    for (const auto& [key, value] : rule.items()) {
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
      std::string hint;
      if (key == "users" || key == "Users") hint = " (legacy; write \"src\")";
      if (key == "ports" || key == "Ports") hint = " (legacy; write \"dst\")";
      for (std::string_view known : allowed) {
        if (hint.empty() && lower(known) == lower(key)) {
          hint = " (did you mean \"" + std::string(known) + "\"?)";
        }
      }
      return reject(join(path, key), "unknown key \"" + printable(key) + "\"" + hint);
    }
    return true;
  }

  // ---- acls ---------------------------------------------------------------------------

  bool acls(const Json& section) {
    if (!section.is_array()) return reject({"acls"}, "must be a list of rules");
    for (size_t i = 0; i < section.size(); ++i) {
      if (!acl(section[i], {"acls", i})) return false;
    }
    return true;
  }

  bool acl(const Json& rule, const JsonPath& path) {
    if (!rule.is_object()) return reject(path, "a rule must be an object");
    if (!unknown_keys(rule, path, {"action", "src", "dst", "proto", "srcPosture"})) return false;
    if (!posture_key(rule, path)) return false;
    const auto action = rule.find("action");
    if (action == rule.end()) return reject(path, "missing \"action\" (only \"accept\" exists)");
    if (!action->is_string() || action->get_ref<const std::string&>() != "accept") {
      return reject(join(path, "action"), "action must be \"accept\" (rules only grant)");
    }
    for (const char* key : {"src", "dst"}) {
      if (!rule.contains(key)) return reject(path, std::string("missing \"") + key + "\"");
    }
    Permission perm;
    perm.label = format_path(path);
    std::vector<std::string> unresolvable;
    if (!sources(rule.at("src"), join(path, "src"), perm.src, unresolvable)) return false;

    // proto: absent means TCP and UDP on the given ports, plus ICMP when all ports are allowed
    // (the tailnet filter's rule: ICMP has no ports, so only a port-agnostic rule admits it).
    std::optional<int> proto;
    if (const auto it = rule.find("proto"); it != rule.end()) {
      const JsonPath ppath = join(path, "proto");
      if (it->is_string()) {
        proto = parse_proto(it->get_ref<const std::string&>());
      } else if (it->is_number_unsigned() && it->get<uint64_t>() >= 1 &&
                 it->get<uint64_t>() <= 255) {
        proto = static_cast<int>(it->get<uint64_t>());
      }
      if (!proto) return reject(ppath, "not a protocol name (tcp, udp, icmp, ...) or number 1-255");
    }

    const Json& dst = rule.at("dst");
    const JsonPath dpath = join(path, "dst");
    if (!string_array(dst, dpath)) return false;
    if (dst.empty()) return reject(dpath, "must name at least one destination");
    bool ignored = false;
    for (size_t j = 0; j < dst.size(); ++j) {
      const std::string& s = dst[j].get_ref<const std::string&>();
      const JsonPath epath = join(dpath, j);
      const size_t colon = s.rfind(':');
      if (colon == std::string::npos) {
        return reject(epath, "\"" + printable(s) + "\" needs ports: write " + printable(s) +
                                 ":* or " + printable(s) + ":80,443");
      }
      std::string target = s.substr(0, colon);
      if (target.size() > 2 && target.front() == '[' && target.back() == ']') {
        target = target.substr(1, target.size() - 2);
      }
      const auto ports = parse_ports(std::string_view(s).substr(colon + 1));
      if (!ports && s.find(':') == colon &&
          (s.rfind("autogroup:", 0) == 0 || s.rfind("tag:", 0) == 0 || s.rfind("group:", 0) == 0)) {
        return reject(epath, "\"" + printable(s) + "\" needs ports: write " + printable(s) +
                                 ":* or " + printable(s) + ":80,443");
      }
      if (!ports) {
        return reject(epath, "bad ports in \"" + printable(s) +
                                 "\" (use *, 22, 80,443 or 8000-8080, each 0-65535)");
      }
      DestinationTarget d;
      if (!destination(target, epath, d)) return false;
      if (d.kind == DestinationTarget::kDevice) {
        ignored = true;
        continue;
      }
      const bool all_ports = ports->size() == 1 && ports->front().all();
      if (proto) {
        if (!proto_has_ports(*proto) && !all_ports) {
          return reject(epath,
                        "protocol " + std::to_string(*proto) + " has no ports; use :* with it");
        }
        add_targets(perm, d, s, static_cast<uint8_t>(*proto), *ports);
      } else {
        add_targets(perm, d, s, kProtoTcp, *ports);
        add_targets(perm, d, s, kProtoUdp, *ports);
        if (all_ports) {
          add_targets(perm, d, s, kProtoIcmp, *ports);    // IPv4 targets only
          add_targets(perm, d, s, kProtoIcmpv6, *ports);  // IPv6 targets only
        }
      }
    }
    return finish(std::move(perm), path, unresolvable, ignored);
  }

  // ---- grants -------------------------------------------------------------------------

  bool grants(const Json& section) {
    if (!section.is_array()) return reject({"grants"}, "must be a list of grants");
    for (size_t i = 0; i < section.size(); ++i) {
      if (!grant(section[i], {"grants", i})) return false;
    }
    return true;
  }

  struct IpSpec {
    int proto;  // 0 = any
    std::vector<PortRange> ports;
  };

  // grants[].ip entries: "*", "tcp:443", "udp:53", "icmp:*", "6:80,443", "443" (TCP and UDP).
  bool ip_spec(const std::string& s, const JsonPath& path, std::vector<IpSpec>& out) {
    if (s == "*") {
      out.push_back({kProtoAny, {PortRange{}}});
      return true;
    }
    const size_t colon = s.find(':');
    if (colon == std::string::npos) {
      if (const auto proto = parse_proto(s); proto && !parse_ports(s)) {
        out.push_back({*proto, {PortRange{}}});
        return true;
      }
      const auto ports = parse_ports(s);
      if (!ports) return reject(path, "\"" + printable(s) + "\" is not *, proto:ports or ports");
      out.push_back({kProtoTcp, *ports});
      out.push_back({kProtoUdp, *ports});
      return true;
    }
    const auto proto = parse_proto(s.substr(0, colon));
    const auto ports = parse_ports(std::string_view(s).substr(colon + 1));
    if (!proto) return reject(path, "unknown protocol in \"" + printable(s) + "\"");
    if (!ports) return reject(path, "bad ports in \"" + printable(s) + "\"");
    if (!proto_has_ports(*proto) && !(ports->size() == 1 && ports->front().all())) {
      return reject(path, "protocol " + std::to_string(*proto) + " has no ports; write " +
                              printable(s.substr(0, colon)) + ":*");
    }
    out.push_back({*proto, *ports});
    return true;
  }

  bool grant(const Json& rule, const JsonPath& path) {
    if (!rule.is_object()) return reject(path, "a grant must be an object");
    if (!unknown_keys(rule, path, {"src", "dst", "ip", "app", "via", "srcPosture"})) return false;
    if (!posture_key(rule, path)) return false;
    for (const char* key : {"src", "dst"}) {
      if (!rule.contains(key)) return reject(path, std::string("missing \"") + key + "\"");
    }
    if (!rule.contains("ip") && !rule.contains("app")) {
      return reject(path, "a grant needs \"ip\" or \"app\"");
    }
    Permission perm;
    perm.label = format_path(path);
    std::vector<std::string> unresolvable;
    if (!sources(rule.at("src"), join(path, "src"), perm.src, unresolvable)) return false;

    if (const auto via = rule.find("via"); via != rule.end()) {
      const JsonPath vpath = join(path, "via");
      if (!string_array(*via, vpath)) return false;
      for (size_t i = 0; i < via->size(); ++i) {
        const std::string& tag = (*via)[i].get_ref<const std::string&>();
        if (!policy_.tags.contains(tag)) {
          return reject(join(vpath, i), "via takes tags defined in tagOwners; \"" + printable(tag) +
                                            "\" is not one");
        }
        perm.via_tags.push_back(tag);
      }
    }

    const Json& dst = rule.at("dst");
    const JsonPath dpath = join(path, "dst");
    if (!string_array(dst, dpath)) return false;
    if (dst.empty()) return reject(dpath, "must name at least one destination");
    std::vector<DestinationTarget> dsts;
    bool ignored = false;
    for (size_t j = 0; j < dst.size(); ++j) {
      DestinationTarget d;
      if (!destination(dst[j].get_ref<const std::string&>(), join(dpath, j), d)) return false;
      if (d.kind == DestinationTarget::kDevice) ignored = true;
      dsts.push_back(d);
    }

    std::vector<IpSpec> specs;
    if (const auto ip = rule.find("ip"); ip != rule.end()) {
      const JsonPath ipath = join(path, "ip");
      if (!string_array(*ip, ipath)) return false;
      if (ip->empty()) return reject(ipath, "must name at least one protocol/port");
      for (size_t i = 0; i < ip->size(); ++i) {
        if (!ip_spec((*ip)[i].get_ref<const std::string&>(), join(ipath, i), specs)) return false;
      }
    }
    if (rule.contains("app")) {
      note(join(path, "app"), "application capabilities do not affect exit traffic; ignored");
    }
    for (size_t j = 0; j < dsts.size(); ++j) {
      if (dsts[j].kind == DestinationTarget::kDevice) continue;
      const std::string& text = dst[j].get_ref<const std::string&>();
      for (const IpSpec& spec : specs) {
        add_targets(perm, dsts[j], text, static_cast<uint8_t>(spec.proto), spec.ports);
      }
    }
    return finish(std::move(perm), path, unresolvable, ignored);
  }

  // ---- autoApprovers ------------------------------------------------------------------

  bool auto_approvers(const Json& section) {
    const JsonPath base{"autoApprovers"};
    if (!section.is_object()) return reject(base, "must be an object");
    for (const auto& [key, value] : section.items()) {
      const JsonPath path = join(base, key);
      if (key == "routes") {
        if (!value.is_object()) return reject(path, "must be an object of prefix -> approvers");
        note(path, "subnet-route auto-approval does not apply to an exit gateway; ignored");
        continue;
      }
      if (key != "exitNode") return reject(path, "unknown key (exitNode or routes)");
      if (!string_array(value, path)) return false;
      std::vector<std::string> unresolvable;
      for (size_t i = 0; i < value.size(); ++i) {
        if (!principal(value[i].get_ref<const std::string&>(), join(path, i),
                       policy_.exit_node_approvers, unresolvable)) {
          return false;
        }
        if (!unresolvable.empty()) {
          return reject(join(path, i), "approver " + printable(unresolvable.front(), 120) +
                                           " cannot be evaluated for this node");
        }
      }
    }
    return true;
  }

  const HujsonDocument& doc_;
  std::string_view origin_;
  std::string error_;
  Policy policy_;
  std::map<std::string, Ipv4Prefix> hosts_;
  std::map<std::string, Ipv6Prefix> hosts6_;
  size_t suppressed_notes_ = 0;
};

}  // namespace

Result<Policy> parse_policy(std::string_view text, std::string_view origin) {
  Result<HujsonDocument> doc = parse_hujson(text, origin);
  if (!doc) return make_error(doc.error());
  try {
    return Parser(*doc, origin).run();
  } catch (const std::exception& e) {
    // Parser only reads values it has type-checked; this guards bad_alloc and our mistakes.
    return make_error(std::string(origin) + ": cannot read policy: " + printable(e.what(), 200));
  }
}

Policy default_policy() {
  Result<Policy> policy = parse_policy(kDefaultPolicyText, "(default policy)");
  // The text is a constant covered by tests; an empty policy (deny all) is the safe fallback.
  Policy out = policy ? std::move(policy.value()) : Policy{};
  out.is_default = true;
  return out;
}

}  // namespace exitgw::policy
