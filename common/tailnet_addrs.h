// The node's own tailnet IPv6 addresses as workers see them: control publishes, workers copy
// them once per burst, and no copy ever mixes two publications.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

namespace exitgw::dp {

inline constexpr unsigned kMaxTailnetAddrs = 2;  // per family

// Ownership: control is the only writer (publish); every worker reads (load). 16-byte
// addresses cannot be stored atomically, so this is the two-slot seqlock of PeerEndpoint6
// (common/wg_state.h): a publication fills the slot readers are not pointed at, then moves
// `generation` to it; a reader copies the slot `generation` names and takes the copy only if
// `generation` did not move meanwhile, so a torn copy is never used (it retries instead, and a
// retry needs two publications during one copy). PeerEndpoint6 itself cannot be reused: its
// generation lives in the peer's endpoint word and its writers are racing workers.
struct alignas(64) TailnetAddrs6 {
  std::atomic<uint64_t> address[2][kMaxTailnetAddrs][2] = {};  // slot, address, raw halves
  std::atomic<uint32_t> generation{0};                         // slot generation & 1 is current

  // Control: `n` addresses (16 bytes each, network order; at most kMaxTailnetAddrs are kept),
  // the rest of the slot all zero (no address).
  void publish(const uint8_t (*addrs)[16], unsigned n) noexcept {
    const uint32_t g = generation.load(std::memory_order_relaxed) + 1;
    // The seqlock writer's fence: a reader that sees any store below also sees the generation
    // before this one moved on from the slot it is copying.
    std::atomic_thread_fence(std::memory_order_release);
    for (unsigned a = 0; a < kMaxTailnetAddrs; ++a) {
      uint64_t half[2] = {0, 0};
      if (a < n) std::memcpy(half, addrs[a], 16);
      address[g & 1][a][0].store(half[0], std::memory_order_relaxed);
      address[g & 1][a][1].store(half[1], std::memory_order_relaxed);
    }
    generation.store(g, std::memory_order_release);
  }

  // Worker: a consistent copy of the current addresses into out (all-zero halves: none);
  // returns how many there are.
  unsigned load(uint64_t (*out)[2]) const noexcept {
    uint32_t g = generation.load(std::memory_order_acquire);
    for (;;) {
      for (unsigned a = 0; a < kMaxTailnetAddrs; ++a) {
        out[a][0] = address[g & 1][a][0].load(std::memory_order_relaxed);
        out[a][1] = address[g & 1][a][1].load(std::memory_order_relaxed);
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      const uint32_t again = generation.load(std::memory_order_relaxed);
      if (again == g) break;
      g = again;
      std::atomic_thread_fence(std::memory_order_acquire);
    }
    unsigned n = 0;
    for (unsigned a = 0; a < kMaxTailnetAddrs; ++a) n += (out[a][0] | out[a][1]) != 0;
    return n;
  }
};

// Whether the 16 bytes at `ip6` are one of the addresses `load` copied.
inline bool tailnet_addr6_is(const uint64_t (*own)[2], const uint8_t* ip6) noexcept {
  uint64_t half[2];
  std::memcpy(half, ip6, 16);
  bool mine = false;
  for (unsigned a = 0; a < kMaxTailnetAddrs; ++a)
    mine |= (own[a][0] | own[a][1]) != 0 && half[0] == own[a][0] && half[1] == own[a][1];
  return mine;
}

}  // namespace exitgw::dp
