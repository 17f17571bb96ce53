// IPv4 input: every header check with its own drop reason; packets for our own addresses go
// to the local exit, the others to the transit exit. The Ethernet header stays in front.
#include <rte_ip.h>

#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

// Sources no honest sender uses: 0/8, 127/8, multicast and the limited broadcast.
bool martian_source(uint32_t src_be) noexcept {
  const uint32_t s = rte_be_to_cpu_32(src_be);
  return (s >> 24) == 0 || (s >> 24) == 127 || (s >> 28) == 0xe || s == 0xffffffffu;
}

DropReason check_ipv4(rte_mbuf* m, const rte_ipv4_hdr* ip, uint32_t l3_avail) noexcept {
  if (l3_avail < sizeof(rte_ipv4_hdr)) [[unlikely]]
    return DropReason::kIpv4TooShort;
  if ((ip->version_ihl >> 4) != 4) [[unlikely]]
    return DropReason::kIpv4BadVersion;
  const unsigned ihl = (ip->version_ihl & 0xf) * 4u;
  if (ihl < sizeof(rte_ipv4_hdr)) [[unlikely]]
    return DropReason::kIpv4BadIhl;
  const unsigned total = rte_be_to_cpu_16(ip->total_length);
  if (total < ihl || total > l3_avail) [[unlikely]]
    return DropReason::kIpv4BadTotalLength;
  const uint64_t ol = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ol == RTE_MBUF_F_RX_IP_CKSUM_BAD) [[unlikely]]
    return DropReason::kIpv4BadChecksum;
  if (ol != RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, ihl) != 0xffff) [[unlikely]]
    return DropReason::kIpv4BadChecksum;
  // Options are legal but nothing we carry needs them; refusing them keeps every later
  // stage on a fixed 20-byte header (as most CGNAT data planes do). Counted on their own.
  if (ihl != sizeof(rte_ipv4_hdr)) [[unlikely]]
    return DropReason::kIpv4Options;
  if (martian_source(ip->src_addr)) [[unlikely]]
    return DropReason::kIpv4BadSource;
  if (ip->time_to_live == 0) [[unlikely]]
    return DropReason::kIpv4TtlExpired;
  return DropReason::kCount;
}

}  // namespace

void ipv4_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<Ipv4Exit>& x) noexcept {
  const PortInfo& info = w.ctx().ports[port];
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, sizeof(rte_ether_hdr));
    const uint32_t l3_avail = rte_pktmbuf_data_len(m) - sizeof(rte_ether_hdr);
    const DropReason bad = check_ipv4(m, ip, l3_avail);
    if (bad != DropReason::kCount) [[unlikely]] {
      w.drop(m, bad);
      continue;
    }
    // Ethernet pads short frames: the IP total length is the truth.
    const unsigned total = rte_be_to_cpu_16(ip->total_length);
    if (total < l3_avail) rte_pktmbuf_trim(m, static_cast<uint16_t>(l3_avail - total));
    m->l2_len = sizeof(rte_ether_hdr);
    m->l3_len = sizeof(rte_ipv4_hdr);
    if (ip->src_addr == ip->dst_addr || info.owns(ip->src_addr) || info.subnet_edge(ip->src_addr))
        [[unlikely]] {
      w.drop(m, DropReason::kIpv4BadSource);
      continue;
    }
    x.to(info.owns(ip->dst_addr) ? Ipv4Exit::kLocal : Ipv4Exit::kTransit, m);
  }
}

}  // namespace exitgw::dp
