// ReplayWindow: the kernel's counter selftest, a naive model on random input, and two racing
// lcores.
#include "common/replay_window.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdint>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace exitgw {
namespace {

constexpr uint64_t kWindow = ReplayWindow::kWindowSize;
constexpr uint64_t kReject = wg::kRejectAfterMessages;

// Each case from drivers/net/wireguard/selftest/counter.c, in order; the kernel's window
// (COUNTER_WINDOW_SIZE) is 8128 like ours, and REJECT_AFTER_MESSAGES is our kRejectAfterMessages.
class KernelCounterSelftest : public ::testing::Test {
 protected:
  void expect(uint64_t counter, bool accepted) {
    ++case_number_;
    EXPECT_EQ(window_.check(counter), accepted) << "check, case " << case_number_;
    EXPECT_EQ(window_.update(counter), accepted) << "update, case " << case_number_;
  }
  void reset() { window_.reset(); }

  ReplayWindow window_;
  int case_number_ = 0;
};

TEST_F(KernelCounterSelftest, SingleSequenceOfInOrderReorderedReplayedAndLimitCounters) {
  constexpr uint64_t kLim = kWindow + 1;
  expect(0, true);
  expect(1, true);
  expect(1, false);
  expect(9, true);
  expect(8, true);
  expect(7, true);
  expect(7, false);
  expect(kLim, true);
  expect(kLim - 1, true);
  expect(kLim - 1, false);
  expect(kLim - 2, true);
  expect(2, true);
  expect(2, false);
  expect(kLim + 16, true);
  expect(3, false);
  expect(kLim + 16, false);
  expect(kLim * 4, true);
  expect(kLim * 4 - (kLim - 1), true);
  expect(10, false);
  expect(kLim * 4 - kLim, false);
  expect(kLim * 4 - (kLim + 1), false);
  expect(kLim * 4 - (kLim - 2), true);
  expect(kLim * 4 + 1 - kLim, false);
  expect(0, false);
  expect(kReject, false);
  expect(kReject - 1, true);
  expect(kReject, false);
  expect(kReject - 1, false);
  expect(kReject - 2, true);
  expect(kReject + 1, false);
  expect(kReject + 2, false);
  expect(kReject - 2, false);
  expect(kReject - 3, true);
  expect(0, false);
}

TEST_F(KernelCounterSelftest, FullWindowInOrderThenZeroIsStillInside) {
  for (uint64_t i = 1; i <= kWindow; ++i) expect(i, true);
  expect(0, true);
  expect(0, false);
}

TEST_F(KernelCounterSelftest, WindowShiftedByOneThenOneInsideAndZeroOutside) {
  for (uint64_t i = 2; i <= kWindow + 1; ++i) expect(i, true);
  expect(1, true);
  expect(0, false);
}

TEST_F(KernelCounterSelftest, FullWindowInReverseOrderIsAllAccepted) {
  for (uint64_t i = kWindow + 1; i-- > 0;) expect(i, true);
}

TEST_F(KernelCounterSelftest, ReverseOrderThenZeroFallsOutside) {
  for (uint64_t i = kWindow + 2; i-- > 1;) expect(i, true);
  expect(0, false);
}

TEST_F(KernelCounterSelftest, ReverseOrderThenNewTopPushesZeroOut) {
  for (uint64_t i = kWindow + 1; i-- > 1;) expect(i, true);
  expect(kWindow + 1, true);
  expect(0, false);
}

TEST_F(KernelCounterSelftest, ReverseOrderThenZeroThenNewTopBothAccepted) {
  for (uint64_t i = kWindow + 1; i-- > 1;) expect(i, true);
  expect(0, true);
  expect(kWindow + 1, true);
}

// The obvious model: the set of accepted counters and their maximum.
class NaiveWindow {
 public:
  bool acceptable(uint64_t counter) const {
    if (counter >= kReject) return false;
    if (counter + kWindow < top_) return false;
    return !seen_.contains(counter);
  }
  bool update(uint64_t counter) {
    if (!acceptable(counter)) return false;
    seen_.insert(counter);
    top_ = std::max(top_, counter);
    // Counters far below the window can never be accepted again; keep the set small.
    if (seen_.size() > 4 * kWindow && top_ > kWindow)
      seen_.erase(seen_.begin(), seen_.lower_bound(top_ - kWindow));
    return true;
  }
  uint64_t top() const { return top_; }

 private:
  std::set<uint64_t> seen_;
  uint64_t top_ = 0;
};

TEST(ReplayWindow, MatchesNaiveModelOnAMillionRandomCountersNearTheTopWithFarJumps) {
  ReplayWindow window;
  NaiveWindow model;
  std::mt19937_64 rng(42);
  std::vector<uint64_t> recent;  // recently offered counters, replayed later
  uint64_t accepted = 0;
  for (int op = 0; op < 1'000'000; ++op) {
    const uint64_t top = model.top();
    const unsigned pick = static_cast<unsigned>(rng() % 1000);
    uint64_t counter;
    if (pick < 300) {  // in order, sometimes with small gaps
      counter = top + rng() % 4;
    } else if (pick < 750) {  // reordered: inside the window or just past its edge
      counter = top - std::min<uint64_t>(top, rng() % (kWindow + kWindow / 4));
    } else if (pick < 800) {  // exactly at the window's edge
      counter = top - std::min<uint64_t>(top, kWindow - 2 + rng() % 4);
    } else if (pick < 950 && !recent.empty()) {  // replay
      counter = recent[rng() % recent.size()];
    } else if (pick < 999) {  // a bit ahead
      counter = top + rng() % (2 * kWindow);
    } else {  // far jump
      counter = top + kWindow + rng() % (uint64_t{1} << 24);
    }
    if (op == 999'000) counter = kReject - 5;  // the very end of a keypair's life
    const bool expected = model.acceptable(counter);
    ASSERT_EQ(window.check(counter), expected) << "op " << op << " counter " << counter;
    ASSERT_EQ(window.update(counter), expected) << "op " << op << " counter " << counter;
    model.update(counter);
    accepted += expected;
    if (recent.size() < 4096) {
      recent.push_back(counter);
    } else {
      recent[rng() % recent.size()] = counter;
    }
  }
  EXPECT_EQ(window.greatest(), model.top());
  EXPECT_GT(accepted, 300'000u);  // the mix exercised acceptance, not only rejection
}

// Runs `body(thread_index)` on two threads released together.
template <typename Body>
void run_two_threads(Body body) {
  std::atomic<int> ready{0};
  auto start = [&](int index) {
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    body(index);
  };
  std::thread a(start, 0);
  std::thread b(start, 1);
  a.join();
  b.join();
}

TEST(ReplayWindow, TwoThreadsOfferingTheSameCountersInsideTheWindowAcceptEachExactlyOnce) {
  ReplayWindow window;
  std::mt19937_64 rng(7);
  int interleaved_rounds = 0;
  for (int round = 0; round < 40; ++round) {
    window.reset();
    const uint64_t base = round % 2 == 0 ? rng() % 100'000 : (kReject - 4 * kWindow) - rng() % 1000;
    // All of [base, base + kWindow] fit in one window whatever the order.
    std::vector<uint64_t> lists[2];
    for (auto& list : lists) {
      for (uint64_t c = 0; c <= kWindow; ++c) list.push_back(base + c);
      for (int d = 0; d < 2000; ++d) list.push_back(base + rng() % (kWindow + 1));  // duplicates
      std::shuffle(list.begin(), list.end(), rng);
    }
    if (round % 4 == 1) lists[1] = lists[0];  // identical order: maximal contention per counter
    std::vector<uint64_t> accepted[2];
    run_two_threads([&](int t) {
      for (uint64_t c : lists[t]) {
        if (window.check(c) && window.update(c)) accepted[t].push_back(c);
      }
    });
    std::vector<uint8_t> times(kWindow + 1, 0);
    for (auto& list : accepted)
      for (uint64_t c : list) ++times[c - base];
    for (uint64_t c = 0; c <= kWindow; ++c) {
      ASSERT_EQ(times[c], 1) << "round " << round << " counter base+" << c;
    }
    EXPECT_EQ(window.greatest(), base + kWindow);
    interleaved_rounds += !accepted[0].empty() && !accepted[1].empty();
  }
  // Informative: on a loaded machine one thread may occasionally finish before the other runs.
  std::printf("[   INFO   ] rounds where both threads accepted counters: %d/40\n",
              interleaved_rounds);
}

TEST(ReplayWindow, TwoThreadsStreamingJitteredCountersAcceptEachExactlyOnce) {
  // Both threads walk the same stream of counters, each in its own local order (every counter
  // at most kJitter from its position) and with replays mixed in. As long as 2 * kJitter is
  // below the window, whichever thread reaches a counter first must accept it and the other
  // must reject it, however the threads interleave.
  constexpr uint64_t kCount = 1'000'000;
  constexpr uint64_t kJitter = 1000;
  static_assert(2 * kJitter < kWindow);
  ReplayWindow window;
  std::vector<uint64_t> streams[2];
  std::mt19937_64 rng(11);
  for (auto& stream : streams) {
    std::vector<uint64_t> chunk;
    for (uint64_t start = 0; start < kCount; start += kJitter) {
      chunk.clear();
      for (uint64_t c = start; c < std::min(kCount, start + kJitter); ++c) chunk.push_back(c);
      std::shuffle(chunk.begin(), chunk.end(), rng);
      for (uint64_t c : chunk) {
        stream.push_back(c);
        if (rng() % 16 == 0) stream.push_back(stream[rng() % stream.size()]);  // replay
      }
    }
  }
  std::vector<uint64_t> accepted[2];
  run_two_threads([&](int t) {
    accepted[t].reserve(kCount);
    for (uint64_t c : streams[t]) {
      if (window.update(c)) accepted[t].push_back(c);
    }
  });
  std::vector<uint8_t> times(kCount, 0);
  for (auto& list : accepted)
    for (uint64_t c : list) ++times[c];
  uint64_t wrong = 0;
  for (uint64_t c = 0; c < kCount; ++c) wrong += times[c] != 1;
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(accepted[0].size() + accepted[1].size(), kCount);
  EXPECT_EQ(window.greatest(), kCount - 1);
  std::printf("[   INFO   ] accepted by thread 0: %zu, by thread 1: %zu\n", accepted[0].size(),
              accepted[1].size());
}

TEST(ReplayWindow, LayoutIsCacheAlignedAndSlotsAre16Bytes) {
  static_assert(alignof(ReplayWindow) == 64);
  static_assert(sizeof(ReplayWindow) == 64 + ReplayWindow::kSlots * 16);
  static_assert(ReplayWindow::kWindowSize >= 2048);
  ReplayWindow windows[2];
  EXPECT_EQ(reinterpret_cast<uintptr_t>(&windows[1]) % 64, 0u);
}

}  // namespace
}  // namespace exitgw
