// The exception path, as VPP and grout punt to the host: inner packets (IPv4 or IPv6) addressed to
// the gateway's own tailnet addresses (the connector's PeerAPI DNS, ping) go to a kernel TUN, and
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

// A peer's packet for one of the node's own tailnet addresses, either family (`proto`: the
// IPv4 protocol or the IPv6 first next header): TSMP is consumed, the rest goes to the host.
void to_host(Worker& w, rte_mbuf* m, uint8_t proto) noexcept {
  const DataplaneContext& ctx = w.ctx();
  if (proto == kIpProtoTsmp) {
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

// The host's packet passed every check: sealed to the peer that owns its destination.
void from_host(Worker& w, rte_mbuf* m, Exits<ExceptionExit>& x) noexcept {
  meta(m)->flags = kMetaLocal;  // the host's own packet: sealed without a TTL decrement
  w.counters().exception_from_host.add();
  x.to(ExceptionExit::kToPeer, m);
}

// An IPv6 packet from the host (`len` bytes arrived, at least the fixed header): whole, within
// the tunnel MTU and from one of the node's own tailnet IPv6 addresses.
void exception_input6(Worker& w, rte_mbuf* m, uint32_t len, const uint64_t (*own6)[2],
                      Exits<ExceptionExit>& x) noexcept {
  const auto* ip6 = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*);
  const uint32_t total = sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip6->payload_len);
  if (total > len) [[unlikely]] {
    w.drop(m, DropReason::kExceptionMalformed);
    return;
  }
  if (total > w.ctx().tunnel_mtu) [[unlikely]] {
    w.drop(m, DropReason::kExceptionTooLarge);
    return;
  }
  if (!tailnet_addr6_is(own6, ip6->src_addr)) [[unlikely]] {
    w.drop(m, DropReason::kExceptionBadSource);
    return;
  }
  rte_pktmbuf_trim(m, static_cast<uint16_t>(len - total));
  from_host(w, m, x);
}

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
    if (!mine) [[likely]]
      pkts[k++] = m;
    else
      to_host(w, m, ip->next_proto_id);
  }
  return k;
}

uint16_t tailnet_local6(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  uint64_t own6[kMaxTailnetAddrs][2];
  if (n == 0 || w.ctx().tailnet_addrs6.load(own6) == 0) return n;
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const auto* ip6 = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*);
    if (!tailnet_addr6_is(own6, ip6->dst_addr)) [[likely]]
      pkts[k++] = m;
    else
      to_host(w, m, ip6->proto);
  }
  return k;
}

void exception_input(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<ExceptionExit>& x) noexcept {
  DataplaneContext& ctx = w.ctx();
  uint32_t own[kMaxTailnetAddrs];
  for (unsigned a = 0; a < kMaxTailnetAddrs; ++a)
    own[a] = ctx.tailnet_addrs[a].load(std::memory_order_relaxed);
  uint64_t own6[kMaxTailnetAddrs][2];
  ctx.tailnet_addrs6.load(own6);
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
    if ((ip->version_ihl >> 4) == 6) [[unlikely]] {
      if (len < sizeof(rte_ipv6_hdr)) [[unlikely]]
        w.drop(m, DropReason::kExceptionMalformed);
      else
        exception_input6(w, m, len, own6, x);
      continue;
    }
    if ((ip->version_ihl >> 4) != 4) [[unlikely]] {
      w.drop(m, DropReason::kExceptionNotIpv4);  // neither IPv4 nor IPv6 (the label predates v6)
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
    from_host(w, m, x);
  }
}

}  // namespace exitgw::dp
