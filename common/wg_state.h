// WireGuard state shared by control (which creates it) and workers (which use it): keypairs
// and the per-peer runtime block. Ownership rules are on each type.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "common/replay_window.h"
#include "common/wg_wire.h"

namespace exitgw {

// One session's transport keys. Control allocates it (cache-aligned, DPDK memory), fills the
// immutable part, then publishes it in the keypair table under local_index (and, once usable
// for sending, in PeerRuntime::send_keypair). Workers read the immutable part, take send
// counters with an atomic fetch_add and update the replay window. Control unpublishes it,
// waits an RCU grace period, zeroes the keys and frees it.
struct alignas(64) Keypair {
  uint8_t send_key[wg::kKeyLen];
  uint8_t recv_key[wg::kKeyLen];
  uint32_t local_index;   // our receiver index (what peers put in transport headers)
  uint32_t remote_index;  // theirs (what we put in ours)
  uint32_t peer_slot;
  uint8_t is_initiator;
  uint8_t pad_[3];
  uint64_t created_tsc;
  uint64_t reject_after_tsc;  // REJECT_AFTER_TIME after creation: unusable either way from then
  uint64_t rekey_after_tsc;   // REKEY_AFTER_TIME: the initiator asks for a new handshake
  // A responder's keypair is only used for sending once the initiator has used it (first
  // authenticated data). The first worker to see that reports it once.
  std::atomic<uint8_t> confirmed_reported{0};
  std::atomic<uint8_t> rekey_reported{0};

  alignas(64) std::atomic<uint64_t> send_counter{0};
  ReplayWindow replay;
};

// Per-peer state workers touch, in an array indexed by peer slot. Control owns the slot's
// lifetime (publishes keypairs, clears the slot on removal after a grace period); workers
// write the atomics below with relaxed stores.
struct alignas(64) PeerRuntime {
  std::atomic<Keypair*> send_keypair{nullptr};  // current sending keypair, or none
  // Endpoint: kEndpointValid | ip (network order) << 16 | port (network order) for IPv4; for
  // IPv6 see PeerEndpoint6. Roaming: workers store the source of the newest authenticated
  // packet. Read and write it with the functions below the struct.
  std::atomic<uint64_t> endpoint{0};
  std::atomic<uint64_t> last_rx_tsc{0};       // any authenticated packet, keepalives included
  std::atomic<uint64_t> last_data_rx_tsc{0};  // authenticated packet with payload
  std::atomic<uint64_t> last_tx_tsc{0};       // any packet sent to the peer
  std::atomic<uint64_t> last_data_tx_tsc{0};
  // Set by a worker that had to drop for lack of a keypair; control clears it when it starts
  // a handshake, so a flood of packets costs one event.
  std::atomic<uint8_t> handshake_wanted{0};
  std::atomic<uint8_t> active{0};  // slot in use; workers drop for peers that are not
  // The worker that owns this peer's NAT state, claimed by the first worker that forwards a
  // packet of it (VPP's wireguard does the same for a peer's input); others hand off to it.
  // kNoOwner until then; reset with the slot.
  std::atomic<uint8_t> nat_owner{kNoOwner};
  static constexpr uint8_t kNoOwner = 0xff;
};
static_assert(sizeof(PeerRuntime) == 64, "one cache line per peer: workers prefetch it whole");

// One peer's traffic as counted by one worker. Ownership: each worker writes only its own row
// of the PeerCounterTable, with a relaxed load and store (no locked add: it is the only
// writer); control reads every row with relaxed loads and sums them. Control zeroes a slot's
// entries when it frees the slot, after the RCU grace period that ends every worker's use.
struct PeerCounters {
  std::atomic<uint64_t> rx_packets{0}, rx_bytes{0};  // transport messages from the peer
  std::atomic<uint64_t> tx_packets{0}, tx_bytes{0};  // transport messages sent to the peer

  static void bump(std::atomic<uint64_t>& c, uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};
static_assert(sizeof(PeerCounters) == 32, "two peers per cache line");

struct PeerTotals {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0;
};

// Per-worker peer counters: row w, entry slot at counters[w * stride + slot]. Rows start on
// a cache line (stride is even), so no two workers ever write the same line.
struct PeerCounterTable {
  PeerCounters* counters = nullptr;
  uint32_t n_rows = 0;  // workers
  uint32_t stride = 0;  // entries per row: max_peers rounded up to even

  static constexpr uint32_t stride_for(uint32_t max_peers) noexcept {
    return (max_peers + 1) & ~1u;
  }
  static constexpr size_t bytes_for(uint32_t rows, uint32_t max_peers) noexcept {
    return size_t{rows} * stride_for(max_peers) * sizeof(PeerCounters);
  }
  // Over `memory` of bytes_for(rows, max_peers) bytes, 64-byte aligned; every entry zero.
  void init(void* memory, uint32_t rows, uint32_t max_peers) noexcept {
    counters = static_cast<PeerCounters*>(memory);
    n_rows = rows;
    stride = stride_for(max_peers);
    for (size_t i = 0; i < size_t{rows} * stride; ++i) new (&counters[i]) PeerCounters();
  }
  PeerCounters* row(unsigned worker) const noexcept { return counters + size_t{worker} * stride; }

  // Control: the sum over workers.
  PeerTotals sum(uint32_t slot) const noexcept {
    PeerTotals t;
    for (uint32_t w = 0; w < n_rows; ++w) {
      const PeerCounters& c = row(w)[slot];
      t.rx_packets += c.rx_packets.load(std::memory_order_relaxed);
      t.rx_bytes += c.rx_bytes.load(std::memory_order_relaxed);
      t.tx_packets += c.tx_packets.load(std::memory_order_relaxed);
      t.tx_bytes += c.tx_bytes.load(std::memory_order_relaxed);
    }
    return t;
  }
  // Control, once no worker counts for the slot any more (after an RCU grace period).
  void clear(uint32_t slot) noexcept {
    for (uint32_t w = 0; w < n_rows; ++w) {
      PeerCounters& c = row(w)[slot];
      c.rx_packets.store(0, std::memory_order_relaxed);
      c.rx_bytes.store(0, std::memory_order_relaxed);
      c.tx_packets.store(0, std::memory_order_relaxed);
      c.tx_bytes.store(0, std::memory_order_relaxed);
    }
  }
};

inline constexpr uint64_t kEndpointValid = 1ull << 63;
inline constexpr uint64_t kEndpointIpv6 = 1ull << 62;
inline constexpr uint64_t pack_endpoint(uint32_t ip_be, uint16_t port_be) {
  return kEndpointValid | (uint64_t{ip_be} << 16) | port_be;
}
inline constexpr bool endpoint_is_ipv6(uint64_t e) {
  return e & kEndpointIpv6;
}
inline constexpr uint32_t endpoint_ip(uint64_t e) {  // IPv4 endpoints only
  return static_cast<uint32_t>(e >> 16);
}
inline constexpr uint16_t endpoint_port(uint64_t e) {
  return static_cast<uint16_t>(e);
}

// A peer's IPv6 endpoint address, beside PeerRuntime (ctx.endpoints6, indexed by peer slot):
// 16 bytes and a port do not fit the 64-bit endpoint word. The word then holds
// kEndpointValid | kEndpointIpv6 | generation << 16 | port, and the address sits in slot
// (generation & 1). A writer fills the slot readers are not using, then publishes the word;
// a reader loads the word, copies its slot, and loads the word again: unchanged means the
// copy is whole (a writer two generations on would have changed the word). Writers of IPv6
// endpoints (workers roaming, control) take `writing` as a try-lock; one that loses skips,
// since the winner stores an endpoint just as new. Readers never wait.
struct alignas(64) PeerEndpoint6 {
  std::atomic<uint64_t> address[2][2] = {};  // two slots, each the address as two raw halves
  std::atomic<uint8_t> writing{0};
  uint32_t generation = 0;  // only under `writing`
};
static_assert(sizeof(PeerEndpoint6) == 64, "one cache line per peer");

// Stores an IPv6 endpoint (address and port in network order); false if another writer held
// the entry (see above).
inline bool store_endpoint6(PeerRuntime& peer, PeerEndpoint6& e6, const uint8_t* ip6,
                            uint16_t port_be) noexcept {
  if (e6.writing.load(std::memory_order_relaxed) ||
      e6.writing.exchange(1, std::memory_order_acquire))
    return false;
  // The seqlock writer's fence: the slot stores below stay after every earlier publication
  // in the C++ model too (x86 and ARMv8 order them already after the exchange).
  std::atomic_thread_fence(std::memory_order_release);
  const uint32_t g = e6.generation + 1;
  uint64_t half[2];
  std::memcpy(half, ip6, 16);
  e6.address[g & 1][0].store(half[0], std::memory_order_relaxed);
  e6.address[g & 1][1].store(half[1], std::memory_order_relaxed);
  e6.generation = g;
  peer.endpoint.store(kEndpointValid | kEndpointIpv6 | uint64_t{g} << 16 | port_be,
                      std::memory_order_release);
  e6.writing.store(0, std::memory_order_release);
  return true;
}

// The address of the IPv6 endpoint `*word` (loaded from peer.endpoint with acquire order).
// If a writer moved the endpoint meanwhile, *word becomes the newer value and the copy is
// taken again; false if it is no longer a valid IPv6 endpoint (the caller reads *word again).
inline bool load_endpoint6(const PeerRuntime& peer, const PeerEndpoint6& e6, uint64_t* word,
                           uint8_t* ip6) noexcept {
  uint64_t e = *word;
  while ((e & (kEndpointValid | kEndpointIpv6)) == (kEndpointValid | kEndpointIpv6)) {
    const unsigned s = static_cast<uint32_t>(e >> 16) & 1;
    const uint64_t half[2] = {e6.address[s][0].load(std::memory_order_relaxed),
                              e6.address[s][1].load(std::memory_order_relaxed)};
    std::atomic_thread_fence(std::memory_order_acquire);
    const uint64_t again = peer.endpoint.load(std::memory_order_relaxed);
    if (again == e) {
      std::memcpy(ip6, half, 16);
      *word = e;
      return true;
    }
    e = again;
    std::atomic_thread_fence(std::memory_order_acquire);
  }
  *word = e;
  return false;
}

// Whether the peer's endpoint is this IPv6 address and port (roaming: a write only on change).
inline bool endpoint6_is(const PeerRuntime& peer, const PeerEndpoint6& e6, const uint8_t* ip6,
                         uint16_t port_be) noexcept {
  uint64_t e = peer.endpoint.load(std::memory_order_acquire);
  if (!endpoint_is_ipv6(e) || endpoint_port(e) != port_be) return false;
  uint8_t cur[16];
  return load_endpoint6(peer, e6, &e, cur) && endpoint_port(e) == port_be &&
         std::memcmp(cur, ip6, 16) == 0;
}

}  // namespace exitgw
