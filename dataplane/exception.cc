// The exception path, as VPP and grout punt to the host: inner packets addressed to the
// gateway's own tailnet addresses (the connector's PeerAPI DNS, ping) go to a kernel TUN, and
// what the host sends back through it is sealed to the peer that owns the destination. The
// same TUN carries the DERP relay: peers' datagrams the connector receives over DERP arrive
// from relay_host and go to local delivery as if they had come to the WireGuard port.
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

constexpr uint8_t kIpProtoTsmp = 99;  // Tailscale's TSMP (disco key advertisements, pings)

}  // namespace

uint16_t tailnet_local(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  DataplaneContext& ctx = w.ctx();
  uint32_t own[kMaxTailnetAddrs];
  uint32_t any = 0;
  for (unsigned a = 0; a < kMaxTailnetAddrs; ++a) {
    own[a] = ctx.tailnet_addrs[a].load(std::memory_order_relaxed);
    any |= own[a];
  }
  if (any == 0) return n;  // the connector has not reported the node's addresses
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
    bool mine = false;
    for (unsigned a = 0; a < kMaxTailnetAddrs; ++a) mine |= own[a] != 0 && ip->dst_addr == own[a];
    if (!mine) [[likely]] {
      pkts[k++] = m;
      continue;
    }
    if (ip->next_proto_id == kIpProtoTsmp) {
      w.counters().tsmp_consumed.add();
      w.consume(m);
    } else if (ctx.exception_port == kNoPort) {
      w.drop(m, DropReason::kExceptionPortOff);
    } else if (!w.exception_allowed()) {
      w.drop(m, DropReason::kExceptionRateLimited);
    } else {
      meta(m)->out_port = ctx.exception_port;
      w.counters().exception_to_host.add();
      w.transmit(ctx.exception_port, m);
    }
  }
  return k;
}

void exception_input(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<ExceptionExit>& x) noexcept {
  DataplaneContext& ctx = w.ctx();
  uint32_t own[kMaxTailnetAddrs];
  for (unsigned a = 0; a < kMaxTailnetAddrs; ++a)
    own[a] = ctx.tailnet_addrs[a].load(std::memory_order_relaxed);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (m->nb_segs != 1) [[unlikely]] {
      w.drop(m, DropReason::kMultiSegment);
      continue;
    }
    const uint32_t len = rte_pktmbuf_pkt_len(m);
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
    if (len < sizeof(rte_ipv4_hdr)) [[unlikely]] {
      w.drop(m, DropReason::kExceptionMalformed);
      continue;
    }
    if ((ip->version_ihl >> 4) != 4) [[unlikely]] {
      w.drop(m, DropReason::kExceptionNotIpv4);
      continue;
    }
    const uint32_t ihl = (ip->version_ihl & 0xf) * 4u;
    const uint32_t total = rte_be_to_cpu_16(ip->total_length);
    if (ihl < sizeof(rte_ipv4_hdr) || total < ihl || total > len) [[unlikely]] {
      w.drop(m, DropReason::kExceptionMalformed);
      continue;
    }
    if (total > ctx.tunnel_mtu) [[unlikely]] {
      w.drop(m, DropReason::kExceptionTooLarge);
      continue;
    }
    rte_pktmbuf_trim(m, static_cast<uint16_t>(len - total));
    if (ip->dst_addr == ctx.relay_gateway && ctx.relay_gateway != 0) {
      // The DERP relay: UDP from the connector's socket to our WireGuard port, nothing else.
      const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
      if (ip->src_addr != ctx.relay_host || ihl != sizeof(rte_ipv4_hdr) ||
          ip->next_proto_id != IPPROTO_UDP || total < ihl + sizeof(rte_udp_hdr) ||
          udp->dst_port != ctx.wg_port_be) [[unlikely]] {
        w.drop(m, DropReason::kExceptionBadRelay);
        continue;
      }
      // Local delivery reads frames: an Ethernet header nobody looks at goes in front.
      auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
      if (eth == nullptr) [[unlikely]] {
        w.drop(m, DropReason::kNoMbuf);
        continue;
      }
      *eth = rte_ether_hdr{};
      eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
      w.counters().relay_from_peers.add();
      x.to(ExceptionExit::kRelay, m);
      continue;
    }
    bool mine = false;
    for (unsigned a = 0; a < kMaxTailnetAddrs; ++a) mine |= own[a] != 0 && ip->src_addr == own[a];
    if (!mine) [[unlikely]] {
      w.drop(m, DropReason::kExceptionBadSource);
      continue;
    }
    meta(m)->flags = kMetaLocal;  // the host's own packet: sealed without a TTL decrement
    w.counters().exception_from_host.add();
    x.to(ExceptionExit::kToPeer, m);
  }
}

}  // namespace exitgw::dp
