// The worker loop: RX bursts from every port, the stages, TX, RCU quiescence, idle backoff.
#include "dataplane/worker.h"

#include <rte_lcore.h>
#include <rte_pause.h>

#include "dataplane/graph.h"

namespace exitgw::dp {

namespace {
DataplaneContext* g_ctx = nullptr;
// Loops of rte_pause() before the first sleep; then sleeps double up to idle_sleep_max_us.
constexpr unsigned kSpinLoops = 256;
}  // namespace

void set_worker_context(DataplaneContext* ctx) {
  g_ctx = ctx;
}

Worker::Worker(DataplaneContext& ctx, unsigned index) noexcept
    : ctx_(&ctx),
      shared_(&ctx.workers[index]),
      flows_(ctx.workers[index].flows),
      flows6_(ctx.workers[index].flows6),
      counters_(&ctx.workers[index].counters),
      index_(index),
      icmp_tokens_(ctx.icmp_rate_per_sec, ctx.icmp_burst, rte_rdtsc()),
      exception_tokens_(ctx.exception_rate_per_sec, ctx.exception_burst, rte_rdtsc()) {}

bool Worker::icmp_allowed() noexcept {
  return icmp_tokens_.take(rte_rdtsc(), rte_get_tsc_hz());
}

bool Worker::exception_allowed() noexcept {
  return exception_tokens_.take(rte_rdtsc(), rte_get_tsc_hz());
}

void Worker::flush_tx(uint8_t port) noexcept {
  TxBuffer& b = tx_[port];
  if (b.n == 0) return;
  const uint16_t port_id = ctx_->ports[port].port_id;
  uint16_t sent = 0;
  for (unsigned attempt = 0; attempt < kTxRetries && sent < b.n; ++attempt)
    sent += rte_eth_tx_burst(port_id, shared_->queue, b.pkts + sent, b.n - sent);
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < sent; ++i) bytes += rte_pktmbuf_pkt_len(b.pkts[i]);
  counters_->port[port].tx_packets.add(sent);
  counters_->port[port].tx_bytes.add(bytes);
  for (uint16_t i = sent; i < b.n; ++i) drop(b.pkts[i], DropReason::kTxQueueFull);
  b.n = 0;
}

void Worker::flush_punt() noexcept {
  if (n_punt_ == 0) return;
  const unsigned queued =
      rte_ring_enqueue_burst(shared_->punt, reinterpret_cast<void**>(punt_), n_punt_, nullptr);
  counters_->punted.add(queued);
  for (unsigned i = queued; i < n_punt_; ++i) drop(punt_[i], DropReason::kPuntRingFull);
  n_punt_ = 0;
}

void Worker::flush() noexcept {
  for (unsigned p = 0; p < ctx_->n_ports; ++p) flush_tx(static_cast<uint8_t>(p));
  flush_punt();
  flush_free();
}

void Worker::process_rx(uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept {
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
    bytes += rte_pktmbuf_pkt_len(pkts[i]);
    PacketMeta* pm = meta(pkts[i]);
    pm->in_port = port;
    pm->flags = 0;
  }
  counters_->port[port].rx_packets.add(n);
  counters_->port[port].rx_bytes.add(bytes);
  receive(*this, port, pkts, n);
}

void Worker::idle_backoff(unsigned idle_loops) noexcept {
  if (ctx_->poll_mode == PollMode::kBusy || idle_loops < kSpinLoops) {
    rte_pause();
    return;
  }
  // Sleep 1, 2, 4 ... us up to the cap, as l3fwd-power does; offline in RCU meanwhile so a
  // control thread waiting for a grace period is not held up by a sleeping worker.
  const unsigned shift = std::min((idle_loops - kSpinLoops) / 16, 16u);
  const unsigned us = std::min(1u << shift, ctx_->idle_sleep_max_us);
  rte_rcu_qsbr_thread_offline(ctx_->rcu, index_);
  rte_delay_us_sleep(us);
  rte_rcu_qsbr_thread_online(ctx_->rcu, index_);
}

Status Worker::init() noexcept {
  auto aead = AeadBurst::create();
  if (!aead) return make_error("worker " + std::to_string(index_) + ": " + aead.error());
  aead_ = std::move(aead.value());
  if (ctx_->nat || ctx_->nat66) {
    // The tables are allocated here, once, on the lcore that owns them; NAT44 and NAT66 share
    // the event ring (events carry their family).
    if (shared_->nat_events == nullptr) {  // benchmarks: nobody drains after the worker stops
      nat_events_ = std::make_unique<nat::NatEventRing>(4096);
      shared_->nat_events = nat_events_.get();
    }
  }
  if (ctx_->nat) {
    nat_ = std::make_unique<nat::NatWorker>(*ctx_->nat, index_, shared_->nat_events);
    shared_->nat_counters.store(&nat_->counters(), std::memory_order_release);
    frag_park_.set_timeout(uint64_t{ctx_->nat->fragment_timeout} * rte_get_tsc_hz());
  }
  if (ctx_->nat66) {
    nat66_ = std::make_unique<nat::Nat66Worker>(*ctx_->nat66, index_, shared_->nat_events);
    shared_->nat66_counters.store(&nat66_->counters(), std::memory_order_release);
    frag_park_.set_timeout(uint64_t{ctx_->nat66->fragment_timeout} * rte_get_tsc_hz());
  }
  return Ok{};
}

domain::DomainScratch* Worker::domain_scratch(const domain::DomainDatabase& db) noexcept {
  // By serial, not address: a freed database's address can come back for a newer one.
  if (db.serial() == domain_seen_) return domain_scratch_.get();
  domain_seen_ = db.serial();
  if (!domain_scratch_) {
    auto s = domain::DomainScratch::create(db);
    if (s) domain_scratch_ = std::make_unique<domain::DomainScratch>(std::move(*s));
  } else if (!domain_scratch_->prepare(db)) {
    domain_scratch_.reset();
  }
  return domain_scratch_.get();
}

void Worker::handoff(unsigned worker, rte_mbuf* m) noexcept {
  if (worker >= ctx_->n_workers || rte_ring_enqueue(ctx_->workers[worker].handoff, m) != 0)
      [[unlikely]]
    drop(m, DropReason::kHandoffRingFull);
}

// Rare and bounded: a few commands per loop (a removed peer's NAT state).
void Worker::process_commands() noexcept {
  WorkerCommand c;
  unsigned i = 0;
  for (; i < 4 && rte_ring_dequeue_elem(shared_->commands, &c, sizeof(c)) == 0; ++i)
    if (c.type == WorkerCommandType::kNatRemoveSubscribers && nat_)
      nat_->remove_subscribers(c.prefix, c.len);
    else if (c.type == WorkerCommandType::kNat66RemoveSubscribers && nat66_)
      nat66_->remove_subscribers(nat::Ipv6Address::from_bytes(c.prefix6), c.len);
  // Release: control, seeing the count, may route the prefix to its new owner.
  shared_->commands_done.store(shared_->commands_done.load(std::memory_order_relaxed) + i,
                               std::memory_order_release);
}

unsigned Worker::process_handoff() noexcept {
  rte_mbuf* pkts[kBurst];
  const unsigned n =
      rte_ring_dequeue_burst(shared_->handoff, reinterpret_cast<void**>(pkts), kBurst, nullptr);
  receive_handoff(*this, pkts, static_cast<uint16_t>(n));
  return n;
}

int Worker::run() noexcept {
  if (Status s = init(); !s) {
    RTE_LOG(ERR, USER1, "%s\n", s.error().c_str());
    return -1;
  }
  rte_rcu_qsbr_thread_register(ctx_->rcu, index_);
  rte_rcu_qsbr_thread_online(ctx_->rcu, index_);
  shared_->running.store(true, std::memory_order_release);
  rte_mbuf* pkts[kBurst];
  unsigned idle_loops = 0;
  uint64_t last = rte_rdtsc();
  while (!ctx_->stop.load(std::memory_order_relaxed)) {
    unsigned total = 0;
    for (unsigned p = 0; p < ctx_->n_ports; ++p) {
      const PortInfo& port = ctx_->ports[p];
      for (uint16_t q = shared_->queue; q < port.n_rx_queues; q += ctx_->n_workers) {
        const uint16_t n = rte_eth_rx_burst(port.port_id, q, pkts, kBurst);
        if (n == 0) continue;
        total += n;
        process_rx(static_cast<uint8_t>(p), pkts, n);
      }
    }
    // Other workers' hand-offs, and packets control hands back (PuntReason::kNeedKeypair).
    if (shared_->handoff != nullptr) total += process_handoff();
    if (nat_ || nat66_) {
      const uint64_t tsc = rte_rdtsc();
      if (nat_) nat_->expire(tsc, 64);  // bounded work per loop, never a stall
      if (nat66_) nat66_->expire(tsc, 64);
      if (frag_park_.holding()) [[unlikely]]
        frag_park_.expire(*this, tsc);
      if (shared_->commands && rte_ring_count(shared_->commands) != 0) [[unlikely]]
        process_commands();
    }
    if (flows_) flows_->sweep(rte_rdtsc(), 64);  // paced and bounded the same way
    if (flows6_) flows6_->sweep(rte_rdtsc(), 64);
    flush();
    rte_rcu_qsbr_quiescent(ctx_->rcu, index_);
    counters_->loops.add();
    const uint64_t now = rte_rdtsc();
    if (total) {
      counters_->busy_cycles.add(now - last);
      idle_loops = 0;
    } else {
      idle_backoff(idle_loops++);
      const uint64_t after = rte_rdtsc();
      counters_->idle_cycles.add(after - last);
      last = after;
      continue;
    }
    last = now;
  }
  frag_park_.expire(*this, UINT64_MAX);
  flush();
  // The NAT tables and counters end with this frame; what control reads must not outlive it.
  shared_->nat_counters.store(nullptr, std::memory_order_release);
  shared_->nat66_counters.store(nullptr, std::memory_order_release);
  if (nat_events_) shared_->nat_events = nullptr;
  rte_rcu_qsbr_thread_offline(ctx_->rcu, index_);
  rte_rcu_qsbr_thread_unregister(ctx_->rcu, index_);
  shared_->running.store(false, std::memory_order_release);
  return 0;
}

int worker_main(void* arg) {
  const auto index = static_cast<unsigned>(reinterpret_cast<uintptr_t>(arg));
  // The worker's scratch lives on its own stack: cache-local and owned by this lcore alone.
  Worker w(*g_ctx, index);
  return w.run();
}

}  // namespace exitgw::dp
