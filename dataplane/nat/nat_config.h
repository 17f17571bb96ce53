// NAT configuration (plain struct, validated whole) and the arithmetic every worker shares:
// pool addresses, per-worker port slices, owner_worker(), paired-pool address choice, and the
// RFC 7422 deterministic formula. One struct for both families: a NAT66 worker's copy has
// family kIpv6 and reads pool6/deterministic_inside6; everything else is shared with NAT44.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/result.h"

namespace exitgw::dp::nat {

// An IPv4 prefix in host order; len 32 is one address.
struct Ipv4Prefix {
  uint32_t address = 0;
  uint8_t len = 32;
};

// An IPv6 address as it sits in the packet (network order), compared and hashed as two words.
struct Ipv6Address {
  // The 16 bytes memcpy'd: hi = bytes 0..7, lo = bytes 8..15. No initialisers: table records
  // hold it and must stay trivial.
  uint64_t hi, lo;
  static Ipv6Address from_bytes(const uint8_t* b) noexcept {
    Ipv6Address a;
    std::memcpy(&a.hi, b, 8);
    std::memcpy(&a.lo, b + 8, 8);
    return a;
  }
  static Ipv6Address from_array(const std::array<uint8_t, 16>& b) noexcept {
    return from_bytes(b.data());
  }
  void to_bytes(uint8_t* b) const noexcept {
    std::memcpy(b, &hi, 8);
    std::memcpy(b + 8, &lo, 8);
  }
  std::array<uint8_t, 16> bytes() const noexcept {
    std::array<uint8_t, 16> b;
    to_bytes(b.data());
    return b;
  }
  // The low 32 bits as a host-order number (pool and deterministic offsets live there).
  uint32_t low32() const noexcept;
  Ipv6Address plus(uint32_t n) const noexcept;  // this + n, carrying into the upper words
  bool operator==(const Ipv6Address&) const = default;
};

// An IPv6 prefix; len 128 is one address.
struct Ipv6Prefix {
  Ipv6Address address{};
  uint8_t len = 128;
};

// Which pool and inside prefix a worker built from the config uses.
enum class NatFamily : uint8_t { kIpv4, kIpv6 };

enum class NatMode : uint8_t { kPortBlock, kDeterministic };
enum class NatFiltering : uint8_t { kEndpointIndependent, kAddressDependent };

// Seconds. Defaults: RFC 4787 REQ-5 (UDP), RFC 5382 REQ-5 (TCP), RFC 5508 REQ-1 (ICMP query).
struct NatTimeouts {
  uint32_t udp = 300;
  uint32_t tcp_established = 7440;
  uint32_t tcp_transitory = 240;
  uint32_t icmp = 60;
};

inline constexpr unsigned kMaxBlocksPerSubscriber = 16;
inline constexpr unsigned kMaxWorkers = 64;

struct NatConfig {
  NatFamily family = NatFamily::kIpv4;
  std::vector<Ipv4Prefix> pool;   // NAT44 public addresses
  std::vector<Ipv6Prefix> pool6;  // NAT66 public addresses (/112../128 each, 65536 in all)
  uint16_t port_min = 1024, port_max = 65535;
  uint32_t n_workers = 1;
  NatMode mode = NatMode::kPortBlock;
  uint32_t block_size = 512;
  uint32_t max_blocks_per_subscriber = 4;
  uint32_t max_sessions_per_subscriber = 4096;
  NatFiltering filtering = NatFiltering::kAddressDependent;
  NatTimeouts timeouts;
  uint32_t max_sessions = 1 << 20;   // per worker; tables are sized from it
  uint32_t max_subscribers = 0;      // per worker; 0 = min(max_sessions, blocks in the slice)
  uint32_t fragment_entries = 1024;  // per worker, rounded up to a multiple of 4
  uint32_t fragment_timeout = 2;     // seconds a first fragment's translation is kept
  bool hairpinning = true;
  Ipv4Prefix deterministic_inside;            // kDeterministic: the subscriber prefix
  Ipv6Prefix deterministic_inside6;           // kDeterministic, NAT66: /104../128
  uint64_t ticks_per_second = 1'000'000'000;  // unit of the `now` the worker is given
  uint64_t hash_seed = 0x6e617434;

  Status validate() const;

  // ---- derived arithmetic (valid after validate()) ----
  uint32_t pool_size() const noexcept;          // of the family's pool
  uint32_t address(uint32_t i) const noexcept;  // i-th public address, in pool order
  // Index of `ip` in the pool, or kNone.
  uint32_t address_index(uint32_t ip) const noexcept;
  Ipv6Address address6(uint32_t i) const noexcept;  // NAT66: i-th public address of pool6
  uint32_t address_index6(const Ipv6Address& ip) const noexcept;
  // Ports of one worker's slice of every public address; the slices tile
  // [port_min, port_min + slice_size() * n_workers).
  uint32_t slice_size() const noexcept { return (uint32_t{port_max} - port_min + 1) / n_workers; }
  uint32_t slice_first(uint32_t worker) const noexcept { return port_min + worker * slice_size(); }
  // The worker that owns a public port (or ICMP identifier), or kNone outside every slice.
  uint32_t owner_worker(uint16_t port) const noexcept {
    if (port < port_min) return UINT32_MAX;
    const uint32_t w = (uint32_t{port} - port_min) / slice_size();
    return w < n_workers ? w : UINT32_MAX;
  }
  // Paired pooling: the one public address a subscriber ever uses (same on every worker).
  uint32_t paired_address_index(uint32_t subscriber) const noexcept;
  uint32_t paired_address_index6(const Ipv6Address& subscriber) const noexcept;

  // Deterministic mode (RFC 7422, VPP det44 arithmetic): subscriber i of the inside prefix
  // gets public address i / ratio and, in every worker's slice, the port range starting at
  // slice_first(w) + (i % ratio) * det_ports_per_subscriber().
  uint32_t det_subscribers() const noexcept;
  uint32_t det_ratio() const noexcept;                 // subscribers per public address
  uint32_t det_ports_per_subscriber() const noexcept;  // per worker slice
  struct DetRange {
    uint32_t public_address;
    uint16_t port_first, port_last;
  };
  // False if `subscriber` is outside the inside prefix.
  bool det_forward(uint32_t subscriber, uint32_t worker, DetRange* out) const noexcept;
  // NAT66: the same, with the public address as its pool6 index.
  bool det_forward6(const Ipv6Address& subscriber, uint32_t worker, DetRange* out) const noexcept;
  // Subscriber index i's public address index and first port in `worker`'s slice.
  void det_slot(uint32_t i, uint32_t worker, uint32_t* address_index,
                uint16_t* port_first) const noexcept;
  // The subscriber owning (public address, port), or false if none.
  bool det_reverse(uint32_t public_address, uint16_t port, uint32_t* subscriber) const noexcept;

  // Blocks of one address in one worker's slice (det: the ratio).
  uint32_t blocks_per_slice() const noexcept;
  uint32_t effective_block_size() const noexcept;
  uint32_t effective_max_subscribers() const noexcept;
};

}  // namespace exitgw::dp::nat
