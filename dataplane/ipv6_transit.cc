// The checks a router makes on an IPv6 packet it forwards, one stage per direction, the
// siblings of transit_checks.cc: the hop limit (RFC 8200 3) and, into the tunnel, its MTU, with
// ICMPv6 errors (RFC 4443, rate limited with ICMP's bucket) to the packet's source. IPv6
// routers never fragment: a packet too big for the tunnel draws Packet Too Big (RFC 8201).
#include <rte_ip.h>

#include "dataplane/icmp_error.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

constexpr uint8_t kPacketTooBig = 2, kTimeExceeded = 3;

// Errors come from the port's global address (the link-local one would be refused off-link).
// An ICMPv6 error about `orig`, if allowed and within the rate, to the exit `x`.
void error6(Worker& w, const rte_ipv6_hdr* orig, const PortInfo& from, uint8_t type, uint32_t param,
            uint8_t in_port, uint8_t out_port, uint8_t flags, Exits<TransitExit>& x) noexcept {
  if (!icmp6_error_allowed(orig) || !w.icmp_error_within_rate()) return;
  rte_mbuf* e = make_icmp6_error(w.ctx().pool, orig, from.source6(orig->src_addr), type, 0, param);
  if (e == nullptr) return;
  meta(e)->in_port = in_port;
  meta(e)->out_port = out_port;
  meta(e)->flags = flags;
  x.to(TransitExit::kIcmpError, e);
}

}  // namespace

void transit_out_checks6(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept {
  if (n == 0) return;
  DataplaneContext& ctx = w.ctx();
  const PortInfo& internet = ctx.port(PortRole::kInternet);
  const uint8_t internet_index = ctx.port_index(PortRole::kInternet);
  // No IPv6 on the internet port: nowhere to send it. NAT mode: the peers' sources must not
  // leave untranslated, so without an IPv6 pool nothing goes.
  const bool no_pool6 = ctx.nat != nullptr && !ctx.nptv6.on() && ctx.nat66 == nullptr;
  const DropReason off = !internet.ipv6() ? DropReason::kIpv6NoRoute
                         : no_pool6       ? DropReason::kIpv6NoPool6
                                          : DropReason::kCount;
  if (off != DropReason::kCount) [[unlikely]] {
    w.drop_all(pkts, n, off);
    return;
  }
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod(m, rte_ipv6_hdr*);
    if (ip->hop_limits <= 1) [[unlikely]] {
      // Time exceeded goes back through the tunnel (traceroute6 through the exit works).
      error6(w, ip, internet, kTimeExceeded, 0, meta(m)->in_port, kNoPort, kMetaLocal, x);
      w.drop(m, DropReason::kIpv6HopLimitExceeded);
      continue;
    }
    --ip->hop_limits;  // no header checksum in IPv6
    meta(m)->out_port = internet_index;
    x.to(TransitExit::kForward, m);
  }
}

namespace {

// Why an internet packet for `dst` is none of the gateway's to translate: not in an NPTv6
// outside prefix, nor in the stateful pool (or, without one, while NPTv6 mappings leave nothing
// else routed). kCount: it is the gateway's.
DropReason not_translated_here(const DataplaneContext& ctx, const uint8_t* dst) noexcept {
  if (ctx.nptv6.in_outside(dst)) return DropReason::kCount;
  if (ctx.nat66 != nullptr)
    return ctx.nat66->address_index6(nat::Ipv6Address::from_bytes(dst)) == nat::kNone
               ? DropReason::kNat66NotInPool
               : DropReason::kCount;
  return ctx.nptv6.on() && !ctx.nptv6_route_unmapped ? DropReason::kNptv6NotInPool
                                                     : DropReason::kCount;
}

}  // namespace

void transit_in_checks6(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept {
  if (n == 0) return;
  DataplaneContext& ctx = w.ctx();
  const PortInfo& internet = ctx.port(PortRole::kInternet);
  const uint8_t internet_index = ctx.port_index(PortRole::kInternet);
  // NAT mode without an IPv6 pool: no peer is reachable over IPv6 from the internet (its
  // addresses never left untranslated), as outbound refuses to send any.
  if (ctx.nat != nullptr && !ctx.nptv6.on() && ctx.nat66 == nullptr) [[unlikely]] {
    w.drop_all(pkts, n, DropReason::kIpv6NoPool6);
    return;
  }
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    rte_pktmbuf_adj(m, sizeof(rte_ether_hdr));
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*);
    // Not for an NPTv6 outside prefix nor the stateful pool: dropped before any error is made
    // about it (the gateway speaks only for what it translates).
    if (const DropReason r = not_translated_here(ctx, ip->dst_addr); r != DropReason::kCount)
        [[unlikely]] {
      w.drop(m, r);
      continue;
    }
    // Link-local addresses never cross a router (RFC 4291 2.5.6).
    if (ipv6_link_local(ip->src_addr)) [[unlikely]] {
      w.drop(m, DropReason::kIpv6BadSource);
      continue;
    }
    if (ipv6_link_local(ip->dst_addr)) [[unlikely]] {
      w.drop(m, DropReason::kIpv6NotForUs);
      continue;
    }
    // Errors go back to the internet source quoting the packet as it arrived.
    if (ip->hop_limits <= 1) [[unlikely]] {
      error6(w, ip, internet, kTimeExceeded, 0, internet_index, internet_index, 0, x);
      w.drop(m, DropReason::kIpv6HopLimitExceeded);
      continue;
    }
    if (sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip->payload_len) > ctx.tunnel_mtu) [[unlikely]] {
      error6(w, ip, internet, kPacketTooBig, ctx.tunnel_mtu, internet_index, internet_index, 0, x);
      w.drop(m, DropReason::kWgTooLarge);
      continue;
    }
    x.to(TransitExit::kForward, m);
  }
}

}  // namespace exitgw::dp
