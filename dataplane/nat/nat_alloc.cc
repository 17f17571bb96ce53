// NAT allocation: subscribers, port blocks and ports, mappings and sessions.
//
// Port choice inside a subscriber's blocks (RFC 4787 REQ-3/4, RFC 6888 REQ-3/4 allow it):
//  1. the same offset: the subscriber's own port if it falls in the block (preservation),
//     otherwise the port with the same position modulo block_size;
//  2. any free port of the same parity (REQ-4 parity preservation);
//  3. any free port in a block it holds;
//  4. a new block (up to max_blocks_per_subscriber) from its paired address's free blocks,
//     which are kept shuffled so a subscriber's block cannot be predicted.
//  New blocks come only after the held ones are full, so logs stay per block.
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

// ---- subscribers, blocks and ports ------------------------------------------------------------

template <class F>
uint32_t NatCore<F>::get_subscriber(const Address& ip, uint64_t now, NatDrop* why) noexcept {
  uint32_t i = find_subscriber(ip);
  if (i != kNone) return i;
  uint32_t det_address = 0;
  uint16_t det_first = 0;
  const bool deterministic = config_.mode == NatMode::kDeterministic;
  if (deterministic && !F::det_forward(config_, ip, worker_, &det_address, &det_first)) {
    *why = NatDrop::kNotDeterministicSubscriber;
    return kNone;
  }
  if (free_sub_ == kNone) [[unlikely]] {
    *why = NatDrop::kTableFull;
    return kNone;
  }
  i = free_sub_;
  Subscriber& s = subs_[i];
  free_sub_ = s.next_free;
  s.ip = ip;
  s.n_sessions = 0;
  s.n_blocks = 0;
  s.flags = kSubscriberInUse;
  if (deterministic) {
    s.address_index = det_address;
    const uint32_t k = (det_first - slice_first_) / block_size_;
    s.blocks[0] = s.address_index * blocks_per_slice_ + k;
    s.n_blocks = 1;
    blocks_[s.blocks[0]].owner = i;
  } else {
    s.address_index = F::paired_address_index(config_, ip);
  }
  sub_index_.insert(F::subscriber_hash(ip, seed_), i);
  ++n_subscribers_;
  counters_.subscribers.add(1);
  (void)now;
  return i;
}

template <class F>
bool NatCore<F>::take_port_in_block(uint32_t block, uint8_t proto, uint16_t want, int mode,
                                    uint16_t* port) noexcept {
  uint64_t* w = &port_bits_[(uint64_t{block} * 3 + proto) * words_per_block_];
  const uint32_t first = slice_first_ + (block % blocks_per_slice_) * block_size_;
  const uint32_t offset =
      static_cast<uint32_t>(((int64_t{want} - first) % block_size_ + block_size_) % block_size_);
  uint32_t bit = kNone;
  if (mode == 0) {
    if (!(w[offset / 64] >> (offset % 64) & 1)) bit = offset;
  } else {
    // Parity of the port, expressed as parity of the offset within the block.
    const uint64_t mask = mode == 2                   ? ~uint64_t{0}
                          : ((want ^ first) & 1) == 0 ? 0x5555555555555555ull
                                                      : 0xaaaaaaaaaaaaaaaaull;
    const uint32_t start = offset / 64;
    for (uint32_t i = 0; i < words_per_block_; ++i) {
      const uint32_t wi = (start + i) % words_per_block_;
      const uint64_t free_bits = ~w[wi] & mask;
      if (free_bits) {
        bit = wi * 64 + static_cast<uint32_t>(__builtin_ctzll(free_bits));
        break;
      }
    }
  }
  if (bit == kNone) return false;
  w[bit / 64] |= uint64_t{1} << (bit % 64);
  ++blocks_[block].used;
  *port = static_cast<uint16_t>(first + bit);
  return true;
}

template <class F>
uint32_t NatCore<F>::new_block(NatCore<F>::Subscriber& s, uint32_t si, uint64_t now,
                               NatDrop* why) noexcept {
  const uint32_t a = s.address_index;
  if (n_free_blocks_[a] == 0) {
    // Paired pooling: never another address. Reported once until a block frees up here.
    *why = NatDrop::kPoolExhausted;
    if (!exhaust_reported_[a]) {
      exhaust_reported_[a] = 1;
      counters_.pool_exhausted.add();
      event(NatEventType::kPoolExhausted, s.ip, F::address(config_, a), 0, 0, now);
    }
    return kNone;
  }
  const uint32_t k = free_blocks_[uint64_t{a} * blocks_per_slice_ + --n_free_blocks_[a]];
  const uint32_t b = a * blocks_per_slice_ + k;
  blocks_[b] = Block{si, 0};
  s.blocks[s.n_blocks++] = b;
  counters_.blocks_allocated.add();
  counters_.blocks_in_use.add(1);
  counters_.blocks_by_address[a].add(1);
  const uint32_t first = slice_first_ + k * block_size_;
  event(NatEventType::kBlockAllocated, s.ip, F::address(config_, a), static_cast<uint16_t>(first),
        static_cast<uint16_t>(first + block_size_ - 1), now);
  return b;
}

template <class F>
bool NatCore<F>::allocate_port(NatCore<F>::Subscriber& s, uint32_t si, uint8_t proto, uint16_t want,
                               uint64_t now, uint16_t* port, NatDrop* why) noexcept {
  for (int mode = 0; mode < 3; ++mode)
    for (unsigned i = 0; i < s.n_blocks; ++i)
      if (take_port_in_block(s.blocks[i], proto, want, mode, port)) return true;
  if (config_.mode == NatMode::kPortBlock && s.n_blocks < config_.max_blocks_per_subscriber) {
    const uint32_t b = new_block(s, si, now, why);
    if (b == kNone) return false;
    for (int mode = 0; mode < 3; ++mode)
      if (take_port_in_block(b, proto, want, mode, port)) return true;
  }
  *why = NatDrop::kPortLimit;
  if (!(s.flags & kPortLimitReported)) {
    s.flags |= kPortLimitReported;
    event(NatEventType::kPortLimit, s.ip, F::address(config_, s.address_index), 0, 0, now);
  }
  return false;
}

template <class F>
void NatCore<F>::release_block(uint32_t si, uint32_t slot) noexcept {
  Subscriber& s = subs_[si];
  const uint32_t b = s.blocks[slot];
  blocks_[b].owner = kNone;
  if (config_.mode == NatMode::kPortBlock) {
    const uint32_t a = b / blocks_per_slice_, k = b % blocks_per_slice_;
    free_blocks_[uint64_t{a} * blocks_per_slice_ + n_free_blocks_[a]++] = k;
    exhaust_reported_[a] = 0;
    counters_.blocks_released.add();
    counters_.blocks_in_use.add(-1);
    counters_.blocks_by_address[a].add(-1);
    const uint32_t first = slice_first_ + k * block_size_;
    event(NatEventType::kBlockReleased, s.ip, F::address(config_, a), static_cast<uint16_t>(first),
          static_cast<uint16_t>(first + block_size_ - 1), now_);
  }
  s.blocks[slot] = s.blocks[--s.n_blocks];
  s.flags &= static_cast<uint8_t>(~kPortLimitReported);
}

// A subscriber lives while it holds ports: in port-block mode while it has a block, in
// deterministic mode while its fixed range has a port in use.
template <class F>
void NatCore<F>::maybe_free_subscriber(uint32_t si) noexcept {
  Subscriber& s = subs_[si];
  if (config_.mode == NatMode::kDeterministic) {
    if (blocks_[s.blocks[0]].used != 0) return;
    blocks_[s.blocks[0]].owner = kNone;
    s.n_blocks = 0;
  } else if (s.n_blocks != 0) {
    return;
  }
  sub_index_.erase(F::subscriber_hash(s.ip, seed_), si);
  s.flags = 0;
  s.next_free = free_sub_;
  free_sub_ = si;
  --n_subscribers_;
  counters_.subscribers.add(-1);
}

// Whether one more session may be created for the subscriber (table room, per-subscriber
// limit); reports the limit once per episode.
template <class F>
bool NatCore<F>::session_admissible(uint32_t si, const Address& pub_ip, uint64_t now,
                                    NatDrop* why) noexcept {
  Subscriber& sub = subs_[si];
  if (free_session_ == kNone) [[unlikely]] {
    *why = NatDrop::kTableFull;
    return false;
  }
  if (sub.n_sessions >= config_.max_sessions_per_subscriber) [[unlikely]] {
    *why = NatDrop::kSessionLimit;
    if (!(sub.flags & kLimitReported)) {
      sub.flags |= kLimitReported;
      event(NatEventType::kSessionLimit, sub.ip, pub_ip, 0, 0, now);
    }
    return false;
  }
  return true;
}

// ---- mappings and sessions --------------------------------------------------------------------

template <class F>
uint32_t NatCore<F>::create_mapping(uint32_t si, const Address& sub_ip, uint16_t sub_port,
                                    uint8_t proto, uint64_t now, NatDrop* why) noexcept {
  Subscriber& s = subs_[si];
  uint16_t port;
  if (!allocate_port(s, si, proto, sub_port, now, &port, why)) return kNone;
  const uint32_t m = free_mapping_;  // never empty: mappings <= sessions < capacity here
  free_mapping_ = mappings_[m].next_free;
  Mapping& x = mappings_[m];
  x.sub_ip = sub_ip;
  x.sub_port = sub_port;
  x.pub_ip = F::address(config_, s.address_index);
  x.pub_port = port;
  x.proto = proto;
  x.n_sessions = 0;
  x.subscriber = si;
  x.sessions = kNone;
  map_in_.insert(F::key_hash(sub_ip, sub_port, proto, 1, seed_), m);
  map_out_.insert(F::key_hash(x.pub_ip, port, proto, 2, seed_), m);
  ++n_mappings_;
  counters_.mappings.add(1);
  return m;
}

template <class F>
void NatCore<F>::delete_mapping(uint32_t m) noexcept {
  Mapping& x = mappings_[m];
  map_in_.erase(F::key_hash(x.sub_ip, x.sub_port, x.proto, 1, seed_), m);
  map_out_.erase(F::key_hash(x.pub_ip, x.pub_port, x.proto, 2, seed_), m);
  const uint32_t si = x.subscriber;
  Subscriber& s = subs_[si];
  const uint32_t off = x.pub_port - slice_first_;
  const uint32_t b = s.address_index * blocks_per_slice_ + off / block_size_;
  const uint32_t bit = off % block_size_;
  port_bits_[(uint64_t{b} * 3 + x.proto) * words_per_block_ + bit / 64] &=
      ~(uint64_t{1} << (bit % 64));
  s.flags &= static_cast<uint8_t>(~kPortLimitReported);
  if (--blocks_[b].used == 0) {
    if (config_.mode == NatMode::kPortBlock) {
      for (uint32_t i = 0; i < s.n_blocks; ++i)
        if (s.blocks[i] == b) {
          release_block(si, i);
          break;
        }
    }
    maybe_free_subscriber(si);
  }
  x.next_free = free_mapping_;
  free_mapping_ = m;
  --n_mappings_;
  counters_.mappings.add(-1);
}

template <class F>
uint32_t NatCore<F>::create_session(uint32_t m, const Address& remote, uint16_t rport,
                                    uint32_t now_s, uint64_t now, NatDrop* why) noexcept {
  Mapping& x = mappings_[m];
  Subscriber& sub = subs_[x.subscriber];
  if (!session_admissible(x.subscriber, x.pub_ip, now, why)) return kNone;
  const uint32_t s = free_session_;
  Session& e = sessions_[s];
  free_session_ = e.wheel.next;
  e.mapping = m;
  e.remote = remote;
  e.remote_port = rport;
  e.tcp_state = 0;
  e.timeout_class = x.proto == 0 ? kClassTcpTransitory : x.proto == 1 ? kClassUdp : kClassIcmp;
  e.last_seen = now_s;
  e.in_mapping = Link{kNone, x.sessions};
  if (x.sessions != kNone) sessions_[x.sessions].in_mapping.prev = s;
  x.sessions = s;
  ++x.n_sessions;
  ++sub.n_sessions;
  session_index_.insert(F::session_hash(m, remote, rport, seed_), s);
  wheel_schedule(s);
  ++n_sessions_;
  count_session(x.proto, e.timeout_class, 1);
  counters_.sessions_created.add();
  return s;
}

template <class F>
void NatCore<F>::delete_session(uint32_t s) noexcept {
  Session& e = sessions_[s];
  const uint32_t m = e.mapping;
  Mapping& x = mappings_[m];
  wheel_unlink(s);
  if (e.in_mapping.prev != kNone)
    sessions_[e.in_mapping.prev].in_mapping.next = e.in_mapping.next;
  else
    x.sessions = e.in_mapping.next;
  if (e.in_mapping.next != kNone) sessions_[e.in_mapping.next].in_mapping.prev = e.in_mapping.prev;
  session_index_.erase(F::session_hash(m, e.remote, e.remote_port, seed_), s);
  count_session(x.proto, e.timeout_class, -1);
  Subscriber& sub = subs_[x.subscriber];
  --sub.n_sessions;
  sub.flags &= static_cast<uint8_t>(~kLimitReported);
  e.wheel.next = free_session_;
  free_session_ = s;
  --n_sessions_;
  if (--x.n_sessions == 0) delete_mapping(m);
}

#define EXITGW_NAT_INSTANTIATE(F)                                                               \
  template uint32_t NatCore<F>::get_subscriber(const F::Address&, uint64_t, NatDrop*) noexcept; \
  template bool NatCore<F>::take_port_in_block(uint32_t, uint8_t, uint16_t, int,                \
                                               uint16_t*) noexcept;                             \
  template uint32_t NatCore<F>::new_block(NatCore<F>::Subscriber&, uint32_t, uint64_t,          \
                                          NatDrop*) noexcept;                                   \
  template bool NatCore<F>::allocate_port(NatCore<F>::Subscriber&, uint32_t, uint8_t, uint16_t, \
                                          uint64_t, uint16_t*, NatDrop*) noexcept;              \
  template void NatCore<F>::release_block(uint32_t, uint32_t) noexcept;                         \
  template void NatCore<F>::maybe_free_subscriber(uint32_t) noexcept;                           \
  template bool NatCore<F>::session_admissible(uint32_t, const F::Address&, uint64_t,           \
                                               NatDrop*) noexcept;                              \
  template uint32_t NatCore<F>::create_mapping(uint32_t, const F::Address&, uint16_t, uint8_t,  \
                                               uint64_t, NatDrop*) noexcept;                    \
  template void NatCore<F>::delete_mapping(uint32_t) noexcept;                                  \
  template uint32_t NatCore<F>::create_session(uint32_t, const F::Address&, uint16_t, uint32_t, \
                                               uint64_t, NatDrop*) noexcept;                    \
  template void NatCore<F>::delete_session(uint32_t) noexcept;
EXITGW_NAT_INSTANTIATE(Nat44)
EXITGW_NAT_INSTANTIATE(Nat66)
#undef EXITGW_NAT_INSTANTIATE

}  // namespace exitgw::dp::nat
