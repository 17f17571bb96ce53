// Anti-replay window for WireGuard transport counters; lock-free, safe for concurrent update().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/wg_wire.h"

namespace exitgw {

// Which counters a receiving keypair accepts, with the kernel's semantics (drivers/net/wireguard
// receive.c counter_validate): a counter is accepted once, if it is below kRejectAfterMessages
// and no more than kWindowSize behind the greatest accepted counter.
//
// Layout: kSlots slots of {block, bits}; block = counter / 64, slot = block % kSlots, and bit
// counter % 64 of `bits` says that counter was seen. A slot holds the newest block that mapped to
// it. With kSlots = 128 the window is 127 * 64 = 8128 counters and the state 2 KiB, exactly what
// the Linux kernel and wireguard-go use (8192 bits minus one word): peers are built to stay within
// that reordering, and the kernel's own selftest applies unchanged. A window of 8128 at 1420-byte
// packets is 11 MiB in flight, several milliseconds of a 10 Gb/s peer - far more reordering than
// RSS plus one worker per peer introduces.
//
// Concurrency: update() may run on several lcores at once for the same window (a peer whose
// packets RSS spreads over workers), without locks. Each slot changes only through a 16-byte
// compare-and-swap (lock cmpxchg16b), and only in two ways: bits are OR-ed in while the block
// stays, or the block is replaced by a strictly greater one. Blocks therefore only grow.
// Why a replay is never accepted: accepting counter c means a successful CAS that left its slot
// holding block(c) with bit(c) set. From then on that slot holds either block(c) with bit(c)
// still set (bits are only cleared by replacing the block) or a block greater than block(c).
// Any later update(c) reads one of those two states and rejects; two racing update(c) calls
// cannot both succeed because the loser's CAS fails and its re-read sees the bit. Values never
// return to an earlier state, so there is no ABA. `top_` (greatest accepted counter) only narrows
// what is accepted; it is raised after the slot CAS by a CAS loop, so under a race a counter that
// falls out of the window at that very moment may still be accepted once - never twice.
//
// Ownership: embedded in the receiving keypair. check() and update() are called by workers;
// reset() only before the keypair is published.
template <size_t kSlotCount>
class alignas(64) BasicReplayWindow {
  static_assert(kSlotCount >= 2 && (kSlotCount & (kSlotCount - 1)) == 0,
                "slot count must be a power of two");

 public:
  static constexpr uint64_t kBitsPerSlot = 64;
  static constexpr size_t kSlots = kSlotCount;
  // One slot is kept back so that every counter in the window has its own block.
  static constexpr uint64_t kWindowSize = (kSlotCount - 1) * kBitsPerSlot;
  static_assert(kWindowSize < UINT64_MAX - wg::kRejectAfterMessages,
                "counter + kWindowSize must not overflow for an acceptable counter");

  BasicReplayWindow() noexcept { reset(); }
  BasicReplayWindow(const BasicReplayWindow&) = delete;
  BasicReplayWindow& operator=(const BasicReplayWindow&) = delete;

  // Not safe against concurrent use: only before the owning keypair is published.
  void reset() noexcept {
    top_.store(0, std::memory_order_relaxed);
    for (Slot& slot : slots_) slot = Slot{0, 0};
  }

  // Cheap pre-decrypt filter: false if the counter is certainly too old, already seen or beyond
  // the message limit. true does not reserve anything; update() decides after the tag verifies.
  [[nodiscard]] bool check(uint64_t counter) const noexcept {
    if (counter >= wg::kRejectAfterMessages) [[unlikely]]
      return false;
    if (counter + kWindowSize < top_.load(std::memory_order_relaxed)) return false;
    const uint64_t block = counter / kBitsPerSlot;
    const Slot& slot = slots_[block & (kSlotCount - 1)];
    Slot seen;
    if (!load_consistent(slot, seen)) return true;  // slot changing under us: let update() decide
    if (seen.block > block) return false;
    return seen.block < block || (seen.bits & bit_of(counter)) == 0;
  }

  // Marks the counter seen. Call only after its tag verified. false: replay, too old, or at or
  // beyond kRejectAfterMessages - drop the packet.
  [[nodiscard]] bool update(uint64_t counter) noexcept {
    if (counter >= wg::kRejectAfterMessages) [[unlikely]]
      return false;
    if (counter + kWindowSize < top_.load(std::memory_order_acquire)) return false;
    const uint64_t block = counter / kBitsPerSlot;
    const uint64_t bit = bit_of(counter);
    Slot& slot = slots_[block & (kSlotCount - 1)];
    Slot seen;
    while (!load_consistent(slot, seen)) {
    }
    for (;;) {
      // A greater block in our slot means a counter >= (block + kSlots) * 64 was accepted: c is
      // more than kWindowSize behind it.
      if (seen.block > block) return false;
      Slot next;
      if (seen.block == block) {
        if (seen.bits & bit) return false;
        next = Slot{block, seen.bits | bit};
      } else {
        // The older block's counters are all more than kWindowSize behind this one: forget them.
        next = Slot{block, bit};
      }
      if (compare_exchange(slot, seen, next)) break;  // on failure `seen` is reloaded atomically
    }
    uint64_t top = top_.load(std::memory_order_relaxed);
    while (top < counter && !top_.compare_exchange_weak(top, counter, std::memory_order_release,
                                                        std::memory_order_relaxed)) {
    }
    return true;
  }

  // Starts loading the two lines check() and update() read for `counter` (the greatest
  // counter and the counter's slot), so a burst can overlap the misses of many keypairs.
  void prefetch(uint64_t counter) const noexcept {
    prefetch_line(&top_);
    prefetch_line(&slots_[(counter / kBitsPerSlot) & (kSlotCount - 1)]);
  }

  // Greatest counter accepted so far (0 when none).
  uint64_t greatest() const noexcept { return top_.load(std::memory_order_relaxed); }

 private:
  struct alignas(16) Slot {
    uint64_t block;
    uint64_t bits;
  };
  static_assert(sizeof(Slot) == 16 && alignof(Slot) == 16, "cmpxchg16b needs 16-byte alignment");

  // An asm prefetch: GCC may drop a __builtin_prefetch whose only purpose is the hint
  // (it counts as free of side effects when it decides a caller is pure).
  static void prefetch_line(const void* p) noexcept {
#if defined(__x86_64__)
    __asm__ __volatile__("prefetcht0 %0" : : "m"(*static_cast<const volatile char*>(p)));
#else
    __builtin_prefetch(p);
#endif
  }

  static constexpr uint64_t bit_of(uint64_t counter) noexcept {
    return uint64_t{1} << (counter % kBitsPerSlot);
  }

  // Reads both halves with 8-byte atomic loads and re-reads the block: since a slot's block only
  // grows, an unchanged block means no replacement happened in between, so `bits` belongs to it.
  static bool load_consistent(const Slot& slot, Slot& out) noexcept {
    const uint64_t block = __atomic_load_n(&slot.block, __ATOMIC_ACQUIRE);
    const uint64_t bits = __atomic_load_n(&slot.bits, __ATOMIC_ACQUIRE);
    out = Slot{block, bits};
    return __atomic_load_n(&slot.block, __ATOMIC_RELAXED) == block;
  }

  // 16-byte CAS. On failure `expected` receives the slot's current value, read atomically.
  static bool compare_exchange(Slot& slot, Slot& expected, Slot desired) noexcept {
#if defined(__x86_64__)
    // Inline cmpxchg16b (as DPDK's rte_atomic128_cmp_exchange does): needs no -mcx16 and no
    // libatomic, so this header stays usable from any target. Every x86-64 CPU DPDK supports
    // has CX16.
    bool ok;
    __asm__ __volatile__("lock cmpxchg16b %[mem]"
                         : "=@ccz"(ok), [mem] "+m"(slot), "+a"(expected.block), "+d"(expected.bits)
                         : "b"(desired.block), "c"(desired.bits)
                         : "memory");
    return ok;
#else
    unsigned __int128 want;
    unsigned __int128 next;
    __builtin_memcpy(&want, &expected, sizeof(want));
    __builtin_memcpy(&next, &desired, sizeof(next));
    const bool ok = __atomic_compare_exchange_n(reinterpret_cast<unsigned __int128*>(&slot), &want,
                                                next, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    __builtin_memcpy(&expected, &want, sizeof(want));
    return ok;
#endif
  }

  // On its own cache line: raised by every in-order packet, read by every packet.
  alignas(64) std::atomic<uint64_t> top_;
  alignas(64) Slot slots_[kSlotCount];
};

// 128 slots: window 8128 counters, 2 KiB of slots plus one line for top_.
using ReplayWindow = BasicReplayWindow<128>;
static_assert(ReplayWindow::kWindowSize == 8128);
static_assert(sizeof(ReplayWindow) == 64 + 128 * 16);
static_assert(alignof(ReplayWindow) == 64);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

}  // namespace exitgw
