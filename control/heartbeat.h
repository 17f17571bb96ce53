// The control loop's heartbeat: the loop stores the time at every iteration; the metrics thread
// reads its age, so a control thread stuck in one call (a blocking read, a long compile) is
// visible in /readyz and a metric within seconds, while the stuck thread itself cannot answer.
#pragma once

#include <array>
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

// Written by the control thread, read by any. Beside the last beat it keeps a histogram of the
// gaps between consecutive beats (exitgw_control_loop_gap_seconds): a stall shorter than
// --control_stall_ms never turns /readyz false, but it is still seen there, every one of them.
class ControlHeartbeat {
 public:
  // Upper bounds of the gap histogram's buckets, in seconds (+Inf follows). An idle loop beats
  // every ~0.2 ms; a classifier or regex build on the control thread would take 0.05 s to
  // seconds.
  static constexpr std::array<double, 18> kGapBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                        0.05,   0.075, 0.1,    0.15,  0.2,  0.25,
                                                        0.35,   0.5,   1,      2.5,   5,    10};

  struct Gaps {
    std::array<uint64_t, kGapBounds.size() + 1> counts{};  // per bucket, not cumulative; +Inf last
    uint64_t count = 0;
    double sum_seconds = 0;
  };

  // The first beat of the loop: no gap is counted from the one before (start-up work between).
  void start(uint64_t now_ns) { beat_ns_.store(now_ns, std::memory_order_release); }
  // Only the control thread beats: the counters are single-writer (plain load and store).
  void beat(uint64_t now_ns) {
    const uint64_t last = beat_ns_.load(std::memory_order_relaxed);
    if (last != 0 && now_ns > last) {
      const uint64_t gap = now_ns - last;
      size_t i = 0;
      while (i < kGapBounds.size() && double(gap) > kGapBounds[i] * 1e9) ++i;
      bump(gap_counts_[i], 1);
      bump(gap_sum_ns_, gap);
    }
    beat_ns_.store(now_ns, std::memory_order_release);
  }
  // The gaps so far (each counter read on its own: a snapshot may lag a beat, never tear).
  Gaps gaps() const {
    Gaps g;
    for (size_t i = 0; i < g.counts.size(); ++i) {
      g.counts[i] = gap_counts_[i].load(std::memory_order_relaxed);
      g.count += g.counts[i];
    }
    g.sum_seconds = double(gap_sum_ns_.load(std::memory_order_relaxed)) / 1e9;
    return g;
  }
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
  static void bump(std::atomic<uint64_t>& c, uint64_t n) {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> beat_ns_{0};
  std::array<std::atomic<uint64_t>, kGapBounds.size() + 1> gap_counts_{};
  std::atomic<uint64_t> gap_sum_ns_{0};
};

}  // namespace exitgw
