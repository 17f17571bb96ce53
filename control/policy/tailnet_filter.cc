// The tailnet filter: JSON in and out, checked field by field, and its Policy form.
#include "control/policy/tailnet_filter.h"

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "control/policy/prefix.h"

namespace exitgw::policy {

namespace {

using nlohmann::json;

constexpr uint8_t kDefaultProtocols[] = {kProtoTcp, kProtoUdp, kProtoIcmp};
constexpr uint8_t kDefaultProtocols6[] = {kProtoTcp, kProtoUdp, kProtoIcmpv6};

// An IPv4 or an IPv6 prefix.
struct AnyPrefix {
  bool ipv6 = false;
  Ipv4Prefix prefix;
  Ipv6Prefix prefix6;
};

Error at(const std::string& where, const std::string& problem) {
  return make_error(where + ": " + problem);
}

// Only `allowed` fields; `where` names the object in messages.
Status only_fields(const json& object, const std::string& where,
                   std::initializer_list<std::string_view> allowed) {
  for (const auto& [name, value] : object.items()) {
    bool known = false;
    for (std::string_view a : allowed) known |= name == a;
    if (!known) {
      std::string list;
      for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return at(where,
                "unknown field " +
                    json(name.substr(0, 64)).dump(-1, ' ', true, json::error_handler_t::replace) +
                    " (known: " + list + ")");
    }
  }
  return Ok{};
}

Result<AnyPrefix> prefix_of(const json& value, const std::string& where) {
  if (!value.is_string())
    return at(where, std::string("must be a string, got ") + value.type_name());
  const std::string& text = value.get_ref<const std::string&>();
  const std::string shown =
      json(text.substr(0, 64)).dump(-1, ' ', true, json::error_handler_t::replace);
  if (looks_like_ipv6(text)) {
    const auto p6 = parse_prefix6(text);
    if (!p6) return at(where, shown + " is not an IPv6 address or prefix: " + p6.error());
    if (!p6->canonical)
      return at(where, shown + " has host bits set: write " + format_prefix(canonical(p6->prefix)));
    return AnyPrefix{true, {}, p6->prefix};
  }
  const auto p = parse_prefix(text);
  if (!p) return at(where, shown + " is not an IPv4 or IPv6 address or prefix (a.b.c.d/len)");
  if (!p->canonical)
    return at(where,
              shown + " has host bits set: write " +
                  format_prefix(Ipv4Prefix{p->prefix.addr & p->prefix.mask(), p->prefix.len}));
  return AnyPrefix{false, p->prefix, {}};
}

Result<TailnetFilterRule> rule_of(const json& value, const std::string& where, size_t& entries) {
  if (!value.is_object())
    return at(where,
              std::string("must be an object {src, dst, protocols?}, got ") + value.type_name());
  if (Status s = only_fields(value, where, {"src", "dst", "protocols"}); !s)
    return make_error(s.error());
  TailnetFilterRule rule;
  for (const char* field : {"src", "dst"}) {
    const auto it = value.find(field);
    if (it == value.end() || !it->is_array())
      return at(where + "." + field, it == value.end()
                                         ? "is missing"
                                         : std::string("must be an array, got ") + it->type_name());
    if (it->empty()) return at(where + "." + field, "is empty; a rule with none matches nothing");
    entries += it->size();
    if (entries > kMaxTailnetFilterEntries)
      return at(where + "." + field, "the filter has more than " +
                                         std::to_string(kMaxTailnetFilterEntries) + " entries");
  }
  const json& src = value["src"];
  for (size_t i = 0; i < src.size(); ++i) {
    auto p = prefix_of(src[i], where + ".src[" + std::to_string(i) + "]");
    if (!p) return make_error(p.error());
    if (p->ipv6) {
      rule.src6.push_back(p->prefix6);
    } else {
      rule.src.push_back(p->prefix);
    }
  }
  const json& dst = value["dst"];
  for (size_t i = 0; i < dst.size(); ++i) {
    const std::string w = where + ".dst[" + std::to_string(i) + "]";
    const json& d = dst[i];
    if (!d.is_object())
      return at(w, std::string("must be an object {prefix, ports}, got ") + d.type_name());
    if (Status s = only_fields(d, w, {"prefix", "ports"}); !s) return make_error(s.error());
    if (!d.contains("prefix")) return at(w + ".prefix", "is missing");
    auto p = prefix_of(d["prefix"], w + ".prefix");
    if (!p) return make_error(p.error());
    TailnetFilterDst out{p->prefix, 0, 65535, p->ipv6, p->prefix6};
    if (!d.contains("ports")) return at(w + ".ports", "is missing (all ports: [0, 65535])");
    const json& ports = d["ports"];
    const auto port_ok = [](const json& j) {
      return j.is_number_integer() && j.get<int64_t>() >= 0 && j.get<int64_t>() <= 65535;
    };
    if (!ports.is_array() || ports.size() != 2 || !port_ok(ports[0]) || !port_ok(ports[1]))
      return at(w + ".ports",
                "must be [first, last], each 0..65535, got " +
                    ports.dump(-1, ' ', true, json::error_handler_t::replace).substr(0, 64));
    out.port_lo = static_cast<uint16_t>(ports[0].get<int64_t>());
    out.port_hi = static_cast<uint16_t>(ports[1].get<int64_t>());
    if (out.port_lo > out.port_hi)
      return at(w + ".ports", "first " + std::to_string(out.port_lo) + " is above last " +
                                  std::to_string(out.port_hi));
    rule.dst.push_back(out);
  }
  if (const auto it = value.find("protocols"); it != value.end() && !it->is_null()) {
    if (!it->is_array())
      return at(where + ".protocols",
                std::string("must be an array of IP protocol numbers, got ") + it->type_name());
    for (size_t i = 0; i < it->size(); ++i) {
      const json& n = (*it)[i];
      if (!n.is_number_integer() || n.get<int64_t>() < 1 || n.get<int64_t>() > 255)
        return at(where + ".protocols[" + std::to_string(i) + "]",
                  "must be an IP protocol number 1..255 (leave the list empty for TCP, UDP "
                  "and ICMP/ICMPv6), got " +
                      n.dump(-1, ' ', true, json::error_handler_t::replace).substr(0, 64));
      rule.protocols.push_back(static_cast<uint8_t>(n.get<int64_t>()));
    }
  }
  return rule;
}

}  // namespace

Result<TailnetFilter> tailnet_filter_from_json(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("rules") || !body["rules"].is_array())
    return make_error("the body must be {\"rules\": [rule, ...]}");
  if (Status s = only_fields(body, "the body", {"rules"}); !s) return make_error(s.error());
  const json& rules = body["rules"];
  if (rules.size() > kMaxTailnetFilterRules)
    return make_error("the filter has " + std::to_string(rules.size()) + " rules; at most " +
                      std::to_string(kMaxTailnetFilterRules));
  TailnetFilter filter;
  size_t entries = 0;
  for (size_t i = 0; i < rules.size(); ++i) {
    auto rule = rule_of(rules[i], "rules[" + std::to_string(i) + "]", entries);
    if (!rule) return make_error(rule.error());
    filter.rules.push_back(std::move(*rule));
  }
  return filter;
}

nlohmann::json tailnet_filter_to_json(const TailnetFilter& filter) {
  json rules = json::array();
  for (const TailnetFilterRule& r : filter.rules) {
    json src = json::array();
    for (const Ipv4Prefix& p : r.src) src.push_back(format_prefix(p));
    for (const Ipv6Prefix& p : r.src6) src.push_back(format_prefix(p));
    json dst = json::array();
    for (const TailnetFilterDst& d : r.dst)
      dst.push_back({{"prefix", d.ipv6 ? format_prefix(d.prefix6) : format_prefix(d.prefix)},
                     {"ports", {d.port_lo, d.port_hi}}});
    rules.push_back({{"src", std::move(src)}, {"dst", std::move(dst)}, {"protocols", r.protocols}});
  }
  return {{"rules", std::move(rules)}};
}

Policy policy_from_tailnet_filter(const TailnetFilter& filter) {
  Policy policy;
  for (size_t i = 0; i < filter.rules.size(); ++i) {
    const TailnetFilterRule& rule = filter.rules[i];
    Permission perm;
    perm.label = "tailnet[" + std::to_string(i) + "]";
    for (const Ipv4Prefix& p : rule.src)
      perm.src.push_back(Principal{PrincipalKind::kPrefix, {}, p});
    for (const Ipv6Prefix& p : rule.src6)
      perm.src.push_back(Principal{PrincipalKind::kPrefix, {}, {}, true, p});
    for (const TailnetFilterDst& d : rule.dst) {
      const std::span<const uint8_t> protocols =
          !rule.protocols.empty() ? std::span<const uint8_t>(rule.protocols)
          : d.ipv6                ? std::span<const uint8_t>(kDefaultProtocols6)
                                  : std::span<const uint8_t>(kDefaultProtocols);
      for (uint8_t proto : protocols) {
        Target t;
        t.prefix = d.prefix;
        t.ipv6 = d.ipv6;
        t.prefix6 = d.prefix6;
        // Spelled out by the coordination server's policy: a prefix inside a safety range
        // (say a grant of 198.51.100.0/24) lifts it there, as in the HuJSON policy, while the
        // wide autogroup:internet ranges never do; tailnet destinations are dropped (notes).
        t.named = true;
        t.proto = proto;
        t.port_lo = d.port_lo;
        t.port_hi = d.port_hi;
        t.text = d.ipv6 ? format_prefix(d.prefix6) : format_prefix(d.prefix);
        perm.targets.push_back(std::move(t));
      }
    }
    policy.permissions.push_back(std::move(perm));
  }
  return policy;
}

}  // namespace exitgw::policy
