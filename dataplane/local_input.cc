// Local delivery for our own addresses: ICMP echo is answered (rate limited), WireGuard
// handshakes and disco frames are punted to control, transport data goes to the WireGuard exit.
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "common/disco_wire.h"
#include "common/wg_wire.h"
#include "dataplane/checksum.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

void icmp_input(Worker& w, uint8_t port, rte_mbuf* m, rte_ipv4_hdr* ip) noexcept {
  const unsigned len = rte_be_to_cpu_16(ip->total_length) - sizeof(rte_ipv4_hdr);
  if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
    w.drop(m, DropReason::kIpv4Fragment);
    return;
  }
  if (len < sizeof(rte_icmp_hdr)) {
    w.drop(m, DropReason::kIcmpMalformed);
    return;
  }
  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(ip + 1);
  if (checksum(icmp, len) != 0xffff) {
    w.drop(m, DropReason::kIcmpBadChecksum);
    return;
  }
  if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0) {
    w.drop(m, DropReason::kIcmpUnsupportedType);
    return;
  }
  if (!w.icmp_allowed()) {
    w.drop(m, DropReason::kIcmpRateLimited);
    return;
  }
  // Turn the request around in place: same identifier, sequence and data.
  icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
  icmp->icmp_cksum = 0;
  icmp->icmp_cksum = static_cast<uint16_t>(~checksum(icmp, len));
  const uint32_t src = ip->src_addr;
  ip->src_addr = ip->dst_addr;
  ip->dst_addr = src;
  ip->time_to_live = 64;
  ip->fragment_offset = 0;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  eth->dst_addr = eth->src_addr;
  eth->src_addr = w.ctx().ports[port].mac;
  w.counters().icmp_echo_replies.add();
  w.transmit(port, m);
}

void udp_input(Worker& w, uint8_t port, rte_mbuf* m, rte_ipv4_hdr* ip,
               Exits<LocalExit>& x) noexcept {
  const unsigned len = rte_be_to_cpu_16(ip->total_length) - sizeof(rte_ipv4_hdr);
  if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
    w.drop(m, DropReason::kIpv4Fragment);
    return;
  }
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  if (len < sizeof(rte_udp_hdr) || rte_be_to_cpu_16(udp->dgram_len) < sizeof(rte_udp_hdr) ||
      rte_be_to_cpu_16(udp->dgram_len) > len) {
    w.drop(m, DropReason::kUdpMalformed);
    return;
  }
  // The WireGuard port: on the tunnel port, and on the exception port for the DERP relay.
  const bool wg =
      (port == w.ctx().port_index(PortRole::kTunnel) || port == w.ctx().exception_port) &&
      udp->dst_port == w.ctx().wg_port_be;
  const unsigned payload = rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr);
  const uint64_t ol = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  if (ol == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
      (ol != RTE_MBUF_F_RX_L4_CKSUM_GOOD &&
       !wg_checksum_left_to_aead(w.ctx(), wg, udp + 1, payload) && !udp_checksum_ok(ip, udp))) {
    w.drop(m, DropReason::kUdpBadChecksum);
    return;
  }
  if (!wg) {
    w.drop(m, DropReason::kLocalPortUnreachable);
    return;
  }
  wg_deliver(w, m, reinterpret_cast<const uint8_t*>(udp + 1), payload, x);
}

}  // namespace

bool wg_checksum_left_to_aead(const DataplaneContext& ctx, bool wg, const void* msg,
                              unsigned len) noexcept {
  // --wg_udp_checksum=aead: a transport message's tag authenticates its payload.
  return wg && ctx.wg_udp_checksum_aead && len >= 4 &&
         *static_cast<const uint8_t*>(msg) == static_cast<uint8_t>(wg::MessageType::kTransport);
}

void wg_deliver(Worker& w, rte_mbuf* m, const uint8_t* msg, unsigned len,
                Exits<LocalExit>& x) noexcept {
  if (len < 4) {
    w.drop(m, DropReason::kWgMalformed);
    return;
  }
  // Disco first: its magic ("TS") is no WireGuard type, and control counts what it cannot use.
  if (disco::has_magic(msg, len)) [[unlikely]] {
    w.punt(m, PuntReason::kDisco);
    return;
  }
  switch (msg[0]) {
    case static_cast<uint8_t>(wg::MessageType::kInitiation):
    case static_cast<uint8_t>(wg::MessageType::kResponse):
    case static_cast<uint8_t>(wg::MessageType::kCookieReply):
      w.punt(m, PuntReason::kHandshake);
      return;
    case static_cast<uint8_t>(wg::MessageType::kTransport):
      x.to(LocalExit::kWireGuard, m);
      return;
    default:
      w.drop(m, DropReason::kWgUnknownType);
  }
}

void local_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n,
                 Exits<LocalExit>& x) noexcept {
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, sizeof(rte_ether_hdr));
    switch (ip->next_proto_id) {
      case IPPROTO_ICMP:
        icmp_input(w, port, m, ip);
        break;
      case IPPROTO_UDP:
        udp_input(w, port, m, ip, x);
        break;
      default:
        w.drop(m, DropReason::kLocalUnsupportedProtocol);
    }
  }
}

}  // namespace exitgw::dp
