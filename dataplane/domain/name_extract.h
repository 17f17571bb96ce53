// Pulls the domain name a flow is about out of its first payload: the DNS query name, the TLS
// ClientHello server_name, or the HTTP/1.x Host. Pure functions for the worker's hot path.
//
// Every extractor reads at most `len` bytes, never allocates, and writes at most `cap` bytes
// to `out`: the name lowercased, without a trailing dot, NUL-terminated when there is room.
// Pass `cap >= kNameCapacity`; a name that does not fit is reported kMalformed (no valid
// name is longer than kMaxNameLength).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace exitgw::dp::domain {

// Longest dotted name (RFC 1035: 255 wire bytes) and a buffer that always holds one plus NUL.
inline constexpr size_t kMaxNameLength = 253;
inline constexpr size_t kNameCapacity = 256;

// X(enum name, metric label): how an extractor fared, declared once.
#define EXITGW_DOMAIN_NAME_STATUSES(X)                                                       \
  X(kFound, "found")                       /* a name was written to out */                   \
  X(kNoName, "no_name")                    /* the protocol, complete, but no name in it */   \
  X(kNotThisProtocol, "not_this_protocol") /* these bytes are not that protocol */           \
  X(kIncomplete, "incomplete")             /* consistent so far; the name lies beyond len */ \
  X(kMalformed, "malformed")               /* claims the protocol but breaks its rules */

enum class NameStatus : uint8_t {
#define EXITGW_X(name, label) name,
  EXITGW_DOMAIN_NAME_STATUSES(EXITGW_X)
#undef EXITGW_X
      kCount
};

inline constexpr std::array<std::string_view, size_t(NameStatus::kCount)> kNameStatusNames = {
#define EXITGW_X(name, label) label,
    EXITGW_DOMAIN_NAME_STATUSES(EXITGW_X)
#undef EXITGW_X
};

// The first question's QNAME of a DNS query (QR=0, OPCODE=QUERY). kNoName for QDCOUNT=0 or
// the root name. Compression pointers and extended label types are kMalformed: a query's
// first name has nothing earlier to point at.
NameStatus dns_query_name(const uint8_t* udp_payload, size_t len, char* out, size_t cap,
                          size_t* out_len) noexcept;

// The host_name of the server_name extension of a TLS ClientHello at the start of a TCP
// stream. Follows the handshake across TLS records in this segment (record fragmentation is a
// known SNI-filter evasion). kIncomplete when the segment ends before the name; kNoName when
// the ClientHello carries no SNI; kNotThisProtocol when this is not a TLS handshake record
// or not a ClientHello.
NameStatus tls_client_hello_sni(const uint8_t* tcp_payload, size_t len, char* out, size_t cap,
                                size_t* out_len) noexcept;

// The host an HTTP/1.x request is for: the authority of an absolute-form target or a CONNECT
// target (which RFC 9112 says overrides Host), else the first Host header. Port and one
// trailing dot stripped. kNoName when the headers end with no Host (HTTP/1.0).
NameStatus http_host(const uint8_t* tcp_payload, size_t len, char* out, size_t cap,
                     size_t* out_len) noexcept;

}  // namespace exitgw::dp::domain
