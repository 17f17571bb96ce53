// The builder thread: a build runs off the calling thread, its result is taken once, and the
// latest submission wins (a superseded build is dropped even when it finishes last).
#include "control/background_build.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace exitgw {
namespace {

// Polls take() for up to 5 s.
template <typename T>
std::optional<typename BackgroundBuild<T>::Finished> wait_take(BackgroundBuild<T>& b) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto done = b.take()) return done;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::nullopt;
}

TEST(BackgroundBuild, ABuildRunsOnAnotherThreadAndIsTakenOnce) {
  BackgroundBuild<std::thread::id> b;
  EXPECT_FALSE(b.pending());
  const uint64_t serial =
      b.submit([] { return Result<std::thread::id>(std::this_thread::get_id()); });
  EXPECT_TRUE(b.pending());
  auto done = wait_take(b);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->serial, serial);
  ASSERT_TRUE(done->result.ok());
  EXPECT_NE(*done->result, std::this_thread::get_id());
  EXPECT_FALSE(b.pending());
  EXPECT_FALSE(b.take().has_value());
}

TEST(BackgroundBuild, TheLatestSubmissionWinsEvenWhenAnOlderOneFinishesLast) {
  BackgroundBuild<int> b;
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  b.submit([&] {
    started = true;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return Result<int>(1);
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  b.submit([] { return Result<int>(2); });  // queued behind the slow one
  b.submit([] { return Result<int>(3); });  // replaces 2 before it starts
  EXPECT_FALSE(b.take().has_value());       // 1 still runs
  release = true;
  auto done = wait_take(b);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(*done->result, 3);
  EXPECT_EQ(b.superseded(), 1u);  // 1 finished and was dropped; 2 never ran
  EXPECT_FALSE(b.pending());
}

TEST(BackgroundBuild, CancelDropsWhatIsInFlight) {
  BackgroundBuild<int> b;
  b.submit([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return Result<int>(1);
  });
  b.cancel();
  EXPECT_FALSE(b.pending());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE(b.take().has_value());
}

TEST(BackgroundBuild, AFailedBuildIsReportedWithItsError) {
  BackgroundBuild<int> b;
  b.submit([] { return Result<int>(make_error("no memory")); });
  auto done = wait_take(b);
  ASSERT_TRUE(done.has_value());
  ASSERT_FALSE(done->result.ok());
  EXPECT_EQ(done->result.error(), "no memory");
}

// exitgw_build_seconds: every build that ran is timed in its bucket, a superseded one too.
TEST(BackgroundBuild, EveryBuildThatRanIsTimedInItsBucket) {
  BackgroundBuild<int> b;
  EXPECT_EQ(b.durations().sum_seconds, 0);
  b.submit([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    return Result<int>(1);
  });
  ASSERT_TRUE(wait_take(b).has_value());
  b.submit([] { return Result<int>(2); });
  ASSERT_TRUE(wait_take(b).has_value());
  const BuildDurations d = b.durations();
  uint64_t total = 0;
  for (uint64_t c : d.counts) total += c;
  EXPECT_EQ(total, 2u);
  // The immediate one within 10 ms (a loaded machine may preempt the builder thread), the
  // 120 ms one over 0.1 s: in the buckets of those bounds, whichever it took.
  uint64_t quick = 0, slow = 0;
  for (size_t i = 0; i < d.counts.size(); ++i) {
    const double bound = i < kBuildSecondsBounds.size() ? kBuildSecondsBounds[i] : 1e9;
    if (bound <= 0.01) quick += d.counts[i];
    if (i > 0 && kBuildSecondsBounds[i - 1] >= 0.1) slow += d.counts[i];
  }
  EXPECT_EQ(quick, 1u);
  EXPECT_EQ(slow, 1u);
  EXPECT_GE(d.sum_seconds, 0.12);
}

}  // namespace
}  // namespace exitgw
