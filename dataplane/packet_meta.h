// Typed per-packet metadata kept in the mbuf private area (the pool reserves it).
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

namespace exitgw::dp {

enum class PuntReason : uint8_t {
  kNone,
  kHandshake,      // WireGuard message types 1, 2, 3: the control thread answers them
  kNeedNeighbor,   // a finished IPv4 packet whose next hop has no resolved MAC yet
  kNeedNeighbor6,  // the same for IPv6 (control solicits the next hop)
  kDisco,          // a Tailscale disco frame on the WireGuard port: control answers pings
  // A packet for a peer with no sending keypair yet, while no handshake is pending: the
  // responder's new keypair may be confirmed by an event control has not processed yet, so
  // control hands it back to be sealed once it has (or drops it as wg_no_keypair).
  kNeedKeypair,
};

// PacketMeta::flags
inline constexpr uint8_t kMetaLocal =
    1;  // originated here or hairpinned: no TTL decrement when sealed
inline constexpr uint8_t kMetaNatIn = 2;     // handed off: run NAT inbound here, then seal
inline constexpr uint8_t kMetaNatOut = 4;    // handed off: run NAT outbound here, then output
inline constexpr uint8_t kMetaFragHome = 8;  // an inbound fragment handed to its datagram's home
inline constexpr uint8_t kMetaSeal = 16;     // handed back by control: seal it for its peer

struct PacketMeta {
  uint32_t next_hop;  // IPv4, network order: whom to resolve for the L2 header
  uint8_t in_port;    // index into DataplaneContext::ports
  uint8_t out_port;   // index into DataplaneContext::ports
  PuntReason punt;
  uint8_t flags;
  uint32_t peer_slot;  // WireGuard peer, when known
  uint32_t flow;       // outbound flow accounting: protocol, TCP flags, IP length (note_source)
  void* keypair;       // WireGuard keypair the packet was decrypted with / will be sealed with
  // WireGuard nonce counter; outbound, once the replay window has it, the flow's pre-NAT
  // source address and port and its destination port (flow::note_source)
  uint64_t counter;
};
static_assert(sizeof(PacketMeta) == 32);
static_assert(sizeof(PacketMeta) % RTE_MBUF_PRIV_ALIGN == 0);

inline PacketMeta* meta(rte_mbuf* m) noexcept {
  return static_cast<PacketMeta*>(rte_mbuf_to_priv(m));
}

}  // namespace exitgw::dp
