// ReplayWindow::update() cost per counter: in order, reordered, and two lcores on one window.
// Cycles are read with rdtsc around the whole benchmark loop (per op it would cost as much as
// the op itself).
#include "common/replay_window.h"

#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <algorithm>
#include <random>
#include <vector>

namespace {

using exitgw::ReplayWindow;

void set_counters(benchmark::State& state, uint64_t cycles) {
  const auto ops = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(ops);
  state.counters["cycles_per_op"] =
      benchmark::Counter(ops > 0 ? static_cast<double>(cycles) / ops : 0.0);
}

// Counters offsets in a repeating period of kPeriod, shuffled within chunks of `jitter`.
std::vector<uint64_t> jittered_offsets(uint64_t period, uint64_t jitter) {
  std::vector<uint64_t> offsets(period);
  for (uint64_t i = 0; i < period; ++i) offsets[i] = i;
  std::mt19937_64 rng(1);
  for (uint64_t start = 0; start < period; start += jitter) {
    std::shuffle(offsets.begin() + static_cast<long>(start),
                 offsets.begin() + static_cast<long>(std::min(period, start + jitter)), rng);
  }
  return offsets;
}

void BM_UpdateInOrder(benchmark::State& state) {
  ReplayWindow window;
  uint64_t counter = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    benchmark::DoNotOptimize(window.update(counter++));
  }
  set_counters(state, __rdtsc() - start);
}

// Reordering within `range(0)` counters (e.g. several RX queues or paths in the network).
void BM_UpdateReordered(benchmark::State& state) {
  constexpr uint64_t kPeriod = 1 << 16;
  const auto offsets = jittered_offsets(kPeriod, static_cast<uint64_t>(state.range(0)));
  ReplayWindow window;
  uint64_t i = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    const uint64_t counter = (i / kPeriod) * kPeriod + offsets[i % kPeriod];
    ++i;
    benchmark::DoNotOptimize(window.update(counter));
  }
  set_counters(state, __rdtsc() - start);
}

// The receive path's pair: check() before decryption, update() after the tag verified.
void BM_CheckThenUpdateReordered(benchmark::State& state) {
  constexpr uint64_t kPeriod = 1 << 16;
  const auto offsets = jittered_offsets(kPeriod, 256);
  ReplayWindow window;
  uint64_t i = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    const uint64_t counter = (i / kPeriod) * kPeriod + offsets[i % kPeriod];
    ++i;
    benchmark::DoNotOptimize(window.check(counter) && window.update(counter));
  }
  set_counters(state, __rdtsc() - start);
}

// Replays only: every update is rejected (a flood of duplicated packets).
void BM_UpdateReplayRejected(benchmark::State& state) {
  ReplayWindow window;
  for (uint64_t c = 0; c < 4096; ++c) (void)window.update(c);
  uint64_t i = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    benchmark::DoNotOptimize(window.update(i++ & 4095));
  }
  set_counters(state, __rdtsc() - start);
}

// Two threads (lcores) updating one window with interleaved counters: the cost of sharing the
// cache lines and of CAS retries. On this 2-CPU lab machine the numbers are only indicative.
ReplayWindow g_shared_window;
void BM_UpdateSharedTwoThreads(benchmark::State& state) {
  uint64_t counter = static_cast<uint64_t>(state.thread_index());
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    benchmark::DoNotOptimize(g_shared_window.update(counter));
    counter += 2;
  }
  set_counters(state, __rdtsc() - start);
}

BENCHMARK(BM_UpdateInOrder);
BENCHMARK(BM_UpdateReordered)->Arg(32)->Arg(256)->Arg(4096);
BENCHMARK(BM_CheckThenUpdateReordered);
BENCHMARK(BM_UpdateReplayRejected);
BENCHMARK(BM_UpdateSharedTwoThreads)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
