// A rate limit for what one worker originates or hands on (ICMP it sends, packets for the
// host): `rate` tokens per second up to `burst`, refilled from the TSC. Owned by one lcore.
#pragma once

#include <algorithm>
#include <cstdint>

namespace exitgw::dp {

class TokenBucket {
 public:
  TokenBucket(unsigned rate_per_sec, unsigned burst, uint64_t now_tsc) noexcept
      : rate_(rate_per_sec),
        cap_(uint64_t{burst} * kScale),
        tokens_(uint64_t{burst} * kScale),
        last_tsc_(now_tsc) {}

  // Takes one token if there is one.
  bool take(uint64_t now_tsc, uint64_t tsc_hz) noexcept {
    const uint64_t elapsed = now_tsc - last_tsc_;
    // Refill in whole token fractions only, so rounding never leaks tokens. 128-bit: elapsed *
    // rate * scale overflows 64 bits after minutes without a take.
    const auto refill =
        static_cast<uint64_t>(static_cast<unsigned __int128>(elapsed) * rate_ * kScale / tsc_hz);
    if (refill > 0) {
      tokens_ = std::min(cap_, tokens_ + refill);
      last_tsc_ = now_tsc;
    }
    if (tokens_ < kScale) return false;
    tokens_ -= kScale;
    return true;
  }

 private:
  static constexpr uint64_t kScale = 1u << 16;
  uint64_t rate_;
  uint64_t cap_;
  uint64_t tokens_;  // scaled by kScale
  uint64_t last_tsc_;
};

}  // namespace exitgw::dp
