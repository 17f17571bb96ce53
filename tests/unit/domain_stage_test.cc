// The domain stage on real workers, fed by the control-side DomainPolicy: every match is
// counted against its deciding rule in the worker's own row, the rows sum per rule into the
// status /metrics exports, and counts stay monotonic across a list reload. Reloads compile on
// the builder thread while the running list serves; bad lists are refused whole.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <rte_eal.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "control/domain_policy.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"
#include "tests/support/eal_environment.h"
#include "tests/support/inner_packets.h"
#include "tests/support/test_files.h"

namespace exitgw {
namespace {

using dp::domain::Action;
using testing::Bytes;

EXITGW_EAL_ENVIRONMENT("domain_stage_test", 128);

using testing::tcp;
using testing::udp;

Bytes dns(const std::string& dotted) {
  return udp(53, testing::dns_query(dotted));
}
Bytes tls(const std::string& host) {
  return tcp(443, testing::client_hello(host));
}
Bytes http(const std::string& host) {
  return tcp(80, testing::http_request(host));
}

constexpr const char* kList =
    "block exact blocked.lab.test\n"        // 0
    "log suffix example.org\n"              // 1
    "block suffix ads.example.org\n"        // 2: block beats rule 1's log
    "log regex ^api[0-9]+\\.svc\\.test$\n"  // 3
    "block exact never.test\n";             // 4: never matched

class DomainStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tag = std::to_string(getpid()) + "_" + std::to_string(serial_++);
    pool_ = rte_pktmbuf_pool_create(("pd_pool" + tag).c_str(), 1023, 0, sizeof(dp::PacketMeta),
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(pool_, nullptr);
    ctx_.n_workers = 2;
    // No reader registers with this QSBR, so a retired database is freed at the next tick.
    ctx_.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc(nullptr, rte_rcu_qsbr_get_memsize(2), 64));
    ASSERT_NE(ctx_.rcu, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(ctx_.rcu, 2), 0);
    for (unsigned w = 0; w < 2; ++w) {
      ctx_.workers[w].events =
          rte_ring_create_elem(("pd_ev" + tag + "_" + std::to_string(w)).c_str(), sizeof(dp::Event),
                               1024, SOCKET_ID_ANY, 0);
      ASSERT_NE(ctx_.workers[w].events, nullptr);
      workers_.push_back(std::make_unique<dp::Worker>(ctx_, w));
    }
    path_ = "/tmp/exitgw-policydiff-domains-" + tag + ".conf";
    write_list(kList);
    domains_ = std::make_unique<DomainPolicy>(ctx_, path_);
    ASSERT_TRUE(domains_->init().ok());
  }
  void TearDown() override {
    domains_.reset();
    workers_.clear();
    for (unsigned w = 0; w < 2; ++w) rte_ring_free(ctx_.workers[w].events);
    rte_free(ctx_.rcu);
    rte_mempool_free(pool_);
    std::remove(path_.c_str());
  }

  void write_list(const std::string& text) {
    std::ofstream f(path_ + ".tmp");
    f << text;
    f.close();
    std::rename((path_ + ".tmp").c_str(), path_.c_str());
  }

  // Runs one burst through worker `w`'s domain stage; returns how many packets passed.
  uint16_t run(unsigned w, const std::vector<Bytes>& packets) {
    std::vector<rte_mbuf*> mbufs;
    for (const Bytes& p : packets) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool_);
      EXPECT_NE(m, nullptr);
      if (m == nullptr) break;
      std::memcpy(rte_pktmbuf_append(m, uint16_t(p.size())), p.data(), p.size());
      dp::meta(m)->in_port = 0;
      dp::meta(m)->peer_slot = 7;
      mbufs.push_back(m);
    }
    const uint16_t passed = dp::domain_policy(*workers_[w], mbufs.data(), uint16_t(mbufs.size()));
    rte_pktmbuf_free_bulk(mbufs.data(), passed);
    workers_[w]->flush();  // frees the blocked ones
    dp::Event e[64];
    while (rte_ring_dequeue_burst_elem(ctx_.workers[w].events, e, sizeof(dp::Event), 64, nullptr)) {
    }
    return passed;
  }

  // The exported series: (rule, pattern, action) -> matches.
  std::map<std::tuple<uint32_t, std::string, Action>, uint64_t> exported() {
    domains_->publish_status();
    std::map<std::tuple<uint32_t, std::string, Action>, uint64_t> out;
    for (const DomainRuleMatches& r : domains_->status()->rules)
      out[{r.rule, r.pattern, r.action}] = r.matches;
    return out;
  }

  static inline unsigned serial_ = 0;
  dp::DataplaneContext ctx_;
  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<dp::Worker>> workers_;
  std::string path_;
  std::unique_ptr<DomainPolicy> domains_;
};

TEST_F(DomainStageTest, EachWorkerCountsMatchesPerRuleInItsOwnRow) {
  EXPECT_EQ(run(0, {dns("blocked.lab.test"), dns("blocked.lab.test"), tls("blocked.lab.test"),
                    http("www.example.org"), dns("example.org"), tls("x.ads.example.org"),
                    dns("nothing.test"), tcp(22, {})}),
            4);  // two logs, the miss and the non-candidate pass
  EXPECT_EQ(run(1, {http("blocked.lab.test"), dns("api7.svc.test"), tls("api12.svc.test"),
                    dns("api7.svc.test"), http("API9.svc.test"), dns("apix.svc.test")}),
            5);
  const dp::domain::DomainDatabase* db = ctx_.domains.load();
  ASSERT_NE(db, nullptr);
  ASSERT_EQ(db->counter_workers(), 2u);
  const uint64_t want[2][5] = {{3, 2, 1, 0, 0}, {1, 0, 0, 4, 0}};
  for (unsigned w = 0; w < 2; ++w)
    for (uint32_t r = 0; r < 5; ++r) EXPECT_EQ(db->rule_matches(w, r), want[w][r]) << w << " " << r;
  // Per-rule counts add up to the global block/log counters of each worker.
  EXPECT_EQ(ctx_.workers[0].counters.domain_blocked.get(), 4u);
  EXPECT_EQ(ctx_.workers[0].counters.domain_logged.get(), 2u);
  EXPECT_EQ(ctx_.workers[1].counters.domain_blocked.get(), 1u);
  EXPECT_EQ(ctx_.workers[1].counters.domain_logged.get(), 4u);

  const auto series = exported();
  const std::map<std::tuple<uint32_t, std::string, Action>, uint64_t> expected = {
      {{0, "blocked.lab.test", Action::kBlock}, 4},
      {{1, "example.org", Action::kLog}, 2},
      {{2, "ads.example.org", Action::kBlock}, 1},
      {{3, "^api[0-9]+\\.svc\\.test$", Action::kLog}, 4},
  };
  EXPECT_EQ(series, expected);  // rule 4 never matched: no series
}

TEST_F(DomainStageTest, CountsStayMonotonicAcrossAListReload) {
  run(0, {dns("blocked.lab.test"), http("www.example.org")});
  run(1, {dns("blocked.lab.test")});
  const dp::domain::DomainDatabase* before = ctx_.domains.load();
  // Same rule 0; example.org moves from index 1 to 2 (a new series); a new rule 1.
  write_list(
      "block exact blocked.lab.test\n"
      "log exact new.test\n"
      "log suffix example.org\n");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  uint64_t ns = 0;
  while (domains_->reloads() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ns += 100'000'000;
    domains_->tick(ns);
  }
  ASSERT_EQ(domains_->reloads(), 1u);
  ASSERT_EQ(domains_->reload_errors(), 0u);
  ASSERT_NE(ctx_.domains.load(), before);
  domains_->tick(ns + 1);  // the old database's grace period is over: its counts are folded
  run(0, {dns("blocked.lab.test"), dns("new.test"), tls("a.example.org")});
  const std::map<std::tuple<uint32_t, std::string, Action>, uint64_t> expected = {
      {{0, "blocked.lab.test", Action::kBlock}, 3},
      {{1, "example.org", Action::kLog}, 1},
      {{1, "new.test", Action::kLog}, 1},
      {{2, "example.org", Action::kLog}, 1},
  };
  EXPECT_EQ(exported(), expected);
}

// Ticks with a fake clock (200 ms a step, real 20 ms sleeps) until `done` or 60 s; returns the
// longest single tick().
std::chrono::nanoseconds tick_until(DomainPolicy& domains, uint64_t& ns,
                                    const std::function<bool()>& done) {
  std::chrono::nanoseconds longest{0};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ns += 200'000'000;
    const auto start = std::chrono::steady_clock::now();
    domains.tick(ns);
    longest = std::max(longest, std::chrono::steady_clock::now() - start);
  }
  return longest;
}

// 300 ordinary regexes (the 12.9 s compile) are compiled on the builder thread: every
// tick returns at once, the running database keeps serving until the new one is published.
TEST_F(DomainStageTest, ALongCompileRunsOnTheBuilderWhileTheRunningListServes) {
  const dp::domain::DomainDatabase* before = ctx_.domains.load();
  std::string list = "block exact blocked.lab.test\n";
  for (int i = 0; i < 300; ++i)
    list += "log regex ^(www|api|cdn)" + std::to_string(i) +
            "[a-z0-9-]{2,40}\\.(svc|pod|node)[0-9]*\\.example[0-9]?\\.(test|lab)$\n";
  write_list(list);
  uint64_t ns = 0;
  bool served_meanwhile = false;
  const auto start = std::chrono::steady_clock::now();
  const auto longest = tick_until(*domains_, ns, [&] {
    if (domains_->build_pending() && ctx_.domains.load() == before) {
      // Mid-build: the old database still decides.
      served_meanwhile = run(0, {dns("blocked.lab.test")}) == 0;
    }
    return domains_->reloads() > 0;
  });
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(domains_->reloads(), 1u) << domains_->last_reload_error();
  EXPECT_EQ(domains_->reloads_applied(), 1u);
  EXPECT_TRUE(served_meanwhile) << "never saw the build in progress";
  EXPECT_NE(ctx_.domains.load(), before);
  EXPECT_EQ(domains_->rules(), 301u);
  EXPECT_LT(longest, std::chrono::milliseconds(100))
      << "a tick took " << std::chrono::duration_cast<std::chrono::milliseconds>(longest).count()
      << " ms while the list compiled";
  std::printf(
      "300 regexes compiled and published in %lld ms; longest tick %lld us\n",
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::microseconds>(longest).count()));
}

// A newer file written while an older one compiles wins; the older result is never published.
TEST_F(DomainStageTest, ANewerListSupersedesABuildInProgress) {
  std::string slow;
  for (int i = 0; i < 300; ++i)
    slow += "log regex ^(www|api)" + std::to_string(i) + "[a-z0-9-]{2,40}\\.svc[0-9]*\\.test$\n";
  write_list(slow);
  uint64_t ns = 0;
  tick_until(*domains_, ns, [&] { return domains_->build_pending(); });
  ASSERT_TRUE(domains_->build_pending());
  write_list("block exact newest.test\n");
  tick_until(*domains_, ns, [&] { return domains_->rules() == 1; });
  EXPECT_EQ(domains_->rules(), 1u);
  EXPECT_EQ(domains_->rule_text(0), "newest.test");
  // Long after the slow build finished, it has not replaced the newest list.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  tick_until(*domains_, ns, [&] { return !domains_->build_pending(); });
  for (int i = 0; i < 5; ++i) domains_->tick(ns += 200'000'000);
  EXPECT_EQ(domains_->rules(), 1u);
  EXPECT_EQ(domains_->rule_text(0), "newest.test");
}

// Patterns that can match the empty name match every name: refused by Hyperscan's own analysis;
// a rejected reload leaves the list running, is reported, and does not count as applied (the
// configuration generation follows reloads_applied()).
TEST_F(DomainStageTest, AnEmptyMatchingRegexIsRefusedAndTheReloadIsNotApplied) {
  const dp::domain::DomainDatabase* before = ctx_.domains.load();
  uint64_t ns = 0;
  uint64_t rejected = 0;
  for (const char* pattern : {"^.*$", "^x?$", "(a|)", "^(www\\.)?$"}) {
    write_list(std::string("block exact blocked.lab.test\nblock regex ") + pattern + "\n");
    tick_until(*domains_, ns, [&] { return domains_->reload_errors() > rejected; });
    ASSERT_EQ(domains_->reload_errors(), ++rejected) << pattern << " was accepted";
    EXPECT_NE(domains_->last_reload_error().find(":2: regex '"), std::string::npos)
        << domains_->last_reload_error();
    EXPECT_NE(domains_->last_reload_error().find("can match the empty name"), std::string::npos)
        << domains_->last_reload_error();
  }
  EXPECT_EQ(domains_->reloads_applied(), 0u);
  EXPECT_EQ(ctx_.domains.load(), before);
  EXPECT_EQ(domains_->rules(), 5u);
  EXPECT_EQ(run(0, {dns("blocked.lab.test")}), 0);
}

// A list of a million rules is read and parsed on the builder thread too, not in a tick: here
// its last line is bad, so the whole cost is the read and the parse, and the refusal arrives
// at a later tick with the running list unchanged.
TEST_F(DomainStageTest, AHugeListIsReadAndParsedOnTheBuilderNotInATick) {
  const dp::domain::DomainDatabase* before = ctx_.domains.load();
  std::string list;
  constexpr int kRules = 1'000'000;
  list.reserve(size_t{kRules} * 32);
  for (int i = 0; i < kRules; ++i) list += "log exact host" + std::to_string(i) + ".example.test\n";
  list += "block nonsense x.test\n";
  write_list(list);
  uint64_t ns = 0;
  const auto longest = tick_until(*domains_, ns, [&] { return domains_->reload_errors() > 0; });
  ASSERT_EQ(domains_->reload_errors(), 1u);
  EXPECT_NE(domains_->last_reload_error().find(":" + std::to_string(kRules + 1) + ":"),
            std::string::npos)
      << domains_->last_reload_error();
  EXPECT_EQ(domains_->reloads_applied(), 0u);
  EXPECT_EQ(ctx_.domains.load(), before);
  EXPECT_LT(longest, std::chrono::milliseconds(100))
      << "a tick took " << std::chrono::duration_cast<std::chrono::milliseconds>(longest).count()
      << " ms reading the list";
  std::printf("a %zu MiB list refused; longest tick %lld us\n", list.size() >> 20,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::microseconds>(longest).count()));
}

// A directory or a FIFO in place of the list is refused, not applied as an empty list.
TEST_F(DomainStageTest, ADirectoryOrFifoInPlaceOfTheListIsRefusedNotEmptied) {
  uint64_t ns = 0;
  std::remove(path_.c_str());
  ASSERT_EQ(::mkdir(path_.c_str(), 0700), 0);
  tick_until(*domains_, ns, [&] { return domains_->reload_errors() > 0; });
  ASSERT_EQ(domains_->reload_errors(), 1u);
  EXPECT_NE(domains_->last_reload_error().find("is a directory, not a regular file"),
            std::string::npos)
      << domains_->last_reload_error();
  ASSERT_EQ(::rmdir(path_.c_str()), 0);
  ASSERT_NO_FATAL_FAILURE(test::make_fifo(path_));
  tick_until(*domains_, ns, [&] { return domains_->reload_errors() > 1; });
  ASSERT_EQ(domains_->reload_errors(), 2u);
  EXPECT_NE(domains_->last_reload_error().find("is a FIFO"), std::string::npos)
      << domains_->last_reload_error();
  EXPECT_EQ(domains_->rules(), 5u);
  EXPECT_EQ(run(0, {dns("blocked.lab.test")}), 0);
  std::remove(path_.c_str());
}

}  // namespace
}  // namespace exitgw
