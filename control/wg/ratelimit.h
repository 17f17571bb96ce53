// Per-source handshake rate limiter modelled on the Linux kernel's WireGuard ratelimiter: a token
// bucket per source address, a bounded table, and cheap garbage collection. Control thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>

#include "control/wg/endpoint.h"

namespace exitgw::wg {

class RateLimiter {
 public:
  static constexpr uint64_t kPacketsPerSecond = 20;
  static constexpr uint64_t kPacketsBurst = 5;
  static constexpr size_t kDefaultMaxEntries = 8192;

  explicit RateLimiter(size_t max_entries = kDefaultMaxEntries);

  // True if a handshake message from source may be processed now. IPv4 is keyed by address,
  // IPv6 by its /64 (one host usually owns a whole /64, as the kernel assumes). The port is
  // ignored so one host cannot multiply its budget. Amortised O(1).
  bool allow(const Endpoint& source, uint64_t now_ns);

  // Drops entries idle for a second or more: their buckets are full again, so forgetting them
  // changes nothing. allow() calls it once a second; exposed for tests.
  void collect_garbage(uint64_t now_ns);

  size_t size() const { return entries_.size(); }
  size_t max_entries() const { return max_entries_; }

 private:
  static constexpr uint64_t kNanosPerSecond = 1'000'000'000;
  static constexpr uint64_t kPacketCost = kNanosPerSecond / kPacketsPerSecond;
  static constexpr uint64_t kTokenMax = kPacketCost * kPacketsBurst;

  struct SourceKey {
    uint64_t hi = 0;  // IPv4: the address; IPv6: the /64 prefix
    uint8_t family = 0;
    bool operator==(const SourceKey&) const = default;
  };
  struct SourceKeyHash {
    uint8_t seed[16];
    size_t operator()(const SourceKey& k) const;
  };
  struct Entry {
    SourceKey key;
    uint64_t last_ns = 0;
    uint64_t tokens = 0;
  };
  using Lru = std::list<Entry>;  // front: most recently used

  static SourceKey key_of(const Endpoint& source);

  size_t max_entries_;
  Lru lru_;
  std::unordered_map<SourceKey, Lru::iterator, SourceKeyHash> entries_;
  uint64_t last_gc_ns_ = 0;
};

}  // namespace exitgw::wg
