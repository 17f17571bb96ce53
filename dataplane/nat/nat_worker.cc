// NatCore (NAT44 and NAT66): its tables, construction, inspection, events and subscriber removal.
// The translation paths are nat_in2out.cc and nat_out2in.cc; allocation is nat_alloc.cc.
//
// Tables (all allocated in the constructor, sized from max_sessions; nothing per packet):
//  - Session (NAT44 32 B, NAT66 48 B): one per (mapping, remote address, remote port); TCP
//    state, last-seen second, wheel links, links in its mapping's list.
//  - Mapping (NAT44 32 B, NAT66 56 B): one per (subscriber address, port, protocol) -> (public
//  address, port):
//    endpoint-independent mapping (RFC 4787 REQ-1). Lives while it has sessions.
//  - Three BucketIndex hashes (~11.4 B per entry each): mapping by inside key, mapping by
//    outside key, session by (mapping, remote). A packet costs two lookups either way.
//  - Subscriber: paired public address, its blocks, session count. Block: owner and use
//    count, plus one bit per port per protocol (bitmaps for the worker's whole slice).
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

template <class F>
NatCore<F>::NatCore(const NatConfig& config, unsigned worker_index, NatEventRing* events)
    : config_(config),
      worker_(worker_index),
      events_(events),
      cap_(config.max_sessions),
      sub_cap_(config.effective_max_subscribers()),
      block_size_(config.effective_block_size()),
      blocks_per_slice_(config.blocks_per_slice()),
      n_addresses_(config.pool_size()),
      words_per_block_((config.effective_block_size() + 63) / 64),
      slice_first_(config.slice_first(worker_index)),
      timeout_{config.timeouts.udp, config.timeouts.tcp_established, config.timeouts.tcp_transitory,
               config.timeouts.icmp},
      seed_(hash_words(config.hash_seed, worker_index, 0x5eed5eed5eed5eedull)),
      sessions_(cap_),
      mappings_(cap_),
      subs_(sub_cap_),
      blocks_(new Block[uint64_t{n_addresses_} * blocks_per_slice_]),
      port_bits_(uint64_t{n_addresses_} * blocks_per_slice_ * 3 * words_per_block_),
      free_blocks_(new uint32_t[uint64_t{n_addresses_} * blocks_per_slice_]),
      n_free_blocks_(new uint32_t[n_addresses_]),
      exhaust_reported_(new uint8_t[n_addresses_]()),
      frags_(new FragEntry[((config.fragment_entries + 3) / 4) * 4]),
      n_frag_sets_((config.fragment_entries + 3) / 4),
      map_in_(cap_),
      map_out_(cap_),
      session_index_(cap_),
      sub_index_(sub_cap_),
      wheel_heads_(new Link[kWheelSlots + 1]) {
  // The NAT44 memory budget (<128 B per session at 1M) relies on these; NAT66 records carry
  // three 16-byte addresses where NAT44 has three 4-byte ones.
  if constexpr (F::kFamily == NatFamily::kIpv4)
    static_assert(sizeof(Session) == 32 && sizeof(Mapping) == 32 && sizeof(FragEntry) == 28);
  else
    static_assert(sizeof(Session) == 48 && sizeof(Mapping) == 56 && sizeof(FragEntry) == 80);
  counters_.blocks_by_address.reset(new Gauge[n_addresses_]);
  for (uint32_t i = 0; i < cap_; ++i) {
    sessions_[i].wheel.next = i + 1 < cap_ ? i + 1 : kNone;
    mappings_[i].next_free = i + 1 < cap_ ? i + 1 : kNone;
  }
  free_session_ = free_mapping_ = 0;
  for (uint32_t i = 0; i < sub_cap_; ++i) {
    subs_[i].next_free = i + 1 < sub_cap_ ? i + 1 : kNone;
    subs_[i].flags = 0;
  }
  free_sub_ = 0;
  const uint64_t n_blocks = uint64_t{n_addresses_} * blocks_per_slice_;
  uint64_t rng = seed_ | 1;
  for (uint32_t a = 0; a < n_addresses_; ++a) {
    uint32_t* stack = &free_blocks_[uint64_t{a} * blocks_per_slice_];
    for (uint32_t k = 0; k < blocks_per_slice_; ++k) stack[k] = k;
    for (uint32_t k = blocks_per_slice_; k > 1; --k) {  // Fisher-Yates with xorshift
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      std::swap(stack[k - 1], stack[rng % k]);
    }
    n_free_blocks_[a] = blocks_per_slice_;
  }
  // Bits past block_size in the last word are permanently "in use".
  const uint64_t tail = block_size_ % 64 ? ~uint64_t{0} << (block_size_ % 64) : 0;
  for (uint64_t b = 0; b < n_blocks; ++b) {
    blocks_[b] = Block{kNone, 0};
    for (unsigned p = 0; p < 3; ++p) {
      uint64_t* w = &port_bits_[(b * 3 + p) * words_per_block_];
      for (uint32_t i = 0; i < words_per_block_; ++i) w[i] = 0;
      w[words_per_block_ - 1] |= tail;
    }
  }
  for (uint32_t i = 0; i < n_frag_sets_ * 4; ++i) frags_[i].outbound = 0xff;
  for (uint32_t i = 0; i <= kWheelSlots; ++i) wheel_heads_[i] = Link{cap_ + i, cap_ + i};
}

template <class F>
NatCore<F>::~NatCore() = default;

template <class F>
size_t NatCore<F>::memory_bytes() const noexcept {
  const uint64_t n_blocks = uint64_t{n_addresses_} * blocks_per_slice_;
  return sizeof(*this) + sizeof(Session) * cap_ + sizeof(Mapping) * cap_ +
         sizeof(Subscriber) * sub_cap_ + sizeof(Block) * n_blocks +
         sizeof(uint64_t) * n_blocks * 3 * words_per_block_ + sizeof(uint32_t) * n_blocks +
         (sizeof(uint32_t) + 1) * n_addresses_ + sizeof(FragEntry) * n_frag_sets_ * 4 +
         map_in_.memory_bytes() + map_out_.memory_bytes() + session_index_.memory_bytes() +
         sub_index_.memory_bytes() + sizeof(Link) * (kWheelSlots + 1) +
         sizeof(Gauge) * n_addresses_;
}

template <class F>
uint32_t NatCore<F>::seconds(uint64_t now) noexcept {
  now_ = now;
  if (!started_) [[unlikely]] {
    started_ = true;
    epoch_ = now;
    next_second_tick_ = now + config_.ticks_per_second;
    return now_s_ = 0;
  }
  if (now >= next_second_tick_) {
    now_s_ = static_cast<uint32_t>((now - epoch_) / config_.ticks_per_second);
    next_second_tick_ = epoch_ + (uint64_t{now_s_} + 1) * config_.ticks_per_second;
  }
  return now_s_;
}

// ---- inspection (control, tests) ----------------------------------------------------------

template <class F>
std::optional<typename NatCore<F>::Translation> NatCore<F>::find_mapping(
    const Address& sub, uint16_t port, NatProto proto) const noexcept {
  const uint32_t m = find_mapping_in(sub, port, static_cast<uint8_t>(proto));
  if (m == kNone) return std::nullopt;
  return Translation{mappings_[m].pub_ip, mappings_[m].pub_port};
}

template <class F>
bool NatCore<F>::has_session(const Address& sub, uint16_t port, NatProto proto,
                             const Address& remote, uint16_t rport) const noexcept {
  const uint32_t m = find_mapping_in(sub, port, static_cast<uint8_t>(proto));
  return m != kNone && find_session(m, remote, rport) != kNone;
}

template <class F>
uint32_t NatCore<F>::subscriber_blocks(const Address& ip) const noexcept {
  const uint32_t i = find_subscriber(ip);
  return i == kNone ? 0 : subs_[i].n_blocks;
}

// ---- events and counters ----------------------------------------------------------------------

template <class F>
void NatCore<F>::event(NatEventType type, const Address& sub_ip, const Address& pub_ip,
                       uint16_t first, uint16_t last, uint64_t now) noexcept {
  if (!events_) return;
  NatEvent e{};
  e.time = now;
  F::event_addresses(e, sub_ip, pub_ip);
  e.port_first = first;
  e.port_last = last;
  e.type = type;
  e.worker = static_cast<uint8_t>(worker_);
  if (!events_->push(e)) [[unlikely]]
    counters_.events_lost.add();
}

template <class F>
void NatCore<F>::count_session(uint8_t proto, uint8_t cls, int64_t delta) noexcept {
  if (proto == 0)
    (cls == kClassTcpEstablished ? counters_.sessions_tcp_established
                                 : counters_.sessions_tcp_transitory)
        .add(delta);
  else if (proto == 1)
    counters_.sessions_udp.add(delta);
  else
    counters_.sessions_icmp.add(delta);
}

// ---- removal ----------------------------------------------------------------------------------

// One mapping the subscriber holds (its port bits name the public port), or kNone.
template <class F>
uint32_t NatCore<F>::any_mapping_of(uint32_t si) const noexcept {
  const Subscriber& s = subs_[si];
  const Address pub_ip = F::address(config_, s.address_index);
  // The last word's bits past the block are kept set (never free): not ports.
  const uint64_t tail = block_size_ % 64 ? ~uint64_t{0} << (block_size_ % 64) : 0;
  for (uint32_t i = 0; i < s.n_blocks; ++i) {
    const uint32_t b = s.blocks[i];
    const uint32_t first = slice_first_ + (b % blocks_per_slice_) * block_size_;
    for (uint8_t proto = 0; proto < 3; ++proto) {
      const uint64_t* w = &port_bits_[(uint64_t{b} * 3 + proto) * words_per_block_];
      for (uint32_t k = 0; k < words_per_block_; ++k) {
        const uint64_t used = k + 1 == words_per_block_ ? w[k] & ~tail : w[k];
        if (used == 0) continue;
        const auto port = static_cast<uint16_t>(first + k * 64 + __builtin_ctzll(used));
        return find_mapping_out(pub_ip, port, proto);
      }
    }
  }
  return kNone;
}

template <class F>
uint32_t NatCore<F>::remove_subscriber(uint32_t si) noexcept {
  const Address ip = subs_[si].ip;
  uint32_t freed = 0;
  // Deleting a mapping's last session deletes the mapping, its port, an emptied block (with
  // its release event) and finally the subscriber: rescan after each mapping.
  while ((subs_[si].flags & kSubscriberInUse) && subs_[si].ip == ip) {
    const uint32_t m = any_mapping_of(si);
    if (m == kNone) break;
    for (uint32_t n = mappings_[m].n_sessions; n > 0; --n) {
      delete_session(mappings_[m].sessions);
      ++freed;
    }
  }
  return freed;
}

template <class F>
uint32_t NatCore<F>::remove_subscribers(const Address& prefix, uint8_t len) noexcept {
  uint32_t freed = 0;
  if (len >= F::kBits) {
    const uint32_t si = find_subscriber(prefix);
    if (si != kNone) freed = remove_subscriber(si);
  } else {
    for (uint32_t si = 0; si < sub_cap_; ++si)
      if ((subs_[si].flags & kSubscriberInUse) && F::in_prefix(subs_[si].ip, prefix, len))
        freed += remove_subscriber(si);
  }
  counters_.sessions_removed.add(freed);
  return freed;
}

#define EXITGW_NAT_INSTANTIATE(F)                                                                 \
  template NatCore<F>::NatCore(const NatConfig&, unsigned, NatEventRing*);                        \
  template NatCore<F>::~NatCore();                                                                \
  template size_t NatCore<F>::memory_bytes() const noexcept;                                      \
  template uint32_t NatCore<F>::seconds(uint64_t) noexcept;                                       \
  template std::optional<NatCore<F>::Translation> NatCore<F>::find_mapping(                       \
      const F::Address&, uint16_t, NatProto) const noexcept;                                      \
  template bool NatCore<F>::has_session(const F::Address&, uint16_t, NatProto, const F::Address&, \
                                        uint16_t) const noexcept;                                 \
  template uint32_t NatCore<F>::subscriber_blocks(const F::Address&) const noexcept;              \
  template void NatCore<F>::event(NatEventType, const F::Address&, const F::Address&, uint16_t,   \
                                  uint16_t, uint64_t) noexcept;                                   \
  template void NatCore<F>::count_session(uint8_t, uint8_t, int64_t) noexcept;                    \
  template uint32_t NatCore<F>::any_mapping_of(uint32_t) const noexcept;                          \
  template uint32_t NatCore<F>::remove_subscriber(uint32_t) noexcept;                             \
  template uint32_t NatCore<F>::remove_subscribers(const F::Address&, uint8_t) noexcept;
EXITGW_NAT_INSTANTIATE(Nat44)
EXITGW_NAT_INSTANTIATE(Nat66)
#undef EXITGW_NAT_INSTANTIATE

}  // namespace exitgw::dp::nat
