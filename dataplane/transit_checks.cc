// The checks a router makes on a packet it forwards, one stage per direction: TTL (and, into
// the tunnel, its MTU), with ICMP errors (rate limited) to the packet's source.
#include <rte_ip.h>

#include "dataplane/checksum.h"
#include "dataplane/icmp_error.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

void transit_out_checks(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept {
  DataplaneContext& ctx = w.ctx();
  const uint8_t internet = ctx.port_index(PortRole::kInternet);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
    if (ip->time_to_live <= 1) [[unlikely]] {
      // Time exceeded goes back through the tunnel (traceroute through the exit works).
      if (icmp_error_allowed(ip) && w.icmp_error_within_rate()) {
        rte_mbuf* e =
            make_icmp_error(ctx.pool, ip, ctx.port(PortRole::kInternet).addrs[0], 11, 0, 0);
        if (e) {
          meta(e)->in_port = meta(m)->in_port;
          meta(e)->flags = kMetaLocal;
          x.to(TransitExit::kIcmpError, e);
        }
      }
      w.drop(m, DropReason::kIpv4TtlExpired);
      continue;
    }
    ipv4_decrement_ttl(ip);
    meta(m)->out_port = internet;
    x.to(TransitExit::kForward, m);
  }
}

void transit_in_checks(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept {
  DataplaneContext& ctx = w.ctx();
  const PortInfo& internet = ctx.port(PortRole::kInternet);
  const uint8_t internet_index = ctx.port_index(PortRole::kInternet);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    rte_pktmbuf_adj(m, sizeof(rte_ether_hdr));
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
    // Errors go back to the internet source quoting the packet as it arrived (before NAT).
    uint8_t type = 0, code = 0;
    uint16_t mtu = 0;
    DropReason why = DropReason::kCount;
    if (ip->time_to_live <= 1) [[unlikely]] {
      type = 11;  // time exceeded in transit
      why = DropReason::kIpv4TtlExpired;
    } else if (rte_be_to_cpu_16(ip->total_length) > ctx.tunnel_mtu) [[unlikely]] {
      // Too big for the tunnel: fragmentation needed, so path MTU discovery finds the
      // tunnel's MTU (RFC 1191). Packets without DF are not fragmented here: counted drop.
      if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG)) {
        type = 3;
        code = 4;
        mtu = ctx.tunnel_mtu;
      }
      why = DropReason::kWgTooLarge;
    }
    if (why == DropReason::kCount) [[likely]] {
      x.to(TransitExit::kForward, m);
      continue;
    }
    if (type && icmp_error_allowed(ip) && w.icmp_error_within_rate()) {
      rte_mbuf* e = make_icmp_error(ctx.pool, ip, internet.addrs[0], type, code, mtu);
      if (e) {
        meta(e)->in_port = internet_index;
        meta(e)->out_port = internet_index;
        x.to(TransitExit::kIcmpError, e);
      }
    }
    w.drop(m, why);
  }
}

}  // namespace exitgw::dp
