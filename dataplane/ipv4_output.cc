// IPv4 output: resolve each packet's next hop in one bulk lookup of the neighbor table,
// write the Ethernet header and queue for TX; unresolved next hops are punted to control,
// which queues them (bounded), sends ARP and transmits them once the reply arrives.
#include <rte_hash.h>
#include <rte_ip.h>

#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

void ipv4_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  DataplaneContext& ctx = w.ctx();
  NeighborKey keys[kBurst];
  const void* key_ptrs[kBurst];
  void* data[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    PacketMeta* pm = meta(pkts[i]);
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*);
    pm->next_hop = ctx.ports[pm->out_port].next_hop(ip->dst_addr);
    keys[i] = NeighborKey{pm->next_hop, pm->out_port, 0};
    key_ptrs[i] = &keys[i];
  }
  uint64_t hits = 0;
  if (n) rte_hash_lookup_bulk_data(ctx.neighbors, key_ptrs, n, &hits, data);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    const uint64_t mac = reinterpret_cast<uintptr_t>(data[i]);
    if (!((hits >> i) & 1) || !(mac & kNeighborValid)) [[unlikely]] {
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
