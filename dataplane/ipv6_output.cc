// IPv6 output: the next hop (an on-link destination, else the port's IPv6 gateway), then
// dataplane/neighbor_output.h: its MAC from the IPv6 neighbor table control publishes (fed by
// neighbor discovery), or a punt so that control solicits it.
#include <rte_ip.h>

#include "dataplane/neighbor_output.h"
#include "dataplane/stages.h"

namespace exitgw::dp {

void ipv6_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const DataplaneContext& ctx = w.ctx();
  neighbor_output<Neighbor6Key>(w, pkts, n, ctx.neighbors6, RTE_ETHER_TYPE_IPV6,
                                PuntReason::kNeedNeighbor6, [&](rte_mbuf* m, Neighbor6Key& key) {
                                  const uint8_t port = meta(m)->out_port;
                                  const PortInfo& p = ctx.ports[port];
                                  const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*);
                                  const uint8_t* hop = ip->dst_addr;
                                  if (!p.on_link6(hop)) {
                                    if (!p.has_gateway6()) [[unlikely]] {
                                      w.drop(m, DropReason::kIpv6NoRoute);
                                      return false;
                                    }
                                    hop = p.gateway6;
                                  }
                                  std::memcpy(key.ip, hop, 16);
                                  key.port = port;
                                  key.zero[0] = key.zero[1] = key.zero[2] = 0;
                                  return true;
                                });
}

}  // namespace exitgw::dp
