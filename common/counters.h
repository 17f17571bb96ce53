// Per-lcore counters: each worker writes only its own block; control reads them for metrics.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/drop_reason.h"

namespace exitgw::dp {

// Tunnel and internet (equal when they share a port), and the exception port when there is one.
inline constexpr unsigned kMaxPorts = 3;

// A counter written by exactly one lcore and read by others. Relaxed load+store compiles to a
// plain add (no locked instruction) yet keeps the cross-thread read well defined.
class Counter {
 public:
  void add(uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};
static_assert(sizeof(Counter) == 8);

struct PortCounters {
  Counter rx_packets, rx_bytes, tx_packets, tx_bytes;
};

// Owned by one lcore (the index into DataplaneContext::lcores); read by control.
struct alignas(64) LcoreCounters {
  PortCounters port[kMaxPorts];
  Counter drops[kMaxPorts][static_cast<size_t>(DropReason::kCount)];  // by input port
  Counter busy_cycles, idle_cycles, loops;
  Counter punted, events, events_lost;
  Counter arp_replies_sent, arp_learned, icmp_echo_replies;
  Counter nd_advertisements_sent, nd_learned, icmp6_echo_replies;
  // ICMP errors (time exceeded, fragmentation needed) the rate limit held back; the packet that
  // caused each is dropped under its own reason.
  Counter icmp_errors_rate_limited;
  Counter wg_keepalives_received, wg_rekey_events, wg_handshake_events;
  // WireGuard transport
  Counter wg_rx_packets, wg_rx_bytes, wg_tx_packets, wg_tx_bytes;
  Counter forwarded_out, forwarded_in;
  Counter domain_blocked, domain_logged, domain_scan_errors;
  // The exception path (dataplane/exception.cc): inner packets for the gateway's own tailnet
  // addresses handed to the host, the host's packets sealed back, TSMP messages consumed.
  Counter exception_to_host, exception_from_host, tsmp_consumed;
  // Peers' WireGuard and disco packets the connector relays from DERP, and what is sent back.
  Counter relay_from_peers, relay_to_peers;

  void drop(uint8_t port, DropReason r, uint64_t n = 1) noexcept {
    drops[port][static_cast<size_t>(r)].add(n);
  }
};

}  // namespace exitgw::dp
