// Port bring-up on the control thread: find the device, queues per worker, RSS, start.
#pragma once

#include <cstdint>
#include <string>

#include <rte_mempool.h>

#include "common/result.h"

namespace exitgw {

// A device name ("0000:3b:00.0", "net_af_packet0") or a port number.
Result<uint16_t> find_port(const std::string& spec);

struct PortOptions {
  unsigned workers = 1;  // RX queues; TX queues are workers + 1 (the last is control's)
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  bool rss = true;
};

// Configures and starts the port. `notes` receives what an operator should know (no RSS, ...).
// Returns the number of RX queues configured: the workers', or more when the device delivers
// to queues it cannot switch off (af_packet: every qpair socket is in the fanout group).
Result<uint16_t> start_port(uint16_t port_id, const PortOptions& opt, rte_mempool* pool,
                            std::string* notes);
std::string port_name(uint16_t port_id);

// The port's link as an operator means it: the device's link status and, for a device backed
// by a kernel interface (af_packet, tap: a non-zero if_index), that interface administratively
// up with carrier. DPDK 22.11's af_packet PMD reports "up" from start to stop whatever its
// interface does, so its readiness would otherwise ignore a cable pulled or a veth set down.
// A few system calls: for the control thread's periodic sampling, not the data path.
bool port_link_up(uint16_t port_id);

}  // namespace exitgw
