// IPv4 output: resolve the burst's distinct next hops in one lookup of the neighbor table,
// write the Ethernet header and queue for TX; unresolved next hops are punted to control,
// which queues them (bounded), sends ARP and transmits them once the reply arrives.
#include <rte_hash.h>
#include <rte_ip.h>

#include <cstring>

#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

void ipv4_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  DataplaneContext& ctx = w.ctx();
  // A burst mostly goes to one or two next hops (the gateway of each port): look each distinct
  // (next hop, port) up once. `which[i]` is packet i's entry among the distinct keys.
  static_assert(sizeof(NeighborKey) == sizeof(uint64_t));
  NeighborKey keys[kBurst];
  uint8_t which[kBurst];
  uint16_t n_keys = 0;
  for (uint16_t i = 0; i < n; ++i) {
    PacketMeta* pm = meta(pkts[i]);
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*);
    pm->next_hop = ctx.ports[pm->out_port].next_hop(ip->dst_addr);
    const NeighborKey key{pm->next_hop, pm->out_port, 0};
    uint16_t k = n_keys;
    // The last few distinct keys cover the common cases; a miss only costs a repeated lookup.
    for (uint16_t j = n_keys; j > 0 && j + 4 > n_keys; --j)
      if (std::memcmp(&keys[j - 1], &key, sizeof(key)) == 0) {
        k = j - 1;
        break;
      }
    if (k == n_keys) keys[n_keys++] = key;
    which[i] = static_cast<uint8_t>(k);
  }
  const void* key_ptrs[kBurst];
  void* data[kBurst];
  for (uint16_t k = 0; k < n_keys; ++k) key_ptrs[k] = &keys[k];
  uint64_t hits = 0;
  if (n_keys == 1) {
    hits = rte_hash_lookup_data(ctx.neighbors, key_ptrs[0], &data[0]) >= 0;
  } else {
    rte_hash_lookup_bulk_data(ctx.neighbors, key_ptrs, n_keys, &hits, data);
  }
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const uint16_t k = which[i];
    const uint64_t mac = reinterpret_cast<uintptr_t>(data[k]);
    if (!((hits >> k) & 1) || !(mac & kNeighborValid)) [[unlikely]] {
      w.punt(m, PuntReason::kNeedNeighbor);
      continue;
    }
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
    if (eth == nullptr) [[unlikely]] {
      w.drop(m, DropReason::kNoMbuf);
      continue;
    }
    const PacketMeta* pm = meta(m);
    eth->dst_addr = neighbor_mac(mac);
    eth->src_addr = ctx.ports[pm->out_port].mac;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    w.transmit(pm->out_port, m);
  }
}

}  // namespace exitgw::dp
