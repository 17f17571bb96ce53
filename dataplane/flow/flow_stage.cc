// Flow accounting stages: parse an outbound packet once (before NAT) into its metadata, then
// per burst gather keys and let the table hash, prefetch and count them in staged passes.
#include "dataplane/flow/flow_stage.h"

#include <netinet/in.h>

#include <algorithm>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "common/wg_state.h"
#include "common/dataplane_context.h"
#include "dataplane/ipv6_walk.h"
#include "dataplane/nat/nat_worker.h"
#include "dataplane/packet_meta.h"

namespace exitgw::dp::flow {

static_assert(kBurst <= FlowTable::kMaxBurst);

namespace {

// What one packet contributes, its ports in header order.
struct Parsed {
  uint16_t src_port, dst_port;  // ICMP queries: both the identifier
  uint8_t tcp_flags;
  uint8_t protocol;
  uint16_t bytes;  // IP total length, host order
};

bool icmp_query(uint8_t type) {
  // echo reply/request, timestamp request/reply: the NAT maps their identifier like a port.
  return type == 0 || type == 8 || type == 13 || type == 14;
}

bool icmpv6_query(uint8_t type) {
  return type == 128 || type == 129;  // echo request and reply
}

// The ports (and TCP flags) from the transport header at `l4`, of which `avail` bytes are in
// the segment; kIcmp is the family's ICMP protocol, whose queries carry an identifier.
template <uint8_t kIcmp>
void read_transport(Parsed& p, const uint8_t* l4, uint32_t avail) noexcept {
  if (p.protocol == IPPROTO_TCP) {
    if (avail >= sizeof(rte_tcp_hdr)) {
      const auto* tcp = reinterpret_cast<const rte_tcp_hdr*>(l4);
      p.src_port = tcp->src_port;
      p.dst_port = tcp->dst_port;
      p.tcp_flags = tcp->tcp_flags;
    }
  } else if (p.protocol == IPPROTO_UDP) {
    if (avail >= sizeof(rte_udp_hdr)) {
      const auto* udp = reinterpret_cast<const rte_udp_hdr*>(l4);
      p.src_port = udp->src_port;
      p.dst_port = udp->dst_port;
    }
  } else if (p.protocol == kIcmp && avail >= 8 &&
             (kIcmp == IPPROTO_ICMP ? icmp_query(l4[0]) : icmpv6_query(l4[0]))) {
    uint16_t id;
    __builtin_memcpy(&id, l4 + 4, 2);
    p.src_port = p.dst_port = id;
  }
}

Parsed parse(const rte_mbuf* m) noexcept {
  const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
  Parsed p{0, 0, 0, ip->next_proto_id, rte_be_to_cpu_16(ip->total_length)};
  const uint32_t ihl = (ip->version_ihl & 0xf) * 4u;
  const uint32_t len = rte_pktmbuf_data_len(m);
  // Later fragments carry no transport header: they count under ports 0.
  if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)) return p;
  read_transport<IPPROTO_ICMP>(p, reinterpret_cast<const uint8_t*>(ip) + ihl,
                               len > ihl ? len - ihl : 0);
  return p;
}

// ICMP queries: the identifier is the subscriber's "port"; the other side has none.
uint16_t far_port(const Parsed& p) {
  return p.protocol == IPPROTO_ICMP ? 0 : p.dst_port;
}
uint16_t far_port6(const Parsed& p) {
  return p.protocol == kIcmpv6 ? 0 : p.dst_port;
}

// The NAT's protocol index for find_mapping; kCount when it has none.
nat::NatProto nat_proto(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return nat::NatProto::kTcp;
    case IPPROTO_UDP:
      return nat::NatProto::kUdp;
    case IPPROTO_ICMP:
      return nat::NatProto::kIcmp;
    default:
      return nat::NatProto::kCount;
  }
}

// IPv6: the upper-layer header found by the extension-header walk (wg_input has already
// walked and accepted the chain). Later fragments and unwalkable chains count under ports 0.
Parsed parse6(const rte_mbuf* m) noexcept {
  const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*);
  const uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
  // The tunnel's MTU keeps a packet far below 64 KiB; the clamp only guards the width.
  Parsed p{0, 0, 0, ip->proto,
           static_cast<uint16_t>(std::min<uint32_t>(sizeof(rte_ipv6_hdr) + payload, 0xffff))};
  Ipv6Layers l;
  if (ipv6_walk(ip, payload, l) != DropReason::kCount) [[unlikely]]
    return p;
  p.protocol = l.proto;
  if (l.fragment && (l.frag_field & 0xfff8) != 0) return p;
  const uint32_t len = std::min<uint32_t>(rte_pktmbuf_data_len(m), sizeof(rte_ipv6_hdr) + payload);
  read_transport<kIcmpv6>(p, reinterpret_cast<const uint8_t*>(ip) + l.l4_offset,
                          len > l.l4_offset ? len - l.l4_offset : 0);
  return p;
}

}  // namespace

void note_source(rte_mbuf** pkts, uint16_t n) noexcept {
  for (uint16_t i = 0; i < n; ++i) {
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*);
    const Parsed p = parse(pkts[i]);
    PacketMeta* pm = meta(pkts[i]);
    pm->counter = uint64_t{ip->src_addr} | uint64_t{p.src_port} << 32 | uint64_t{far_port(p)} << 48;
    pm->flow = uint32_t{p.protocol} | uint32_t{p.tcp_flags} << 8 | uint32_t{p.bytes} << 16;
  }
}

void account_out(FlowTable& table, rte_mbuf** pkts, uint16_t n, uint64_t now) noexcept {
  if (n == 0) return;
  FlowKey keys[kBurst];
  uint16_t bytes[kBurst];
  uint8_t flags[kBurst];
  uint32_t entries[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    const PacketMeta* pm = meta(pkts[i]);
    FlowKey& k = keys[i];
    k.src_address = static_cast<uint32_t>(pm->counter);
    k.src_port = static_cast<uint16_t>(pm->counter >> 32);
    k.dst_port = static_cast<uint16_t>(pm->counter >> 48);
    k.dst_address = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*)->dst_addr;
    k.peer_slot = pm->peer_slot;
    k.protocol = pm->flow & 0xff;
    flags[i] = static_cast<uint8_t>(pm->flow >> 8);
    bytes[i] = static_cast<uint16_t>(pm->flow >> 16);
  }
  table.account_burst(keys, bytes, flags, n, FlowDirection::kOut, now, entries);
  for (uint16_t i = 0; i < n; ++i) {
    const uint32_t e = entries[i];
    if (e == FlowTable::kUntracked || table.has_post_nat(e)) [[likely]]
      continue;
    // A flow's first packet: its translated source, from the rewritten header.
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*);
    table.set_post_nat(e, ip->src_addr, parse(pkts[i]).src_port);
  }
}

void account_in(FlowTable& table, const nat::NatWorker* nat, const DataplaneContext& ctx,
                rte_mbuf** pkts, uint16_t n, uint64_t now) noexcept {
  if (n == 0) return;
  uint32_t dst[kBurst], hop[kBurst];
  for (uint16_t i = 0; i < n; ++i)
    dst[i] = rte_be_to_cpu_32(rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*)->dst_addr);
  rte_lpm_lookup_bulk(ctx.allowed_ips, dst, hop, n);
  FlowKey keys[kBurst];
  uint16_t bytes[kBurst];
  uint8_t flags[kBurst];
  uint32_t entries[kBurst];
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    // What wg_seal drops is no traffic of the flow's: no peer, no usable keypair, no endpoint.
    if (!(hop[i] & RTE_LPM_LOOKUP_SUCCESS)) [[unlikely]]
      continue;
    const PeerRuntime& peer = ctx.peers[hop[i] & 0xffffff];
    const Keypair* kp = peer.send_keypair.load(std::memory_order_acquire);
    if (kp == nullptr || now >= kp->reject_after_tsc ||
        !(peer.endpoint.load(std::memory_order_relaxed) & kEndpointValid)) [[unlikely]]
      continue;
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*);
    const Parsed p = parse(pkts[i]);
    FlowKey& key = keys[k];
    key.src_address = ip->dst_addr;
    key.src_port = p.dst_port;
    key.dst_address = ip->src_addr;
    key.dst_port = p.protocol == IPPROTO_ICMP ? 0 : p.src_port;
    key.protocol = p.protocol;
    key.peer_slot = hop[i] & 0xffffff;
    bytes[k] = p.bytes;
    flags[k++] = p.tcp_flags;
  }
  table.account_burst(keys, bytes, flags, k, FlowDirection::kIn, now, entries);
  for (uint16_t i = 0; i < k; ++i) {
    const uint32_t e = entries[i];
    if (e == FlowTable::kUntracked || table.has_post_nat(e)) [[likely]]
      continue;
    // A flow that began inbound (a reply to an endpoint-independent mapping): its public side
    // is the subscriber's mapping; routed mode has none (the source stays as it is).
    if (nat == nullptr) {
      table.set_post_nat(e, keys[i].src_address, keys[i].src_port);
    } else if (const nat::NatProto proto = nat_proto(static_cast<uint8_t>(keys[i].protocol));
               proto != nat::NatProto::kCount) {
      const auto t = nat->find_mapping(rte_be_to_cpu_32(keys[i].src_address),
                                       rte_be_to_cpu_16(keys[i].src_port), proto);
      if (t)
        table.set_post_nat(e, rte_cpu_to_be_32(t->public_address),
                           rte_cpu_to_be_16(t->public_port));
    }
  }
}

void note_source6(rte_mbuf* const* pkts, uint16_t n, Sources6& out) noexcept {
  for (uint16_t i = 0; i < n; ++i) {
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv6_hdr*);
    const Parsed p = parse6(pkts[i]);
    FlowKey6& k = out.key[i];
    __builtin_memcpy(k.src_address, ip->src_addr, 16);
    __builtin_memcpy(k.dst_address, ip->dst_addr, 16);
    k.src_port = p.src_port;
    k.dst_port = far_port6(p);
    k.peer_slot = meta(pkts[i])->peer_slot;
    k.protocol = p.protocol;
    out.pkt[i] = pkts[i];
    out.bytes[i] = p.bytes;
    out.tcp_flags[i] = p.tcp_flags;
  }
  out.n = n;
}

void account_out6(FlowTable6& table, const Sources6& sources, rte_mbuf* const* pkts, uint16_t n,
                  uint64_t now) noexcept {
  if (n == 0) return;
  FlowKey6 keys[kBurst];
  uint16_t bytes[kBurst];
  uint8_t flags[kBurst];
  uint32_t entries[kBurst];
  // pkts is in sources' order with some left out: one pass pairs them.
  uint16_t k = 0, j = 0;
  for (uint16_t i = 0; i < n; ++i) {
    while (j < sources.n && sources.pkt[j] != pkts[i]) ++j;
    if (j == sources.n) [[unlikely]]
      break;  // not noted (cannot happen in the graph): left uncounted rather than misfiled
    keys[k] = sources.key[j];
    bytes[k] = sources.bytes[j];
    flags[k++] = sources.tcp_flags[j++];
  }
  if (k == 0) [[unlikely]]
    return;
  table.account_burst(keys, bytes, flags, k, FlowDirection::kOut, now, entries);
  for (uint16_t i = 0; i < k; ++i) {
    const uint32_t e = entries[i];
    if (e == FlowTable6::kUntracked || table.has_post_nat(e)) [[likely]]
      continue;
    // A flow's first packet: its translated source, from the rewritten header.
    FlowTable6::Address a;
    __builtin_memcpy(a.bytes, rte_pktmbuf_mtod(pkts[i], const rte_ipv6_hdr*)->src_addr, 16);
    table.set_post_nat(e, a, parse6(pkts[i]).src_port);
  }
}

void account_in6(FlowTable6& table, const nat::Nat66Worker* nat66, const DataplaneContext& ctx,
                 rte_mbuf* const* pkts, uint16_t n, uint64_t now) noexcept {
  if (n == 0) return;
  const rte_lpm6* lpm6 = ctx.allowed_ips6.load(std::memory_order_acquire);
  if (lpm6 == nullptr) return;  // no IPv6 peer: wg_seal drops them all
  uint8_t dst[kBurst][RTE_LPM6_IPV6_ADDR_SIZE];
  int32_t hop[kBurst];
  for (uint16_t i = 0; i < n; ++i)
    __builtin_memcpy(dst[i], rte_pktmbuf_mtod(pkts[i], const rte_ipv6_hdr*)->dst_addr, 16);
  rte_lpm6_lookup_bulk_func(lpm6, dst, hop, n);
  FlowKey6 keys[kBurst];
  uint16_t bytes[kBurst];
  uint8_t flags[kBurst];
  uint32_t entries[kBurst];
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    // What wg_seal drops is no traffic of the flow's: no peer, no usable keypair, no endpoint.
    if (hop[i] < 0) [[unlikely]]
      continue;
    const auto slot = static_cast<uint32_t>(hop[i]) & 0xffffff;
    const PeerRuntime& peer = ctx.peers[slot];
    const Keypair* kp = peer.send_keypair.load(std::memory_order_acquire);
    if (kp == nullptr || now >= kp->reject_after_tsc ||
        !(peer.endpoint.load(std::memory_order_relaxed) & kEndpointValid)) [[unlikely]]
      continue;
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv6_hdr*);
    const Parsed p = parse6(pkts[i]);
    FlowKey6& key = keys[k];
    __builtin_memcpy(key.src_address, ip->dst_addr, 16);
    __builtin_memcpy(key.dst_address, ip->src_addr, 16);
    key.src_port = p.dst_port;
    key.dst_port = p.protocol == kIcmpv6 ? 0 : p.src_port;
    key.protocol = p.protocol;
    key.peer_slot = slot;
    bytes[k] = p.bytes;
    flags[k++] = p.tcp_flags;
  }
  table.account_burst(keys, bytes, flags, k, FlowDirection::kIn, now, entries);
  for (uint16_t i = 0; i < k; ++i) {
    const uint32_t e = entries[i];
    if (e == FlowTable6::kUntracked || table.has_post_nat(e)) [[likely]]
      continue;
    // A flow that began inbound: NAT66 has the subscriber's mapping (its public address and
    // port); NPTv6 maps the address one to one (the port stays); routed, the source is as it is.
    FlowTable6::Address a;
    if (nat66 != nullptr) {
      const nat::NatProto proto = keys[i].protocol == kIcmpv6
                                      ? nat::NatProto::kIcmp
                                      : nat_proto(static_cast<uint8_t>(keys[i].protocol));
      if (proto == nat::NatProto::kCount) continue;
      const auto t = nat66->find_mapping(nat::Ipv6Address::from_bytes(keys[i].src_address),
                                         rte_be_to_cpu_16(keys[i].src_port), proto);
      if (!t) continue;
      t->public_address.to_bytes(a.bytes);
      table.set_post_nat(e, a, rte_cpu_to_be_16(t->public_port));
      continue;
    }
    __builtin_memcpy(a.bytes, keys[i].src_address, 16);
    if (ctx.nptv6.on() && ctx.nptv6.to_outside(a.bytes) != Nptv6::Result::kTranslated) continue;
    table.set_post_nat(e, a, keys[i].src_port);
  }
}

}  // namespace exitgw::dp::flow
