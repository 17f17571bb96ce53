// IPv6 on the gateway's own ports: header checks, the extension-header walk, and local
// delivery of ICMPv6: echo answered (rate limited, with ICMP's bucket), neighbor solicitations
// for our addresses answered, and neighbors learned from solicitations and advertisements
// (RFC 4861 7.1 validation, each failure its own drop reason). The Ethernet header stays in front.
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "dataplane/checksum.h"
#include "dataplane/ipv6_walk.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

constexpr uint8_t kEchoRequest = 128, kEchoReply = 129;
constexpr uint8_t kNeighborSolicitation = 135, kNeighborAdvertisement = 136;
constexpr uint8_t kOptSourceLinkAddr = 1, kOptTargetLinkAddr = 2;
constexpr uint8_t kNdHopLimit = 255;  // ND packets that crossed a router are forged (RFC 4861)
constexpr unsigned kNdFixedLen = 24;  // type, code, checksum, flags/reserved, target

// Options after the fixed part of an ND message: every length non-zero and inside the message
// (RFC 4861 7.1.1). Returns false if malformed; `lladdr` gets the link-layer address option of
// `want` type, if there is one (the first).
bool nd_options(const uint8_t* opt, uint32_t len, uint8_t want, const uint8_t** lladdr) noexcept {
  *lladdr = nullptr;
  while (len > 0) {
    if (len < 2 || opt[1] == 0 || uint32_t{opt[1]} * 8 > len) return false;
    if (opt[0] == want && *lladdr == nullptr) {
      if (opt[1] != 1) return false;  // Ethernet: 6 bytes, one 8-byte unit (RFC 4861 4.6.1)
      *lladdr = opt + 2;
    }
    len -= uint32_t{opt[1]} * 8;
    opt += uint32_t{opt[1]} * 8;
  }
  return true;
}

void learn6(Worker& w, uint8_t port, const uint8_t* ip6, const uint8_t* mac) noexcept {
  if (rte_is_multicast_ether_addr(reinterpret_cast<const rte_ether_addr*>(mac)) ||
      rte_is_zero_ether_addr(reinterpret_cast<const rte_ether_addr*>(mac)))
    return;
  Event e{};
  e.type = EventType::kNeighborSeen6;
  e.port = port;
  std::memcpy(e.mac, mac, 6);
  std::memcpy(e.ip6, ip6, 16);
  w.event(e);
  w.counters().nd_learned.add();
}

// Finishes a reply built over the received frame: hop limit, lengths, checksum, L2.
void send6(Worker& w, uint8_t port, rte_mbuf* m, uint32_t icmp_len, uint8_t hop_limit,
           const rte_ether_addr& dst_mac) noexcept {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(eth + 1);
  auto* icmp = reinterpret_cast<uint8_t*>(ip + 1);
  ip->vtc_flow = RTE_BE32(6u << 28);
  ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(icmp_len));
  ip->proto = kIcmpv6;
  ip->hop_limits = hop_limit;
  icmp[2] = icmp[3] = 0;
  const uint16_t c = icmp6_checksum(ip, icmp, icmp_len);
  std::memcpy(icmp + 2, &c, 2);
  const uint32_t frame = sizeof(rte_ether_hdr) + sizeof(rte_ipv6_hdr) + icmp_len;
  m->data_len = static_cast<uint16_t>(frame);
  m->pkt_len = frame;
  eth->dst_addr = dst_mac;
  eth->src_addr = w.ctx().ports[port].mac;
  w.transmit(port, m);
}

void echo6(Worker& w, uint8_t port, rte_mbuf* m, rte_ipv6_hdr* ip, const Ipv6Layers& l,
           uint32_t icmp_len) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  if (!w.icmp_allowed()) {
    w.drop(m, DropReason::kIcmpRateLimited);
    return;
  }
  // The reply carries no extension headers: the ICMPv6 message moves up behind the fixed
  // header (memmove: they may overlap).
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  const rte_ether_addr peer_mac = eth->src_addr;
  uint8_t src[16], dst[16];
  std::memcpy(src, ip->src_addr, 16);
  // To a group (ff02::1, as `ping ff02::1%dev` sends): answered from the link-local address.
  std::memcpy(dst, ip->dst_addr[0] == 0xff ? info.addrs6[0] : ip->dst_addr, 16);
  auto* icmp = reinterpret_cast<uint8_t*>(ip) + l.l4_offset;
  if (l.l4_offset != sizeof(rte_ipv6_hdr))
    std::memmove(reinterpret_cast<uint8_t*>(ip + 1), icmp, icmp_len);
  std::memcpy(ip->src_addr, dst, 16);
  std::memcpy(ip->dst_addr, src, 16);
  reinterpret_cast<uint8_t*>(ip + 1)[0] = kEchoReply;
  w.counters().icmp6_echo_replies.add();
  send6(w, port, m, icmp_len, 64, peer_mac);
}

void solicitation(Worker& w, uint8_t port, rte_mbuf* m, rte_ipv6_hdr* ip, const uint8_t* icmp,
                  uint32_t icmp_len) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  const uint8_t* target = icmp + 8;
  const uint8_t* slla = nullptr;
  if (target[0] == 0xff ||
      !nd_options(icmp + kNdFixedLen, icmp_len - kNdFixedLen, kOptSourceLinkAddr, &slla)) {
    w.drop(m, DropReason::kNdMalformed);
    return;
  }
  const bool dad = ipv6_unspecified(ip->src_addr);
  // Duplicate address detection: from ::, to the target's solicited-node group, no SLLA.
  if (dad && (slla != nullptr || !info.solicited_node6(ip->dst_addr))) {
    w.drop(m, DropReason::kNdMalformed);
    return;
  }
  if (!info.owns6(target)) {
    w.drop(m, DropReason::kNdNotForUs);
    return;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  if (slla != nullptr) learn6(w, port, ip->src_addr, slla);
  // The advertisement: to the solicitor (at its SLLA, else the frame's source), or to every
  // node for DAD; Solicited unless DAD, Override (RFC 4861 7.2.4), our MAC as TLLA.
  rte_ether_addr dst_mac = slla ? *reinterpret_cast<const rte_ether_addr*>(slla) : eth->src_addr;
  uint8_t tgt[16];
  std::memcpy(tgt, target, 16);
  if (dad) {
    std::memcpy(ip->dst_addr, kIpv6AllNodes, 16);
    dst_mac = rte_ether_addr{{0x33, 0x33, 0, 0, 0, 1}};
  } else {
    std::memcpy(ip->dst_addr, ip->src_addr, 16);
  }
  std::memcpy(ip->src_addr, tgt, 16);
  constexpr uint32_t kNaLen = kNdFixedLen + 8;
  if (m->buf_len < m->data_off + sizeof(rte_ether_hdr) + sizeof(rte_ipv6_hdr) + kNaLen)
      [[unlikely]] {
    w.drop(m, DropReason::kNoMbuf);
    return;
  }
  auto* na = reinterpret_cast<uint8_t*>(ip + 1);
  std::memset(na, 0, kNaLen);
  na[0] = kNeighborAdvertisement;
  na[4] = dad ? 0x20 : 0x60;  // R=0, S, O=1
  std::memcpy(na + 8, tgt, 16);
  na[24] = kOptTargetLinkAddr;
  na[25] = 1;
  std::memcpy(na + 26, info.mac.addr_bytes, 6);
  w.counters().nd_advertisements_sent.add();
  send6(w, port, m, kNaLen, kNdHopLimit, dst_mac);
}

void advertisement(Worker& w, uint8_t port, rte_mbuf* m, const rte_ipv6_hdr* ip,
                   const uint8_t* icmp, uint32_t icmp_len) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  const uint8_t* target = icmp + 8;
  const uint8_t* tlla = nullptr;
  const bool solicited = icmp[4] & 0x40;
  // To a group, an advertisement cannot be solicited (RFC 4861 7.1.2).
  if (target[0] == 0xff || (solicited && ip->dst_addr[0] == 0xff) ||
      !nd_options(icmp + kNdFixedLen, icmp_len - kNdFixedLen, kOptTargetLinkAddr, &tlla)) {
    w.drop(m, DropReason::kNdMalformed);
    return;
  }
  // A solicited advertisement may leave the option out (Linux does, answering a unicast
  // solicitation): the frame's source is the neighbor's MAC then (RFC 4861 7.2.5 keeps the
  // cached one; on Ethernet they are the same). Someone else claiming one of our addresses is
  // not a neighbor to send to.
  const uint8_t* mac = tlla;
  if (mac == nullptr && solicited)
    mac = rte_pktmbuf_mtod(m, const rte_ether_hdr*)->src_addr.addr_bytes;
  if (mac != nullptr && !info.owns6(target)) learn6(w, port, target, mac);
  w.consume(m);
}

// UDP for one of our addresses: only the WireGuard port on the tunnel port, as over IPv4. The
// checksum is mandatory over IPv6 (a zero one refused) unless --wg_udp_checksum=aead leaves a
// transport message's to its tag. Extension headers are cut out (the Ethernet and fixed IPv6
// headers move up over them) so that WireGuard finds UDP right behind the fixed header.
void udp6_input(Worker& w, uint8_t port, rte_mbuf* m, rte_ipv6_hdr* ip, const Ipv6Layers& l,
                uint32_t payload, Exits<LocalExit>& x) noexcept {
  const uint32_t avail = sizeof(rte_ipv6_hdr) + payload - l.l4_offset;
  auto* udp = reinterpret_cast<rte_udp_hdr*>(reinterpret_cast<uint8_t*>(ip) + l.l4_offset);
  const uint32_t dgram = avail >= sizeof(rte_udp_hdr) ? rte_be_to_cpu_16(udp->dgram_len) : 0;
  if (dgram < sizeof(rte_udp_hdr) || dgram > avail) {
    w.drop(m, DropReason::kUdpMalformed);
    return;
  }
  const DataplaneContext& ctx = w.ctx();
  const bool wg = port == ctx.port_index(PortRole::kTunnel) && udp->dst_port == ctx.wg_port_be &&
                  !ipv6_multicast(ip->dst_addr);
  const unsigned len = dgram - sizeof(rte_udp_hdr);
  const uint64_t ol = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
  if (l.l4_offset != sizeof(rte_ipv6_hdr)) [[unlikely]] {
    // Moved up first: the pseudo-header's addresses stay, and the checksum does not cover them.
    const uint32_t cut = l.l4_offset - sizeof(rte_ipv6_hdr);
    auto* front = rte_pktmbuf_mtod(m, uint8_t*);
    std::memmove(front + cut, front, sizeof(rte_ether_hdr) + sizeof(rte_ipv6_hdr));
    rte_pktmbuf_adj(m, static_cast<uint16_t>(cut));
    ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, sizeof(rte_ether_hdr));
    ip->proto = IPPROTO_UDP;
    ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(payload - cut));
    udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  }
  if (ol == RTE_MBUF_F_RX_L4_CKSUM_BAD ||
      (ol != RTE_MBUF_F_RX_L4_CKSUM_GOOD && !wg_checksum_left_to_aead(ctx, wg, udp + 1, len) &&
       !udp6_checksum_ok(ip, udp))) {
    w.drop(m, DropReason::kUdpBadChecksum);
    return;
  }
  if (!wg) {
    w.drop(m, DropReason::kLocalPortUnreachable);
    return;
  }
  wg_deliver(w, m, reinterpret_cast<const uint8_t*>(udp + 1), len, x);
}

void local6_one(Worker& w, uint8_t port, rte_mbuf* m, Exits<LocalExit>& x) noexcept {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, sizeof(rte_ether_hdr));
  const uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
  Ipv6Layers l;
  const DropReason bad = ipv6_walk(ip, payload, l);
  if (bad != DropReason::kCount) [[unlikely]] {
    w.drop(m, bad);
    return;
  }
  // No reassembly for the gateway's own addresses (as IPv4: nothing it serves needs it).
  if (l.fragment) {
    w.drop(m, DropReason::kIpv6Fragment);
    return;
  }
  if (l.proto == IPPROTO_UDP) {
    udp6_input(w, port, m, ip, l, payload, x);
    return;
  }
  if (l.proto != kIcmpv6) {
    w.drop(m, DropReason::kLocalUnsupportedProtocol);
    return;
  }
  const uint32_t icmp_len = sizeof(rte_ipv6_hdr) + payload - l.l4_offset;
  auto* icmp = reinterpret_cast<uint8_t*>(ip) + l.l4_offset;
  if (icmp_len < 8) {
    w.drop(m, DropReason::kIcmp6Malformed);
    return;
  }
  if (checksum_fold(checksum_add(icmp, icmp_len, pseudo_header_sum6(ip, kIcmpv6, icmp_len))) !=
      0xffff) {
    w.drop(m, DropReason::kIcmp6BadChecksum);
    return;
  }
  const uint8_t type = icmp[0];
  if (type == kNeighborSolicitation || type == kNeighborAdvertisement) {
    if (ip->hop_limits != kNdHopLimit) {
      w.drop(m, DropReason::kNdBadHopLimit);
      return;
    }
    if (icmp[1] != 0 || icmp_len < kNdFixedLen) {
      w.drop(m, DropReason::kNdMalformed);
      return;
    }
    if (type == kNeighborSolicitation)
      solicitation(w, port, m, ip, icmp, icmp_len);
    else
      advertisement(w, port, m, ip, icmp, icmp_len);
    return;
  }
  if (ipv6_unspecified(ip->src_addr)) {  // only DAD may come from ::
    w.drop(m, DropReason::kIpv6BadSource);
    return;
  }
  if (type == kEchoRequest && icmp[1] == 0) {
    echo6(w, port, m, ip, l, icmp_len);
    return;
  }
  w.drop(m, DropReason::kIcmp6UnsupportedType);
}

}  // namespace

void ipv6_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<Ipv6Exit>& x) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const uint32_t l3_avail = rte_pktmbuf_data_len(m) - sizeof(rte_ether_hdr);
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv6_hdr*, sizeof(rte_ether_hdr));
    if (l3_avail < sizeof(rte_ipv6_hdr)) [[unlikely]] {
      w.drop(m, DropReason::kIpv6TooShort);
      continue;
    }
    if ((rte_be_to_cpu_32(ip->vtc_flow) >> 28) != 6) [[unlikely]] {
      w.drop(m, DropReason::kIpv6BadVersion);
      continue;
    }
    // Zero would announce a jumbogram (RFC 2675): not on these links.
    const uint32_t total = sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip->payload_len);
    if (total > l3_avail || ip->payload_len == 0) [[unlikely]] {
      w.drop(m, DropReason::kIpv6BadPayloadLength);
      continue;
    }
    if (total < l3_avail) rte_pktmbuf_trim(m, static_cast<uint16_t>(l3_avail - total));
    m->l2_len = sizeof(rte_ether_hdr);
    m->l3_len = sizeof(rte_ipv6_hdr);
    // Never a sender: a group, loopback, one of our own addresses. The unspecified address
    // only for duplicate address detection, to a solicited-node group (checked in local).
    if (ipv6_multicast(ip->src_addr) || ipv6_loopback(ip->src_addr) || info.owns6(ip->src_addr) ||
        (ipv6_unspecified(ip->src_addr) && !info.solicited_node6(ip->dst_addr))) [[unlikely]] {
      w.drop(m, DropReason::kIpv6BadSource);
      continue;
    }
    if (ipv6_multicast(ip->dst_addr)) {
      if (PortInfo::all_nodes6(ip->dst_addr) || info.solicited_node6(ip->dst_addr))
        x.to(Ipv6Exit::kLocal, m);
      else
        w.drop(m, DropReason::kIpv6NotForUs);
      continue;
    }
    x.to(info.owns6(ip->dst_addr) ? Ipv6Exit::kLocal : Ipv6Exit::kTransit, m);
  }
}

void ipv6_local(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n,
                Exits<LocalExit>& x) noexcept {
  for (uint16_t i = 0; i < n; ++i) local6_one(w, port, pkts[i], x);
}

}  // namespace exitgw::dp
