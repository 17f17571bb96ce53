// The per-worker flow table: both directions in one flow, flushes on FIN/RST, idle and active
// timeouts with incremental counts, a full table counted, a bounded sweep, a full ring counted,
// the open-addressing table against a naive model on random input, and the staged burst
// lookup against one packet at a time; the same for the IPv6 table, and its 40-byte key.
#include "dataplane/flow/flow_table.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <tuple>
#include <type_traits>
#include <vector>

namespace exitgw::dp::flow {
namespace {

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

// Ticks are abstract here: 1000 ticks = 1 "second".
FlowConfig config(uint32_t max_flows = 1024, uint32_t ring = 1024) {
  FlowConfig c;
  c.max_flows = max_flows;
  c.ring_capacity = ring;
  c.idle_ticks = 15'000;
  c.active_ticks = 60'000;
  c.linger_ticks = 1'000;
  c.sweep_period_ticks = 1;  // every sweep may look at the whole table (bounded by its budget)
  c.worker = 3;
  return c;
}

FlowKey key(uint32_t n, uint32_t peer = 7, uint8_t proto = 6) {
  FlowKey k{};
  k.src_address = 0x0b40'0064 + (n << 24);  // 100.64.x.11-ish, network order irrelevant here
  k.dst_address = 0x0a64'33c6;
  k.src_port = static_cast<uint16_t>(40000 + n);
  k.dst_port = 80;
  k.peer_slot = peer;
  k.protocol = proto;
  return k;
}

// IPv6: flows of one subscriber to one server differ only in the last bytes, the part of the
// key only IPv6's extra words carry (a hash or compare of the first 16 bytes would merge them).
FlowKey6 key6(uint32_t n, uint32_t peer = 7, uint8_t proto = 6) {
  static constexpr uint8_t kClient[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0,
                                          0,    0,    0,    0,    0,    0,    0, 0x11};
  static constexpr uint8_t kServer[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0,
                                          0,    0,    0,    0,    0, 0, 0, 0x10};
  FlowKey6 k{};
  std::memcpy(k.src_address, kClient, 16);
  std::memcpy(k.dst_address, kServer, 16);
  k.dst_address[15] = static_cast<uint8_t>(n);
  k.dst_address[14] = static_cast<uint8_t>(n >> 8);
  k.src_port = 40000;
  k.dst_port = 443;
  k.peer_slot = peer;
  k.protocol = proto;
  return k;
}
uint32_t key_number(const FlowKey& k) {
  return k.src_port - 40000u;
}
uint32_t key_number(const FlowKey6& k) {
  return uint32_t{k.dst_address[14]} << 8 | k.dst_address[15];
}
FlowKey make_key(uint32_t n, uint32_t peer, const FlowKey*) {
  return key(n, peer);
}
FlowKey6 make_key(uint32_t n, uint32_t peer, const FlowKey6*) {
  return key6(n, peer);
}

template <class Table>
std::vector<typename Table::Export> drain(Table& t) {
  std::vector<typename Table::Export> out;
  typename Table::Export e;
  while (t.ring().pop(&e)) out.push_back(e);
  return out;
}

// Sweeps the whole table at `now` (the test config paces nothing).
template <class Table>
std::vector<typename Table::Export> sweep_all(Table& t, uint64_t now) {
  t.sweep(now, t.max_flows());
  return drain(t);
}

TEST(FlowTable, CountsBothDirectionsIntoOneFlowWithItsPostNatSource) {
  FlowTable t(config());
  const FlowKey k = key(1);
  const uint32_t e = t.account(k, FlowDirection::kOut, 60, kSyn, 1000);
  ASSERT_NE(e, FlowTable::kUntracked);
  EXPECT_FALSE(t.has_post_nat(e));
  t.set_post_nat(e, 0x01007150, 0x0004);
  EXPECT_EQ(t.account(k, FlowDirection::kIn, 60, kSyn | kAck, 1010), e);
  EXPECT_TRUE(t.has_post_nat(e));
  t.account(k, FlowDirection::kOut, 52, kAck, 1020);
  t.account(k, FlowDirection::kIn, 1500, kAck, 1030);
  t.account(k, FlowDirection::kIn, 1500, kAck, 1040);
  EXPECT_EQ(t.active(), 1u);
  EXPECT_EQ(t.counters().created.get(), 1u);
  EXPECT_EQ(t.counters().packets_counted.get(), 5u);

  // Before the idle timeout nothing goes out; after it, one record with everything.
  EXPECT_TRUE(sweep_all(t, 1040 + 14'999).empty());
  const auto r = sweep_all(t, 1040 + 15'000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].key, k);
  EXPECT_EQ(r[0].end, FlowEnd::kIdle);
  EXPECT_EQ(r[0].worker, 3);
  EXPECT_EQ(r[0].post_nat_address, 0x01007150u);
  EXPECT_EQ(r[0].post_nat_port, 0x0004);
  EXPECT_EQ(r[0].tx_packets, 2u);
  EXPECT_EQ(r[0].tx_bytes, 112u);
  EXPECT_EQ(r[0].rx_packets, 3u);
  EXPECT_EQ(r[0].rx_bytes, 3060u);
  EXPECT_EQ(r[0].first_tsc, 1000u);
  EXPECT_EQ(r[0].last_tsc, 1040u);
  EXPECT_EQ(r[0].tcp_flags, kSyn | kAck);
  EXPECT_EQ(t.active(), 0u);
  EXPECT_EQ(t.counters().removed.get(), 1u);
  EXPECT_EQ(t.counters().records.get(), 1u);
}

TEST(FlowTable, PeerAndProtocolArePartOfTheKey) {
  FlowTable t(config());
  const uint32_t a = t.account(key(1, 7, 6), FlowDirection::kOut, 100, 0, 1000);
  const uint32_t b = t.account(key(1, 8, 6), FlowDirection::kOut, 100, 0, 1000);
  const uint32_t c = t.account(key(1, 7, 17), FlowDirection::kOut, 100, 0, 1000);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
  EXPECT_EQ(t.active(), 3u);
  EXPECT_EQ(sweep_all(t, 100'000).size(), 3u);
}

TEST(FlowTable, FinBothWaysEndsTheFlowOnceItsLastAckIsIn) {
  FlowTable t(config());
  const FlowKey k = key(2);
  t.account(k, FlowDirection::kOut, 52, kFin | kAck, 5000);
  t.account(k, FlowDirection::kIn, 52, kFin | kAck, 5010);
  t.account(k, FlowDirection::kOut, 40, kAck, 5020);  // the last ACK joins the same record
  EXPECT_TRUE(sweep_all(t, 5020 + 999).empty());
  const auto r = sweep_all(t, 5020 + 1000);  // the linger, long before the idle timeout
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].end, FlowEnd::kFinished);
  EXPECT_EQ(r[0].tx_packets, 2u);
  EXPECT_EQ(r[0].rx_packets, 1u);
  EXPECT_EQ(r[0].tcp_flags, kFin | kAck);
  EXPECT_EQ(t.active(), 0u);
}

TEST(FlowTable, FinOneWayIsNotTheEnd) {
  FlowTable t(config());
  t.account(key(3), FlowDirection::kOut, 52, kFin | kAck, 5000);
  EXPECT_TRUE(sweep_all(t, 5000 + 5000).empty());
  EXPECT_EQ(t.active(), 1u);
  const auto r = sweep_all(t, 5000 + 15'000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].end, FlowEnd::kIdle);
}

TEST(FlowTable, RstEitherWayEndsTheFlow) {
  FlowTable t(config());
  t.account(key(4), FlowDirection::kOut, 60, kSyn, 5000);
  t.account(key(4), FlowDirection::kIn, 40, kRst | kAck, 5010);
  const auto r = sweep_all(t, 5010 + 1000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].end, FlowEnd::kFinished);
  EXPECT_EQ(r[0].tcp_flags, kSyn | kRst | kAck);
  EXPECT_EQ(r[0].tx_packets + r[0].rx_packets, 2u);
}

TEST(FlowTable, ActiveTimeoutEmitsEachIntervalsCountsAndKeepsTheFlow) {
  FlowTable t(config());
  const FlowKey k = key(5, 7, 17);
  uint64_t now = 1000;
  // A packet out and one back every 10 "seconds" for 150 seconds.
  std::vector<FlowExport> records;
  uint64_t sent = 0;
  for (; now <= 151'000; now += 10'000) {
    t.account(k, FlowDirection::kOut, 200, 0, now);
    t.account(k, FlowDirection::kIn, 300, 0, now + 1);
    ++sent;
    for (const FlowExport& r : sweep_all(t, now + 2)) records.push_back(r);
  }
  EXPECT_EQ(t.active(), 1u);
  // Intervals start at 1000, 71000, 141000: two active records so far.
  ASSERT_EQ(records.size(), 2u);
  for (const FlowExport& r : records) EXPECT_EQ(r.end, FlowEnd::kActive);
  EXPECT_EQ(records[0].first_tsc, 1000u);
  EXPECT_EQ(records[0].tx_packets, 7u);  // 1000 .. 61000
  EXPECT_EQ(records[1].first_tsc, 71'000u);
  EXPECT_EQ(records[1].tx_packets, 7u);  // 71000 .. 131000
  EXPECT_EQ(records[1].rx_bytes, 7u * 300);
  // The rest goes out at the idle timeout; the intervals add up to what was counted.
  for (const FlowExport& r : sweep_all(t, now + 15'000)) records.push_back(r);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].end, FlowEnd::kIdle);
  uint64_t tx = 0, rx_bytes = 0;
  for (const FlowExport& r : records) {
    tx += r.tx_packets;
    rx_bytes += r.rx_bytes;
  }
  EXPECT_EQ(tx, sent);
  EXPECT_EQ(rx_bytes, sent * 300);
  EXPECT_EQ(t.active(), 0u);
}

TEST(FlowTable, AFullTableCountsNewFlowsAsUntrackedAndNeverBlocks) {
  FlowTable t(config(4));
  for (uint32_t i = 0; i < 4; ++i)
    EXPECT_NE(t.account(key(i), FlowDirection::kOut, 100, 0, 1000), FlowTable::kUntracked);
  EXPECT_EQ(t.account(key(9), FlowDirection::kOut, 100, 0, 1000), FlowTable::kUntracked);
  EXPECT_EQ(t.account(key(9), FlowDirection::kIn, 100, 0, 1001), FlowTable::kUntracked);
  EXPECT_EQ(t.counters().untracked.get(), 2u);
  // Known flows still count.
  EXPECT_NE(t.account(key(2), FlowDirection::kIn, 100, 0, 1002), FlowTable::kUntracked);
  // Once flows leave, new ones fit again.
  EXPECT_EQ(sweep_all(t, 1002 + 15'000).size(), 4u);
  EXPECT_NE(t.account(key(9), FlowDirection::kOut, 100, 0, 20'000), FlowTable::kUntracked);
  EXPECT_EQ(t.counters().untracked.get(), 2u);
}

TEST(FlowTable, SweepExaminesAtMostItsBudget) {
  FlowTable t(config(4096, 8192));
  for (uint32_t i = 0; i < 3000; ++i) t.account(key(i), FlowDirection::kOut, 100, 0, 1000);
  const uint64_t late = 1000 + 15'000;
  EXPECT_EQ(t.sweep(late, 8), 8u);
  EXPECT_LE(drain(t).size(), 8u);
  // Repeated bounded passes finish the job.
  size_t total = 0;
  for (int pass = 0; pass < 4096 / 64 + 1; ++pass) {
    EXPECT_LE(t.sweep(late + 1 + pass, 64), 64u);
    total += drain(t).size();
  }
  EXPECT_EQ(t.active(), 0u);
  EXPECT_EQ(t.counters().records.get(), 3000u);
  EXPECT_GE(total, 3000u - 8u);
}

TEST(FlowTable, SweepIsPacedToOnePassPerPeriod) {
  FlowConfig c = config(1000);
  c.sweep_period_ticks = 10'000;
  FlowTable t(c);
  for (uint32_t i = 0; i < 1000; ++i) t.account(key(i), FlowDirection::kOut, 100, 0, 1);
  t.sweep(1, 1u << 30);  // first pass: starts the clock
  // A tenth of the period later, a tenth of the table is due, whatever the budget.
  EXPECT_EQ(t.sweep(1'001, 1u << 30), 100u);
  EXPECT_EQ(t.sweep(1'001, 1u << 30), 0u);
}

TEST(FlowTable, AFullRingCountsLostRecords) {
  FlowTable t(config(64, 2));
  for (uint32_t i = 0; i < 5; ++i) t.account(key(i), FlowDirection::kOut, 100, 0, 1000);
  EXPECT_EQ(sweep_all(t, 1000 + 15'000).size(), 2u);
  EXPECT_EQ(t.counters().records.get(), 2u);
  EXPECT_EQ(t.counters().ring_full.get(), 3u);
  EXPECT_EQ(t.active(), 0u);
}

TEST(FlowTable, ExpireAllFlushesEveryOpenFlowWithinItsBudget) {
  FlowTable t(config(64, 64));
  for (uint32_t i = 0; i < 10; ++i) t.account(key(i), FlowDirection::kOut, 100, 0, 1000);
  EXPECT_EQ(t.expire_all(4), 6u);
  EXPECT_EQ(t.expire_all(100), 0u);
  const auto r = drain(t);
  ASSERT_EQ(r.size(), 10u);
  for (const FlowExport& e : r) EXPECT_EQ(e.end, FlowEnd::kFlushed);
}

// Random flows over a small table (many probe collisions, deletions in the middle of probe
// runs) against a map: every packet is in exactly one record of its key or counted untracked.
template <class Table>
void matches_a_naive_model_on_random_traffic() {
  using Key = std::remove_cvref_t<decltype(Table::Export::key)>;
  constexpr uint32_t kMax = 64;
  FlowConfig c = config(kMax, 1 << 16);
  c.idle_ticks = 100;
  c.active_ticks = 1u << 30;
  Table t(c);
  struct Model {
    uint64_t last = 0, tx = 0, rx = 0, tx_bytes = 0, rx_bytes = 0;
  };
  std::map<uint32_t, Model> open;
  std::map<std::tuple<uint32_t, uint64_t, uint64_t>, int> expected, got;  // key, tx, rx
  uint64_t untracked = 0;
  std::mt19937 rng(12345);
  uint64_t now = 1;
  const auto check_emitted = [&] {
    for (const auto& e : drain(t)) {
      const uint32_t n = key_number(e.key);
      ++got[{n, e.tx_packets * 1000000 + e.tx_bytes, e.rx_packets * 1000000 + e.rx_bytes}];
    }
  };
  for (int step = 0; step < 200'000; ++step) {
    now += rng() % 4;
    const uint32_t n = rng() % 150;
    const bool out = rng() % 2;
    const uint32_t bytes = 40 + rng() % 1400;
    const uint32_t e = t.account(make_key(n, 7, static_cast<const Key*>(nullptr)),
                                 out ? FlowDirection::kOut : FlowDirection::kIn, bytes, 0, now);
    auto it = open.find(n);
    if (it == open.end() && open.size() == kMax) {
      EXPECT_EQ(e, Table::kUntracked);
      ++untracked;
    } else {
      ASSERT_NE(e, Table::kUntracked) << "step " << step;
      Model& m = open[n];
      m.last = now;
      (out ? m.tx : m.rx) += 1;
      (out ? m.tx_bytes : m.rx_bytes) += bytes;
    }
    if (step % 37 == 0) {
      t.sweep(now, kMax);
      for (auto i = open.begin(); i != open.end();) {
        if (now - i->second.last >= 100) {
          ++expected[{i->first, i->second.tx * 1000000 + i->second.tx_bytes,
                      i->second.rx * 1000000 + i->second.rx_bytes}];
          i = open.erase(i);
        } else {
          ++i;
        }
      }
      check_emitted();
      ASSERT_EQ(t.active(), open.size()) << "step " << step;
    }
  }
  EXPECT_EQ(t.counters().untracked.get(), untracked);
  EXPECT_GT(untracked, 0u);
  EXPECT_GT(expected.size(), 1000u);
  EXPECT_EQ(got, expected);
}

TEST(FlowTable, MatchesANaiveModelOnRandomTraffic) {
  matches_a_naive_model_on_random_traffic<FlowTable>();
}

TEST(FlowTable6, MatchesANaiveModelOnRandomTraffic) {
  matches_a_naive_model_on_random_traffic<FlowTable6>();
}

// The staged burst path (hash all, prefetch, count) gives each packet the entry the one-at-a-
// time path gives it, with repeats of a flow inside one burst, new flows and a full table.
template <class Table>
void burst_accounting_matches_one_packet_at_a_time() {
  using Key = std::remove_cvref_t<decltype(Table::Export::key)>;
  constexpr uint32_t kMax = 48;
  Table burst(config(kMax, 1 << 12)), single(config(kMax, 1 << 12));
  std::mt19937 rng(99);
  uint64_t now = 1;
  for (int round = 0; round < 2000; ++round) {
    const auto n = static_cast<uint16_t>(1 + rng() % Table::kMaxBurst);
    Key keys[Table::kMaxBurst];
    uint16_t bytes[Table::kMaxBurst];
    uint8_t flags[Table::kMaxBurst];
    uint32_t got[Table::kMaxBurst];
    for (uint16_t i = 0; i < n; ++i) {
      // More flows than fit: some untracked.
      keys[i] = make_key(rng() % 64, 1 + rng() % 2, static_cast<const Key*>(nullptr));
      bytes[i] = static_cast<uint16_t>(40 + rng() % 1400);
      flags[i] = static_cast<uint8_t>(rng() % 3 == 0 ? kAck : 0);
    }
    const FlowDirection dir = rng() % 2 ? FlowDirection::kOut : FlowDirection::kIn;
    ++now;
    burst.account_burst(keys, bytes, flags, n, dir, now, got);
    for (uint16_t i = 0; i < n; ++i)
      ASSERT_EQ(got[i], single.account(keys[i], dir, bytes[i], flags[i], now))
          << "round " << round << " packet " << i;
    if (round % 50 == 49) {  // flows leave, so new ones are inserted again
      now += 20'000;
      burst.sweep(now, kMax);
      single.sweep(now, kMax);
      auto a = drain(burst), b = drain(single);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].key, b[i].key);
        EXPECT_EQ(a[i].tx_bytes, b[i].tx_bytes);
        EXPECT_EQ(a[i].rx_bytes, b[i].rx_bytes);
      }
    }
  }
  EXPECT_EQ(burst.counters().packets_counted.get(), single.counters().packets_counted.get());
  EXPECT_EQ(burst.counters().untracked.get(), single.counters().untracked.get());
  EXPECT_GT(burst.counters().untracked.get(), 0u);
}

TEST(FlowTable, BurstAccountingMatchesOnePacketAtATime) {
  burst_accounting_matches_one_packet_at_a_time<FlowTable>();
}

TEST(FlowTable6, BurstAccountingMatchesOnePacketAtATime) {
  burst_accounting_matches_one_packet_at_a_time<FlowTable6>();
}

TEST(FlowTable6, CountsBothDirectionsIntoOneFlowWithItsSixteenBytePostNatSource) {
  FlowTable6 t(config());
  const FlowKey6 k = key6(1);
  const uint32_t e = t.account(k, FlowDirection::kOut, 80, kSyn, 1000);
  ASSERT_NE(e, FlowTable6::kUntracked);
  EXPECT_FALSE(t.has_post_nat(e));
  FlowTable6::Address pool{
      {0x20, 0x01, 0x0d, 0xb8, 0, 0x07, 0x5e, 0xd1, 0, 0, 0, 0, 0, 0, 0, 0x11}};
  t.set_post_nat(e, pool, 0x1f90);
  EXPECT_EQ(t.account(k, FlowDirection::kIn, 80, kSyn | kAck, 1010), e);
  t.account(k, FlowDirection::kOut, 72, kAck, 1020);
  t.account(k, FlowDirection::kIn, 1280, kAck | kFin, 1030);
  t.account(k, FlowDirection::kOut, 72, kAck | kFin, 1040);
  EXPECT_EQ(t.active(), 1u);
  // FIN both ways: out after the linger, as for IPv4.
  EXPECT_TRUE(sweep_all(t, 1040 + 999).empty());
  const auto r = sweep_all(t, 1040 + 1'000);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].key, k);
  EXPECT_EQ(r[0].end, FlowEnd::kFinished);
  EXPECT_EQ(std::memcmp(r[0].post_nat_address, pool.bytes, 16), 0);
  EXPECT_EQ(r[0].post_nat_port, 0x1f90);
  EXPECT_EQ(r[0].tx_packets, 3u);
  EXPECT_EQ(r[0].tx_bytes, 80u + 72 + 72);
  EXPECT_EQ(r[0].rx_packets, 2u);
  EXPECT_EQ(r[0].rx_bytes, 80u + 1280);
  EXPECT_EQ(r[0].tcp_flags, kSyn | kAck | kFin);
  EXPECT_EQ(t.active(), 0u);
}

// Every byte of the 40-byte key counts: keys that differ in any one byte (addresses, ports,
// peer, protocol) are different flows, and the same bytes are the same flow.
TEST(FlowTable6, EveryByteOfTheKeySeparatesFlows) {
  FlowTable6 t(config(1024));
  const FlowKey6 base = key6(0);
  const uint32_t e0 = t.account(base, FlowDirection::kOut, 100, 0, 1000);
  std::vector<uint32_t> entries{e0};
  for (size_t byte = 0; byte < sizeof(FlowKey6); ++byte) {
    FlowKey6 k = base;
    reinterpret_cast<uint8_t*>(&k)[byte] ^= 0x80;
    const uint32_t e = t.account(k, FlowDirection::kOut, 100, 0, 1000);
    ASSERT_NE(e, FlowTable6::kUntracked);
    for (uint32_t other : entries) EXPECT_NE(e, other) << "byte " << byte;
    entries.push_back(e);
  }
  EXPECT_EQ(t.account(base, FlowDirection::kIn, 100, 0, 1001), e0);
  EXPECT_EQ(t.active(), sizeof(FlowKey6) + 1);
}

TEST(FlowTable6, AFullTableCountsNewFlowsAsUntracked) {
  FlowTable6 t(config(4));
  for (uint32_t i = 0; i < 4; ++i)
    EXPECT_NE(t.account(key6(i), FlowDirection::kOut, 100, 0, 1000), FlowTable6::kUntracked);
  EXPECT_EQ(t.account(key6(9), FlowDirection::kOut, 100, 0, 1000), FlowTable6::kUntracked);
  EXPECT_EQ(t.counters().untracked.get(), 1u);
  EXPECT_EQ(sweep_all(t, 1000 + 15'000).size(), 4u);
  EXPECT_NE(t.account(key6(9), FlowDirection::kOut, 100, 0, 20'000), FlowTable6::kUntracked);
}

}  // namespace
}  // namespace exitgw::dp::flow
