// Flow accounting on bursts of mbufs: where the worker's stages call the flow table.
#pragma once

#include <cstdint>

#include <rte_lpm.h>
#include <rte_mbuf.h>

#include "dataplane/flow/flow_table.h"

namespace exitgw::dp {
namespace nat {
class NatWorker;
}  // namespace nat

namespace flow {

// Outbound, before NAT (IPv4 header in front): remembers each packet's pre-NAT source
// address and port (ICMP query identifier) in its metadata, so they survive the source
// rewrite and a hand-off to the worker owning the subscriber's NAT state. Uses
// PacketMeta::counter, which nothing reads once the WireGuard replay window has been updated.
void note_source(rte_mbuf** pkts, uint16_t n) noexcept;
// Outbound, after NAT (or in routed mode, where the source is unchanged) on the worker that
// owns the peer's NAT state: counts each packet into its flow; the post-NAT source is taken
// from the rewritten header. Needs note_source() on the same packets first.
void account_out(FlowTable& table, rte_mbuf** pkts, uint16_t n, uint64_t now) noexcept;
// Inbound, after the NAT reverse translation (routed mode: as received), before sealing:
// the peer comes from `allowed_ips` (the lookup wg_seal repeats), the flow's post-NAT address
// from `nat` when the flow starts inbound (null in routed mode). Packets for no peer are left
// for wg_seal to drop and count.
void account_in(FlowTable& table, const nat::NatWorker* nat, rte_lpm* allowed_ips, rte_mbuf** pkts,
                uint16_t n, uint64_t now) noexcept;

}  // namespace flow
}  // namespace exitgw::dp
