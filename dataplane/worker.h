// A worker lcore: its per-burst scratch (TX buffers, drop sink, punt buffer) and its loop.
#pragma once

#include <cstdint>
#include <memory>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "common/dataplane_context.h"
#include "dataplane/events.h"
#include "dataplane/frag_park.h"
#include "dataplane/packet_meta.h"
#include "common/result.h"
#include "dataplane/domain/domain_database.h"
#include "dataplane/flow/flow_table.h"
#include "dataplane/nat/nat_worker.h"
#include "dataplane/token_bucket.h"
#include "dataplane/wg/aead_burst.h"

namespace exitgw::dp {

inline constexpr unsigned kTxRetries = 4;

// Packets waiting for rte_eth_tx_burst on one port, sent at the end of each loop.
struct TxBuffer {
  static constexpr unsigned kCapacity = 2 * kBurst;
  rte_mbuf* pkts[kCapacity];
  uint16_t n = 0;
};

// Owned by one worker lcore; nothing here is shared except through `shared`.
class alignas(64) Worker {
 public:
  Worker(DataplaneContext& ctx, unsigned index) noexcept;

  // Ends a packet's life: counted under `reason`, freed in bulk at the end of the burst.
  void drop(rte_mbuf* m, DropReason reason) noexcept {
    counters_->drop(meta(m)->in_port, reason);
    release(m);
  }
  void drop_all(rte_mbuf** pkts, uint16_t n, DropReason reason) noexcept {
    for (uint16_t i = 0; i < n; ++i) drop(pkts[i], reason);
  }
  // Ends a packet's life that did its job (an ARP reply learned, a keepalive).
  void consume(rte_mbuf* m) noexcept { release(m); }
  void transmit(uint8_t port, rte_mbuf* m) noexcept {
    TxBuffer& b = tx_[port];
    if (b.n == TxBuffer::kCapacity) [[unlikely]]
      flush_tx(port);
    b.pkts[b.n++] = m;
  }
  void punt(rte_mbuf* m, PuntReason why) noexcept {
    meta(m)->punt = why;
    if (n_punt_ == kBurst) [[unlikely]]
      flush_punt();
    punt_[n_punt_++] = m;
  }
  void event(const Event& e) noexcept {
    Event copy = e;  // the C API takes a non-const pointer
    if (rte_ring_enqueue_elem(shared_->events, &copy, sizeof(copy)) != 0) [[unlikely]]
      counters_->events_lost.add();
    else
      counters_->events.add();
  }
  // Ends a burst: sends, punts and frees what the stages sorted.
  void flush() noexcept;

  // Per-lcore setup that may fail (the ipsec-mb manager); call on the lcore that runs it.
  Status init() noexcept;
  int run() noexcept;
  // One received burst through the stage graph (graph.cc), as the loop does after
  // rte_eth_rx_burst; then
  // flush() sends what it produced. Public for benchmarks that feed prepared bursts.
  void process_burst(uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept {
    process_rx(port, pkts, n);
  }

  DataplaneContext& ctx() noexcept { return *ctx_; }
  AeadBurst& aead() noexcept { return *aead_; }
  nat::NatWorker* nat() noexcept { return nat_.get(); }
  nat::Nat66Worker* nat66() noexcept { return nat66_.get(); }  // null: NPTv6 or routed IPv6
  flow::FlowTable* flows() noexcept { return flows_; }         // null: flow accounting off
  flow::FlowTable6* flows6() noexcept { return flows6_; }      // IPv6 flows; null when off
  // This worker's Hyperscan scratch, grown for `db` the first time the worker sees it (the one
  // allocation, once per published database); nullptr if that failed.
  domain::DomainScratch* domain_scratch(const domain::DomainDatabase& db) noexcept;
  // Queues a packet (IPv4 header in front, meta flags saying what is left to do) for the
  // worker that owns its NAT state.
  void handoff(unsigned worker, rte_mbuf* m) noexcept;
  LcoreCounters& counters() noexcept { return *counters_; }
  FragmentPark& frag_park() noexcept { return frag_park_; }
  uint16_t queue() const noexcept { return shared_->queue; }
  unsigned index() const noexcept { return index_; }
  // Token bucket for ICMP the worker originates (echo replies, later errors).
  bool icmp_allowed() noexcept;
  // Token bucket for packets handed to the host through the exception port.
  bool exception_allowed() noexcept;
  // icmp_allowed() for an ICMP error; a refusal is counted (icmp_errors_rate_limited).
  bool icmp_error_within_rate() noexcept {
    if (icmp_allowed()) [[likely]]
      return true;
    counters_->icmp_errors_rate_limited.add();
    return false;
  }

 private:
  void release(rte_mbuf* m) noexcept {
    if (n_free_ == kFreeCapacity) [[unlikely]]
      flush_free();
    free_[n_free_++] = m;
  }
  void flush_tx(uint8_t port) noexcept;
  void flush_punt() noexcept;
  void flush_free() noexcept {
    rte_pktmbuf_free_bulk(free_, n_free_);
    n_free_ = 0;
  }
  void process_rx(uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept;
  unsigned process_handoff() noexcept;
  void process_commands() noexcept;
  void idle_backoff(unsigned idle_loops) noexcept;

  static constexpr unsigned kFreeCapacity = 2 * kBurst;

  DataplaneContext* ctx_;
  std::unique_ptr<AeadBurst> aead_;  // created in init(), on this lcore
  std::unique_ptr<nat::NatWorker> nat_;
  std::unique_ptr<nat::Nat66Worker> nat66_;
  std::unique_ptr<nat::NatEventRing> nat_events_;
  std::unique_ptr<domain::DomainScratch> domain_scratch_;
  uint64_t domain_seen_ = 0;  // serial of the database the scratch was prepared for
  FragmentPark frag_park_;
  WorkerShared* shared_;
  flow::FlowTable* flows_;
  flow::FlowTable6* flows6_;
  LcoreCounters* counters_;
  unsigned index_;
  TxBuffer tx_[kMaxPorts];
  rte_mbuf* free_[kFreeCapacity];
  uint16_t n_free_ = 0;
  rte_mbuf* punt_[kBurst];
  uint16_t n_punt_ = 0;
  TokenBucket icmp_tokens_;
  TokenBucket exception_tokens_;
};

// rte_eal_remote_launch entry point; `arg` is the WorkerShared slot's index cast to pointer.
int worker_main(void* arg);
void set_worker_context(DataplaneContext* ctx);

}  // namespace exitgw::dp
