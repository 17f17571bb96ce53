// WireGuard send on a worker: packets for a peer's allowed IPs are found by one bulk LPM
// lookup per family, given a counter from the peer's current keypair, padded to 16 bytes, sealed in
// ONE batched ChaCha20-Poly1305 submission and wrapped in UDP/IPv4 or UDP/IPv6 to the peer's
// newest endpoint.
#include <cstring>

#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_udp.h>

#include "common/ipv4_header.h"
#include "dataplane/checksum.h"
#include "dataplane/peer_tally.h"
#include "dataplane/stages.h"
#include "dataplane/wg/aead_burst.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

constexpr uint16_t kEncapLen =
    sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + sizeof(wg::MessageTransportHeader);
constexpr uint16_t kEncapLen6 =
    sizeof(rte_ipv6_hdr) + sizeof(rte_udp_hdr) + sizeof(wg::MessageTransportHeader);
constexpr uint8_t kOuterHopLimit = 64;

constexpr uint8_t kNoGroup = 0xff;

// Each packet's peer by its inner destination, in rte_lpm's encoding (RTE_LPM_LOOKUP_SUCCESS |
// slot) whatever the family: one bulk lookup for the IPv4 packets, one for the IPv6 ones.
void peers_by_destination(const DataplaneContext& ctx, rte_mbuf** pkts, uint16_t n,
                          uint32_t* hop) noexcept {
  uint32_t dst[kBurst];
  uint8_t dst6[kBurst][RTE_LPM6_IPV6_ADDR_SIZE];
  int32_t hop6[kBurst];
  uint8_t at6[kBurst];
  uint16_t n4 = 0, n6 = 0;
  uint8_t at4[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    const uint8_t* l3 = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
    if ((l3[0] >> 4) == 6) [[unlikely]] {
      std::memcpy(dst6[n6], reinterpret_cast<const rte_ipv6_hdr*>(l3)->dst_addr, 16);
      at6[n6++] = static_cast<uint8_t>(i);
    } else {
      dst[n4] = rte_be_to_cpu_32(reinterpret_cast<const rte_ipv4_hdr*>(l3)->dst_addr);
      at4[n4++] = static_cast<uint8_t>(i);
    }
  }
  if (n6 == 0) {  // the common case: the results land in place
    rte_lpm_lookup_bulk(ctx.allowed_ips, dst, hop, n);
    return;
  }
  uint32_t hop4[kBurst];
  if (n4) rte_lpm_lookup_bulk(ctx.allowed_ips, dst, hop4, n4);
  for (uint16_t j = 0; j < n4; ++j) hop[at4[j]] = hop4[j];
  const rte_lpm6* lpm6 = ctx.allowed_ips6.load(std::memory_order_acquire);
  if (lpm6 != nullptr) rte_lpm6_lookup_bulk_func(lpm6, dst6, hop6, n6);
  for (uint16_t j = 0; j < n6; ++j)
    hop[at6[j]] = lpm6 != nullptr && hop6[j] >= 0
                      ? RTE_LPM_LOOKUP_SUCCESS | static_cast<uint32_t>(hop6[j])
                      : 0;
}

// Inner length and the hop on this router: TTL or hop limit down by one (not for packets the
// gateway made or hairpinned).
uint32_t inner_length_and_hop(rte_mbuf* m) noexcept {
  uint8_t* l3 = rte_pktmbuf_mtod(m, uint8_t*);
  const bool hop = !(meta(m)->flags & kMetaLocal);
  if ((l3[0] >> 4) == 6) [[unlikely]] {
    auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(l3);
    if (hop) --ip6->hop_limits;
    return sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip6->payload_len);
  }
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(l3);
  if (hop) ipv4_decrement_ttl(ip);
  return rte_be_to_cpu_16(ip->total_length);
}

void want_handshake(Worker& w, PeerRuntime& peer, uint32_t slot) noexcept {
  if (peer.handshake_wanted.load(std::memory_order_relaxed) || peer.handshake_wanted.exchange(1))
    return;
  Event e{};
  e.type = EventType::kHandshakeWanted;
  e.value = slot;
  w.counters().wg_handshake_events.add();
  w.event(e);
}

}  // namespace

void wg_seal(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<SealExit>& x) noexcept {
  if (n == 0) return;
  DataplaneContext& ctx = w.ctx();
  const uint64_t now = rte_rdtsc();
  uint32_t hop[kBurst];
  peers_by_destination(ctx, pkts, n, hop);

  // Staged loads: every peer's runtime lines, then every sending keypair's lines (expiry and
  // remote index, the counter, the key), so the burst's misses overlap.
  PeerCounters* const counter_row = ctx.peer_counters.row(w.index());
  const PortInfo& tunnel = ctx.port(PortRole::kTunnel);
  const bool tunnel_has_ipv6 = tunnel.ipv6();
  for (uint16_t i = 0; i < n; ++i) {
    // The headroom line the outer headers go into (the NIC never wrote it: cold).
    rte_prefetch0_write(rte_pktmbuf_mtod(pkts[i], uint8_t*) - kEncapLen);
    if (!(hop[i] & RTE_LPM_LOOKUP_SUCCESS)) continue;
    rte_prefetch0_write(&ctx.peers[hop[i] & 0xffffff]);
    rte_prefetch0_write(&counter_row[hop[i] & 0xffffff]);  // the tally's line
  }
  Keypair* kps[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    kps[i] = nullptr;
    if (!(hop[i] & RTE_LPM_LOOKUP_SUCCESS)) continue;
    Keypair* kp = ctx.peers[hop[i] & 0xffffff].send_keypair.load(std::memory_order_acquire);
    if (kp == nullptr) continue;
    rte_prefetch0(&kp->reject_after_tsc);
    rte_prefetch0_write(&kp->send_counter);
    rte_prefetch0(kp->send_key);
    kps[i] = kp;
  }

  // Which packets take a counter, and from which keypair. Counters are reserved with one
  // fetch_add per keypair per burst (not per packet): each group gets a block of distinct
  // values no other packet or worker receives, handed out in packet order.
  uint64_t endpoint_of[kBurst];
  uint8_t address6_of[kBurst][16];  // IPv6 endpoints' addresses (the word holds the rest)
  uint8_t group[kBurst];
  Keypair* group_kp[kBurst];
  uint32_t group_size[kBurst];
  uint16_t n_groups = 0;
  for (uint16_t i = 0; i < n; ++i) {
    group[i] = kNoGroup;
    rte_mbuf* m = pkts[i];
    if (!(hop[i] & RTE_LPM_LOOKUP_SUCCESS)) [[unlikely]] {
      w.drop(m, DropReason::kWgNoPeerForDestination);
      continue;
    }
    const uint32_t slot = hop[i] & 0xffffff;
    PeerRuntime& peer = ctx.peers[slot];
    Keypair* kp = kps[i];
    if (kp == nullptr || now >= kp->reject_after_tsc) [[unlikely]] {
      // No keypair at all and no handshake pending: the peer's handshake may have just been
      // confirmed on a worker (an event control has not processed yet). Control seals it once
      // it has, or drops it. Only while no handshake is pending, so floods stay here.
      const bool ask_control =
          kp == nullptr && !peer.handshake_wanted.load(std::memory_order_relaxed);
      want_handshake(w, peer, slot);
      if (ask_control) {
        meta(m)->peer_slot = slot;
        w.punt(m, PuntReason::kNeedKeypair);
      } else {
        w.drop(m, DropReason::kWgNoKeypair);
      }
      continue;
    }
    uint64_t ep = peer.endpoint.load(std::memory_order_acquire);
    // An IPv6 endpoint's address; if it moved to IPv4 (or away) meanwhile, ep is that newer
    // word, never an IPv6 one without its address.
    const bool have6 =
        endpoint_is_ipv6(ep) && load_endpoint6(peer, ctx.endpoints6[slot], &ep, address6_of[i]);
    if (!(ep & kEndpointValid) || (endpoint_is_ipv6(ep) && (!have6 || !tunnel_has_ipv6)))
        [[unlikely]] {
      w.drop(m, DropReason::kWgNoEndpoint);
      continue;
    }
    endpoint_of[i] = ep;
    // The last few groups cover runs of one peer and interleaved flows of a few; a keypair
    // that recurs later only costs another reservation.
    uint16_t g = n_groups;
    for (uint16_t j = n_groups; j > 0 && j + 4 > n_groups; --j)
      if (group_kp[j - 1] == kp) {
        g = j - 1;
        break;
      }
    if (g == n_groups) {
      group_kp[n_groups] = kp;
      group_size[n_groups++] = 0;
    }
    ++group_size[g];
    group[i] = static_cast<uint8_t>(g);
  }
  uint64_t next_counter[kBurst];
  for (uint16_t g = 0; g < n_groups; ++g)
    next_counter[g] = group_kp[g]->send_counter.fetch_add(group_size[g], std::memory_order_relaxed);

  AeadOp ops[kBurst];
  uint64_t endpoint[kBurst];
  uint8_t at[kBurst];  // where the packet was: its IPv6 endpoint address is address6_of[at]
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (group[i] == kNoGroup) continue;  // dropped above
    rte_mbuf* m = pkts[i];
    const uint32_t slot = hop[i] & 0xffffff;
    PeerRuntime& peer = ctx.peers[slot];
    Keypair* kp = kps[i];
    const uint64_t counter = next_counter[group[i]]++;
    if (counter >= wg::kRejectAfterMessages) [[unlikely]] {
      want_handshake(w, peer, slot);
      w.drop(m, DropReason::kWgCounterExhausted);
      continue;
    }
    if ((counter >= wg::kRekeyAfterMessages || (kp->is_initiator && now >= kp->rekey_after_tsc)) &&
        !kp->rekey_reported.load(std::memory_order_relaxed) && !kp->rekey_reported.exchange(1)) {
      Event e{};
      e.type = EventType::kRekeyWanted;
      e.value = slot;
      w.counters().wg_rekey_events.add();
      w.event(e);
    }
    const uint32_t len = inner_length_and_hop(m);
    // Pad to 16 bytes (never past the tunnel MTU), then room for the tag.
    const uint32_t padded =
        std::min<uint32_t>((len + 15) & ~15u, std::max<uint32_t>(len, ctx.tunnel_mtu));
    const bool v6 = endpoint_is_ipv6(endpoint_of[i]);
    auto* tail = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, padded - len + wg::kTagLen));
    auto* head = rte_pktmbuf_prepend(m, v6 ? kEncapLen6 : kEncapLen);
    if (tail == nullptr || head == nullptr) [[unlikely]] {
      w.drop(m, DropReason::kNoMbuf);
      continue;
    }
    memset(tail, 0, padded - len);
    auto* hdr = rte_pktmbuf_mtod_offset(
        m, wg::MessageTransportHeader*,
        (v6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr)) + sizeof(rte_udp_hdr));
    hdr->type = static_cast<uint32_t>(wg::MessageType::kTransport);
    hdr->receiver_index = kp->remote_index;
    hdr->counter = counter;
    auto* body = reinterpret_cast<uint8_t*>(hdr + 1);
    ops[k] = AeadOp{kp->send_key, counter, body, padded, body + padded};
    endpoint[k] = endpoint_of[i];
    at[k] = static_cast<uint8_t>(i);
    meta(m)->peer_slot = slot;
    peer.last_tx_tsc.store(now, std::memory_order_relaxed);
    peer.last_data_tx_tsc.store(now, std::memory_order_relaxed);
    pkts[k++] = m;  // compacted in place: k <= i
  }
  w.aead().encrypt_burst(ops, k);

  PeerTally tally(counter_row, PeerTally::kTx);
  const uint8_t tunnel_index = ctx.port_index(PortRole::kTunnel);
  uint64_t tx_bytes = 0;  // stored once per burst, as wg_input does
  for (uint16_t j = 0; j < k; ++j) {
    rte_mbuf* m = pkts[j];
    const uint16_t total = static_cast<uint16_t>(rte_pktmbuf_pkt_len(m));
    meta(m)->out_port = tunnel_index;
    // The WireGuard message, as rx counts it (and the kernel's tx_bytes): no outer IP/UDP.
    uint32_t message;
    bool relayed = false;
    if (endpoint_is_ipv6(endpoint[j])) [[unlikely]] {
      auto* ip6 = rte_pktmbuf_mtod(m, rte_ipv6_hdr*);
      auto* udp = reinterpret_cast<rte_udp_hdr*>(ip6 + 1);
      message = total - sizeof(rte_ipv6_hdr) - sizeof(rte_udp_hdr);
      ip6->vtc_flow = RTE_BE32(6u << 28);
      ip6->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(total - sizeof(rte_ipv6_hdr)));
      ip6->proto = IPPROTO_UDP;
      ip6->hop_limits = kOuterHopLimit;
      std::memcpy(ip6->dst_addr, address6_of[at[j]], 16);
      std::memcpy(ip6->src_addr, tunnel.source6(ip6->dst_addr), 16);
      udp->src_port = ctx.wg_port_be;
      udp->dst_port = endpoint_port(endpoint[j]);
      udp->dgram_len = ip6->payload_len;
      udp->dgram_cksum = 0;
      udp->dgram_cksum = udp6_checksum(ip6, udp);  // mandatory over IPv6, whatever the flag
      x.to(SealExit::kIpv6, m);
    } else {
      auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
      auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
      const uint32_t dst = endpoint_ip(endpoint[j]);
      relayed = dst == ctx.relay_host && ctx.relay_host != 0;
      fill_ipv4_header(ip, relayed ? ctx.relay_gateway : tunnel.addrs[0], dst, total, IPPROTO_UDP);
      udp->src_port = ctx.wg_port_be;
      udp->dst_port = endpoint_port(endpoint[j]);
      udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(total - sizeof(rte_ipv4_hdr)));
      udp->dgram_cksum = 0;
      if (!ctx.wg_udp_checksum_aead) udp->dgram_cksum = udp_checksum(ip, udp);
      message = total - sizeof(rte_ipv4_hdr) - sizeof(rte_udp_hdr);
      if (relayed) [[unlikely]] {
        // Behind the DERP relay: to the connector's socket through the TUN (no Ethernet).
        meta(m)->out_port = ctx.exception_port;
        w.counters().relay_to_peers.add();
      } else {
        x.to(SealExit::kIpv4, m);
      }
    }
    tx_bytes += message;
    tally.add(meta(m)->peer_slot, message);
    if (relayed) [[unlikely]]
      w.transmit(ctx.exception_port, m);
  }
  w.counters().wg_tx_packets.add(k);
  w.counters().wg_tx_bytes.add(tx_bytes);
  w.counters().forwarded_in.add(k);
}

}  // namespace exitgw::dp
