// NPTv6 on the worker (RFC 6296, common/nptv6.h): the peers' IPv6 prefix swapped for the
// pool's on the way out, back on the way in. Stateless and checksum-neutral: no session, no
// checksum to touch, every worker translates every packet the same.
#include <rte_ip.h>

#include "dataplane/exits.h"
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

// The mapping holding the packet's address: its index, or Nptv6Table::kNone.
unsigned mapping_out(const Nptv6Table& t, rte_mbuf* m) noexcept {
  return t.find_inside(rte_pktmbuf_mtod(m, const rte_ipv6_hdr*)->src_addr);
}
unsigned mapping_in(const Nptv6Table& t, rte_mbuf* m) noexcept {
  return t.find_outside(rte_pktmbuf_mtod(m, const rte_ipv6_hdr*)->dst_addr);
}

// Sorts by `mapping`: a packet a mapping holds to kMapped; the rest to kUnmapped when NAT66 is
// there to take them (or, with no mapping at all, to be routed as before), else dropped as
// `unmapped`.
template <unsigned (*kMapping)(const Nptv6Table&, rte_mbuf*)>
void select(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x,
            DropReason unmapped) noexcept {
  const Nptv6Table& t = w.ctx().nptv6;
  if (!t.on()) {  // no mapping: everything as before (NAT66 or routed)
    for (uint16_t i = 0; i < n; ++i) x.to(Nptv6Exit::kUnmapped, pkts[i]);
    return;
  }
  const bool nat66 = w.nat66() != nullptr;
  for (uint16_t i = 0; i < n; ++i) {
    if (kMapping(t, pkts[i]) != Nptv6Table::kNone)
      x.to(Nptv6Exit::kMapped, pkts[i]);
    else if (nat66)
      x.to(Nptv6Exit::kUnmapped, pkts[i]);
    else [[unlikely]]
      w.drop(pkts[i], unmapped);
  }
}

}  // namespace

void nptv6_select_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept {
  select<mapping_out>(w, pkts, n, x, DropReason::kNptv6SourceNotInside);
}

void nptv6_select_in(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept {
  select<mapping_in>(w, pkts, n, x, DropReason::kNptv6NotInPool);
}

uint16_t nptv6_out(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const Nptv6Table& t = w.ctx().nptv6;
  if (!t.on()) return n;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pkts[i], rte_ipv6_hdr*);
    const unsigned k = t.find_inside(ip->src_addr);
    const Nptv6::Result r =
        k == Nptv6Table::kNone ? Nptv6::Result::kNotInPrefix : t[k].to_outside(ip->src_addr);
    if (r != Nptv6::Result::kTranslated) [[unlikely]] {
      w.drop(pkts[i], refused(r, DropReason::kNptv6SourceNotInside));
      continue;
    }
    if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP) translate_quoted<false>(t[k], ip);
    pkts[out++] = pkts[i];
  }
  return out;
}

uint16_t nptv6_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const Nptv6Table& t = w.ctx().nptv6;
  if (!t.on()) return n;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pkts[i], rte_ipv6_hdr*);
    // An ICMPv6 error about one of our packets comes to the address the packet left from: the
    // mapping that translated it translates its quoted source back.
    const unsigned k = t.find_outside(ip->dst_addr);
    const Nptv6::Result r =
        k == Nptv6Table::kNone ? Nptv6::Result::kNotInPrefix : t[k].to_inside(ip->dst_addr);
    if (r != Nptv6::Result::kTranslated) [[unlikely]] {
      w.drop(pkts[i], refused(r, DropReason::kNptv6NotInPool));
      continue;
    }
    if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP) translate_quoted<true>(t[k], ip);
    pkts[out++] = pkts[i];
  }
  return out;
}

}  // namespace exitgw::dp
