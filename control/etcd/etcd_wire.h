// etcd v3 JSON gateway wire format: base64 of keys and values, int64 fields (sent as strings),
// and the parsers for /v3/kv/range replies and /v3/watch stream lines. Everything here is pure
// (no I/O) so the parsers can be fuzzed; nothing here throws on hostile input.
//
// The watch stream is one JSON object per line:
//   {"result":{"header":{"revision":"7",...},"created":true}}
//   {"result":{"header":{...},"events":[{"kv":{"key":"<b64>","value":"<b64>","mod_revision":"7"}},
//                                      {"type":"DELETE","kv":{"key":"<b64>","mod_revision":"8"}}]}}
//   {"result":{"header":{...},"canceled":true,"compact_revision":"3"}}
//   {"error":{"grpc_code":14,"message":"..."}}   (the gateway reports stream errors so)
// A PUT event carries no "type" (the enum's zero value is omitted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace exitgw::etcd {

// A line of the watch stream may hold thousands of events; one beyond this is refused.
inline constexpr size_t kMaxWatchLineBytes = 64 * 1024 * 1024;

std::string base64_encode(std::string_view bytes);
// Standard alphabet, padding optional; whitespace and anything else is refused.
std::optional<std::string> base64_decode(std::string_view text);

// The end of the range holding every key that starts with `prefix` ("\0" = every key).
std::string prefix_range_end(std::string_view prefix);

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct Event {
  enum class Type : uint8_t { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // for a delete: the key and mod_revision (the deletion's revision)
};

// One parsed line of the watch stream.
struct WatchResponse {
  bool error = false;    // {"error": ...}: the stream failed; `message` says why
  std::string message;   // the error text, or the cancel reason
  int64_t revision = 0;  // header.revision (absent on a compaction cancel)
  int64_t watch_id = 0;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // > 0: the requested start revision was compacted
  std::vector<Event> events;
  // No events, not created, not canceled: a progress notification (all up to `revision` sent).
  bool is_progress() const { return !error && !created && !canceled && events.empty(); }
};

// Parses one line (without its newline). Refuses what is not a JSON object of the shape above,
// keys or values that are not base64, and revisions that are not non-negative int64s.
Result<WatchResponse> parse_watch_response(std::string_view line);

// Splits the watch stream into lines and parses each. feed() may be given any split of the
// bytes; it calls `on_response` for each complete line in order and stops at the first error
// (a line that does not parse, or one longer than kMaxWatchLineBytes), which it returns.
class WatchLineParser {
 public:
  using OnResponse = std::function<bool(WatchResponse&&)>;  // false: stop reading
  explicit WatchLineParser(OnResponse on_response) : on_response_(std::move(on_response)) {}
  // false when on_response asked to stop; an Error when the stream is malformed.
  Result<bool> feed(std::string_view bytes);
  size_t buffered() const { return buffer_.size(); }

 private:
  OnResponse on_response_;
  std::string buffer_;
};

struct RangeResponse {
  int64_t revision = 0;  // header.revision: the store's revision the range was read at
  std::vector<KeyValue> kvs;
  bool more = false;  // a limit cut the range short
  int64_t count = 0;
};
Result<RangeResponse> parse_range_response(std::string_view body);

// A gateway error reply ({"error": "...", "code": n}) as "message (code n)", or the body cut
// short if it is not one.
std::string gateway_error_text(std::string_view body);

// Reads an int64 JSON field given as a string ("12") or a number; absent = 0.
Result<int64_t> json_int64(const nlohmann::json& object, std::string_view field);

}  // namespace exitgw::etcd
