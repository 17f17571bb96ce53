// NAT of fragments, both directions.
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

namespace {
inline uint64_t frag_hash(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto, bool out,
                          uint64_t seed) {
  return hash_words(uint64_t{src} << 32 | dst, uint64_t{id} << 16 | proto << 1 | out, seed);
}
}  // namespace

void NatWorker::fragment_record(const Packet& p, bool outbound, uint32_t src, uint32_t dst,
                                NatVerdict v, uint32_t now_s) noexcept {
  const uint16_t id = ld16(p.base + 4);
  const uint64_t h = frag_hash(src, dst, id, p.proto, outbound, seed_);
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
                      v,
                      {}};
}

NatVerdict NatWorker::fragment_follow(Packet& p, bool outbound, uint32_t now_s,
                                      NatDrop* why) noexcept {
  const uint16_t id = ld16(p.base + 4);
  const uint64_t h = frag_hash(p.src, p.dst, id, p.proto, outbound, seed_);
  FragEntry* set = &frags_[((h >> 32) * n_frag_sets_ >> 32) * 4];
  for (unsigned i = 0; i < 4; ++i) {
    const FragEntry& f = set[i];
    if (f.outbound == outbound && f.src == p.src && f.dst == p.dst && f.id == id &&
        f.proto == p.proto && f.expires > now_s) {
      if (f.new_src != p.src) rewrite(p.base + 12, f.new_src, p.base + 10, nullptr, 0, nullptr, 2);
      if (f.new_dst != p.dst) rewrite(p.base + 16, f.new_dst, p.base + 10, nullptr, 0, nullptr, 2);
      counters_.fragments_followed.add();
      return f.verdict;
    }
  }
  *why = NatDrop::kFragmentNoState;
  return NatVerdict::kDrop;
}

}  // namespace exitgw::dp::nat
