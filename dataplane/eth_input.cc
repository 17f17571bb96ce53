// L2 input: frames for our MAC (or broadcast, or an IPv6 group of ours) are sorted to IPv4,
// ARP or IPv6; the rest drop. The ARP responder and learner.
#include <rte_arp.h>
#include <rte_ether.h>

#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

void eth_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<EthExit>& x) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  const rte_ether_addr& own = info.mac;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (i + 2 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 2], void*));
    if (m->nb_segs != 1) [[unlikely]] {
      w.drop(m, DropReason::kMultiSegment);
      continue;
    }
    if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr)) [[unlikely]] {
      w.drop(m, DropReason::kEthTooShort);
      continue;
    }
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (!rte_is_same_ether_addr(&eth->dst_addr, &own) &&
        !rte_is_broadcast_ether_addr(&eth->dst_addr) && !info.accepts_group6(eth->dst_addr)) {
      w.drop(m, DropReason::kEthNotForUs);
      continue;
    }
    // A group address is never a sender: answering it would reflect to a whole segment.
    if (rte_is_multicast_ether_addr(&eth->src_addr)) [[unlikely]] {
      w.drop(m, DropReason::kEthGroupSource);
      continue;
    }
    switch (eth->ether_type) {
      case RTE_BE16(RTE_ETHER_TYPE_IPV4):
        x.to(EthExit::kIpv4, m);
        break;
      case RTE_BE16(RTE_ETHER_TYPE_ARP):
        x.to(EthExit::kArp, m);
        break;
      case RTE_BE16(RTE_ETHER_TYPE_IPV6):
        if (info.ipv6()) {
          x.to(EthExit::kIpv6, m);
          break;
        }
        w.drop(m, DropReason::kEthUnsupportedType);
        break;
      default:
        w.drop(m, DropReason::kEthUnsupportedType);
    }
  }
}

namespace {

void arp_one(Worker& w, uint8_t port, rte_mbuf* m) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  if (rte_pktmbuf_data_len(m) < sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)) {
    w.drop(m, DropReason::kArpMalformed);
    return;
  }
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
      arp->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != RTE_ETHER_ADDR_LEN ||
      arp->arp_plen != sizeof(uint32_t) || rte_is_multicast_ether_addr(&arp->arp_data.arp_sha)) {
    w.drop(m, DropReason::kArpMalformed);
    return;
  }
  const uint32_t sip = arp->arp_data.arp_sip;
  const uint32_t tip = arp->arp_data.arp_tip;
  const uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
  if ((op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY)) {
    w.drop(m, DropReason::kArpMalformed);
    return;
  }
  if (!info.owns(tip)) {
    w.drop(m, DropReason::kArpNotForUs);
    return;
  }
  // A request or reply aimed at us teaches the sender's MAC (RFC 826's merge step).
  if (sip != 0 && !info.owns(sip)) {
    Event e{};
    e.type = EventType::kNeighborSeen;
    e.port = port;
    rte_memcpy(e.mac, &arp->arp_data.arp_sha, sizeof(e.mac));
    e.ip = sip;
    w.event(e);
    w.counters().arp_learned.add();
  }
  if (op == RTE_ARP_OP_REPLY) {
    w.consume(m);
    return;
  }
  // Answer in place: the request becomes the reply.
  arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = sip;
  arp->arp_data.arp_sha = info.mac;
  arp->arp_data.arp_sip = tip;
  eth->dst_addr = arp->arp_data.arp_tha;
  eth->src_addr = info.mac;
  w.counters().arp_replies_sent.add();
  w.transmit(port, m);
}

}  // namespace

void arp_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept {
  for (uint16_t i = 0; i < n; ++i) arp_one(w, port, pkts[i]);
}

}  // namespace exitgw::dp
