// Fixed-size arrays for the NAT tables, backed by transparent huge pages where the kernel
// offers them. A million sessions spread a burst's lookups over tens of MiB: on 4 KiB pages
// nearly every bucket, mapping and session access is also a TLB miss and page walk (which
// even a software prefetch waits for); on 2 MiB pages the whole table fits the STLB.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace exitgw::dp::nat {

inline constexpr size_t kHugePage = size_t{2} << 20;

// Zeroed memory of `bytes`, 64-byte aligned; 2 MiB aligned and advised huge when at least
// one huge page large. Throws std::bad_alloc, like new, when there is no memory.
inline void* huge_alloc(size_t bytes) {
  if (bytes < kHugePage) {
    void* p = ::operator new (bytes == 0 ? 64 : bytes, std::align_val_t{64});
    __builtin_memset(p, 0, bytes);
    return p;
  }
  const size_t size = (bytes + kHugePage - 1) & ~(kHugePage - 1);
  // Over-allocate by one huge page, then trim to a 2 MiB-aligned run.
  void* raw =
      mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = start + size + kHugePage;
  if (end > aligned + size) munmap(reinterpret_cast<void*>(aligned + size), end - aligned - size);
  // Advice only: without THP the table works the same on small pages.
  madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

inline void huge_free(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  if (bytes < kHugePage) {
    ::operator delete (p, std::align_val_t{64});
    return;
  }
  munmap(p, (bytes + kHugePage - 1) & ~(kHugePage - 1));
}

// An owning array of n zero-initialised T (plain records only: no constructors run).
template <typename T>
class HugeArray {
 public:
  HugeArray() = default;
  explicit HugeArray(size_t n) : p_(static_cast<T*>(huge_alloc(n * sizeof(T)))), n_(n) {
    // Checked here, where T is complete (members may name it while it is still declared only).
    static_assert(std::is_trivially_default_constructible_v<T> &&
                  std::is_trivially_destructible_v<T>);
  }
  ~HugeArray() { huge_free(p_, n_ * sizeof(T)); }
  HugeArray(HugeArray&& o) noexcept
      : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  HugeArray& operator=(HugeArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  T& operator[](size_t i) noexcept { return p_[i]; }
  const T& operator[](size_t i) const noexcept { return p_[i]; }
  T* get() noexcept { return p_; }
  size_t size() const noexcept { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace exitgw::dp::nat
