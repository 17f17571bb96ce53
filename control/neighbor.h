// The neighbor (ARP) table's writer: learns from worker events, resolves next hops for
// punted packets (bounded queue per next hop, retries), publishes MACs to the lock-free
// rte_hash the workers read. IPv6 neighbors (RFC 4861): learned from the solicitations and
// advertisements workers validated, wanted ones (the IPv6 gateway) resolved and kept fresh by
// neighbor solicitation, next hops of punted IPv6 packets solicited (bounded queue, as ARP's);
// resolved ones published to a second lock-free rte_hash the workers read. Control only.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <unordered_map>
#include <utility>

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
  // Packets control itself sends (handshake replies; IPv4 or IPv6 header at the front):
  // Ethernet header written and sent on control's TX queue if the next hop is known;
  // otherwise queued for resolution.
  void output(uint8_t port, rte_mbuf* m, uint64_t now_ms);

  // IPv6: a neighbor the worker saw announce itself (NS source, NA target) on `port`.
  void learn6(uint8_t port, const uint8_t ip6[16], const uint8_t mac[6], uint64_t now_ms);
  // Resolve ip6 on port now (solicitation to its solicited-node group) and keep it resolved:
  // retried every retry_ms until it answers, refreshed by unicast after reachable_s.
  void want6(uint8_t port, const uint8_t ip6[16], uint64_t now_ms);
  // Takes ownership of a punted IPv6 packet (IPv6 header at the front, meta out_port): queued
  // for its next hop, which is solicited; sent once it answers, dropped if it never does.
  void resolve6(rte_mbuf* m, uint64_t now_ms);
  // The MAC of a resolved IPv6 neighbor, or null.
  const rte_ether_addr* lookup6(uint8_t port, const uint8_t ip6[16]) const;

  size_t size() const { return entries_.size(); }
  size_t size6() const { return entries6_.size(); }
  uint64_t solicitations_sent() const { return solicitations_sent_; }
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
  struct Entry6 {
    rte_ether_addr mac{};
    bool resolved = false;
    bool wanted = false;  // want6: kept resolved (else learned, kept while it answers)
    bool published = false;
    uint64_t updated_ms = 0;
    uint64_t last_request_ms = 0;
    unsigned tries = 0;
    std::deque<rte_mbuf*> pending;
  };
  using Key6 = std::pair<uint8_t, std::array<uint8_t, 16>>;
  static uint64_t key(uint8_t port, uint32_t ip_be) { return (uint64_t{port} << 32) | ip_be; }
  static Key6 key6(uint8_t port, const uint8_t ip6[16]);
  void send_solicitation(uint8_t port, const uint8_t ip6[16], const rte_ether_addr* unicast);
  void tick6(uint64_t now_ms);
  void publish(uint8_t port, uint32_t ip_be, const rte_ether_addr& mac);
  void send_request(uint8_t port, uint32_t ip_be, const rte_ether_addr* unicast);
  void send_with_l2(uint8_t port, rte_mbuf* m, const rte_ether_addr& dst,
                    uint16_t ether_type = RTE_ETHER_TYPE_IPV4);
  void publish6(const Key6& k, Entry6& e);
  void unpublish6(const Key6& k, Entry6& e);
  void transmit(uint8_t port, rte_mbuf* m);
  void drop_unresolved(rte_mbuf* m);
  template <typename E, typename Ask>
  void hold(E& e, rte_mbuf* m, uint64_t now_ms, Ask&& ask);

  dp::DataplaneContext& ctx_;
  rte_mempool* pool_;
  NeighborOptions opt_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::map<Key6, Entry6> entries6_;
  uint64_t solicitations_sent_ = 0;
  uint64_t unresolved_drops_ = 0;
  uint64_t requests_sent_ = 0;
};

}  // namespace exitgw
