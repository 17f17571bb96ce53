// The kernel side of the exception port: the TUN interface the net_tun PMD created, brought up
// with the tunnel's MTU (IPv4 only: its IPv6 is off until the data path carries IPv6), and given
// the node's tailnet address once the connector reports it, so the host (the connector's PeerAPI
// DNS) answers the peers' packets for that address and routes its replies back through the TUN.
#pragma once

#include <cstdint>
#include <string>

#include "common/result.h"

namespace exitgw {

class ExceptionInterface {
 public:
  // The interface behind DPDK port `port_id` (started), set up with `mtu`.
  static Result<ExceptionInterface> open(uint16_t port_id, uint16_t mtu);

  const std::string& name() const noexcept { return name_; }
  // The node's IPv4 tailnet address (host order; 0 removes it). One in the tailnet's CGNAT
  // range 100.64.0.0/10 gets that whole range as its subnet, so replies to every peer leave
  // through the TUN; another gets /32 and a warning.
  Status set_address(uint32_t addr);
  uint32_t address() const noexcept { return addr_; }
  // The DERP relay's host side: `addr` (host order) with `prefix_len`, on a label of its own
  // (NAME:r) beside the tailnet address, so the connector's relay sockets can bind it.
  Status set_relay_address(uint32_t addr, uint8_t prefix_len);

 private:
  std::string name_;
  uint32_t addr_ = 0;
};

}  // namespace exitgw
