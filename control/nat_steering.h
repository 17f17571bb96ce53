// Inbound NAT steering in the NIC (rte_flow): a packet for a pool address whose destination
// port lies in worker w's slice is queued to w's RX queue, so it needs no hand-off ring.
// Ports that cannot (virtual devices, NICs without port-range matching) keep RSS, and the
// workers' software check (nat::inbound_owner) hands packets to their owner as before; that
// check stays on either way, so a rule a NIC applies loosely costs a hand-off, never a loss.
// ICMP (identifiers, quoted ports) always takes the software path.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"
#include "dataplane/nat/nat_config.h"

namespace exitgw {

// Validates every rule first and creates them only if all validate; on any failure nothing
// stays installed and the error says why. Returns the number of rules created.
Result<unsigned> install_nat_steering(uint16_t port_id, const dp::nat::NatConfig& config,
                                      unsigned n_workers);
// Removes what install_nat_steering created on the port (rte_flow_flush).
void remove_nat_steering(uint16_t port_id);

}  // namespace exitgw
