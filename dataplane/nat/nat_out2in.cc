// NAT out2in: internet (or a hairpin hand-off) -> subscriber, one packet or a burst, and
// which worker an arriving packet belongs to.
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

template <class F>
NatVerdict NatCore<F>::in(Header* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p;
  const bool parsed = parse(ip, len, p, why);
  return in_parsed(p, parsed, now_s, why);
}

template <class F>
NatVerdict NatCore<F>::in_parsed(Packet& p, bool parsed, uint32_t now_s, NatDrop* why) noexcept {
  NatVerdict v;
  if (!parsed) [[unlikely]] {
    v = NatVerdict::kDrop;
  } else if (p.non_first) [[unlikely]] {
    v = fragment_follow(p, false, now_s, why);
  } else {
    const Address src = p.src, dst = p.dst;
    v = p.proto == 2 && F::is_error(p.icmp_type) ? icmp_error(p, false, why)
                                                 : translate_in(p, now_s, why);
    if (p.fragment && v != NatVerdict::kDrop) [[unlikely]]
      fragment_record(p, false, src, dst, v, now_s);
  }
  if (v == NatVerdict::kDrop) [[unlikely]]
    counters_.drop(*why);
  else
    counters_.translated_in.add();
  return v;
}

template <class F>
NatVerdict NatCore<F>::translate_in(Packet& p, uint32_t now_s, NatDrop* why) noexcept {
  const uint8_t proto = p.proto;
  if (proto == 2 && !F::is_query_reply(p.icmp_type)) [[unlikely]] {
    *why = NatDrop::kUnsupportedIcmp;  // pings to a public address are the gateway's to answer
    return NatVerdict::kDrop;
  }
  const uint32_t m = find_mapping_out(p.dst, p.dport, proto);
  if (m == kNone) [[unlikely]] {
    *why = NatDrop::kNoMapping;
    return NatVerdict::kDrop;
  }
  const uint16_t rport = proto == 2 ? 0 : p.sport;
  uint32_t s = find_session(m, p.src, rport);
  if (s == kNone) [[unlikely]] {
    if (config_.filtering == NatFiltering::kAddressDependent && !address_permitted(m, p.src)) {
      *why = NatDrop::kFiltered;
      return NatVerdict::kDrop;
    }
    s = create_session(m, p.src, rport, now_s, now_, why);
    if (s == kNone) return NatVerdict::kDrop;
  }
  touch(s, now_s);
  if (proto == 0) tcp_update(s, p.tcp_flags, false);
  const Mapping& x = mappings_[m];
  rewrite_dst(p, x.sub_ip, x.sub_port);
  return NatVerdict::kForward;
}

template <class F>
void NatCore<F>::in_burst(Header* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                          NatVerdict* verdicts, NatDrop* why) noexcept {
  burst<false>(ips, lens, n, now, verdicts, why);
}

// ---- steering ---------------------------------------------------------------------------------

namespace {

// The embedded packet's source port (or ICMP identifier) of an ICMP error's quote.
template <class F>
uint32_t quoted_owner(const NatConfig& config, const uint8_t* e, uint32_t avail) noexcept;

template <>
uint32_t quoted_owner<Nat44>(const NatConfig& config, const uint8_t* e, uint32_t avail) noexcept {
  if (avail < 20 + 8) return kNone;
  const uint32_t eihl = (e[0] & 0xf) * 4u;
  if (eihl < 20 || eihl + 8 > avail) return kNone;
  const uint8_t* el4 = e + eihl;
  return config.owner_worker(be16(el4 + (e[9] == Nat44::kIpProtoIcmp ? 4 : 0)));
}

template <>
uint32_t quoted_owner<Nat66>(const NatConfig& config, const uint8_t* e, uint32_t avail) noexcept {
  if (avail < 40 + 8) return kNone;
  Ipv6Layers layers;
  if (ipv6_walk(reinterpret_cast<const rte_ipv6_hdr*>(e), avail - 40, layers) !=
          DropReason::kCount ||
      (layers.frag_field & 0xfff8) != 0 || layers.l4_offset + 8u > avail)
    return kNone;
  const uint8_t* el4 = e + layers.l4_offset;
  return config.owner_worker(be16(el4 + (layers.proto == Nat66::kIpProtoIcmp ? 4 : 0)));
}

// The header up to L4: offset and length of L4 and its protocol; false for non-first
// fragments and anything malformed.
bool l4_of(const rte_ipv4_hdr* ip, uint32_t len, uint32_t* off, uint32_t* l4_len,
           uint8_t* proto) noexcept {
  const auto* b = reinterpret_cast<const uint8_t*>(ip);
  if (len < 20 || (b[0] >> 4) != 4) return false;
  const uint32_t ihl = (b[0] & 0xf) * 4u;
  const uint32_t total = be16(b + 2);
  if (ihl < 20 || total < ihl || total > len || (be16(b + 6) & 0x1fff)) return false;
  *off = ihl;
  *l4_len = total - ihl;
  *proto = b[9];
  return true;
}

bool l4_of(const rte_ipv6_hdr* ip, uint32_t len, uint32_t* off, uint32_t* l4_len,
           uint8_t* proto) noexcept {
  const auto* b = reinterpret_cast<const uint8_t*>(ip);
  if (len < 40 || (b[0] >> 4) != 6) return false;
  const uint32_t payload = be16(b + 4);
  if (40 + payload > len) return false;
  Ipv6Layers layers;
  if (ipv6_walk(ip, payload, layers) != DropReason::kCount || (layers.frag_field & 0xfff8) != 0)
    return false;
  *off = layers.l4_offset;
  *l4_len = 40 + payload - layers.l4_offset;
  *proto = layers.proto;
  return true;
}

template <class F>
uint32_t inbound_owner_of(const NatConfig& config, const typename F::Header* ip,
                          uint32_t len) noexcept {
  uint32_t off, l4_len;
  uint8_t proto;
  if (!l4_of(ip, len, &off, &l4_len, &proto)) return kNone;
  const uint8_t* l4 = reinterpret_cast<const uint8_t*>(ip) + off;
  if (proto == kIpProtoTcp || proto == kIpProtoUdp) {
    return l4_len >= 4 ? config.owner_worker(be16(l4 + 2)) : kNone;
  }
  if (proto != F::kIpProtoIcmp || l4_len < 8) return kNone;
  if (!F::is_error(l4[0])) return config.owner_worker(be16(l4 + 4));
  return quoted_owner<F>(config, l4 + 8, l4_len - 8);
}

}  // namespace

uint32_t inbound_owner(const NatConfig& config, const rte_ipv4_hdr* ip, uint32_t len) noexcept {
  return inbound_owner_of<Nat44>(config, ip, len);
}

uint32_t inbound_owner(const NatConfig& config, const rte_ipv6_hdr* ip, uint32_t len) noexcept {
  return inbound_owner_of<Nat66>(config, ip, len);
}

#define EXITGW_NAT_INSTANTIATE(F)                                                                 \
  template NatVerdict NatCore<F>::in(F::Header*, uint32_t, uint64_t, NatDrop*) noexcept;          \
  template NatVerdict NatCore<F>::in_parsed(NatCore<F>::Packet&, bool, uint32_t,                  \
                                            NatDrop*) noexcept;                                   \
  template NatVerdict NatCore<F>::translate_in(NatCore<F>::Packet&, uint32_t, NatDrop*) noexcept; \
  template void NatCore<F>::in_burst(F::Header* const*, const uint32_t*, uint16_t, uint64_t,      \
                                     NatVerdict*, NatDrop*) noexcept;
EXITGW_NAT_INSTANTIATE(Nat44)
EXITGW_NAT_INSTANTIATE(Nat66)
#undef EXITGW_NAT_INSTANTIATE

}  // namespace exitgw::dp::nat
