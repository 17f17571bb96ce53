// The per-worker flow table: open addressing over a fixed pool of entries, a paced sweep.
#include "dataplane/flow/flow_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <random>

namespace exitgw::dp::flow {

namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpRst = 0x04;

uint32_t pow2_at_least(uint64_t n) {
  return static_cast<uint32_t>(std::bit_ceil(std::max<uint64_t>(n, 2)));
}

// Signed: a time taken on another lcore may be a few cycles ahead of `now`.
bool at_least(uint64_t now, uint64_t since, uint64_t span) {
  return static_cast<int64_t>(now - since) >= static_cast<int64_t>(span);
}

}  // namespace

FlowConfig FlowConfig::with_timeouts(uint32_t max_flows, double idle_s, double active_s,
                                     uint64_t ticks_per_second, uint8_t worker) {
  FlowConfig c;
  c.max_flows = std::max(1u, max_flows);
  const auto ticks = [&](double s) { return static_cast<uint64_t>(s * double(ticks_per_second)); };
  c.idle_ticks = ticks(idle_s);
  c.active_ticks = ticks(active_s);
  // A finished TCP flow still sees the last ACK (and maybe a retransmitted FIN) just after the
  // second FIN; waiting a moment keeps them in its record instead of starting a new flow.
  c.linger_ticks = std::min(c.idle_ticks, ticks(1.0));
  // Timeouts are honoured to within a quarter of the shorter one, at most a second late.
  c.sweep_period_ticks =
      std::max<uint64_t>(1, std::min({ticks(1.0), c.idle_ticks / 4, c.active_ticks / 4}));
  c.worker = worker;
  return c;
}

template <class Key>
BasicFlowTable<Key>::BasicFlowTable(const FlowConfig& config)
    : config_(config),
      mask_(pow2_at_least(uint64_t{std::max(1u, config.max_flows)} * 2) - 1),
      index_(size_t{mask_} + 1),
      entries_(std::max(1u, config.max_flows)),
      free_(std::max(1u, config.max_flows)),
      n_free_(std::max(1u, config.max_flows)),
      seed_((uint64_t{std::random_device{}()} << 32) | std::random_device{}()),
      ring_(pow2_at_least(config.ring_capacity)) {
  config_.max_flows = n_free_;
  if (config_.sweep_period_ticks == 0) config_.sweep_period_ticks = 1;
  // Lowest indices on top, so a lightly used table stays in a few lines.
  for (uint32_t i = 0; i < n_free_; ++i) free_[i] = n_free_ - 1 - i;
}

namespace {

// Word compares (the defaulted == goes field by field through the bit-fields): two for IPv4,
// five for IPv6, without a branch between them.
template <class Key>
inline bool same_key(const Key& a, const Key& b) noexcept {
  constexpr size_t kWords = sizeof(Key) / 8;
  uint64_t aw[kWords], bw[kWords];
  __builtin_memcpy(aw, &a, sizeof(Key));
  __builtin_memcpy(bw, &b, sizeof(Key));
  uint64_t diff = 0;
  for (size_t i = 0; i < kWords; ++i) diff |= aw[i] ^ bw[i];
  return diff == 0;
}

}  // namespace

template <class Key>
inline uint32_t BasicFlowTable<Key>::lookup_or_insert(const Key& key, uint32_t h) noexcept {
  uint32_t i = h & mask_;
  for (;;) {
    const Slot s = index_[i];
    if (s.entry == 0) break;
    if (s.hash == h && same_key(entries_[s.entry - 1].key, key)) [[likely]]
      return s.entry - 1;
    i = (i + 1) & mask_;
  }
  return insert(key, h, i);
}

// A new flow into the empty slot `i` its probe ended at.
template <class Key>
__attribute__((noinline)) uint32_t BasicFlowTable<Key>::insert(const Key& key, uint32_t h,
                                                               uint32_t i) noexcept {
  if (n_free_ == 0) [[unlikely]] {
    counters_.untracked.add();
    return kUntracked;
  }
  const uint32_t idx = free_[--n_free_];
  Entry& e = entries_[idx];
  e = Entry{};
  e.key = key;
  e.state = kUsed;
  index_[i] = Slot{h, idx + 1};
  ++n_used_;
  counters_.created.add();
  return idx;
}

template <class Key>
inline void BasicFlowTable<Key>::count(uint32_t idx, FlowDirection dir, uint32_t bytes,
                                       uint8_t tcp_flags, uint64_t now) noexcept {
  Entry& e = entries_[idx];
  if (e.first_tsc == 0) e.first_tsc = now;
  e.last_tsc = now;
  if (dir == FlowDirection::kOut) {
    ++e.tx_packets;
    e.tx_bytes += bytes;
  } else {
    ++e.rx_packets;
    e.rx_bytes += bytes;
  }
  if (tcp_flags) {
    e.tcp_flags |= tcp_flags;
    if (tcp_flags & kTcpFin) e.state |= dir == FlowDirection::kOut ? kFinOut : kFinIn;
    if ((tcp_flags & kTcpRst) || (e.state & (kFinOut | kFinIn)) == (kFinOut | kFinIn))
      e.state |= kFinished;
  }
}

template <class Key>
uint32_t BasicFlowTable<Key>::account(const Key& key, uint32_t h, FlowDirection dir, uint32_t bytes,
                                      uint8_t tcp_flags, uint64_t now) noexcept {
  const uint32_t idx = lookup_or_insert(key, h);
  if (idx == kUntracked) [[unlikely]]
    return kUntracked;
  count(idx, dir, bytes, tcp_flags, now);
  counters_.packets_counted.add();
  return idx;
}

template <class Key>
void BasicFlowTable<Key>::account_burst(const Key* keys, const uint16_t* bytes,
                                        const uint8_t* tcp_flags, uint16_t n, FlowDirection dir,
                                        uint64_t now, uint32_t* entries) noexcept {
  uint32_t h[kMaxBurst];
  // 1. Hash all, prefetch each home slot.
  for (uint16_t i = 0; i < n; ++i) {
    h[i] = hash(keys[i]);
    __builtin_prefetch(&index_[h[i] & mask_]);
  }
  // 2. The entry a home slot names is almost always the flow's own (at most half full, and
  // the 32-bit hash must match): prefetch it for writing.
  for (uint16_t i = 0; i < n; ++i) {
    const Slot s = index_[h[i] & mask_];
    if (s.entry != 0 && s.hash == h[i]) __builtin_prefetch(&entries_[s.entry - 1], 1);
  }
  // 3. Find or create, and count.
  uint32_t counted = 0;
  for (uint16_t i = 0; i < n; ++i) {
    const uint32_t idx = lookup_or_insert(keys[i], h[i]);
    entries[i] = idx;
    if (idx == kUntracked) [[unlikely]]
      continue;
    count(idx, dir, bytes[i], tcp_flags[i], now);
    ++counted;
  }
  counters_.packets_counted.add(counted);
}

template <class Key>
void BasicFlowTable<Key>::emit(Entry& e, FlowEnd why) noexcept {
  if (e.tx_packets + e.rx_packets == 0) return;  // nothing since the last record
  Export r{};
  r.key = e.key;
  __builtin_memcpy(&r.post_nat_address, &e.post_nat_address, sizeof(r.post_nat_address));
  r.post_nat_port = e.post_nat_port;
  r.tcp_flags = e.tcp_flags;
  r.end = why;
  r.worker = config_.worker;
  r.first_tsc = e.first_tsc;
  r.last_tsc = e.last_tsc;
  r.tx_packets = e.tx_packets;
  r.tx_bytes = e.tx_bytes;
  r.rx_packets = e.rx_packets;
  r.rx_bytes = e.rx_bytes;
  if (ring_.push(r)) [[likely]]
    counters_.records.add();
  else
    counters_.ring_full.add();
  // The next record carries the counts from here on (incremental, like IPFIX delta counts).
  e.tx_packets = e.tx_bytes = e.rx_packets = e.rx_bytes = 0;
  e.first_tsc = 0;
}

template <class Key>
void BasicFlowTable<Key>::remove(uint32_t idx) noexcept {
  Entry& e = entries_[idx];
  uint32_t i = hash(e.key) & mask_;
  while (index_[i].entry != idx + 1) i = (i + 1) & mask_;
  // Backward-shift deletion: later members of the probe run move up so that no lookup ever
  // meets a hole before its key (no tombstones to clean up).
  for (;;) {
    uint32_t j = i;
    for (;;) {
      j = (j + 1) & mask_;
      if (index_[j].entry == 0) {
        index_[i] = Slot{};
        goto done;
      }
      const uint32_t home = index_[j].hash & mask_;
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) break;
    }
    index_[i] = index_[j];
    i = j;
  }
done:
  e.state = 0;
  free_[n_free_++] = idx;
  --n_used_;
  counters_.removed.add();
}

template <class Key>
uint32_t BasicFlowTable<Key>::sweep(uint64_t now, uint32_t budget) noexcept {
  const uint64_t period = config_.sweep_period_ticks;
  if (n_used_ == 0) {  // nothing to look at: an idle worker's sweep costs nothing
    sweep_tsc_ = now;
    return 0;
  }
  if (static_cast<int64_t>(now - sweep_tsc_) <= 0) return 0;
  const uint64_t elapsed = std::min<uint64_t>(now - sweep_tsc_, period);
  uint64_t due =
      static_cast<uint64_t>(static_cast<unsigned __int128>(elapsed) * config_.max_flows / period);
  if (due == 0) return 0;
  due = std::min<uint64_t>(due, budget);
  // Advance only by the work done, so a loop that hit the budget catches up next time.
  sweep_tsc_ =
      now - elapsed +
      static_cast<uint64_t>(static_cast<unsigned __int128>(due) * period / config_.max_flows);
  for (uint64_t k = 0; k < due; ++k) {
    const uint32_t idx = cursor_;
    cursor_ = cursor_ + 1 == config_.max_flows ? 0 : cursor_ + 1;
    Entry& e = entries_[idx];
    if (!(e.state & kUsed)) continue;
    if ((e.state & kFinished) && at_least(now, e.last_tsc, config_.linger_ticks)) {
      emit(e, FlowEnd::kFinished);
      remove(idx);
    } else if (at_least(now, e.last_tsc, config_.idle_ticks)) {
      emit(e, FlowEnd::kIdle);
      remove(idx);
    } else if (e.first_tsc != 0 &&
               (at_least(now, e.first_tsc, config_.active_ticks) ||
                e.tx_packets >= kPacketsEmitAt || e.rx_packets >= kPacketsEmitAt)) {
      emit(e, FlowEnd::kActive);
    }
  }
  return static_cast<uint32_t>(due);
}

template <class Key>
uint32_t BasicFlowTable<Key>::expire_all(uint32_t budget) noexcept {
  for (uint32_t idx = 0; idx < config_.max_flows && budget > 0 && n_used_ > 0; ++idx) {
    Entry& e = entries_[idx];
    if (!(e.state & kUsed)) continue;
    emit(e, FlowEnd::kFlushed);
    remove(idx);
    --budget;
  }
  return n_used_;
}

template class BasicFlowTable<FlowKey>;
template class BasicFlowTable<FlowKey6>;

}  // namespace exitgw::dp::flow
