// The kernel side of the exception port: the TUN interface the net_tun PMD created, brought up
// with the tunnel's MTU and IPv6 on (without a link-local address: the kernel sends nothing of its
// own), and given the node's tailnet addresses (IPv4 and IPv6) once the connector reports them, so
// the host (the connector's PeerAPI DNS, the kernel's ping) answers the peers' packets for those
// addresses and routes its replies back through the TUN.
#pragma once

#include <array>
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
  // The node's IPv6 tailnet address (network order; all zero removes it). One in Tailscale's
  // fd7a:115c:a1e0::/48 gets that /48 as its prefix, so replies to every peer leave through the
  // TUN; another gets /128 and a warning. An error if IPv6 could not be enabled on the TUN.
  Status set_address6(const std::array<uint8_t, 16>& addr);
  // The DERP relay's host side: `addr` (host order) with `prefix_len`, on a label of its own
  // (NAME:r) beside the tailnet address, so the connector's relay sockets can bind it.
  Status set_relay_address(uint32_t addr, uint8_t prefix_len);

 private:
  std::string name_;
  uint32_t addr_ = 0;
  std::array<uint8_t, 16> addr6_{};
  std::string ipv6_error_;  // why IPv6 is off on the TUN; empty: on
};

}  // namespace exitgw
