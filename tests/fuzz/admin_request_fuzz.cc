// Arbitrary bytes as an admin API request body: the bounded JSON parser and the peer and flag
// conversions must never crash; a peer they accept passes validate_peer and survives the round
// trip through its request JSON unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "control/admin/peer_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using exitgw::admin::peer_from_json;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  // Error responses may quote what a client sent: serialising any bytes must not throw.
  (void)exitgw::admin::error_body(body);
  auto parsed = exitgw::admin::parse_request_json(body);
  if (!parsed.ok()) {
    if (parsed.error().empty()) std::abort();  // every refusal says why
    return 0;
  }
  (void)exitgw::admin::flag_from_json(*parsed, "approved", true);
  (void)exitgw::admin::flag_from_json(*parsed, "on", false);

  auto peer = peer_from_json(*parsed, nullptr);
  if (!peer.ok()) {
    if (peer.error().empty()) std::abort();
    (void)exitgw::admin::error_body(peer.error());
    return 0;
  }
  if (!exitgw::validate_peer(*peer).ok()) {
    std::fprintf(stderr, "accepted an invalid peer: %s\n", parsed->dump().c_str());
    std::abort();
  }
  const auto again = peer_from_json(exitgw::admin::peer_to_request_json(*peer), nullptr);
  if (!again.ok() || !exitgw::same_settings(*peer, *again)) {
    std::fprintf(stderr, "round trip changed the peer: %s\n", parsed->dump().c_str());
    std::abort();
  }
  // A key in the URL: the key from the body, and the body as a key.
  const exitgw::wg::Key url_key = peer->public_key;
  (void)peer_from_json(*parsed, &url_key);
  (void)exitgw::admin::key_from_url(body.substr(0, 64));
  return 0;
}
