// NAT of fragments, both directions (IPv4 fragments and IPv6 Fragment headers alike).
//
// Fragments: the first fragment (it has the L4 header) is translated through the session
//  and its (src, dst, IP id, protocol) -> rewritten addresses kept in a 4-way set-associative
//  table that evicts the oldest; later fragments follow it. Non-first fragments arriving
//  before the first are dropped and counted (no buffering: bounded memory, no hold verdict).
//  With several workers, inbound non-first fragments carry no port to steer by; the caller
//  must send them to the worker that saw the first (VPP does shallow virtual reassembly
//  at the hand-off for this); inbound_owner() returns kNone for them.
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

// The datagram's identification: IPv4's header field, IPv6's Fragment header (kept by parse).
template <class F, class Packet>
inline typename F::FragId frag_id(const Packet& p) noexcept {
  if constexpr (F::kFamily == NatFamily::kIpv4)
    return ld16(p.base + 4);
  else
    return p.frag_id;
}

template <class F>
void NatCore<F>::fragment_record(const Packet& p, bool outbound, const Address& src,
                                 const Address& dst, NatVerdict v, uint32_t now_s) noexcept {
  const typename F::FragId id = frag_id<F>(p);
  const uint64_t h = F::frag_hash(src, dst, id, p.proto, outbound, seed_);
  FragEntry* set = &frags_[((h >> 32) * n_frag_sets_ >> 32) * 4];
  FragEntry* victim = &set[0];
  for (unsigned i = 0; i < 4; ++i) {
    FragEntry& f = set[i];
    if (f.outbound == outbound && f.src == src && f.dst == dst && f.id == id &&
        f.proto == p.proto) {
      victim = &f;
      break;
    }
    if (f.outbound == 0xff || f.expires <= now_s) {
      victim = &f;
    } else if (victim->outbound != 0xff && victim->expires > now_s && f.expires < victim->expires) {
      victim = &f;
    }
  }
  *victim = FragEntry{src,
                      dst,
                      id,
                      p.proto,
                      static_cast<uint8_t>(outbound),
                      p.src,
                      p.dst,
                      now_s + config_.fragment_timeout,
                      v};
}

// Later fragments carry no L4 header: only the addresses change (IPv4: with the header
// checksum; IPv6 has none, and the first fragment's L4 checksum already covers the new
// pseudo-header).
template <class F>
NatVerdict NatCore<F>::fragment_follow(Packet& p, bool outbound, uint32_t now_s,
                                       NatDrop* why) noexcept {
  const typename F::FragId id = frag_id<F>(p);
  const uint64_t h = F::frag_hash(p.src, p.dst, id, p.proto, outbound, seed_);
  FragEntry* set = &frags_[((h >> 32) * n_frag_sets_ >> 32) * 4];
  for (unsigned i = 0; i < 4; ++i) {
    const FragEntry& f = set[i];
    if (f.outbound == outbound && f.src == p.src && f.dst == p.dst && f.id == id &&
        f.proto == p.proto && f.expires > now_s) {
      if (!(f.new_src == p.src))
        F::rewrite_address(p.base, F::kSrcOffset, f.new_src, nullptr, 0, nullptr, 2);
      if (!(f.new_dst == p.dst))
        F::rewrite_address(p.base, F::kDstOffset, f.new_dst, nullptr, 0, nullptr, 2);
      counters_.fragments_followed.add();
      return f.verdict;
    }
  }
  *why = NatDrop::kFragmentNoState;
  return NatVerdict::kDrop;
}

#define EXITGW_NAT_INSTANTIATE(F)                                                               \
  template void NatCore<F>::fragment_record(const NatCore<F>::Packet&, bool, const F::Address&, \
                                            const F::Address&, NatVerdict, uint32_t) noexcept;  \
  template NatVerdict NatCore<F>::fragment_follow(NatCore<F>::Packet&, bool, uint32_t,          \
                                                  NatDrop*) noexcept;
EXITGW_NAT_INSTANTIATE(Nat44)
EXITGW_NAT_INSTANTIATE(Nat66)
#undef EXITGW_NAT_INSTANTIATE

}  // namespace exitgw::dp::nat
