// JSON for the admin API: bounded parsing, peer bodies to PeerConfig, the running state out.
#include "control/admin/peer_json.h"

#include <chrono>

#include <algorithm>
#include <array>
#include <set>
#include <utility>
#include <vector>

#include "control/admin/tailnet_api.h"

namespace exitgw::admin {

namespace {

using nlohmann::json;

// Thrown from the parser callback to stop at the first structural problem; caught below, so
// it never leaves parse_request_json.
struct StructureError {
  std::string message;
};

// Field names are JSON strings a client chose: shown escaped and cut short.
std::string quote_field(std::string_view name) {
  constexpr size_t kMaxShown = 64;
  std::string shown(name.substr(0, kMaxShown));
  if (name.size() > kMaxShown) shown += "...";
  return json(shown).dump(-1, ' ', true, json::error_handler_t::replace);
}

std::string field_error(std::string_view field, std::string_view expected, const json& got) {
  return "field '" + std::string(field) + "' must be " + std::string(expected) + ", got " +
         got.type_name();
}

std::string known_peer_fields() {
  std::string out;
  for (const PeerFieldInfo& f : kPeerFields)
    out += (out.empty() ? "" : ", ") + std::string(f.json_name);
  return out;
}

// An array of strings, each passed to `fn` with its index; stops at the first error.
template <typename Fn>
Status for_each_string(std::string_view field, const json& value, Fn&& fn) {
  if (!value.is_array()) return make_error(field_error(field, "an array of strings", value));
  for (size_t i = 0; i < value.size(); ++i) {
    const json& item = value[i];
    const std::string where = std::string(field) + "[" + std::to_string(i) + "]";
    if (!item.is_string()) return make_error(field_error(where, "a string", item));
    Status s = fn(item.get_ref<const std::string&>());
    if (!s) return make_error("field '" + where + "': " + s.error());
  }
  return Ok{};
}

// IPv4 first, then IPv6, each in the peer's order; canonical text.
json allowed_ips_json(const std::vector<Ipv4Prefix>& v4, const std::vector<Ipv6Prefix>& v6) {
  json ips = json::array();
  for (const Ipv4Prefix& p : v4) ips.push_back(format_allowed_ip(p));
  for (const Ipv6Prefix& p : v6) ips.push_back(format_allowed_ip(p));
  return ips;
}

json nullable_ms(int64_t unix_ms) {
  return unix_ms == 0 ? json(nullptr) : json(unix_ms);
}

}  // namespace

Result<nlohmann::json> parse_request_json(std::string_view body) {
  std::vector<std::set<std::string>> keys;  // the field names of each open object
  const json::parser_callback_t check = [&keys](int depth, json::parse_event_t event,
                                                json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          throw StructureError{"the body nests deeper than " + std::to_string(kMaxJsonDepth) +
                               " levels"};
        }
        if (event == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
        keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second) {
          throw StructureError{"field " + quote_field(parsed.get<std::string>()) +
                               " appears twice in one object"};
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(body.begin(), body.end(), check);
  } catch (const StructureError& e) {
    return make_error(e.message);
  } catch (const json::exception& e) {
    // nlohmann's message names the byte and what it expected, without echoing the body.
    return make_error(std::string("the body is not valid JSON: ") + e.what());
  }
}

Result<wg::Key> key_from_url(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  if (standard.size() == 43) standard += '=';
  return parse_peer_public_key(standard);
}

std::string key_to_url(const wg::Key& key) {
  std::string text = wg::key_to_base64(key);
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return text;
}

Result<PeerConfig> peer_from_json(const nlohmann::json& body, const wg::Key* url_key) {
  if (!body.is_object())
    return make_error(std::string("the body must be a JSON object (a peer), got ") +
                      body.type_name());
  PeerConfig peer;
  bool has_key = false;
  for (const auto& item : body.items()) {
    const std::string& name = item.key();
    const nlohmann::json& value = item.value();
    const auto found = std::find_if(kPeerFields.begin(), kPeerFields.end(),
                                    [&](const PeerFieldInfo& f) { return f.json_name == name; });
    if (found == kPeerFields.end()) {
      return make_error("unknown field " + quote_field(name) +
                        " in a peer (known: " + known_peer_fields() + ")");
    }
    const auto field = static_cast<PeerField>(found - kPeerFields.begin());
    if (value.is_null() && field != PeerField::kPublicKey && field != PeerField::kAllowedIps)
      continue;  // an optional field left out
    Status s = Ok{};
    switch (field) {
      case PeerField::kPublicKey: {
        if (!value.is_string()) return make_error(field_error(name, "a base64 key string", value));
        auto key = parse_peer_public_key(value.get_ref<const std::string&>());
        if (!key) return make_error("field 'public_key': " + key.error());
        peer.public_key = *key;
        has_key = true;
        break;
      }
      case PeerField::kPresharedKey: {
        if (!value.is_string()) return make_error(field_error(name, "a base64 key string", value));
        // key_from_base64 never echoes its input, so the secret stays out of the message.
        auto key = wg::key_from_base64(value.get_ref<const std::string&>());
        if (!key) return make_error("field 'preshared_key': " + key.error());
        peer.preshared_key = *key;
        peer.has_preshared_key = true;
        wg::secure_zero(*key);
        break;
      }
      case PeerField::kAllowedIps:
        s = for_each_string(name, value, [&](const std::string& item) -> Status {
          auto prefix = parse_allowed_ip(item);
          if (!prefix) return make_error(prefix.error());
          add_allowed_ip(peer, *prefix);
          return Ok{};
        });
        break;
      case PeerField::kEndpoint: {
        if (!value.is_string()) return make_error(field_error(name, "a string ip:port", value));
        auto endpoint = parse_peer_endpoint(value.get_ref<const std::string&>());
        if (!endpoint) return make_error("field 'endpoint': " + endpoint.error());
        set_peer_endpoint(peer, *endpoint);
        break;
      }
      case PeerField::kKeepalive:
        // Parsed numbers are unsigned when non-negative; built ones may be signed.
        if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
            value.get<int64_t>() > 65535) {
          return make_error(field_error(name, "a number of seconds from 0 to 65535", value) +
                            (value.is_number() ? " " + value.dump() : ""));
        }
        peer.persistent_keepalive = static_cast<uint16_t>(value.get<int64_t>());
        break;
      case PeerField::kUser:
        if (!value.is_string()) return make_error(field_error(name, "a string", value));
        s = check_peer_user(value.get_ref<const std::string&>());
        if (!s) return make_error("field 'user': " + s.error());
        peer.user = value.get<std::string>();
        break;
      case PeerField::kTags:
        s = for_each_string(name, value, [&](const std::string& tag) -> Status {
          Status tag_ok = check_peer_tag(tag);
          if (tag_ok) peer.tags.push_back(tag);
          return tag_ok;
        });
        break;
      case PeerField::kDiscoKey: {
        if (!value.is_string()) return make_error(field_error(name, "a base64 key string", value));
        auto key = parse_disco_key(value.get_ref<const std::string&>());
        if (!key) return make_error("field 'disco_key': " + key.error());
        peer.disco_key = *key;
        peer.has_disco_key = true;
        break;
      }
      case PeerField::kCount:
        break;
    }
    if (!s) return make_error(s.error());
  }
  if (url_key != nullptr) {
    if (has_key && peer.public_key != *url_key) {
      return make_error("field 'public_key' (" + wg::key_to_base64(peer.public_key) +
                        ") is not the key in the URL (" + wg::key_to_base64(*url_key) + ")");
    }
    peer.public_key = *url_key;
  } else if (!has_key) {
    return make_error("field 'public_key' is missing");
  }
  if (peer.allowed_ips.empty() && peer.allowed_ips6.empty() && !body.contains("allowed_ips"))
    return make_error("field 'allowed_ips' is missing; a peer needs at least one prefix");
  Status valid = validate_peer(peer);
  if (!valid) return make_error(valid.error());
  return peer;
}

nlohmann::json peer_to_request_json(const PeerConfig& peer) {
  json j = {{"public_key", wg::key_to_base64(peer.public_key)}};
  if (peer.has_preshared_key) j["preshared_key"] = wg::key_to_base64(peer.preshared_key);
  j["allowed_ips"] = allowed_ips_json(peer.allowed_ips, peer.allowed_ips6);
  if (peer.has_endpoint) j["endpoint"] = peer_endpoint_text(peer);
  if (peer.persistent_keepalive != 0) j["persistent_keepalive"] = peer.persistent_keepalive;
  if (!peer.user.empty()) j["user"] = peer.user;
  if (!peer.tags.empty()) j["tags"] = peer.tags;
  if (peer.has_disco_key) j["disco_key"] = wg::key_to_base64(peer.disco_key);
  return j;
}

Result<std::optional<bool>> flag_from_json(const nlohmann::json& body, std::string_view field,
                                           bool nullable) {
  const std::string expected = nullable ? "true, false or null" : "true or false";
  const std::string shape = "{\"" + std::string(field) + "\": " + expected + "}";
  if (!body.is_object())
    return make_error(std::string("the body must be a JSON object ") + shape + ", got " +
                      body.type_name());
  for (const auto& [name, value] : body.items()) {
    if (name != field)
      return make_error("unknown field " + quote_field(name) + " (the body is " + shape + ")");
  }
  const auto it = body.find(field);
  if (it == body.end()) return make_error("field '" + std::string(field) + "' is missing");
  if (it->is_boolean()) return std::optional<bool>(it->get<bool>());
  if (nullable && it->is_null()) return std::optional<bool>();
  return make_error(field_error(field, expected, *it));
}

nlohmann::json peer_view_json(const AdminView::Peer& peer) {
  return {
      {"public_key", wg::key_to_base64(peer.public_key)},
      {"source", peer.source},
      {"user", peer.user.empty() ? json(nullptr) : json(peer.user)},
      {"tags", peer.tags},
      {"allowed_ips", allowed_ips_json(peer.allowed_ips, peer.allowed_ips6)},
      {"endpoint", peer.endpoint.empty() ? json(nullptr) : json(peer.endpoint)},
      {"current_endpoint",
       peer.current_endpoint.empty() ? json(nullptr) : json(peer.current_endpoint)},
      {"persistent_keepalive", peer.persistent_keepalive},
      {"has_preshared_key", peer.has_preshared_key},
      {"last_handshake_unix_ms", nullable_ms(peer.last_handshake_unix_ms)},
      {"rx_bytes", peer.rx_bytes},
      {"tx_bytes", peer.tx_bytes},
      {"disco_key", peer.has_disco_key ? json(wg::key_to_base64(peer.disco_key)) : json(nullptr)},
  };
}

nlohmann::json peers_json(const AdminView& view, std::string_view source) {
  std::vector<const AdminView::Peer*> sorted;
  sorted.reserve(view.peers.size());
  for (const AdminView::Peer& p : view.peers)
    if (source.empty() || p.source == source) sorted.push_back(&p);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->public_key < b->public_key; });
  json peers = json::array();
  for (const AdminView::Peer* p : sorted) peers.push_back(peer_view_json(*p));
  return {{"generation", view.generation}, {"peers", std::move(peers)}};
}

nlohmann::json status_json(const AdminView& view) {
  json sources = json::object();
  for (const auto& [name, health] : view.sources) {
    sources[name] = {{"ok", health.ok},
                     {"message", health.message},
                     {"last_ok_unix_ms", nullable_ms(health.last_ok_unix_ms)}};
  }
  json last_update = nullptr;
  if (!view.last_update_source.empty() || view.last_update_unix_ms != 0) {
    last_update = {{"source", view.last_update_source},
                   {"unix_ms", nullable_ms(view.last_update_unix_ms)}};
  }
  return {
      {"generation", view.generation},
      {"last_update", std::move(last_update)},
      {"approval",
       {{"approved", view.approved},
        {"override", view.approval_override ? json(*view.approval_override) : json(nullptr)},
        {"reason", view.approval_reason}}},
      {"destination_logging", view.destination_logging},
      {"drain", view.draining},
      {"policy",
       {{"source", view.policy_source},
        {"rules", view.policy_rules},
        {"classes", view.policy_classes}}},
      {"sources", std::move(sources)},
      {"peer_count", view.peers.size()},
      {"tailnet",
       tailnet_health_json(view.tailnet, std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count())},
  };
}

nlohmann::json policy_json(const AdminView& view) {
  return {{"source", view.policy_source},
          {"text", view.policy_text ? *view.policy_text : std::string()},
          {"rules", view.policy_rules},
          {"classes", view.policy_classes},
          {"generation", view.generation}};
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string error_body(std::string_view message) {
  return dump(json{{"error", std::string(message)}});
}

}  // namespace exitgw::admin
