// Name extractors for DNS queries, TLS ClientHellos and HTTP/1.x requests (see name_extract.h).
#include "dataplane/domain/name_extract.h"

#include <cstring>

namespace exitgw::dp::domain {
namespace {

// Byte -> the byte a name holds for it (ASCII letters lowercased), or 0 when a name may not
// contain it. Printable ASCII only, so a logged name can never carry control bytes.
constexpr std::array<char, 256> make_name_chars() {
  std::array<char, 256> t{};
  for (int c = 0x21; c <= 0x7e; ++c) t[c] = char(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
  return t;
}
constexpr std::array<char, 256> kNameChars = make_name_chars();

constexpr size_t kMaxLabelLength = 63;

inline void terminate(char* out, size_t cap, size_t n, size_t* out_len) noexcept {
  if (n < cap) out[n] = '\0';
  *out_len = n;
}

// A host as written in SNI or HTTP: one trailing dot dropped, then 1..253 bytes of labels of
// 1..63 printable bytes, lowercased into out.
NameStatus write_host(const uint8_t* p, size_t n, char* out, size_t cap, size_t* out_len) noexcept {
  if (n > 0 && p[n - 1] == '.') --n;
  if (n == 0 || n > kMaxNameLength || n > cap) [[unlikely]]
    return NameStatus::kMalformed;
  size_t label = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = kNameChars[p[i]];
    if (c == 0) [[unlikely]]
      return NameStatus::kMalformed;
    if (c == '.') {
      if (label == 0) return NameStatus::kMalformed;
      label = 0;
    } else if (++label > kMaxLabelLength) [[unlikely]] {
      return NameStatus::kMalformed;
    }
    out[i] = c;
  }
  if (label == 0) return NameStatus::kMalformed;
  terminate(out, cap, n, out_len);
  return NameStatus::kFound;
}

inline uint16_t load_be16(const uint8_t* p) noexcept {
  return uint16_t(p[0] << 8 | p[1]);
}

// ---------------------------------------------------------------------------------------------
// DNS

constexpr size_t kDnsHeaderLength = 12;
constexpr size_t kMaxWireNameLength = 255;

}  // namespace

NameStatus dns_query_name(const uint8_t* p, size_t len, char* out, size_t cap,
                          size_t* out_len) noexcept {
  *out_len = 0;
  // Flags byte 2: QR (0x80) must be 0 (a query) and OPCODE (0x78) 0 (QUERY); NOTIFY and UPDATE
  // carry zones, not questions.
  if (len >= 3 && (p[2] & 0xf8) != 0) return NameStatus::kNotThisProtocol;
  if (len < kDnsHeaderLength) return NameStatus::kIncomplete;
  if (load_be16(p + 4) == 0) return NameStatus::kNoName;

  size_t pos = kDnsHeaderLength;
  size_t wire = 1;  // the terminating zero label
  size_t n = 0;
  for (;;) {
    if (pos >= len) return NameStatus::kIncomplete;
    const size_t label = p[pos];
    if (label == 0) break;
    // 11xxxxxx is a compression pointer, 01/10 the obsolete extended label types.
    if (label > kMaxLabelLength) return NameStatus::kMalformed;
    wire += label + 1;
    if (wire > kMaxWireNameLength) return NameStatus::kMalformed;
    if (label > len - pos - 1) return NameStatus::kIncomplete;
    const size_t need = n + (n != 0) + label;
    if (need > cap) return NameStatus::kMalformed;
    if (n != 0) out[n++] = '.';
    for (size_t i = 1; i <= label; ++i) {
      const char c = kNameChars[p[pos + i]];
      // A dot inside a label would make the dotted form ambiguous; such names resolve nowhere
      // a policy cares about, so they are refused rather than escaped.
      if (c == 0 || c == '.') [[unlikely]]
        return NameStatus::kMalformed;
      out[n++] = c;
    }
    pos += label + 1;
  }
  if (n == 0) return NameStatus::kNoName;  // the root
  terminate(out, cap, n, out_len);
  return NameStatus::kFound;
}

// ---------------------------------------------------------------------------------------------
// TLS

namespace {

constexpr uint8_t kTlsHandshake = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kTlsRecordHeader = 5;
constexpr size_t kMaxTlsRecord = 1u << 14;  // RFC 8446 5.1: TLSPlaintext.length <= 2^14
constexpr size_t kMaxRecords = 16;
constexpr size_t kMaxSessionId = 32;
constexpr uint16_t kServerNameExtension = 0;
constexpr uint8_t kHostNameType = 0;

// The handshake byte stream of one segment: the payloads of its consecutive handshake
// records, read as one sequence at logical offsets. A read past a length the message itself
// declared is kMalformed; a read past the bytes this segment holds is `tail_` (kIncomplete,
// or kMalformed when a non-handshake record cut the stream short).
class HandshakeStream {
 public:
  struct Fragment {
    const uint8_t* bytes;
    size_t size;
  };

  // Gathers the records; returns kFound when at least one byte of handshake is available.
  NameStatus gather(const uint8_t* p, size_t len) noexcept {
    size_t off = 0;
    while (n_ < kMaxRecords) {
      if (len - off < kTlsRecordHeader) {
        if (n_ == 0 && !plausible_record_prefix(p, len)) return NameStatus::kNotThisProtocol;
        break;  // the next record header lies beyond this segment
      }
      const uint8_t* h = p + off;
      if (h[0] != kTlsHandshake || h[1] != 3 || h[2] > 4) {
        if (n_ == 0) return NameStatus::kNotThisProtocol;
        tail_ = NameStatus::kMalformed;  // the handshake stops before its declared end
        break;
      }
      const size_t record = load_be16(h + 3);
      if (record == 0 || record > kMaxTlsRecord) return NameStatus::kMalformed;
      off += kTlsRecordHeader;
      const size_t take = record < len - off ? record : len - off;
      if (take != 0) frags_[n_++] = {p + off, take};
      avail_ += take;
      off += take;
      if (take < record) break;  // the record continues in a later segment
    }
    return avail_ == 0 ? NameStatus::kIncomplete : NameStatus::kFound;
  }

  size_t pos() const noexcept { return pos_; }

  // Whether [pos, pos + n) may be read under the declared `limit`.
  NameStatus need(size_t n, size_t limit) const noexcept {
    if (n > limit - pos_) return NameStatus::kMalformed;
    if (n > avail_ - pos_) return tail_;
    return NameStatus::kFound;
  }

  uint8_t u8() noexcept {
    const uint8_t v = frags_[fi_].bytes[fo_];
    advance(1);
    return v;
  }
  uint16_t u16() noexcept {
    const uint16_t hi = u8();
    return uint16_t(hi << 8 | u8());
  }
  uint32_t u24() noexcept {
    const uint32_t hi = u16();
    return hi << 8 | u8();
  }
  void skip(size_t n) noexcept { advance(n); }
  // Copies n bytes to dst (n already checked with need()).
  void copy(uint8_t* dst, size_t n) noexcept {
    while (n != 0) {
      const size_t run = frags_[fi_].size - fo_ < n ? frags_[fi_].size - fo_ : n;
      std::memcpy(dst, frags_[fi_].bytes + fo_, run);
      dst += run;
      n -= run;
      advance(run);
    }
  }
  // The next n bytes, when they lie in one fragment (the usual case), else nullptr.
  const uint8_t* contiguous(size_t n) const noexcept {
    return frags_[fi_].size - fo_ >= n ? frags_[fi_].bytes + fo_ : nullptr;
  }

 private:
  static bool plausible_record_prefix(const uint8_t* p, size_t len) noexcept {
    return (len < 1 || p[0] == kTlsHandshake) && (len < 2 || p[1] == 3) && (len < 3 || p[2] <= 4);
  }
  void advance(size_t n) noexcept {
    pos_ += n;
    while (n != 0 && fi_ < n_) {
      const size_t left = frags_[fi_].size - fo_;
      if (n < left) {
        fo_ += n;
        return;
      }
      n -= left;
      ++fi_;
      fo_ = 0;
    }
  }

  Fragment frags_[kMaxRecords];
  size_t n_ = 0, fi_ = 0, fo_ = 0;
  size_t pos_ = 0, avail_ = 0;
  NameStatus tail_ = NameStatus::kIncomplete;
};

#define EXITGW_NEED(n, limit)                                  \
  do {                                                         \
    const NameStatus need_status = s.need((n), (limit));       \
    if (need_status != NameStatus::kFound) return need_status; \
  } while (0)

NameStatus parse_server_name(HandshakeStream& s, size_t ext_end, char* out, size_t cap,
                             size_t* out_len) noexcept {
  EXITGW_NEED(2, ext_end);
  const size_t list = s.u16();
  if (list != ext_end - s.pos() || list < 3) return NameStatus::kMalformed;
  while (s.pos() < ext_end) {
    EXITGW_NEED(3, ext_end);
    const uint8_t type = s.u8();
    const size_t n = s.u16();
    EXITGW_NEED(n, ext_end);
    if (type != kHostNameType) {
      s.skip(n);
      continue;
    }
    if (n == 0 || n > kMaxNameLength + 1) return NameStatus::kMalformed;
    if (const uint8_t* direct = s.contiguous(n)) return write_host(direct, n, out, cap, out_len);
    uint8_t joined[kMaxNameLength + 1];
    s.copy(joined, n);
    return write_host(joined, n, out, cap, out_len);
  }
  return NameStatus::kNoName;
}

}  // namespace

NameStatus tls_client_hello_sni(const uint8_t* p, size_t len, char* out, size_t cap,
                                size_t* out_len) noexcept {
  *out_len = 0;
  HandshakeStream s;
  if (const NameStatus g = s.gather(p, len); g != NameStatus::kFound) return g;
  if (s.u8() != kClientHello) return NameStatus::kNotThisProtocol;
  constexpr size_t kUnbounded = ~size_t{0};
  EXITGW_NEED(3, kUnbounded);
  const size_t end = 4 + size_t{s.u24()};

  EXITGW_NEED(2 + 32 + 1, end);  // legacy_version, random, legacy_session_id length
  s.skip(2 + 32);
  const size_t session_id = s.u8();
  if (session_id > kMaxSessionId) return NameStatus::kMalformed;
  EXITGW_NEED(session_id + 2, end);
  s.skip(session_id);
  const size_t suites = s.u16();
  if (suites < 2 || suites % 2 != 0) return NameStatus::kMalformed;
  EXITGW_NEED(suites + 1, end);
  s.skip(suites);
  const size_t compressions = s.u8();
  if (compressions == 0) return NameStatus::kMalformed;
  EXITGW_NEED(compressions, end);
  s.skip(compressions);
  if (s.pos() == end) return NameStatus::kNoName;  // a pre-extension (SSL 3.0 style) hello

  EXITGW_NEED(2, end);
  const size_t extensions = s.u16();
  if (extensions != end - s.pos()) return NameStatus::kMalformed;
  while (s.pos() < end) {
    EXITGW_NEED(4, end);
    const uint16_t type = s.u16();
    const size_t n = s.u16();
    if (n > end - s.pos()) return NameStatus::kMalformed;
    if (type == kServerNameExtension) return parse_server_name(s, s.pos() + n, out, cap, out_len);
    EXITGW_NEED(n, end);
    s.skip(n);
  }
  return NameStatus::kNoName;
}

#undef EXITGW_NEED

// ---------------------------------------------------------------------------------------------
// HTTP

namespace {

constexpr size_t kMaxMethodLength = 24;

// RFC 9110 5.6.2 tchar.
constexpr std::array<bool, 256> make_token_chars() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[uint8_t(c)] = true;
  return t;
}
constexpr std::array<bool, 256> kTokenChars = make_token_chars();

inline uint8_t ascii_lower(uint8_t c) noexcept {
  return c >= 'A' && c <= 'Z' ? c | 0x20 : c;
}

// Whether p[0, n) starts with `prefix`, ignoring ASCII case.
bool starts_with_nocase(const uint8_t* p, size_t n, std::string_view prefix) noexcept {
  if (n < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (ascii_lower(p[i]) != uint8_t(prefix[i])) return false;
  return true;
}

// host[:port] or [v6]:port -> the host (brackets kept: it is what was asked for).
NameStatus write_authority_host(const uint8_t* p, size_t n, char* out, size_t cap,
                                size_t* out_len) noexcept {
  size_t end = n;
  if (n > 0 && p[0] == '[') {
    const void* close = std::memchr(p, ']', n);
    if (close == nullptr) return NameStatus::kMalformed;
    end = size_t(static_cast<const uint8_t*>(close) - p) + 1;
  } else if (const void* colon = std::memchr(p, ':', n)) {
    end = size_t(static_cast<const uint8_t*>(colon) - p);
  }
  return write_host(p, end, out, cap, out_len);
}

}  // namespace

NameStatus http_host(const uint8_t* p, size_t len, char* out, size_t cap,
                     size_t* out_len) noexcept {
  *out_len = 0;
  if (len == 0) return NameStatus::kIncomplete;
  // Methods are case-sensitive and every registered one is upper case: the cheap first test.
  if (p[0] < 'A' || p[0] > 'Z') return NameStatus::kNotThisProtocol;
  size_t i = 1;
  while (i < len && i <= kMaxMethodLength && kTokenChars[p[i]]) ++i;
  if (i > kMaxMethodLength) return NameStatus::kNotThisProtocol;
  if (i == len) return NameStatus::kIncomplete;
  if (p[i] != ' ') return NameStatus::kNotThisProtocol;
  const bool connect = i == 7 && std::memcmp(p, "CONNECT", 7) == 0;

  const size_t target = ++i;
  while (i < len && p[i] > 0x20 && p[i] < 0x7f) ++i;
  if (i == len) return NameStatus::kIncomplete;
  if (p[i] != ' ' || i == target) return NameStatus::kNotThisProtocol;
  const size_t target_end = i++;

  // "HTTP/" DIGIT "." DIGIT, then CRLF (a bare LF is tolerated, as servers do).
  constexpr std::string_view kVersion = "HTTP/d.d";
  for (size_t k = 0; k < kVersion.size(); ++k, ++i) {
    if (i == len) return NameStatus::kIncomplete;
    const bool ok = kVersion[k] == 'd' ? p[i] >= '0' && p[i] <= '9' : p[i] == uint8_t(kVersion[k]);
    if (!ok) return NameStatus::kNotThisProtocol;
  }
  if (i < len && p[i] == '\r') ++i;
  if (i == len) return NameStatus::kIncomplete;
  if (p[i] != '\n') return NameStatus::kNotThisProtocol;
  ++i;

  const uint8_t* t = p + target;
  const size_t tn = target_end - target;
  if (connect) return write_authority_host(t, tn, out, cap, out_len);
  size_t scheme = 0;
  if (starts_with_nocase(t, tn, "http://")) scheme = 7;
  if (starts_with_nocase(t, tn, "https://")) scheme = 8;
  if (scheme != 0) {
    size_t a = scheme, e = scheme;
    while (e < tn && t[e] != '/' && t[e] != '?' && t[e] != '#') ++e;
    for (size_t k = a; k < e; ++k)
      if (t[k] == '@') a = k + 1;  // userinfo@host
    return write_authority_host(t + a, e - a, out, cap, out_len);
  }

  // Header lines until the empty one; the first Host wins.
  for (;;) {
    const void* lf = std::memchr(p + i, '\n', len - i);
    if (lf == nullptr) return NameStatus::kIncomplete;
    const size_t line_end = size_t(static_cast<const uint8_t*>(lf) - p);
    size_t end = line_end;
    if (end > i && p[end - 1] == '\r') --end;
    if (end == i) return NameStatus::kNoName;
    if (end - i >= 5 && starts_with_nocase(p + i, end - i, "host:")) {
      size_t v = i + 5;
      while (v < end && (p[v] == ' ' || p[v] == '\t')) ++v;
      while (end > v && (p[end - 1] == ' ' || p[end - 1] == '\t')) --end;
      if (end == v) return NameStatus::kNoName;
      return write_authority_host(p + v, end - v, out, cap, out_len);
    }
    i = line_end + 1;
  }
}

}  // namespace exitgw::dp::domain
