// Flow accounting on bursts of mbufs: where the worker's stages call the flow table.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "common/dataplane_context.h"
#include "dataplane/flow/flow_table.h"

namespace exitgw::dp {
struct DataplaneContext;
namespace nat {
class NatWorker;
class Nat66Worker;
}  // namespace nat

namespace flow {

// Outbound, before NAT (IPv4 header in front): the only parse of an outbound packet. Keeps
// what account_out needs in its metadata (PacketMeta::counter: pre-NAT source address and
// port, destination port; PacketMeta::flow: protocol, TCP flags, IP total length), so they
// survive the source rewrite and a hand-off to the worker owning the subscriber's NAT state.
// PacketMeta::counter is free once the WireGuard replay window has been updated.
void note_source(rte_mbuf** pkts, uint16_t n) noexcept;
// Outbound, after NAT (or in routed mode, where the source is unchanged) on the worker that
// owns the peer's NAT state: counts each packet into its flow from its metadata and its
// destination address (NAT leaves it as it was); the header is parsed again only for the first
// packet of a flow, for the post-NAT source port. Needs note_source() on the same packets first.
void account_out(FlowTable& table, rte_mbuf** pkts, uint16_t n, uint64_t now) noexcept;
// Inbound, after the NAT reverse translation (routed mode: as received), before sealing:
// the peer comes from the allowed IPs (the lookup wg_seal repeats), the flow's post-NAT
// address from `nat` when the flow starts inbound (null in routed mode). Packets wg_seal is
// about to drop (no peer for the destination, no usable sending keypair, no endpoint) are not
// counted: the same checks, made on the same state a moment earlier.
void account_in(FlowTable& table, const nat::NatWorker* nat, const DataplaneContext& ctx,
                rte_mbuf** pkts, uint16_t n, uint64_t now) noexcept;

// IPv6 (the outbound6 and inbound6 chains). The pre-translation source does not fit the
// packet's metadata, so note_source6 keeps each packet's key in a burst-local Sources6 and
// account_out6 finds the survivors of the translation stage in it by mbuf (a stage keeps its
// burst's order, dropping in place). Both run on the worker that translates: around NPTv6 in
// outbound6, and around NAT66 in nat66_out_all, after any hand-off to the NAT66 owner.
struct Sources6 {
  rte_mbuf* pkt[kBurst];
  FlowKey6 key[kBurst];
  uint16_t bytes[kBurst];  // IPv6 header + payload length, host order
  uint8_t tcp_flags[kBurst];
  uint16_t n;
};
// Outbound, before the translation (NPTv6 or NAT66): parses each packet (the
// extension-header walk, for the ports) into `out`.
void note_source6(rte_mbuf* const* pkts, uint16_t n, Sources6& out) noexcept;
// Outbound, after the translation, on `pkts` (a subsequence of what note_source6 saw): counts
// each packet into its flow; a flow's first packet records the translated source and port.
void account_out6(FlowTable6& table, const Sources6& sources, rte_mbuf* const* pkts, uint16_t n,
                  uint64_t now) noexcept;
// Inbound, after the translation back (NPTv6 or NAT66 in; routed: as received), before
// sealing, as account_in: packets wg_seal is about to drop are not counted. A flow that starts
// inbound takes its post-translation address and port from `nat66`'s mapping (stateful NAT66),
// else from ctx.nptv6 (the subscriber's address when it is off).
void account_in6(FlowTable6& table, const nat::Nat66Worker* nat66, const DataplaneContext& ctx,
                 rte_mbuf* const* pkts, uint16_t n, uint64_t now) noexcept;

}  // namespace flow
}  // namespace exitgw::dp
