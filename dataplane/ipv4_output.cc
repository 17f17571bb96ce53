// IPv4 output: the next hop (on-link destination or the port's gateway), then
// dataplane/neighbor_output.h: its MAC from the ARP-fed neighbor table, or a punt to ARP.
#include <rte_ip.h>

#include "dataplane/neighbor_output.h"
#include "dataplane/stages.h"

namespace exitgw::dp {

void ipv4_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const DataplaneContext& ctx = w.ctx();
  neighbor_output<NeighborKey>(w, pkts, n, ctx.neighbors, RTE_ETHER_TYPE_IPV4,
                               PuntReason::kNeedNeighbor, [&](rte_mbuf* m, NeighborKey& key) {
                                 PacketMeta* pm = meta(m);
                                 const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
                                 pm->next_hop = ctx.ports[pm->out_port].next_hop(ip->dst_addr);
                                 key = NeighborKey{pm->next_hop, pm->out_port, 0};
                                 return true;
                               });
}

}  // namespace exitgw::dp
