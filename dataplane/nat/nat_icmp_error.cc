// NAT of ICMP errors, both directions: the embedded packet is translated with the outer one.
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

// ICMP errors (RFC 5508 REQ-3/4): the embedded packet is the one the error is about; it is
// rewritten (address, port/id, its IP checksum, its L4 checksum if included) along with the
// outer header, and the outer ICMP checksum follows the change of the embedded bytes.
namespace {

template <class F>
struct Embedded {
  uint8_t* ip;
  uint32_t ihl;  // IPv6: the fixed header and its extension headers
  uint8_t* l4;
  uint32_t l4_avail;
  uint8_t proto;  // NatProto
  typename F::Address src, dst;
  uint16_t sport, dport;  // ICMP: the identifier in both
  uint8_t icmp_type;
};

// The quoted header (at e.ip, its fixed part present and of the right version) up to its L4,
// per family; false (with *why) if it cannot be translated.
bool parse_embedded_header(uint32_t icmp_len, Embedded<Nat44>& e, NatDrop* why) noexcept {
  e.ihl = (e.ip[0] & 0xf) * 4u;
  if (e.ihl < 20 || 8 + e.ihl + 8 > icmp_len) {  // RFC 792: the header and 8 bytes
    *why = NatDrop::kMalformed;
    return false;
  }
  if (be16(e.ip + 6) & 0x1fff) {  // a non-first fragment: no ports to translate by
    *why = NatDrop::kUnsupportedIcmp;
    return false;
  }
  const int8_t pi = proto_index<Nat44>(e.ip[9]);
  if (pi < 0) {
    *why = NatDrop::kUnsupportedProtocol;
    return false;
  }
  e.proto = static_cast<uint8_t>(pi);
  e.src = be32(e.ip + 12);
  e.dst = be32(e.ip + 16);
  return true;
}

// RFC 4443 2.4(c): the quote is as much of the packet as fits, so its payload length may
// exceed what is there; the walk is bounded by the bytes present.
bool parse_embedded_header(uint32_t icmp_len, Embedded<Nat66>& e, NatDrop* why) noexcept {
  Ipv6Layers layers;
  const uint32_t present = icmp_len - 8 - 40;
  if (ipv6_walk(reinterpret_cast<const rte_ipv6_hdr*>(e.ip), present, layers) !=
          DropReason::kCount ||
      8u + layers.l4_offset + 8 > icmp_len) {
    *why = NatDrop::kMalformed;
    return false;
  }
  if ((layers.frag_field & 0xfff8) != 0) {  // a non-first fragment: no ports to translate by
    *why = NatDrop::kUnsupportedIcmp;
    return false;
  }
  const int8_t pi = proto_index<Nat66>(layers.proto);
  if (pi < 0) {
    *why = NatDrop::kUnsupportedProtocol;
    return false;
  }
  e.ihl = layers.l4_offset;
  e.proto = static_cast<uint8_t>(pi);
  e.src = Ipv6Address::from_bytes(e.ip + 8);
  e.dst = Ipv6Address::from_bytes(e.ip + 24);
  return true;
}

template <class F>
bool parse_embedded(uint8_t* icmp, uint32_t icmp_len, Embedded<F>& e, NatDrop* why) noexcept {
  constexpr bool kV4 = F::kFamily == NatFamily::kIpv4;
  e.ip = icmp + 8;
  if (icmp_len < 8 + (kV4 ? 20u : 40u) || (e.ip[0] >> 4) != (kV4 ? 4 : 6)) {
    *why = NatDrop::kMalformed;
    return false;
  }
  if (!parse_embedded_header(icmp_len, e, why)) return false;
  e.l4 = e.ip + e.ihl;
  e.l4_avail = icmp_len - 8 - e.ihl;
  e.icmp_type = 0;
  if (e.proto == 2) {
    e.icmp_type = e.l4[0];
    e.sport = e.dport = be16(e.l4 + 4);
  } else {
    e.sport = be16(e.l4);
    e.dport = be16(e.l4 + 2);
  }
  return true;
}

// The embedded bytes whose sum the outer ICMP checksum must follow: the IP header and the
// L4 words we may touch (TCP's checksum sits at 16, present only in longer quotes).
template <class F>
uint32_t embedded_cover(const Embedded<F>& e) noexcept {
  return e.ihl + (e.proto == 0 && e.l4_avail >= 18 ? 18 : 8);
}

// Rewrites the embedded source (dst_side false) or destination, fixing its checksums.
template <class F>
void rewrite_embedded(Embedded<F>& e, bool dst_side, const typename F::Address& ip,
                      uint16_t port) noexcept {
  uint8_t* csum = nullptr;
  if (e.proto == 1 || e.proto == 2 || e.l4_avail >= 18) csum = e.l4 + kCsumOffset[e.proto];
  const unsigned port_off = dst_side ? kDstPortOffset[e.proto] : kSrcPortOffset[e.proto];
  F::rewrite_address(e.ip, dst_side ? F::kDstOffset : F::kSrcOffset, ip, e.l4 + port_off, port,
                     csum, e.proto);
}

}  // namespace

// Outbound, the embedded packet is one the subscriber received (remote -> its inside
// endpoint): the outer source and the embedded destination become the public endpoint.
// Inbound, it is one we sent (public endpoint -> remote): the outer destination and the
// embedded source go back to the subscriber. An outbound error for another subscriber's
// public address is hairpinned: translated out, then in through that subscriber's mapping.
// ICMPv6 (RFC 4443 2.3): the outer checksum also covers the pseudo-header, so the outer
// address change goes into it as well; Packet Too Big's MTU is left as it is.
template <class F>
NatVerdict NatCore<F>::icmp_error(Packet& p, bool outbound, NatDrop* why) noexcept {
  Embedded<F> e;
  if (!parse_embedded(p.l4, p.l4_len, e, why)) return NatVerdict::kDrop;
  const bool hairpin = outbound && F::address_index(config_, p.dst) != kNone;
  if (hairpin && !config_.hairpinning) {
    *why = NatDrop::kHairpinUnsupported;
    return NatVerdict::kDrop;
  }
  const Address ours = outbound ? e.dst : e.src;  // the embedded endpoint on our side
  const uint16_t our_port = outbound ? e.dport : e.sport;
  const Address remote = outbound ? e.src : e.dst;
  const uint16_t remote_port = e.proto == 2 ? 0 : outbound ? e.sport : e.dport;
  const bool query_ok =
      outbound ? F::is_query_reply(e.icmp_type) : F::is_query_request(e.icmp_type);
  if (!(ours == (outbound ? p.src : p.dst)) || (e.proto == 2 && !query_ok)) {
    *why = NatDrop::kNoMapping;
    return NatVerdict::kDrop;
  }
  const uint32_t m = outbound ? find_mapping_in(ours, our_port, e.proto)
                              : find_mapping_out(ours, our_port, e.proto);
  if (m == kNone || find_session(m, remote, remote_port) == kNone) {
    *why = NatDrop::kNoMapping;
    return NatVerdict::kDrop;
  }
  const Mapping& x = mappings_[m];
  const Address ip = outbound ? x.pub_ip : x.sub_ip;
  const uint16_t port = outbound ? x.pub_port : x.sub_port;
  const uint32_t cover = embedded_cover(e);
  const uint32_t before = csum_partial(e.ip, cover);
  rewrite_embedded(e, outbound, ip, port);
  st16(p.l4 + 2, csum_replace_sum(ld16(p.l4 + 2), before, csum_partial(e.ip, cover)));
  F::rewrite_address(p.base, outbound ? F::kSrcOffset : F::kDstOffset, ip, nullptr, 0,
                     F::kIcmpPseudoHeader ? p.l4 + 2 : nullptr, 2);
  (outbound ? p.src : p.dst) = ip;
  if (!hairpin) [[likely]]
    return NatVerdict::kForward;
  // The quoted packet came from the other subscriber's public endpoint: its owner by that port.
  if (config_.owner_worker(e.sport) != worker_) return NatVerdict::kHairpinHandoff;
  return icmp_error(p, false, why) == NatVerdict::kDrop ? NatVerdict::kDrop : NatVerdict::kHairpin;
}

template NatVerdict NatCore<Nat44>::icmp_error(NatCore<Nat44>::Packet&, bool, NatDrop*) noexcept;
template NatVerdict NatCore<Nat66>::icmp_error(NatCore<Nat66>::Packet&, bool, NatDrop*) noexcept;

}  // namespace exitgw::dp::nat
