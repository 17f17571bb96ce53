// The neighbor (ARP) table's writer: learns from worker events, resolves next hops for
// punted packets (bounded queue per next hop, retries), publishes MACs to the lock-free
// rte_hash the workers read. Control thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>

#include <rte_ether.h>
#include <rte_mbuf.h>

#include "common/result.h"
#include "common/dataplane_context.h"

namespace exitgw {

struct NeighborOptions {
  unsigned capacity = 4096;
  unsigned retry_ms = 1000;
  unsigned retries = 3;
  unsigned max_pending = 64;
  unsigned reachable_s = 300;
};

class NeighborTable {
 public:
  NeighborTable(dp::DataplaneContext& ctx, rte_mempool* pool, const NeighborOptions& opt)
      : ctx_(ctx), pool_(pool), opt_(opt) {}
  ~NeighborTable();

  Status create_table();
  Status add_static(uint32_t ip_host_order, const uint8_t mac[6]);
  void learn(uint8_t port, uint32_t ip_be, const uint8_t mac[6], uint64_t now_ms);
  // Takes ownership of a punted packet (IPv4 header at the front, meta next_hop/out_port).
  void resolve(rte_mbuf* m, uint64_t now_ms);
  // Retries, gives up on silent next hops, refreshes old entries.
  void tick(uint64_t now_ms);
  // Packets control itself sends (handshake replies): Ethernet header written and sent on
  // control's TX queue if the next hop is known; otherwise queued for resolution.
  void output(uint8_t port, rte_mbuf* m, uint64_t now_ms);

  size_t size() const { return entries_.size(); }
  uint64_t unresolved_drops() const { return unresolved_drops_; }
  uint64_t requests_sent() const { return requests_sent_; }

 private:
  struct Entry {
    rte_ether_addr mac{};
    bool resolved = false;
    bool permanent = false;
    uint64_t updated_ms = 0;
    uint64_t last_request_ms = 0;
    unsigned tries = 0;
    std::deque<rte_mbuf*> pending;
  };
  static uint64_t key(uint8_t port, uint32_t ip_be) { return (uint64_t{port} << 32) | ip_be; }
  void publish(uint8_t port, uint32_t ip_be, const rte_ether_addr& mac);
  void send_request(uint8_t port, uint32_t ip_be, const rte_ether_addr* unicast);
  void send_with_l2(uint8_t port, rte_mbuf* m, const rte_ether_addr& dst);
  void transmit(uint8_t port, rte_mbuf* m);
  void drop_unresolved(rte_mbuf* m);

  dp::DataplaneContext& ctx_;
  rte_mempool* pool_;
  NeighborOptions opt_;
  std::unordered_map<uint64_t, Entry> entries_;
  uint64_t unresolved_drops_ = 0;
  uint64_t requests_sent_ = 0;
};

}  // namespace exitgw
