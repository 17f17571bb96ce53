// A strict, bounded, incremental HTTP/1.1 request reader for the admin and metrics listeners:
// the head is checked completely before a byte of body is read, and anything ambiguous is
// refused with the status a careful server gives it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace exitgw::http {

// Why a request was refused, whichever layer refused it: the listener (reading and admitting the
// request) or the handler behind it. One counter per reason.
enum class Refusal : uint8_t {
  kMalformed,          // 400: the request is not strict HTTP/1.1 (framing, bytes, duplicates)
  kInvalid,            // 400 from a handler: well-formed, but its content breaks a rule
  kUnauthorized,       // 401
  kNotFound,           // 404
  kMethodNotAllowed,   // 405
  kTimeout,            // 408: head or body not complete in time (slow client)
  kConflict,           // 409
  kBodyTooLarge,       // 413
  kUriTooLong,         // 414
  kUnsupportedMedia,   // 415: a wrong Content-Type, or any Content-Encoding
  kExpectationFailed,  // 417: an Expect other than 100-continue
  kHeadersTooLarge,    // 431
  kInternal,           // 500
  kUnavailable,        // 503 from a handler (the control thread did not answer)
  kOverloaded,         // 503: too many requests waiting for a worker
  kEvicted,            // closed unanswered to make room for a new connection
  kOther,              // any other 4xx/5xx a handler chose
  kCount
};
inline constexpr std::array<std::string_view, static_cast<size_t>(Refusal::kCount)> kRefusalNames =
    {"malformed",
     "invalid",
     "unauthorized",
     "not_found",
     "method_not_allowed",
     "timeout",
     "conflict",
     "body_too_large",
     "uri_too_long",
     "unsupported_media_type",
     "expectation_failed",
     "headers_too_large",
     "internal",
     "unavailable",
     "overloaded",
     "evicted",
     "other"};

// The reason a handler's response status stands for (400 from a handler is kInvalid).
Refusal refusal_of_status(int status);

struct Limits {
  size_t max_head_bytes = 8 * 1024;  // request line and every header line with their CRLFs
  size_t max_target_bytes = 4096;    // the request target (path and query)
  size_t max_headers = 48;
};

// A refusal the reader (or the listener's admission check) answers with.
struct Refused {
  int status = 400;
  std::string message;  // for the client; never echoes raw bytes
  Refusal reason = Refusal::kMalformed;
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Allow, WWW-Authenticate
};

// A head that passed every check: one Host (HTTP/1.1), at most one of each framing header,
// header values free of control bytes, the body framed one way only.
struct RequestHead {
  std::string method;
  std::string target;  // origin-form: starts with '/', visible ASCII only
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> headers;  // as sent; values trimmed
  std::optional<uint64_t> content_length;
  bool chunked = false;
  bool expect_continue = false;

  // The first value of a header (names compare case-insensitively); null when absent.
  const std::string* find(std::string_view name) const;
  // The target without its query.
  std::string_view path() const;
};

// Feed it bytes as they arrive. It stops at the end of the head (state kHead done) until the
// owner has admitted the request and called begin_body(), so no body byte is ever read for a
// request that is refused on its head. Everything it holds is bounded by the limits.
class RequestParser {
 public:
  enum class State : uint8_t { kHead, kHeadDone, kBody, kDone, kRefused };

  explicit RequestParser(const Limits& limits = {}) : limits_(limits) {}

  // Consumes what it can of `bytes`; returns how many it took (less than given at kHeadDone,
  // kDone and kRefused, where it takes nothing more).
  size_t feed(std::string_view bytes);
  // After kHeadDone: read a body of at most `max_body_bytes` (413 at once when the head already
  // announces more). Goes to kBody, or straight to kDone when there is no body.
  void begin_body(size_t max_body_bytes);

  State state() const { return state_; }
  const RequestHead& head() const { return head_; }
  std::string& body() { return body_; }
  const Refused& refused() const { return refused_; }

  // The request as httplib's parser will read it unambiguously: the validated request line and
  // headers, minus framing and hop-by-hop headers, plus one Content-Length for the body read.
  std::string canonical_request() const;

 private:
  enum class Chunk : uint8_t { kSize, kData, kDataEnd, kTrailer };
  void refuse(int status, Refusal reason, std::string message);
  void take_head_line(std::string_view line);
  void finish_head();
  size_t feed_body(std::string_view bytes);
  // A line of the chunked framing, at most `max` bytes before its CRLF; nullopt: need more.
  std::optional<std::string> chunk_line(std::string_view bytes, size_t& used, size_t max);

  Limits limits_;
  State state_ = State::kHead;
  Refused refused_;
  RequestHead head_;
  std::string line_;  // the partial line being read (head or chunk framing)
  size_t head_bytes_ = 0;
  bool have_request_line_ = false;
  size_t max_body_ = 0;
  std::string body_;
  Chunk chunk_ = Chunk::kSize;
  uint64_t chunk_left_ = 0;
};

}  // namespace exitgw::http
