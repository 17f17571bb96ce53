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
// peer: its quoted source is an outside address, the peer's goes back (through whichever
// mapping holds it; one none holds stays). Outbound, a peer reports an internet packet sent to
// it: its quoted destination becomes the outside address the sender used, through the mapping
// holding it, which need not be the one of the reporter (a router in one inside prefix about a
// host in another). False when that address is in no mapping and unmapped sources are not
// routed: the error would show the internet an inside address. Checksum-neutral as well.
template <bool kInbound>
bool translate_quoted(const DataplaneContext& ctx, rte_ipv6_hdr* ip) noexcept {
  const uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
  uint16_t l4 = sizeof(rte_ipv6_hdr);
  if (ip->proto != kIcmpv6) {
    if (ip->proto == IPPROTO_TCP || ip->proto == IPPROTO_UDP) return true;
    Ipv6Layers l;
    if (ipv6_walk(ip, payload, l) != DropReason::kCount || l.proto != kIcmpv6 || l.fragment)
      return true;
    l4 = l.l4_offset;
  }
  if (sizeof(rte_ipv6_hdr) + payload < l4 + 8u + sizeof(rte_ipv6_hdr)) return true;
  auto* icmp = reinterpret_cast<uint8_t*>(ip) + l4;
  if (icmp[0] >= 128) return true;
  auto* quoted = reinterpret_cast<rte_ipv6_hdr*>(icmp + 8);
  if (kInbound) {
    ctx.nptv6.to_inside(quoted->src_addr);
    return true;
  }
  return ctx.nptv6.to_outside(quoted->dst_addr) == Nptv6::Result::kTranslated ||
         ctx.nptv6_route_unmapped;
}

// The mapping holding the packet's address: its index, or Nptv6Table::kNone.
unsigned mapping_out(const Nptv6Table& t, rte_mbuf* m) noexcept {
  return t.find_inside(rte_pktmbuf_mtod(m, const rte_ipv6_hdr*)->src_addr);
}
unsigned mapping_in(const Nptv6Table& t, rte_mbuf* m) noexcept {
  return t.find_outside(rte_pktmbuf_mtod(m, const rte_ipv6_hdr*)->dst_addr);
}

// With NPTv6 mappings beside a stateful pool: a packet a mapping holds to kMapped, the rest
// to kUnmapped (the pool's).
template <unsigned (*kMapping)(const Nptv6Table&, rte_mbuf*)>
void split_by_mapping(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept {
  const Nptv6Table& t = w.ctx().nptv6;
  for (uint16_t i = 0; i < n; ++i)
    x.to(kMapping(t, pkts[i]) != Nptv6Table::kNone ? Nptv6Exit::kMapped : Nptv6Exit::kUnmapped,
         pkts[i]);
}

}  // namespace

void nptv6_select_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept {
  split_by_mapping<mapping_out>(w, pkts, n, x);
}

void nptv6_select_in(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept {
  split_by_mapping<mapping_in>(w, pkts, n, x);
}

uint16_t nptv6_out(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const DataplaneContext& ctx = w.ctx();
  const Nptv6Table& t = ctx.nptv6;
  if (!t.on()) return n;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pkts[i], rte_ipv6_hdr*);
    const Nptv6::Result r = t.to_outside(ip->src_addr);
    if (r != Nptv6::Result::kTranslated) [[unlikely]] {
      // Routed mode with mappings only: a source none holds leaves as it is.
      if (r != Nptv6::Result::kNotInPrefix || !ctx.nptv6_route_unmapped) {
        w.drop(pkts[i], refused(r, DropReason::kNptv6SourceNotInside));
        continue;
      }
    }
    if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP && !translate_quoted<false>(ctx, ip))
        [[unlikely]] {
      w.drop(pkts[i], DropReason::kNptv6QuotedNotMapped);
      continue;
    }
    pkts[out++] = pkts[i];
  }
  return out;
}

uint16_t nptv6_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const DataplaneContext& ctx = w.ctx();
  const Nptv6Table& t = ctx.nptv6;
  if (!t.on()) return n;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    auto* ip = rte_pktmbuf_mtod(pkts[i], rte_ipv6_hdr*);
    const Nptv6::Result r = t.to_inside(ip->dst_addr);
    if (r != Nptv6::Result::kTranslated) [[unlikely]] {
      if (r != Nptv6::Result::kNotInPrefix || !ctx.nptv6_route_unmapped) {
        w.drop(pkts[i], refused(r, DropReason::kNptv6NotInPool));
        continue;
      }
    }
    if (ip->proto != IPPROTO_TCP && ip->proto != IPPROTO_UDP) translate_quoted<true>(ctx, ip);
    pkts[out++] = pkts[i];
  }
  return out;
}

}  // namespace exitgw::dp
