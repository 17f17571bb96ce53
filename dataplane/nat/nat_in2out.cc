// NAT in2out: subscriber -> internet, one packet or a burst (source translation, hairpin).
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

template <class F>
NatVerdict NatCore<F>::out(Header* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p;
  const bool parsed = parse(ip, len, p, why);
  return out_parsed(p, parsed, now_s, why);
}

template <class F>
NatVerdict NatCore<F>::out_parsed(Packet& p, bool parsed, uint32_t now_s, NatDrop* why) noexcept {
  NatVerdict v;
  if (!parsed) [[unlikely]] {
    v = NatVerdict::kDrop;
  } else if (p.non_first) [[unlikely]] {
    v = fragment_follow(p, true, now_s, why);
  } else {
    const Address src = p.src, dst = p.dst;
    v = p.proto == 2 && F::is_error(p.icmp_type) ? icmp_error(p, true, why)
                                                 : translate_out(p, now_s, why);
    if (p.fragment && v != NatVerdict::kDrop) [[unlikely]]
      fragment_record(p, true, src, dst, v, now_s);
  }
  if (v == NatVerdict::kDrop) [[unlikely]] {
    counters_.drop(*why);
  } else {
    counters_.translated_out.add();
    if (v == NatVerdict::kHairpin) counters_.hairpinned.add();
  }
  return v;
}

template <class F>
NatVerdict NatCore<F>::translate_out(Packet& p, uint32_t now_s, NatDrop* why) noexcept {
  const uint8_t proto = p.proto;
  if (proto == 2 && !F::is_query_request(p.icmp_type)) [[unlikely]] {
    *why = NatDrop::kUnsupportedIcmp;  // a reply to a ping of a subscriber: nothing maps it in
    return NatVerdict::kDrop;
  }
  const bool hairpin = F::address_index(config_, p.dst) != kNone;
  if (hairpin && !config_.hairpinning) [[unlikely]] {
    *why = NatDrop::kHairpinUnsupported;
    return NatVerdict::kDrop;
  }
  uint32_t m = find_mapping_in(p.src, p.sport, proto);
  if (m == kNone) [[unlikely]] {
    const uint32_t si = get_subscriber(p.src, now_, why);
    if (si == kNone) return NatVerdict::kDrop;
    if (!session_admissible(si, F::address(config_, subs_[si].address_index), now_, why) ||
        (m = create_mapping(si, p.src, p.sport, proto, now_, why)) == kNone) {
      maybe_free_subscriber(si);
      return NatVerdict::kDrop;
    }
  }
  const uint16_t rport = proto == 2 ? 0 : p.dport;
  uint32_t s = find_session(m, p.dst, rport);
  if (s == kNone) [[unlikely]] {
    s = create_session(m, p.dst, rport, now_s, now_, why);
    if (s == kNone) {
      if (mappings_[m].n_sessions == 0) delete_mapping(m);
      return NatVerdict::kDrop;
    }
  }
  touch(s, now_s);
  if (proto == 0) tcp_update(s, p.tcp_flags, true);
  const Mapping& x = mappings_[m];
  rewrite_src(p, x.pub_ip, x.pub_port);
  if (!hairpin) [[likely]]
    return NatVerdict::kForward;
  // Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): the packet now comes from the sender's
  // public endpoint and goes in through the destination's mapping.
  if (config_.owner_worker(p.dport) != worker_) return NatVerdict::kHairpinHandoff;
  return translate_in(p, now_s, why) == NatVerdict::kDrop ? NatVerdict::kDrop
                                                          : NatVerdict::kHairpin;
}

template <class F>
void NatCore<F>::out_burst(Header* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                           NatVerdict* verdicts, NatDrop* why) noexcept {
  burst<true>(ips, lens, n, now, verdicts, why);
}

#define EXITGW_NAT_INSTANTIATE(F)                                                                  \
  template NatVerdict NatCore<F>::out(F::Header*, uint32_t, uint64_t, NatDrop*) noexcept;          \
  template NatVerdict NatCore<F>::out_parsed(NatCore<F>::Packet&, bool, uint32_t,                  \
                                             NatDrop*) noexcept;                                   \
  template NatVerdict NatCore<F>::translate_out(NatCore<F>::Packet&, uint32_t, NatDrop*) noexcept; \
  template void NatCore<F>::out_burst(F::Header* const*, const uint32_t*, uint16_t, uint64_t,      \
                                      NatVerdict*, NatDrop*) noexcept;
EXITGW_NAT_INSTANTIATE(Nat44)
EXITGW_NAT_INSTANTIATE(Nat66)
#undef EXITGW_NAT_INSTANTIATE

}  // namespace exitgw::dp::nat
