// The domain-policy step a worker stage calls on a burst of inner packets (IPv4 or IPv6, by
// the version nibble; IPv6 through its extension-header chain): a pre-filter
// on protocol and destination port (DNS over UDP/53, TLS on TCP/443, HTTP on TCP/80), then
// name extraction and one Hyperscan scan per candidate. Packets that are not candidates cost
// a few loads and compares.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "dataplane/domain/domain_database.h"
#include "dataplane/domain/name_extract.h"

namespace exitgw::dp::domain {

enum class Protocol : uint8_t { kNone, kDns, kTls, kHttp, kCount };
inline constexpr std::array<std::string_view, size_t(Protocol::kCount)> kProtocolNames = {
    "none", "dns", "tls", "http"};

inline constexpr uint16_t kDnsPort = 53;
inline constexpr uint16_t kHttpPort = 80;
inline constexpr uint16_t kTlsPort = 443;

// One packet's outcome. protocol kNone: not inspected (another protocol or port, a non-first
// fragment, no payload, or not a well-formed IPv4 or IPv6 header chain); the other fields keep
// their defaults.
struct DomainResult {
  Action action = Action::kNone;
  Protocol protocol = Protocol::kNone;
  NameStatus status = NameStatus::kNotThisProtocol;
  uint8_t reserved = 0;
  uint16_t name_length = 0;  // bytes of the name (kFound only)
  uint16_t reserved2 = 0;
  uint32_t rule = kNoRule;  // the deciding rule when action is not kNone
};
static_assert(sizeof(DomainResult) == 12);

// Where a packet's name is written, for logging: lowercase, NUL-terminated.
struct DomainName {
  char text[kNameCapacity];
};

// The payload a packet would be inspected for, or protocol kNone. `ip` points at the IPv4 or
// IPv6 header of `len` contiguous bytes.
struct Candidate {
  Protocol protocol = Protocol::kNone;
  const uint8_t* payload = nullptr;
  uint32_t payload_length = 0;
};
Candidate prefilter(const uint8_t* ip, uint32_t len) noexcept;

// Inspects one payload of a known protocol.
DomainResult classify_payload(const DomainDatabase& db, DomainScratch& scratch, Protocol protocol,
                              const uint8_t* payload, size_t len, DomainName* name) noexcept;

// For each packet i (IP header at packets[i], lens[i] contiguous bytes): results[i], and
// the name in names[i] when results[i].status is kFound. `names` may be null when no names
// are wanted. The caller has prepared `scratch` for `db`.
void classify_burst(const DomainDatabase& db, DomainScratch& scratch, const uint8_t* const* packets,
                    const uint32_t* lens, uint16_t n, DomainResult* results,
                    DomainName* names) noexcept;

}  // namespace exitgw::dp::domain
