// Token buckets of 20 handshakes per second with a burst of 5 per source, as the kernel's
// ratelimiter.c; the table is an LRU list so eviction and garbage collection touch only its tail.
#include "control/wg/ratelimit.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "control/wg/crypto.h"

namespace exitgw::wg {

// Sources are attacker-chosen, so buckets are placed by SipHash with a random key: nobody can
// aim many addresses at one hash chain.
size_t RateLimiter::SourceKeyHash::operator()(const SourceKey& k) const {
  uint8_t in[9];
  std::memcpy(in, &k.hi, sizeof(k.hi));
  in[8] = k.family;
  uint64_t out;
  static_assert(sizeof(out) == crypto_shorthash_BYTES);
  crypto_shorthash(reinterpret_cast<uint8_t*>(&out), in, sizeof(in), seed);
  return static_cast<size_t>(out);
}

RateLimiter::RateLimiter(size_t max_entries)
    : max_entries_(std::max<size_t>(1, max_entries)), entries_(0, [] {
        SourceKeyHash h;
        random_bytes(h.seed, sizeof(h.seed));
        return h;
      }()) {
  entries_.reserve(max_entries_);
}

RateLimiter::SourceKey RateLimiter::key_of(const Endpoint& source) {
  SourceKey key;
  key.family = source.is_ipv6 ? 6 : 4;
  const size_t len = source.is_ipv6 ? 8 : 4;
  for (size_t i = 0; i < len; ++i) key.hi = key.hi << 8 | source.address[i];
  return key;
}

void RateLimiter::collect_garbage(uint64_t now_ns) {
  last_gc_ns_ = now_ns;
  while (!lru_.empty()) {
    const Entry& oldest = lru_.back();
    // An entry stamped in the future (the clock stepped back) counts as fresh, so a clock step
    // cannot be used to reset buckets.
    if (now_ns < oldest.last_ns || now_ns - oldest.last_ns < kNanosPerSecond) break;
    entries_.erase(oldest.key);
    lru_.pop_back();
  }
}

bool RateLimiter::allow(const Endpoint& source, uint64_t now_ns) {
  if (now_ns < last_gc_ns_ || now_ns - last_gc_ns_ >= kNanosPerSecond) collect_garbage(now_ns);
  const SourceKey key = key_of(source);
  if (auto it = entries_.find(key); it != entries_.end()) {
    Entry& e = *it->second;
    // A clock step backwards earns no tokens.
    const uint64_t elapsed = now_ns > e.last_ns ? now_ns - e.last_ns : 0;
    const uint64_t tokens = std::min(kTokenMax, e.tokens + std::min(elapsed, kTokenMax));
    e.last_ns = now_ns;
    const bool allowed = tokens >= kPacketCost;
    e.tokens = allowed ? tokens - kPacketCost : tokens;
    lru_.splice(lru_.begin(), lru_, it->second);
    return allowed;
  }
  // The kernel refuses new sources when full; evicting the least recently seen one instead
  // keeps the gateway answering new peers during a spoofed-source flood.
  if (entries_.size() >= max_entries_) {
    entries_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, now_ns, kTokenMax - kPacketCost});
  entries_.emplace(key, lru_.begin());
  return true;
}

}  // namespace exitgw::wg
