// The control loop's heartbeat: /readyz turns not ready, with the reason, once the loop has not
// beaten for longer than the limit, and ready again at the next beat; the age is what the
// exitgw_control_heartbeat_age_seconds gauge shows.
#include "control/heartbeat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

namespace exitgw {
namespace {

constexpr uint64_t kSecond = 1'000'000'000;

TEST(ControlHeartbeat, ReadyWhileTheLoopBeatsWithinTheLimit) {
  ControlHeartbeat hb;
  EXPECT_TRUE(hb.readiness(100 * kSecond, 3 * kSecond).ready);  // not started: nothing stalled
  hb.beat(100 * kSecond);
  EXPECT_TRUE(hb.readiness(102 * kSecond, 3 * kSecond).ready);
  EXPECT_DOUBLE_EQ(hb.age_seconds(102 * kSecond), 2.0);
}

TEST(ControlHeartbeat, AStalledLoopMakesReadinessFalseWithTheReason) {
  ControlHeartbeat hb;
  hb.beat(100 * kSecond);
  const Readiness r = hb.readiness(104 * kSecond, 3 * kSecond);
  EXPECT_FALSE(r.ready);
  EXPECT_NE(r.reason.find("control thread stalled: no loop iteration for 4000 ms (limit 3000 ms)"),
            std::string::npos)
      << r.reason;
  EXPECT_DOUBLE_EQ(hb.age_seconds(104 * kSecond), 4.0);
  hb.beat(104 * kSecond);
  EXPECT_TRUE(hb.readiness(104 * kSecond + 1, 3 * kSecond).ready);
}

// The reader is another thread (the metrics listener) that sees a stall the stuck thread
// cannot report itself.
TEST(ControlHeartbeat, AnotherThreadSeesTheLoopStallOnTheRealClock) {
  ControlHeartbeat hb;
  std::thread loop([&] {
    for (int i = 0; i < 5; ++i) {
      hb.beat(steady_now_ns());
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // ...then stuck in one call.
  });
  loop.join();
  EXPECT_TRUE(hb.readiness(steady_now_ns(), 200'000'000).ready);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(hb.readiness(steady_now_ns(), 200'000'000).ready);
  EXPECT_GE(hb.age_seconds(steady_now_ns()), 0.3);
}

// exitgw_control_loop_gap_seconds: every gap between beats lands in its bucket, so a stall far
// shorter than --control_stall_ms is still counted.
TEST(ControlHeartbeat, EveryGapBetweenBeatsIsCountedInItsBucket) {
  ControlHeartbeat hb;
  const uint64_t t = 100 * kSecond;
  hb.beat(t);  // the first beat has no gap
  EXPECT_EQ(hb.gaps().count, 0u);
  hb.beat(t + 200'000);                     // 0.2 ms: <= 0.0005
  hb.beat(t + 200'000 + 500'000);           // 0.5 ms exactly: <= 0.0005 (bounds are inclusive)
  hb.beat(t + 700'000 + 300'000'000);       // 0.3 s: <= 0.35
  hb.beat(t + 300'700'000 + 20 * kSecond);  // 20 s: +Inf
  hb.beat(t + 300'700'000 + 20 * kSecond);  // no time passed: not a gap
  const ControlHeartbeat::Gaps g = hb.gaps();
  EXPECT_EQ(g.count, 4u);
  EXPECT_EQ(g.counts[0], 2u);
  const auto& bounds = ControlHeartbeat::kGapBounds;
  const size_t at = std::find(bounds.begin(), bounds.end(), 0.35) - bounds.begin();
  ASSERT_LT(at, bounds.size());
  EXPECT_EQ(g.counts[at - 1], 0u);  // 0.25: shorter
  EXPECT_EQ(g.counts[at], 1u);
  EXPECT_EQ(g.counts.back(), 1u);
  EXPECT_NEAR(g.sum_seconds, 20.3007, 1e-9);
}

}  // namespace
}  // namespace exitgw
