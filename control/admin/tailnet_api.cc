// JSON for the tailnet endpoints: the connector's health in and out, the filter out.
#include "control/admin/tailnet_api.h"

#include <algorithm>
#include <string>

#include "control/net_parse.h"

namespace exitgw::admin {

namespace {

using nlohmann::json;

constexpr size_t kMaxMessageBytes = 1024;
constexpr size_t kMaxNameBytes = 512;
constexpr size_t kMaxAddresses = 8;

// One of the node's addresses: IPv4 or IPv6, bare or as a host prefix (/32, /128); canonical.
Result<std::string> node_address(const json& value) {
  if (!value.is_string() || value.get_ref<const std::string&>().size() > 64)
    return make_error("an address string");
  std::string text = value.get<std::string>();
  const bool v6 = text.find(':') != std::string::npos;
  if (const auto slash = text.find('/'); slash != std::string::npos) {
    if (text.substr(slash + 1) != (v6 ? "128" : "32")) return make_error("a host address");
    text.resize(slash);
  }
  if (!v6) {
    auto a = parse_ipv4(text);
    if (!a) return make_error("an IPv4 or IPv6 address");
    return format_ipv4(*a);
  }
  auto a = parse_ipv6(text);
  if (!a) return make_error("an IPv4 or IPv6 address");
  return format_ipv6(a->data());
}

json nullable_ms(int64_t ms) {
  return ms == 0 ? json(nullptr) : json(ms);
}

}  // namespace

Result<TailnetHealth> tailnet_health_from_json(const nlohmann::json& body) {
  if (!body.is_object())
    return make_error(std::string("the body must be a JSON object {\"state\": ...}, got ") +
                      body.type_name());
  TailnetHealth h;
  bool has_state = false;
  for (const auto& [name, value] : body.items()) {
    if (value.is_null()) continue;
    if (name == "state") {
      const bool known = value.is_string() && value.get<std::string>() != "none" &&
                         std::find(kTailnetStates.begin(), kTailnetStates.end(),
                                   value.get<std::string>()) != kTailnetStates.end();
      if (!known)
        return make_error("field 'state' must be \"ok\", \"stale\", \"logged_out\" or \"error\"");
      h.state = value.get<std::string>();
      has_state = true;
    } else if (name == "since_unix_ms" || name == "last_netmap_unix_ms") {
      if (!value.is_number_integer() || value.get<int64_t>() < 0)
        return make_error("field '" + name + "' must be a Unix time in milliseconds, got " +
                          value.type_name());
      (name == "since_unix_ms" ? h.since_unix_ms : h.last_netmap_unix_ms) = value.get<int64_t>();
    } else if (name == "message" || name == "node_key" || name == "login_server") {
      const size_t limit = name == "message" ? kMaxMessageBytes : kMaxNameBytes;
      if (!value.is_string() || value.get_ref<const std::string&>().size() > limit)
        return make_error("field '" + name + "' must be a string of at most " +
                          std::to_string(limit) + " bytes");
      (name == "message"    ? h.message
       : name == "node_key" ? h.node_key
                            : h.login_server) = value.get<std::string>();
    } else if (name == "addresses") {
      if (!value.is_array() || value.size() > kMaxAddresses)
        return make_error("field 'addresses' must be an array of at most " +
                          std::to_string(kMaxAddresses) + " addresses");
      for (const json& a : value) {
        auto addr = node_address(a);
        if (!addr)
          return make_error("field 'addresses': " +
                            a.dump(-1, ' ', true, json::error_handler_t::replace).substr(0, 80) +
                            " is not " + addr.error());
        h.addresses.push_back(std::move(*addr));
      }
    } else {
      return make_error(
          "unknown field " +
          json(name.substr(0, 64)).dump(-1, ' ', true, json::error_handler_t::replace) +
          " (known: state, since_unix_ms, last_netmap_unix_ms, message, node_key, "
          "login_server, addresses)");
    }
  }
  if (!has_state) return make_error("field 'state' is missing");
  return h;
}

nlohmann::json tailnet_health_json(const TailnetHealth& h, int64_t now_unix_ms) {
  json age = nullptr;
  if (h.last_netmap_unix_ms != 0)
    age = std::max<int64_t>(0, now_unix_ms - h.last_netmap_unix_ms) / 1000.0;
  return {{"state", h.state},
          {"since_unix_ms", nullable_ms(h.since_unix_ms)},
          {"last_netmap_unix_ms", nullable_ms(h.last_netmap_unix_ms)},
          {"netmap_age_seconds", age},
          {"message", h.message},
          {"node_key", h.node_key},
          {"login_server", h.login_server},
          {"addresses", h.addresses},
          {"reported_unix_ms", nullable_ms(h.reported_unix_ms)}};
}

nlohmann::json filter_json(const AdminView& view) {
  return {{"filter", view.tailnet_filter ? policy::tailnet_filter_to_json(*view.tailnet_filter)
                                         : json(nullptr)},
          {"policy_source", view.policy_source},
          {"rules", view.policy_rules},
          {"classes", view.policy_classes},
          {"generation", view.generation}};
}

}  // namespace exitgw::admin
