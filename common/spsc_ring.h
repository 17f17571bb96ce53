// A fixed-capacity ring of plain records with one producer (a worker) and one consumer
// (control), allocated once: what workers use to report NAT events and flow records.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace exitgw {

template <typename T>
class SpscRing {
 public:
  explicit SpscRing(uint32_t capacity_pow2)
      : mask_(capacity_pow2 - 1), slots_(new T[capacity_pow2]) {}
  // Producer: false when full (the record is the caller's to count as lost).
  bool push(const T& e) noexcept {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_.load(std::memory_order_acquire) > mask_) return false;
    slots_[t & mask_] = e;
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  // Consumer.
  bool pop(T* e) noexcept {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_.load(std::memory_order_acquire)) return false;
    *e = slots_[h & mask_];
    head_.store(h + 1, std::memory_order_release);
    return true;
  }
  uint32_t size() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }
  uint32_t capacity() const noexcept { return mask_ + 1; }

 private:
  uint32_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
};

}  // namespace exitgw
