// NAT's shallow virtual reassembly (as VPP's): non-first IPv4 fragments (and IPv6 ones, by their
// Fragment header) carry no port, so a
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
#include <cstring>

#include "common/drop_reason.h"
#include "dataplane/ipv6_walk.h"

namespace exitgw::dp {

// The methods that may drop take the sink as a template parameter (the Worker, in practice:
// anything with drop(rte_mbuf*, DropReason)), so this header needs nothing of the worker's.
class FragmentPark {
 public:
  struct Key {
    uint32_t src, dst;  // as on the wire (IPv4; 0 for IPv6)
    uint16_t id;        // IPv4's identification
    uint8_t proto;      // IPv4's protocol, IPv6's Fragment header next header
    uint8_t inbound;
    // No default initialisers: a burst's FirstFragments holds kBurst keys and must cost
    // nothing until used; aggregate initialisation (key_of) zeroes what it does not name.
    uint32_t id6;               // IPv6: the Fragment header's identification
    uint64_t src6[2], dst6[2];  // IPv6: the addresses as on the wire
    bool operator==(const Key&) const = default;
    // Zero for IPv4, so IPv4 keys hash as they always did.
    uint64_t fold6() const noexcept {
      return (src6[0] ^ src6[1] * 0x9e3779b97f4a7c15ull ^ dst6[0] * 0xc2b2ae3d27d4eb4full ^
              dst6[1] * 0x165667b19e3779f9ull ^ id6) *
             0xff51afd7ed558ccdull;
    }
  };
  // An IPv6 packet's fragment facts: whether it is a fragment, whether it is the first
  // (offset 0, more to come), and its key. False: no Fragment header, an atomic fragment, or
  // malformed.
  struct Fragment6 {
    Key key;
    bool first;
  };
  static constexpr unsigned kSets = 16, kWays = 4, kHeld = 8;
  static constexpr uint8_t kNoOwner = 0xff;

  static Key key_of(const rte_ipv4_hdr* ip, bool inbound) noexcept {
    return Key{ip->src_addr, ip->dst_addr, ip->packet_id, ip->next_proto_id,
               static_cast<uint8_t>(inbound)};
  }
  // `len` bytes of an IPv6 packet; the common upper layers directly after the header cost one
  // compare, anything else the bounded extension-header walk.
  static bool fragment6(const rte_ipv6_hdr* ip, uint32_t len, bool inbound,
                        Fragment6* out) noexcept {
    if (ip->proto == IPPROTO_TCP || ip->proto == IPPROTO_UDP || ip->proto == kIcmpv6) [[likely]]
      return false;
    const uint32_t payload = rte_be_to_cpu_16(ip->payload_len);
    Ipv6Layers l;
    // An atomic fragment (offset 0, no more to come; RFC 6946) is a whole datagram: as IPv4's
    // fragment() says of a packet with neither, not a fragment.
    if (len < sizeof(rte_ipv6_hdr) || sizeof(rte_ipv6_hdr) + payload > len ||
        ipv6_walk(ip, payload, l) != DropReason::kCount || !l.fragment || l.frag_field == 0)
      return false;
    out->key = Key{0, 0, 0, l.proto, static_cast<uint8_t>(inbound)};
    out->key.id6 = l.frag_id;
    std::memcpy(out->key.src6, ip->src_addr, 16);
    std::memcpy(out->key.dst6, ip->dst_addr, 16);
    out->first = l.frag_field == 1;  // offset 0, M set
    return true;
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
                       (uint64_t{k.id} << 8 | k.proto) * 0xc2b2ae3d27d4eb4full ^ k.fold6();
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
    return static_cast<unsigned>(((uint64_t{k.src} * 0x9e3779b1u) ^ k.dst ^ (uint32_t{k.id} << 16) ^
                                  k.proto ^ (k.fold6() >> 32)) *
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
