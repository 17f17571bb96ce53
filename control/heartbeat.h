// The control loop's heartbeat: the loop stores the time at every iteration; the metrics thread
// reads its age, so a control thread stuck in one call (a blocking read, a long compile) is
// visible in /readyz and a metric within seconds, while the stuck thread itself cannot answer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "control/metrics.h"

namespace exitgw {

// The clock of heartbeats and control-loop timers.
inline uint64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Written by the control thread, read by any.
class ControlHeartbeat {
 public:
  void beat(uint64_t now_ns) { beat_ns_.store(now_ns, std::memory_order_release); }
  // Seconds since the last beat (0 before the first one: the loop has not started).
  double age_seconds(uint64_t now_ns) const {
    const uint64_t last = beat_ns_.load(std::memory_order_acquire);
    return last == 0 || now_ns <= last ? 0.0 : double(now_ns - last) / 1e9;
  }
  // Not ready when the last beat is older than `max_age_ns`.
  Readiness readiness(uint64_t now_ns, uint64_t max_age_ns) const {
    const uint64_t last = beat_ns_.load(std::memory_order_acquire);
    if (last != 0 && now_ns > last && now_ns - last > max_age_ns)
      return {false, "control thread stalled: no loop iteration for " +
                         std::to_string((now_ns - last) / 1'000'000) + " ms (limit " +
                         std::to_string(max_age_ns / 1'000'000) + " ms)"};
    return {true, ""};
  }

 private:
  std::atomic<uint64_t> beat_ns_{0};
};

}  // namespace exitgw
