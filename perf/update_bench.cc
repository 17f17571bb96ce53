// Control updates: how many peer upserts the control thread applies per second, and how long
// from an update's arrival on the UpdateQueue until a worker lcore uses it.
//
// The real publication code runs: WireGuard::set_source_peers (validate the whole union of
// sources, PeerCrypto for the new key, slot, rte_lpm allowed IPs under RCU) and
// ExitPolicy::set_peers (recompile classes and the rte_acl classifier, publish by pointer swap),
// as Gateway::apply_update and its loop call them. A worker lcore polls on its own core as the
// data path does (RCU quiescent state every loop) and looks the new peer's allowed IP up in the
// allowed-IPs LPM the worker's cryptokey routing uses, then checks that the peer's slot is
// active and covered by the published policy view (so a packet from it would be classified with
// its class, not dropped). Latency = TSC at submit -> TSC at which the worker first sees all of
// that. Not included: the Gateway loop's idle sleep (at most 200 us before it drains the queue)
// and the HTTP or etcd hop in front of the queue.
//
//   BM_UpsertOneByOne/N   one PeerUpsert per update on top of N running peers (each update
//                         rebuilds and validates the whole set: cost grows with N)
//   BM_UpsertBatchAsOneSet/N   N upserts as one PeerSet (etcd's coalesced runs, initial load)
//
// Counters: items_per_second = peer upserts applied per second (each one seen by the worker);
// p50_us / p99_us = arrival -> worker latency per update (per batch for the set).
#include <benchmark/benchmark.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_lpm.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>

#include "control/exit_policy.h"
#include "control/neighbor.h"
#include "control/updates.h"
#include "control/wireguard.h"
#include "dataplane/packet_meta.h"

namespace exitgw {
namespace {

constexpr uint32_t kMaxPeers = 40000;
constexpr const char* kSource = "etcd";

// What the worker is asked to look for, and when it saw it.
struct Probe {
  std::atomic<uint32_t> ip{0};  // host order; 0: nothing to look for
  std::atomic<uint64_t> seen_tsc{0};
  std::atomic<bool> stop{false};
};

struct Env {
  dp::DataplaneContext ctx;
  rte_mempool* pool = nullptr;
  std::unique_ptr<NeighborTable> neighbors;
  std::unique_ptr<WireGuard> wg;
  std::unique_ptr<ExitPolicy> policy;
  UpdateQueue queue;
  Probe probe;
  unsigned worker_lcore = 0;
  uint64_t policy_generation = 0;
  uint32_t next_peer = 0;  // a fresh key and allowed IP per peer ever made
};
Env* g_env = nullptr;

int worker_main(void*) {
  Env& e = *g_env;
  rte_rcu_qsbr_thread_register(e.ctx.rcu, 0);
  rte_rcu_qsbr_thread_online(e.ctx.rcu, 0);
  while (!e.probe.stop.load(std::memory_order_relaxed)) {
    const uint32_t ip = e.probe.ip.load(std::memory_order_acquire);
    uint32_t slot;
    if (ip != 0 && rte_lpm_lookup(e.ctx.allowed_ips, ip, &slot) == 0) {
      const dp::PolicyView* view = e.ctx.policy.load(std::memory_order_acquire);
      if (view != nullptr && slot < view->n_slots &&
          e.ctx.peers[slot].active.load(std::memory_order_acquire)) {
        e.probe.seen_tsc.store(rte_rdtsc(), std::memory_order_relaxed);
        e.probe.ip.store(0, std::memory_order_release);
      }
    }
    rte_rcu_qsbr_quiescent(e.ctx.rcu, 0);
    rte_pause();
  }
  rte_rcu_qsbr_thread_offline(e.ctx.rcu, 0);
  rte_rcu_qsbr_thread_unregister(e.ctx.rcu, 0);
  return 0;
}

// 100.64.0.0/10 holds 4M /32s: one per peer ever made.
uint32_t peer_ip(uint32_t i) {
  return (100u << 24 | 64u << 16) + i + 1;
}

PeerConfig make_peer(uint32_t i) {
  PeerConfig p;
  randombytes_buf(p.public_key.data(), p.public_key.size());
  p.allowed_ips.push_back(Ipv4Prefix{peer_ip(i), 32});
  p.user = "bench@example.com";
  return p;
}

// Gateway::apply_update for the peer updates (it is private to the daemon): the source's set
// with the change on top, validated whole and published; the policy follows the peers.
UpdateResult apply(Env& e, const Update& u, const std::string& source) {
  UpdateResult r;
  Status s = Ok{};
  if (const auto* up = std::get_if<PeerUpsert>(&u)) {
    std::vector<PeerConfig> mine = e.wg->source_peers(source);
    std::erase_if(mine, [&](const PeerConfig& p) { return p.public_key == up->peer.public_key; });
    mine.push_back(up->peer);
    s = e.wg->set_source_peers(source, std::move(mine));
  } else if (const auto* set = std::get_if<PeerSet>(&u)) {
    s = e.wg->set_source_peers(source, set->peers);
  }
  if (!s) {
    r.error = UpdateError::kInvalid;
    r.message = s.error();
  }
  return r;
}

// One control-loop pass: drain the queue, then let the policy follow the peers.
void control_pass(Env& e) {
  bool ok = true;
  e.queue.drain([&](const Update& u, const std::string& source) {
    UpdateResult r = apply(e, u, source);
    ok &= r.ok();
    return r;
  });
  if (!ok) std::fprintf(stdout, "update_bench: an update was refused\n");
  if (const uint64_t g = e.wg->stats().generation; g != e.policy_generation) {
    e.policy_generation = g;
    e.policy->set_peers(e.wg->policy_peers());
  }
}

// Submits `u`, runs the control pass, waits for the worker to see `probe_ip`; the latency.
uint64_t submit_and_wait(Env& e, Update u, uint32_t probe_ip) {
  e.probe.seen_tsc.store(0, std::memory_order_relaxed);
  e.probe.ip.store(probe_ip, std::memory_order_release);
  const uint64_t t0 = rte_rdtsc();
  auto done = e.queue.submit(std::move(u), kSource);
  control_pass(e);
  done.get();
  // The policy's classifier builds on its builder thread; the control loop publishes it as
  // soon as it is finished (Gateway::run calls this every iteration), and so does this wait.
  while (e.probe.ip.load(std::memory_order_acquire) != 0) {
    e.policy->publish_finished_build();
    rte_pause();
  }
  return e.probe.seen_tsc.load(std::memory_order_relaxed) - t0;
}

// Back to no peers from this source, slots reclaimed once the worker has passed a quiescent state.
void reset(Env& e) {
  e.queue.submit(PeerSet{}, kSource);
  control_pass(e);
  for (int i = 0; i < 100; ++i) {
    e.policy->publish_finished_build();
    e.wg->tick(0);
    rte_delay_us_sleep(1000);
  }
}

void report(benchmark::State& state, std::vector<uint64_t>& ticks, double items) {
  std::sort(ticks.begin(), ticks.end());
  const double us = 1e6 / double(rte_get_tsc_hz());
  const auto pct = [&](double q) {
    return ticks.empty() ? 0.0 : double(ticks[size_t(q * double(ticks.size() - 1))]) * us;
  };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.SetItemsProcessed(int64_t(items));
  char label[96];
  std::snprintf(label, sizeof(label), "arrival->worker p50 %.0f us p99 %.0f us", pct(0.50),
                pct(0.99));
  state.SetLabel(label);
}

void BM_UpsertOneByOne(benchmark::State& state) {
  Env& e = *g_env;
  const auto running = uint32_t(state.range(0));
  std::vector<PeerConfig> base;
  for (uint32_t i = 0; i < running; ++i) base.push_back(make_peer(e.next_peer++));
  submit_and_wait(e, PeerSet{base}, base.empty() ? 0 : peer_ip(e.next_peer - 1));
  std::vector<uint64_t> ticks;
  for (auto _ : state) {
    const uint32_t i = e.next_peer++;
    ticks.push_back(submit_and_wait(e, PeerUpsert{make_peer(i)}, peer_ip(i)));
  }
  report(state, ticks, double(state.iterations()));
  reset(e);  // after the timed loop: not measured
}

void BM_UpsertBatchAsOneSet(benchmark::State& state) {
  Env& e = *g_env;
  const auto batch = uint32_t(state.range(0));
  std::vector<uint64_t> ticks;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<PeerConfig> peers;
    for (uint32_t i = 0; i < batch; ++i) peers.push_back(make_peer(e.next_peer++));
    state.ResumeTiming();
    // The last peer of the set is the one the worker looks for: the set publishes at once.
    ticks.push_back(submit_and_wait(e, PeerSet{std::move(peers)}, peer_ip(e.next_peer - 1)));
    state.PauseTiming();
    reset(e);
    state.ResumeTiming();
  }
  report(state, ticks, double(state.iterations()) * batch);
}

// Fixed iteration counts: each sample is one update, and p99 needs samples (with 20 samples p99
// is the slowest one). perf/run --quick does not shorten these.
BENCHMARK(BM_UpsertOneByOne)
    ->Arg(100)
    ->Iterations(300)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_UpsertOneByOne)
    ->Arg(1000)
    ->Iterations(100)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_UpsertOneByOne)
    ->Arg(10000)
    ->Iterations(20)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_UpsertBatchAsOneSet)
    ->Arg(1000)
    ->Iterations(10)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_UpsertBatchAsOneSet)
    ->Arg(10000)
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

Status setup(Env& e) {
  dp::DataplaneContext& c = e.ctx;
  c.n_workers = 1;
  c.rcu = static_cast<rte_rcu_qsbr*>(
      rte_zmalloc("bench_rcu", rte_rcu_qsbr_get_memsize(1), RTE_CACHE_LINE_SIZE));
  if (c.rcu == nullptr || rte_rcu_qsbr_init(c.rcu, 1) != 0) return make_error("rcu");
  e.pool = rte_pktmbuf_pool_create("bench_pool", 1023, 0, sizeof(dp::PacketMeta),
                                   RTE_MBUF_DEFAULT_BUF_SIZE, 0);
  if (e.pool == nullptr) return make_error("mbuf pool");
  c.pool = e.pool;
  e.neighbors = std::make_unique<NeighborTable>(c, e.pool, NeighborOptions{});
  if (Status s = e.neighbors->create_table(); !s) return s;

  const std::string dir = "/tmp/exitgw-update-bench-" + std::to_string(getpid());
  const std::string key_path = dir + ".key", approvals_path = dir + ".approvals";
  wg::Key key;
  randombytes_buf(key.data(), key.size());
  {
    std::ofstream(key_path) << wg::key_to_base64(key) << "\n";
    std::ofstream(approvals_path) << "exit-node approved\n";
  }
  chmod(key_path.c_str(), 0600);
  WireGuardOptions wopt;
  wopt.private_key_file = key_path;
  wopt.max_peers = kMaxPeers;
  e.wg = std::make_unique<WireGuard>(c, *e.neighbors, e.pool, wopt);
  Status s = e.wg->init();
  std::remove(key_path.c_str());
  if (!s) return s;
  ExitPolicyOptions popt;
  popt.approvals_file = approvals_path;
  e.policy = std::make_unique<ExitPolicy>(c, popt);
  s = e.policy->init(e.wg->policy_peers());
  std::remove(approvals_path.c_str());
  return s;
}

}  // namespace
}  // namespace exitgw

int main(int argc, char** argv) {
  using namespace exitgw;
  // The worker gets its own lcore on the second CPU when there is one, as in production.
  const std::string lcores = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? "0@0,1@1" : "0@0,1@0";
  const std::string prefix = "--file-prefix=updatebench" + std::to_string(getpid());
  std::vector<std::string> eal_args = {
      "update_bench",        "--no-huge",     "-m", "512", "--no-pci", "--lcores=" + lcores, prefix,
      "--log-level=*:error", "--no-telemetry"};
  std::vector<char*> eal;
  for (auto& a : eal_args) eal.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) {
    std::fprintf(stderr, "update_bench: EAL init failed (run as root)\n");
    return 1;
  }
  if (sodium_init() < 0) return 1;
  auto env = std::make_unique<Env>();
  g_env = env.get();
  if (Status s = setup(*env); !s) {
    std::fprintf(stderr, "update_bench: %s\n", s.error().c_str());
    return 1;
  }
  env->worker_lcore = rte_get_next_lcore(-1, 1, 0);
  if (rte_eal_remote_launch(worker_main, nullptr, env->worker_lcore) != 0) {
    std::fprintf(stderr, "update_bench: cannot launch the worker lcore\n");
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  // Control logs one line per peer added or removed (as the daemon does, to journald); here
  // those lines go to /dev/null so the benchmark's own output stays readable.
  std::fflush(stderr);
  const int saved_stderr = dup(2);
  if (FILE* null = std::fopen("/dev/null", "w")) {
    dup2(fileno(null), 2);
    std::fclose(null);
  }
  benchmark::RunSpecifiedBenchmarks();
  std::fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  env->probe.stop = true;
  rte_eal_mp_wait_lcore();
  env->policy.reset();
  env->wg.reset();
  env->neighbors.reset();
  g_env = nullptr;
  env.reset();
  rte_eal_cleanup();
  // EAL leaves its runtime directory for the file prefix behind.
  std::error_code ec;
  std::filesystem::remove_all("/var/run/dpdk/" + prefix.substr(prefix.find('=') + 1), ec);
  return 0;
}
