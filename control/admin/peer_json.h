// The admin API's JSON: request bodies parsed with limits, peers converted to PeerConfig and
// validated by the peers file's rules, and the running state (AdminView) written out.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/admin/admin_view.h"
#include "control/peers_config.h"
#include "control/wg/crypto.h"

namespace exitgw::admin {

// A peer body nests two deep; anything much deeper is a mistake or an attack on the parser.
inline constexpr int kMaxJsonDepth = 8;

// Parses a request body. Refuses what is not JSON (naming the byte where it failed), nesting
// deeper than kMaxJsonDepth, and an object that names a field twice (which value was meant?).
Result<nlohmann::json> parse_request_json(std::string_view body);

// A public key as a URL path segment: base64url (as key_to_url writes it) or standard base64,
// padding optional; not all zero.
Result<wg::Key> key_from_url(std::string_view text);
// base64url without padding, so a key needs no percent-encoding in a URL.
std::string key_to_url(const wg::Key& key);

// A peer body: {"public_key", "preshared_key"?, "allowed_ips": [...], "endpoint"?: "ip:port",
// "persistent_keepalive"?: n, "user"?, "tags"?: [...], "disco_key"?}; null means absent for the
// optional fields. Unknown fields and wrong types are refused by name; values and the whole peer
// are checked by the peers file's own rules (parse_allowed_ip, validate_peer, ...). `url_key` is
// the key the URL names: the body's public_key, if given, must be the same; without a url_key the
// body must give one.
Result<PeerConfig> peer_from_json(const nlohmann::json& body, const wg::Key* url_key);
// The body peer_from_json reads back to the same settings. It holds the preshared key in the
// clear: for clients that send it, never for responses.
nlohmann::json peer_to_request_json(const PeerConfig& peer);

// A body that holds exactly one field, `field`, a boolean (or null when `nullable`), as
// {"approved": true}. Unknown fields and wrong types are refused by name.
Result<std::optional<bool>> flag_from_json(const nlohmann::json& body, std::string_view field,
                                           bool nullable);

// Responses: no preshared key ever appears in them.
nlohmann::json peer_view_json(const AdminView::Peer& peer);
// {"generation", "peers": [...]} sorted by key; only the peers of `source` when it is not empty.
nlohmann::json peers_json(const AdminView& view, std::string_view source = {});
nlohmann::json status_json(const AdminView& view);
// GET /v1/policy: {"source", "text", "rules", "classes", "generation"}.
nlohmann::json policy_json(const AdminView& view);

// {"error": message}, serialised so that bytes a client sent cannot break the JSON.
std::string error_body(std::string_view message);
// Serialises a response; invalid UTF-8 (which no field should hold) is replaced, not thrown.
std::string dump(const nlohmann::json& j);

}  // namespace exitgw::admin
