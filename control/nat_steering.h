// Inbound NAT steering in the NIC (rte_flow): a packet for a pool address whose destination
// port lies in worker w's slice is queued to w's RX queue, so it needs no hand-off ring. Both
// families: the NAT44 pool's IPv4 prefixes and the stateful NAT66 pool's IPv6 prefixes, with
// the same per-worker port slices. Ports that cannot (virtual devices, NICs without
// port-range matching) keep RSS, and the workers' software check (nat::inbound_owner) hands
// packets to their owner as before; that check stays on either way, so a rule a NIC applies
// loosely costs a hand-off, never a loss. ICMP and ICMPv6 (identifiers, quoted ports) always
// take the software path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <rte_flow.h>

#include "common/result.h"
#include "dataplane/nat/nat_config.h"

namespace exitgw {

// One rule: ETH / IPV4 or IPV6 dst in a pool prefix / TCP or UDP dst port in [first, last]
// -> QUEUE worker. Its pattern and actions point into itself: keep it where it was built.
struct NatSteeringRule {
  rte_flow_item_ipv4 ip_spec{}, ip_mask{};
  rte_flow_item_ipv6 ip6_spec{}, ip6_mask{};
  rte_flow_item_tcp tcp_spec{}, tcp_last{}, tcp_mask{};
  rte_flow_item_udp udp_spec{}, udp_last{}, udp_mask{};
  rte_flow_action_queue queue{};
  rte_flow_item pattern[4]{};
  rte_flow_action actions[2]{};
};

// The rules for every prefix of the config's pool (its family's: NAT44's IPv4 pool or the
// NAT66 pool6), each worker's port slice, UDP and TCP. Reserved whole before building, so the
// pointers inside each rule stay valid while the vector is not resized.
std::vector<NatSteeringRule> nat_steering_rules(const dp::nat::NatConfig& config,
                                                unsigned n_workers);

// One family's rules: validates every rule first and creates them only if all validate; on any
// failure none of this call's rules stays installed (another family's are left as they are)
// and the error says why. Returns the number of rules created.
Result<unsigned> install_nat_steering(uint16_t port_id, const dp::nat::NatConfig& config,
                                      unsigned n_workers);
// Removes every rule install_nat_steering created on the port (rte_flow_flush).
void remove_nat_steering(uint16_t port_id);

}  // namespace exitgw
