// Arbitrary bytes as an admin API request, twice: as raw HTTP through the strict request reader
// (fed in pieces, as a socket delivers it), and as a body through the bounded JSON parser and the
// peer and flag conversions. Nothing may crash; the reader stays within its limits, every refusal
// says why, and a request it accepts reads back the same from its canonical form (what httplib
// is given). A peer the JSON side accepts passes validate_peer and survives the round trip.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "control/admin/peer_json.h"
#include "control/http/request_parser.h"

namespace {

using exitgw::http::RequestParser;

// Feeds `bytes` in pieces cut where the input says; the body limit is 1 KiB.
RequestParser read_request(std::string_view bytes, size_t piece,
                           const exitgw::http::Limits& limits = {}) {
  RequestParser parser(limits);
  while (!bytes.empty()) {
    const size_t used = parser.feed(bytes.substr(0, piece));
    bytes.remove_prefix(used);
    if (parser.state() == RequestParser::State::kHeadDone) {
      parser.begin_body(1024);
      continue;
    }
    if (parser.state() != RequestParser::State::kHead &&
        parser.state() != RequestParser::State::kBody)
      break;
  }
  return parser;
}

void check_http(std::string_view bytes, size_t piece) {
  RequestParser parser = read_request(bytes, piece);
  if (parser.state() == RequestParser::State::kRefused) {
    if (parser.refused().message.empty() || parser.refused().status < 400) std::abort();
    return;
  }
  if (parser.state() != RequestParser::State::kDone) return;
  if (parser.body().size() > 1024) std::abort();
  // Read back whole, the canonical request is accepted as the same request (its one added
  // Content-Length line may take it just past the head limits).
  const std::string canonical = parser.canonical_request();
  exitgw::http::Limits roomier;
  roomier.max_head_bytes += 64;
  roomier.max_headers += 1;
  RequestParser again = read_request(canonical, canonical.size(), roomier);
  if (again.state() != RequestParser::State::kDone || again.body() != parser.body() ||
      again.head().method != parser.head().method || again.head().target != parser.head().target) {
    std::fprintf(stderr, "the canonical request reads differently\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using exitgw::admin::peer_from_json;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  check_http(body, size);
  check_http(body, 1 + (size == 0 ? 0 : data[0] % 7));
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
