// The strict request reader: RFC 9112 framing with no leniency where leniency is ambiguous.
#include "control/http/request_parser.h"

#include <algorithm>

namespace exitgw::http {

namespace {

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

// RFC 9110 tchar: the characters of a method or a header name.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// A field value byte: visible ASCII, space, tab or obs-text; never NUL, CR, LF or another
// control byte, which some parsers end a value at and others keep.
bool is_value_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7f);
}

// Headers that frame the body or carry one credential: a second copy makes the request mean
// two things, so it is refused rather than resolved either way.
constexpr std::array<std::string_view, 7> kSingletons = {
    "content-length", "transfer-encoding", "host",  "authorization",
    "content-type",   "content-encoding",  "expect"};

// Not passed on to the handlers: framing the reader has already done, hop-by-hop headers, and
// Range (responses here are never partial).
constexpr std::array<std::string_view, 9> kDropped = {
    "content-length", "transfer-encoding", "expect", "connection", "keep-alive", "te",
    "upgrade",        "trailer",           "range"};

template <size_t N>
bool one_of(std::string_view name, const std::array<std::string_view, N>& names) {
  return std::any_of(names.begin(), names.end(),
                     [name](std::string_view n) { return iequals(name, n); });
}

constexpr std::array<std::string_view, 7> kMethods = {"GET",    "HEAD",  "POST",   "PUT",
                                                      "DELETE", "PATCH", "OPTIONS"};

constexpr size_t kMaxChunkSizeDigits = 8;  // 4 GiB - 1: far past any body limit here

}  // namespace

Refusal refusal_of_status(int status) {
  switch (status) {
    case 400:
      return Refusal::kInvalid;
    case 401:
      return Refusal::kUnauthorized;
    case 404:
      return Refusal::kNotFound;
    case 405:
      return Refusal::kMethodNotAllowed;
    case 408:
      return Refusal::kTimeout;
    case 409:
      return Refusal::kConflict;
    case 413:
      return Refusal::kBodyTooLarge;
    case 414:
      return Refusal::kUriTooLong;
    case 415:
      return Refusal::kUnsupportedMedia;
    case 417:
      return Refusal::kExpectationFailed;
    case 431:
      return Refusal::kHeadersTooLarge;
    case 500:
      return Refusal::kInternal;
    case 503:
      return Refusal::kUnavailable;
    default:
      return Refusal::kOther;
  }
}

const std::string* RequestHead::find(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return &v;
  return nullptr;
}

std::string_view RequestHead::path() const {
  return std::string_view(target).substr(0, target.find('?'));
}

void RequestParser::refuse(int status, Refusal reason, std::string message) {
  state_ = State::kRefused;
  refused_ = Refused{status, std::move(message), reason, {}};
  line_.clear();
}

size_t RequestParser::feed(std::string_view bytes) {
  size_t used = 0;
  while (state_ == State::kHead && used < bytes.size()) {
    const size_t nl = bytes.find('\n', used);
    const size_t end = nl == std::string_view::npos ? bytes.size() : nl + 1;
    // Bounded before it is stored: a line may never take the head past its limit.
    if (head_bytes_ + line_.size() + (end - used) > limits_.max_head_bytes) {
      if (!have_request_line_)
        refuse(
            414, Refusal::kUriTooLong,
            "the request line is longer than " + std::to_string(limits_.max_head_bytes) + " bytes");
      else
        refuse(
            431, Refusal::kHeadersTooLarge,
            "the request head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
      return end;
    }
    line_.append(bytes.substr(used, end - used));
    used = end;
    if (nl == std::string_view::npos) break;
    head_bytes_ += line_.size();
    std::string line = std::move(line_);
    line_.clear();
    take_head_line(line);
  }
  if (state_ == State::kBody && used < bytes.size()) used += feed_body(bytes.substr(used));
  return used;
}

void RequestParser::take_head_line(std::string_view line) {
  if (line.size() < 2 || line[line.size() - 2] != '\r')
    return refuse(400, Refusal::kMalformed, "every line of the head must end with CRLF");
  line.remove_suffix(2);
  if (line.find('\r') != std::string_view::npos)
    return refuse(400, Refusal::kMalformed, "a bare CR inside the request head");
  if (!have_request_line_) {
    have_request_line_ = true;
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
      return refuse(400, Refusal::kMalformed,
                    "the request line must be 'METHOD /path HTTP/1.1', single spaces");
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) return refuse(400, Refusal::kMalformed, "the method is not a token");
    if (std::find(kMethods.begin(), kMethods.end(), method) == kMethods.end())
      return refuse(405, Refusal::kMethodNotAllowed,
                    "method " + std::string(method) + " is not served here");
    if (target.size() > limits_.max_target_bytes)
      return refuse(414, Refusal::kUriTooLong,
                    "the request target is longer than " +
                        std::to_string(limits_.max_target_bytes) + " bytes");
    if (target.empty() || target[0] != '/' ||
        !std::all_of(target.begin(), target.end(),
                     [](char c) { return c > 0x20 && c < 0x7f && c != '#'; }))
      return refuse(400, Refusal::kMalformed,
                    "the request target must be a path ('/...') of visible ASCII");
    if (version == "HTTP/1.1")
      head_.minor_version = 1;
    else if (version == "HTTP/1.0")
      head_.minor_version = 0;
    else
      return refuse(400, Refusal::kMalformed, "the protocol must be HTTP/1.1 or HTTP/1.0");
    head_.method = method;
    head_.target = target;
    return;
  }
  if (line.empty()) return finish_head();
  if (line[0] == ' ' || line[0] == '\t')
    return refuse(400, Refusal::kMalformed, "folded header lines (obs-fold) are not accepted");
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || !is_token(line.substr(0, colon)))
    return refuse(400, Refusal::kMalformed,
                  "a header line must be 'Name: value', the name a token right before the colon");
  const std::string_view name = line.substr(0, colon);
  std::string_view value = line.substr(colon + 1);
  if (!std::all_of(value.begin(), value.end(), is_value_byte))
    return refuse(400, Refusal::kMalformed,
                  "header " + std::string(name) + " holds a NUL or another control byte");
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (head_.headers.size() >= limits_.max_headers)
    return refuse(431, Refusal::kHeadersTooLarge,
                  "more than " + std::to_string(limits_.max_headers) + " header lines");
  if (one_of(name, kSingletons) && head_.find(name) != nullptr)
    return refuse(400, Refusal::kMalformed,
                  "header " + std::string(name) + " appears twice; send it once");
  head_.headers.emplace_back(name, value);
}

void RequestParser::finish_head() {
  if (head_.minor_version == 1 && head_.find("Host") == nullptr)
    return refuse(400, Refusal::kMalformed, "an HTTP/1.1 request needs a Host header");
  const std::string* te = head_.find("Transfer-Encoding");
  const std::string* cl = head_.find("Content-Length");
  if (te != nullptr) {
    if (head_.minor_version == 0)
      return refuse(400, Refusal::kMalformed, "Transfer-Encoding is not HTTP/1.0");
    if (!iequals(*te, "chunked"))
      return refuse(400, Refusal::kMalformed,
                    "Transfer-Encoding must be exactly 'chunked' (no other coding, no list)");
    if (cl != nullptr)
      return refuse(400, Refusal::kMalformed,
                    "Transfer-Encoding and Content-Length together: the body length is ambiguous");
    head_.chunked = true;
  }
  if (cl != nullptr) {
    if (cl->empty() || cl->size() > 18 ||
        !std::all_of(cl->begin(), cl->end(), [](char c) { return c >= '0' && c <= '9'; }))
      return refuse(400, Refusal::kMalformed, "Content-Length must be decimal digits only");
    uint64_t n = 0;
    for (char c : *cl) n = n * 10 + static_cast<uint64_t>(c - '0');
    head_.content_length = n;
  }
  if (const std::string* ce = head_.find("Content-Encoding");
      ce != nullptr && !iequals(*ce, "identity"))
    return refuse(415, Refusal::kUnsupportedMedia,
                  "Content-Encoding is not accepted: send the body uncompressed");
  if (const std::string* ex = head_.find("Expect")) {
    if (!iequals(*ex, "100-continue"))
      return refuse(417, Refusal::kExpectationFailed, "only 'Expect: 100-continue' is understood");
    head_.expect_continue = true;
  }
  state_ = State::kHeadDone;
}

void RequestParser::begin_body(size_t max_body_bytes) {
  if (state_ != State::kHeadDone) return;
  max_body_ = max_body_bytes;
  const auto too_large = [&] {
    refuse(413, Refusal::kBodyTooLarge,
           max_body_ == 0 ? std::string("this request takes no body")
                          : "the request body is too large (more than " +
                                std::to_string(max_body_) + " bytes)");
  };
  if (head_.chunked) {
    if (max_body_ == 0) return too_large();
    state_ = State::kBody;
    return;
  }
  const uint64_t length = head_.content_length.value_or(0);
  if (length > max_body_) return too_large();
  if (length == 0) {
    state_ = State::kDone;
    return;
  }
  body_.reserve(length);
  state_ = State::kBody;
}

std::optional<std::string> RequestParser::chunk_line(std::string_view bytes, size_t& used,
                                                     size_t max) {
  const size_t nl = bytes.find('\n', used);
  const size_t end = nl == std::string_view::npos ? bytes.size() : nl + 1;
  if (line_.size() + (end - used) > max + 2) {
    refuse(400, Refusal::kMalformed, "a chunk size line is malformed or too long");
    used = end;
    return std::nullopt;
  }
  line_.append(bytes.substr(used, end - used));
  used = end;
  if (nl == std::string_view::npos) return std::nullopt;
  std::string line = std::move(line_);
  line_.clear();
  if (line.size() < 2 || line[line.size() - 2] != '\r' || line.find('\r') != line.size() - 2) {
    refuse(400, Refusal::kMalformed, "the chunked framing must use CRLF line ends");
    return std::nullopt;
  }
  line.resize(line.size() - 2);
  return line;
}

size_t RequestParser::feed_body(std::string_view bytes) {
  size_t used = 0;
  if (!head_.chunked) {
    const size_t take = std::min<uint64_t>(bytes.size(), *head_.content_length - body_.size());
    body_.append(bytes.substr(0, take));
    if (body_.size() == *head_.content_length) state_ = State::kDone;
    return take;
  }
  while (state_ == State::kBody && used < bytes.size()) {
    switch (chunk_) {
      case Chunk::kSize: {
        auto line = chunk_line(bytes, used, kMaxChunkSizeDigits);
        if (!line) break;
        if (line->empty() || !std::all_of(line->begin(), line->end(), [](char c) {
              return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            })) {
          refuse(400, Refusal::kMalformed,
                 "a chunk size must be hexadecimal digits only (no extensions, no spaces)");
          break;
        }
        uint64_t size = 0;
        for (char c : *line)
          size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : lower(c) - 'a' + 10);
        if (body_.size() + size > max_body_) {
          refuse(
              413, Refusal::kBodyTooLarge,
              "the request body is too large (more than " + std::to_string(max_body_) + " bytes)");
          break;
        }
        chunk_left_ = size;
        chunk_ = size == 0 ? Chunk::kTrailer : Chunk::kData;
        break;
      }
      case Chunk::kData: {
        const size_t take = std::min<uint64_t>(bytes.size() - used, chunk_left_);
        body_.append(bytes.substr(used, take));
        used += take;
        chunk_left_ -= take;
        if (chunk_left_ == 0) chunk_ = Chunk::kDataEnd;
        break;
      }
      case Chunk::kDataEnd:
      case Chunk::kTrailer: {
        auto line = chunk_line(bytes, used, 0);
        if (!line) break;
        if (!line->empty()) {
          refuse(400, Refusal::kMalformed,
                 chunk_ == Chunk::kTrailer ? "trailer fields are not accepted"
                                           : "chunk data must be followed by CRLF");
          break;
        }
        if (chunk_ == Chunk::kTrailer)
          state_ = State::kDone;
        else
          chunk_ = Chunk::kSize;
        break;
      }
    }
  }
  return used;
}

std::string RequestParser::canonical_request() const {
  std::string out = head_.method + " " + head_.target +
                    (head_.minor_version == 1 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  for (const auto& [name, value] : head_.headers) {
    if (one_of(name, kDropped)) continue;
    out += name + ": " + value + "\r\n";
  }
  out += "Content-Length: " + std::to_string(body_.size()) + "\r\n\r\n";
  out += body_;
  return out;
}

}  // namespace exitgw::http
