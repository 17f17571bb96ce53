// A fixed-capacity hash index from a 64-bit hash to a 32-bit record index: 64-byte buckets of
// seven (tag, index) slots with an overflow count (Folly F14's scheme), so deletion leaves no
// tombstones and a miss stops at the first bucket nothing overflowed from. Keys live in the
// records; the caller's predicate compares them. Allocated once; nothing per operation.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>

#include "dataplane/nat/huge_array.h"

namespace exitgw::dp::nat {

inline constexpr uint32_t kNone = UINT32_MAX;

// A prefetch the compiler must keep. GCC treats __builtin_prefetch as free of side effects
// and deletes whole loops that only compute addresses to prefetch (a burst's staged
// lookups), so the hint is an asm statement, as DPDK's rte_prefetch0 is.
inline void prefetch_line(const void* p) noexcept {
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const volatile char*>(p)));
}
// For a line about to be written (prefetchw: fetched for ownership).
inline void prefetch_line_write(const void* p) noexcept {
  asm volatile("prefetchw %0" : : "m"(*static_cast<const volatile char*>(p)));
}

// Seeded 64-bit mix of two words (a keyed hash: the seed keeps remote hosts from choosing
// colliding flows).
constexpr uint64_t hash_words(uint64_t a, uint64_t b, uint64_t seed) noexcept {
  uint64_t h = (a ^ seed) * 0x9e3779b97f4a7c15ull;
  h ^= (h >> 32) ^ (b * 0xc2b2ae3d27d4eb4full);
  h ^= h >> 29;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 32;
  return h;
}

class BucketIndex {
 public:
  static constexpr unsigned kSlots = 7;

  // Sized for `capacity` entries at <= 80% slot load.
  explicit BucketIndex(uint32_t capacity)
      : n_buckets_(
            static_cast<uint32_t>((uint64_t{capacity} * 10 + kSlots * 8 - 1) / (kSlots * 8)) + 1),
        buckets_(static_cast<Bucket*>(huge_alloc(sizeof(Bucket) * n_buckets_))) {
    for (uint32_t i = 0; i < n_buckets_; ++i) new (&buckets_[i]) Bucket{};
  }
  ~BucketIndex() { huge_free(buckets_, sizeof(Bucket) * n_buckets_); }
  BucketIndex(const BucketIndex&) = delete;
  BucketIndex& operator=(const BucketIndex&) = delete;

  void prefetch(uint64_t hash) const noexcept { prefetch_line(&buckets_[home(hash)]); }

  // The first index in the home bucket whose tag matches, or kNone: what find() will most
  // likely return, so a burst can prefetch the record before the real lookup compares keys.
  uint32_t candidate(uint64_t hash) const noexcept {
    const uint32_t t = tag(hash);
    const Bucket& k = buckets_[home(hash)];
    for (unsigned s = 0; s < kSlots; ++s)
      if (k.tag[s] == t) return k.index[s];
    return kNone;
  }

  // The index whose record satisfies `eq`, or kNone.
  template <typename Eq>
  uint32_t find(uint64_t hash, Eq&& eq) const noexcept {
    const uint32_t t = tag(hash);
    uint32_t b = home(hash);
    for (uint32_t step = 0; step < n_buckets_; ++step) {
      const Bucket& k = buckets_[b];
      for (unsigned s = 0; s < kSlots; ++s)
        if (k.tag[s] == t && eq(k.index[s])) return k.index[s];
      if (k.overflow == 0) return kNone;
      b = next(b);
    }
    return kNone;
  }

  // Adds `index` (the caller knows its key is absent). False only when every bucket is full,
  // which the sizing makes impossible while entries <= capacity.
  bool insert(uint64_t hash, uint32_t index) noexcept {
    const uint32_t t = tag(hash);
    const uint32_t start = home(hash);
    uint32_t b = start;
    for (uint32_t step = 0; step < n_buckets_; ++step) {
      Bucket& k = buckets_[b];
      for (unsigned s = 0; s < kSlots; ++s) {
        if (k.tag[s] == 0) {
          k.tag[s] = t;
          k.index[s] = index;
          for (uint32_t c = start; c != b; c = next(c)) ++buckets_[c].overflow;
          ++size_;
          return true;
        }
      }
      b = next(b);
    }
    return false;
  }

  // Removes the entry for `index` filed under `hash`; false if absent.
  bool erase(uint64_t hash, uint32_t index) noexcept {
    const uint32_t t = tag(hash);
    const uint32_t start = home(hash);
    uint32_t b = start;
    for (uint32_t step = 0; step < n_buckets_; ++step) {
      Bucket& k = buckets_[b];
      for (unsigned s = 0; s < kSlots; ++s) {
        if (k.tag[s] == t && k.index[s] == index) {
          k.tag[s] = 0;
          for (uint32_t c = start; c != b; c = next(c)) --buckets_[c].overflow;
          --size_;
          return true;
        }
      }
      if (k.overflow == 0) return false;
      b = next(b);
    }
    return false;
  }

  uint32_t size() const noexcept { return size_; }
  size_t memory_bytes() const noexcept { return sizeof(Bucket) * n_buckets_; }

 private:
  struct alignas(64) Bucket {
    uint32_t tag[kSlots];  // 0 = empty
    uint32_t overflow;     // entries whose home is here or before and that live after here
    uint32_t index[kSlots];
    uint32_t pad;
  };
  static_assert(sizeof(Bucket) == 64);

  static uint32_t tag(uint64_t hash) noexcept {
    const auto t = static_cast<uint32_t>(hash >> 32);
    return t == 0 ? 1 : t;
  }
  // Lemire's multiply-shift range reduction: any bucket count, no division.
  uint32_t home(uint64_t hash) const noexcept {
    return static_cast<uint32_t>((uint64_t{static_cast<uint32_t>(hash)} * n_buckets_) >> 32);
  }
  uint32_t next(uint32_t b) const noexcept { return b + 1 == n_buckets_ ? 0 : b + 1; }

  uint32_t n_buckets_;
  Bucket* buckets_;
  uint32_t size_ = 0;
};

}  // namespace exitgw::dp::nat
