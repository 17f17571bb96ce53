// NPTv6 on the worker (RFC 6296, common/nptv6.h): the peers' IPv6 prefix swapped for the
// pool's on the way out, back on the way in. Stateless and checksum-neutral: no session, no
// checksum to touch, every worker translates every packet the same.
#include <rte_ip.h>

#include "dataplane/ipv6_walk.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

DropReason refused(Nptv6::Result r, DropReason not_in_prefix) noexcept {
  return r == Nptv6::Result::kNotInPrefix ? not_in_prefix : DropReason::kNptv6Untranslatable;
}

// An ICMPv6 error (types 0-127) quotes the packet it is about. Inbound, that packet left a
// peer: its quoted source is the pool address, the peer's goes back. Outbound, a peer reports
// an internet packet sent to it: its quoted destination becomes the pool address the sender
// used. Checksum-neutral as well.
template <bool kInbound>
void translate_quoted(const Nptv6& npt, rte_ipv6_hdr* ip) noexcept {
  const uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
  uint16_t l4 = sizeof(rte_ipv6_hdr);
  if (ip->proto != kIcmpv6) {
    if (ip->proto == IPPROTO_TCP || ip->proto == IPPROTO_UDP) return;
    Ipv6Layers l;
    if (ipv6_walk(ip, payload, l) != DropReason::kCount || l.proto != kIcmpv6 || l.fragment) return;
    l4 = l.l4_offset;
  }
  if (sizeof(rte_ipv6_hdr) + payload < l4 + 8u + sizeof(rte_ipv6_hdr)) return;
  auto* icmp = reinterpret_cast<uint8_t*>(ip) + l4;
  if (icmp[0] >= 128) return;
  auto* quoted = reinterpret_cast<rte_ipv6_hdr*>(icmp + 8);
  if (kInbound)
    npt.to_inside(quoted->src_addr);
  else
    npt.to_outside(quoted->dst_addr);
}

}  // namespace

uint16_t nptv6_out(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const Nptv6& npt = w.ctx().nptv6;
  if (!npt.on()) return n;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pkts[i], rte_ipv6_hdr*);
    const Nptv6::Result r = npt.to_outside(ip->src_addr);
    if (r != Nptv6::Result::kTranslated) [[unlikely]] {
      w.drop(pkts[i], refused(r, DropReason::kNptv6SourceNotInside));
      continue;
    }
    if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP) translate_quoted<false>(npt, ip);
    pkts[out++] = pkts[i];
  }
  return out;
}

uint16_t nptv6_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const Nptv6& npt = w.ctx().nptv6;
  if (!npt.on()) return n;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pkts[i], rte_ipv6_hdr*);
    const Nptv6::Result r = npt.to_inside(ip->dst_addr);
    if (r != Nptv6::Result::kTranslated) [[unlikely]] {
      w.drop(pkts[i], refused(r, DropReason::kNptv6NotInPool));
      continue;
    }
    if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP) translate_quoted<true>(npt, ip);
    pkts[out++] = pkts[i];
  }
  return out;
}

}  // namespace exitgw::dp
