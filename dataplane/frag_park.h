// NAT's shallow virtual reassembly (as VPP's): non-first IPv4 fragments carry no port, so a
// fragment that arrives before its datagram's first fragment is held here until the first one
// has passed, and, with several workers, every inbound fragment of a datagram first meets at
// one "home" worker, which learns from the first fragment which worker owns the datagram's
// NAT state and sends the others after it. Nothing is reassembled: fragments leave as they
// came, translated.
//
// Bounded: kSets x kWays datagrams, kHeld fragments each, per worker; a fragment that finds no
// room, or whose first fragment does not arrive within the NAT fragment timeout, is a counted
// drop. One worker owns its park (no sharing); lookups happen only for fragments.
#pragma once

#include <rte_ip.h>
#include <rte_mbuf.h>

#include <cstdint>

#include "common/drop_reason.h"

namespace exitgw::dp {

// The methods that may drop take the sink as a template parameter (the Worker, in practice:
// anything with drop(rte_mbuf*, DropReason)), so this header needs nothing of the worker's.
class FragmentPark {
 public:
  struct Key {
    uint32_t src, dst;  // as on the wire
    uint16_t id;
    uint8_t proto;
    uint8_t inbound;
    bool operator==(const Key&) const = default;
  };
  static constexpr unsigned kSets = 16, kWays = 4, kHeld = 8;
  static constexpr uint8_t kNoOwner = 0xff;

  static Key key_of(const rte_ipv4_hdr* ip, bool inbound) noexcept {
    return Key{ip->src_addr, ip->dst_addr, ip->packet_id, ip->next_proto_id,
               static_cast<uint8_t>(inbound)};
  }
  // Whether the packet is a fragment, and the first one (offset 0, more to come).
  static bool fragment(const rte_ipv4_hdr* ip) noexcept {
    return (ip->fragment_offset &
            rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0;
  }
  static bool first_fragment(const rte_ipv4_hdr* ip) noexcept {
    return (ip->fragment_offset &
            rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) ==
           rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG);
  }
  // The worker where a datagram's inbound fragments meet: the same answer on every worker.
  static unsigned home(const Key& k, unsigned n_workers) noexcept {
    const uint64_t h = (uint64_t{k.src} << 32 | k.dst) * 0x9e3779b97f4a7c15ull ^
                       (uint64_t{k.id} << 8 | k.proto) * 0xc2b2ae3d27d4eb4full;
    return static_cast<unsigned>(((h >> 32) * n_workers) >> 32);
  }

  void set_timeout(uint64_t ticks) noexcept { timeout_ = ticks; }
  bool holding() const noexcept { return n_held_ != 0; }

  // The worker translating the datagram, learned from its first fragment; kNoOwner if unknown.
  uint8_t owner(const Key& k, uint64_t now) const noexcept;
  // Records that k's first fragment went to `owner` (evicting the oldest datagram if the set
  // is full) and moves the fragments held for it to `out` in arrival order; returns how many.
  template <typename DropSink>
  unsigned learn(DropSink& w, const Key& k, uint8_t owner, uint64_t now, rte_mbuf** out) noexcept {
    Entry* e = find(k, now);
    if (e == nullptr) e = claim(w, k, now, true);
    e->owner = owner;
    e->expires = now + timeout_;
    const unsigned n = e->n;
    for (unsigned i = 0; i < n; ++i) out[i] = e->held[i];
    n_held_ -= n;
    e->n = 0;
    return n;
  }
  // The fragments held for k, now that its first fragment has passed on this worker.
  unsigned release(const Key& k, rte_mbuf** out) noexcept;
  // Holds m until its datagram's first fragment passes; false when there is no room (the
  // caller drops it).
  template <typename DropSink>
  bool hold(DropSink& w, const Key& k, rte_mbuf* m, uint64_t now) noexcept {
    Entry* e = find(k, now);
    if (e == nullptr && (e = claim(w, k, now, false)) == nullptr) return false;
    if (e->n == kHeld) return false;
    e->held[e->n++] = m;
    ++n_held_;
    return true;
  }
  // Drops (counted as fragment_timeout) what was held past the timeout; O(table), call only
  // while holding().
  template <typename DropSink>
  void expire(DropSink& w, uint64_t now) noexcept {
    for (Entry& e : entries_) {
      if (!e.used || e.expires > now) continue;
      drop_held(w, e, DropReason::kFragmentTimeout);
      e.used = false;
    }
  }

 private:
  struct Entry {
    Key key;
    uint64_t expires;
    uint8_t owner;
    uint8_t n;
    bool used;
    rte_mbuf* held[kHeld];
  };
  Entry* find(const Key& k, uint64_t now) noexcept;
  // A slot for a new datagram: a free or expired one, else (evict_live) the one closest to
  // expiry. Fragments still held in the slot taken are dropped and counted.
  template <typename DropSink>
  Entry* claim(DropSink& w, const Key& k, uint64_t now, bool evict_live) noexcept {
    Entry* victim = victim_for(k, now);
    const bool live = victim->used && victim->expires > now;
    if (live && !evict_live) return nullptr;
    if (victim->used)
      drop_held(w, *victim, live ? DropReason::kFragmentParkFull : DropReason::kFragmentTimeout);
    *victim = Entry{k, now + timeout_, kNoOwner, 0, true, {}};
    return victim;
  }
  Entry* victim_for(const Key& k, uint64_t now) noexcept;
  static unsigned set_of(const Key& k) noexcept {
    return static_cast<unsigned>(
               ((uint64_t{k.src} * 0x9e3779b1u) ^ k.dst ^ (uint32_t{k.id} << 16) ^ k.proto) *
                   0x85ebca6bu >>
               28) %
           kSets;
  }
  template <typename DropSink>
  void drop_held(DropSink& w, Entry& e, DropReason why) noexcept {
    for (unsigned i = 0; i < e.n; ++i) w.drop(e.held[i], why);
    n_held_ -= e.n;
    e.n = 0;
  }

  Entry entries_[kSets * kWays] = {};
  uint64_t timeout_ = 0;
  unsigned n_held_ = 0;
};

}  // namespace exitgw::dp
