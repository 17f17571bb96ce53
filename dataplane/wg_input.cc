// WireGuard receive on a worker: receiver index -> keypair (one bulk hash lookup), the
// replay pre-check, ONE batched ChaCha20-Poly1305 decrypt for the burst, the replay update
// (only after the tag verified), roaming, keepalives, inner IPv4 and IPv6 checks and cryptokey
// routing (one bulk LPM lookup per family); what passes goes on with its inner header in front,
// sorted by family. The kernel's receive.c order.
#include <cstring>

#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_udp.h>

#include "dataplane/checksum.h"
#include "dataplane/ipv6_walk.h"
#include "dataplane/peer_tally.h"
#include "dataplane/stages.h"
#include "dataplane/wg/aead_burst.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

// Ethernet, IP and UDP in front of the WireGuard message: over IPv6 local delivery has cut any
// extension headers out (ipv6_local), so the length depends on the family alone.
constexpr uint16_t kOuterLen = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
constexpr uint16_t kOuterLen6 = sizeof(rte_ether_hdr) + sizeof(rte_ipv6_hdr) + sizeof(rte_udp_hdr);

inline uint16_t outer_len(const rte_mbuf* m) noexcept {
  const uint8_t version = rte_pktmbuf_mtod_offset(m, const uint8_t*, sizeof(rte_ether_hdr))[0] >> 4;
  return version == 6 ? kOuterLen6 : kOuterLen;
}

// Roaming: the endpoint follows the newest authenticated packet (a store only on change).
inline void roam(const DataplaneContext& ctx, PeerRuntime& peer, uint32_t slot, const rte_mbuf* m,
                 uint16_t outer) noexcept {
  const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, outer - sizeof(rte_udp_hdr));
  if (outer == kOuterLen) [[likely]] {
    const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, sizeof(rte_ether_hdr));
    const uint64_t ep = pack_endpoint(ip->src_addr, udp->src_port);
    if (peer.endpoint.load(std::memory_order_relaxed) != ep)
      peer.endpoint.store(ep, std::memory_order_relaxed);
    return;
  }
  const auto* ip6 = rte_pktmbuf_mtod_offset(m, const rte_ipv6_hdr*, sizeof(rte_ether_hdr));
  PeerEndpoint6& e6 = ctx.endpoints6[slot];
  if (!endpoint6_is(peer, e6, ip6->src_addr, udp->src_port))
    store_endpoint6(peer, e6, ip6->src_addr, udp->src_port);
}

struct Rx {
  rte_mbuf* m;
  Keypair* kp;
  uint64_t counter;
  uint32_t payload_len;  // WireGuard message length
  uint16_t outer;        // Ethernet, IP and UDP header bytes in front of it
};

// An inner IPv4 packet: version, no options, lengths, header checksum.
DropReason check_inner4(const rte_ipv4_hdr* ip, uint32_t plain_len) noexcept {
  if (plain_len < sizeof(rte_ipv4_hdr) || (ip->version_ihl & 0xf) != 5)
    return DropReason::kWgInnerMalformed;
  const unsigned total = rte_be_to_cpu_16(ip->total_length);
  if (total < sizeof(rte_ipv4_hdr) || total > plain_len) return DropReason::kWgInnerMalformed;
  if (rte_raw_cksum(ip, sizeof(rte_ipv4_hdr)) != 0xffff) return DropReason::kWgInnerBadChecksum;
  return DropReason::kCount;
}

// An inner IPv6 packet: lengths (no jumbograms), then the bounded extension-header walk, each
// failure under the walk's own reason.
DropReason check_inner6(const rte_ipv6_hdr* ip, uint32_t plain_len) noexcept {
  if (plain_len < sizeof(rte_ipv6_hdr)) return DropReason::kWgInnerMalformed;
  const uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
  if (payload == 0 || sizeof(rte_ipv6_hdr) + payload > plain_len)
    return DropReason::kWgInnerMalformed;
  Ipv6Layers l;
  return ipv6_walk(ip, payload, l);
}

}  // namespace

void wg_input(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<WgExit>& x) noexcept {
  if (n == 0) return;
  DataplaneContext& ctx = w.ctx();
  const uint64_t now = rte_rdtsc();

  // 1. Gather receiver indices.
  uint32_t index[kBurst];
  uint64_t counters[kBurst];
  const void* keys[kBurst];
  void* found[kBurst];
  uint16_t outer[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    outer[i] = outer_len(pkts[i]);
    const auto* hdr = rte_pktmbuf_mtod_offset(pkts[i], const wg::MessageTransportHeader*, outer[i]);
    index[i] = hdr->receiver_index;  // little-endian on the wire and here
    counters[i] = hdr->counter;
    keys[i] = &index[i];
  }
  uint64_t hits = 0;
  rte_hash_lookup_bulk_data(ctx.keypairs, keys, n, &hits, found);

  // What the checks below read of each keypair, for the whole burst before the first check:
  // its expiry line and the two replay-window lines of the packet's counter.
  for (uint16_t i = 0; i < n; ++i) {
    if (!((hits >> i) & 1)) continue;
    const auto* kp = static_cast<const Keypair*>(found[i]);
    rte_prefetch0(&kp->reject_after_tsc);
    kp->replay.prefetch(counters[i]);
  }

  // 2. Keypair, age and replay pre-checks; build the AEAD burst.
  PeerCounters* const counter_row = ctx.peer_counters.row(w.index());
  Rx rx[kBurst];
  AeadOp ops[kBurst];
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const auto* udp =
        rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, outer[i] - sizeof(rte_udp_hdr));
    const uint32_t len = rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr);
    if (len < wg::kTransportOverhead) [[unlikely]] {
      w.drop(m, DropReason::kWgMalformed);
      continue;
    }
    if (!((hits >> i) & 1)) [[unlikely]] {
      w.drop(m, DropReason::kWgUnknownIndex);
      continue;
    }
    auto* kp = static_cast<Keypair*>(found[i]);
    if (now >= kp->reject_after_tsc) [[unlikely]] {
      w.drop(m, DropReason::kWgKeypairExpired);
      continue;
    }
    auto* hdr = rte_pktmbuf_mtod_offset(m, wg::MessageTransportHeader*, outer[i]);
    const uint64_t counter = counters[i];
    if (!kp->replay.check(counter)) [[unlikely]] {
      w.drop(m, DropReason::kWgReplay);
      continue;
    }
    // The key for the AEAD, and the peer's runtime lines that step 4 writes.
    rte_prefetch0(kp->recv_key);
    rte_prefetch0_write(&ctx.peers[kp->peer_slot]);
    rte_prefetch0_write(&counter_row[kp->peer_slot]);
    auto* body = reinterpret_cast<uint8_t*>(hdr + 1);
    const uint32_t plain = len - wg::kTransportOverhead;
    rx[k] = Rx{m, kp, counter, len, outer[i]};
    ops[k] = AeadOp{kp->recv_key, counter, body, plain, body + plain};
    ++k;
  }

  // 3. One submission for the whole burst.
  bool ok[kBurst];
  w.aead().decrypt_burst(ops, k, ok);

  // 4. Replay window, roaming, keepalives, inner checks.
  rte_mbuf* fwd[kBurst];
  uint32_t src[kBurst], hop[kBurst], slot[kBurst];
  uint16_t f = 0;
  rte_mbuf* fwd6[kBurst];
  uint8_t src6[kBurst][RTE_LPM6_IPV6_ADDR_SIZE];
  int32_t hop6[kBurst];
  uint32_t slot6[kBurst];
  uint16_t f6 = 0;
  PeerTally tally(counter_row, PeerTally::kRx);
  // Worker counters summed in registers and stored once per burst (a Counter add is a load
  // and a store the compiler may not merge across packets).
  uint64_t rx_packets = 0, rx_bytes = 0, keepalives = 0;
  for (uint16_t j = 0; j < k; ++j) {
    rte_mbuf* m = rx[j].m;
    Keypair* kp = rx[j].kp;
    if (!ok[j]) [[unlikely]] {
      w.drop(m, DropReason::kWgDecryptFailed);
      continue;
    }
    if (!kp->replay.update(rx[j].counter)) [[unlikely]] {
      w.drop(m, DropReason::kWgReplay);
      continue;
    }
    PeerRuntime& peer = ctx.peers[kp->peer_slot];
    if (!peer.active.load(std::memory_order_relaxed)) [[unlikely]] {
      w.drop(m, DropReason::kWgUnknownIndex);
      continue;
    }
    roam(ctx, peer, kp->peer_slot, m, rx[j].outer);
    peer.last_rx_tsc.store(now, std::memory_order_relaxed);
    if (!kp->is_initiator && !kp->confirmed_reported.load(std::memory_order_relaxed) &&
        !kp->confirmed_reported.exchange(1)) {
      Event e{};
      e.type = EventType::kKeypairConfirmed;
      e.value = kp->local_index;
      w.event(e);
    }
    const uint32_t plain = rx[j].payload_len - wg::kTransportOverhead;
    ++rx_packets;
    rx_bytes += rx[j].payload_len;
    tally.add(kp->peer_slot, rx[j].payload_len);
    if (plain == 0) {
      ++keepalives;
      w.consume(m);
      continue;
    }
    peer.last_data_rx_tsc.store(now, std::memory_order_relaxed);
    rte_pktmbuf_adj(m, rx[j].outer + sizeof(wg::MessageTransportHeader));
    rte_pktmbuf_trim(m, wg::kTagLen);
    const uint8_t version = *rte_pktmbuf_mtod(m, const uint8_t*) >> 4;
    if (version == 4) [[likely]] {
      const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
      const DropReason bad = check_inner4(ip, plain);
      if (bad != DropReason::kCount) [[unlikely]] {
        w.drop(m, bad);
        continue;
      }
      const unsigned total = rte_be_to_cpu_16(ip->total_length);
      if (total < plain) rte_pktmbuf_trim(m, static_cast<uint16_t>(plain - total));  // padding
      src[f] = rte_be_to_cpu_32(ip->src_addr);
      slot[f] = kp->peer_slot;
      fwd[f++] = m;
    } else if (version == 6) {
      const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*);
      const DropReason bad = check_inner6(ip, plain);
      if (bad != DropReason::kCount) [[unlikely]] {
        w.drop(m, bad);
        continue;
      }
      const uint32_t total = sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip->payload_len);
      if (total < plain) rte_pktmbuf_trim(m, static_cast<uint16_t>(plain - total));
      std::memcpy(src6[f6], ip->src_addr, RTE_LPM6_IPV6_ADDR_SIZE);
      slot6[f6] = kp->peer_slot;
      fwd6[f6++] = m;
    } else [[unlikely]] {
      w.drop(m, DropReason::kWgInnerMalformed);
    }
  }
  w.counters().wg_rx_packets.add(rx_packets);
  w.counters().wg_rx_bytes.add(rx_bytes);
  if (keepalives) w.counters().wg_keepalives_received.add(keepalives);

  // 5. Cryptokey routing: the inner source must be one of this peer's allowed IPs.
  if (f != 0) {
    rte_lpm_lookup_bulk(ctx.allowed_ips, src, hop, f);
    for (uint16_t j = 0; j < f; ++j) {
      rte_mbuf* m = fwd[j];
      if (!(hop[j] & RTE_LPM_LOOKUP_SUCCESS) || (hop[j] & 0xffffff) != slot[j]) [[unlikely]] {
        w.drop(m, DropReason::kWgBadSource);
        continue;
      }
      meta(m)->peer_slot = slot[j];
      x.to(WgExit::kIpv4, m);
    }
  }
  if (f6 == 0) return;
  // Read once: control may publish a new table meanwhile, the one read stays valid until this
  // worker's next quiescent report.
  const rte_lpm6* lpm6 = ctx.allowed_ips6.load(std::memory_order_acquire);
  if (lpm6 != nullptr) {
    rte_lpm6_lookup_bulk_func(lpm6, src6, hop6, f6);
  } else {
    for (uint16_t j = 0; j < f6; ++j) hop6[j] = -1;
  }
  for (uint16_t j = 0; j < f6; ++j) {
    rte_mbuf* m = fwd6[j];
    if (hop6[j] < 0 || static_cast<uint32_t>(hop6[j]) != slot6[j]) [[unlikely]] {
      w.drop(m, DropReason::kWgBadSource);
      continue;
    }
    meta(m)->peer_slot = slot6[j];
    x.to(WgExit::kIpv6, m);
  }
}

}  // namespace exitgw::dp
