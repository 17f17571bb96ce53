// Per-worker peer counters: each worker counts into its own row, control's sum is exact.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "dataplane/peer_tally.h"

namespace exitgw {
namespace {

struct Table {
  explicit Table(uint32_t rows, uint32_t peers)
      : memory(std::aligned_alloc(64, PeerCounterTable::bytes_for(rows, peers))) {
    t.init(memory, rows, peers);
  }
  ~Table() { std::free(memory); }
  void* memory;
  PeerCounterTable t;
};

// What one worker's loop does: bursts of 32 packets, runs of the same peer collapsed.
void count_bursts(PeerCounters* row, dp::PeerTally::Direction d, uint32_t n_peers, unsigned bursts,
                  uint32_t bytes) {
  for (unsigned b = 0; b < bursts; ++b) {
    dp::PeerTally tally(row, d);
    for (uint32_t i = 0; i < 32; ++i) tally.add((b + i / 4) % n_peers, bytes);
  }
}

TEST(PeerTally, TwoWorkersCountingTheSamePeersSumExactly) {
  constexpr uint32_t kPeers = 3;
  constexpr unsigned kBursts = 200000;
  Table table(2, kPeers);
  // Control reads while the workers count: every sum it sees only grows.
  std::atomic<bool> done{false};
  bool monotonic = true;
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done.load()) {
      const uint64_t now = table.t.sum(0).rx_packets;
      monotonic = monotonic && now >= last;
      last = now;
    }
  });
  std::thread w0(count_bursts, table.t.row(0), dp::PeerTally::kRx, kPeers, kBursts, 100);
  std::thread w1(count_bursts, table.t.row(1), dp::PeerTally::kRx, kPeers, kBursts, 60);
  w0.join();
  w1.join();
  done = true;
  reader.join();
  EXPECT_TRUE(monotonic);
  uint64_t packets = 0, bytes = 0;
  for (uint32_t s = 0; s < kPeers; ++s) {
    const PeerTotals t = table.t.sum(s);
    packets += t.rx_packets;
    bytes += t.rx_bytes;
    EXPECT_EQ(t.tx_packets, 0u);
    // Each worker gives each peer the same share of its packets, so the split is exact too.
    EXPECT_EQ(t.rx_bytes, t.rx_packets / 2 * 160) << "slot " << s;
  }
  EXPECT_EQ(packets, 2ull * kBursts * 32);
  EXPECT_EQ(bytes, uint64_t{kBursts} * 32 * (100 + 60));
}

TEST(PeerTally, DirectionsAndPeersAreCountedApart) {
  Table table(2, 5);
  {
    dp::PeerTally rx(table.t.row(0), dp::PeerTally::kRx);
    dp::PeerTally tx(table.t.row(1), dp::PeerTally::kTx);
    rx.add(4, 10);
    rx.add(4, 20);
    rx.add(1, 5);
    tx.add(4, 7);
  }  // flushed on destruction
  const PeerTotals four = table.t.sum(4), one = table.t.sum(1), zero = table.t.sum(0);
  EXPECT_EQ(four.rx_packets, 2u);
  EXPECT_EQ(four.rx_bytes, 30u);
  EXPECT_EQ(four.tx_packets, 1u);
  EXPECT_EQ(four.tx_bytes, 7u);
  EXPECT_EQ(one.rx_packets, 1u);
  EXPECT_EQ(one.rx_bytes, 5u);
  EXPECT_EQ(zero.rx_packets + zero.tx_packets, 0u);
}

TEST(PeerTally, ClearingAFreedSlotZeroesEveryWorkersRow) {
  Table table(3, 4);
  for (unsigned w = 0; w < 3; ++w) {
    dp::PeerTally tally(table.t.row(w), dp::PeerTally::kTx);
    tally.add(2, 100);
    tally.add(3, 100);
  }
  table.t.clear(2);
  EXPECT_EQ(table.t.sum(2).tx_packets, 0u);
  EXPECT_EQ(table.t.sum(2).tx_bytes, 0u);
  EXPECT_EQ(table.t.sum(3).tx_packets, 3u);  // the neighbour keeps its counts
}

TEST(PeerTally, WorkerRowsNeverShareACacheLine) {
  Table table(4, 7);  // odd peer count: the stride rounds up
  for (unsigned w = 0; w < 4; ++w)
    EXPECT_EQ(reinterpret_cast<uintptr_t>(table.t.row(w)) % 64, 0u) << "row " << w;
}

}  // namespace
}  // namespace exitgw
