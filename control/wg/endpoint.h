// A UDP source address (IPv4 or IPv6 plus port) as the handshake code sees it: cookies and rate
// limits are keyed on it.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace exitgw::wg {

struct Endpoint {
  std::array<uint8_t, 16> address{};  // network byte order; only the first 4 bytes for IPv4
  bool is_ipv6 = false;
  uint16_t port = 0;  // host byte order

  static Endpoint ipv4(const std::array<uint8_t, 4>& addr, uint16_t port) {
    Endpoint e;
    for (size_t i = 0; i < addr.size(); ++i) e.address[i] = addr[i];
    e.port = port;
    return e;
  }
  static Endpoint ipv6(const std::array<uint8_t, 16>& addr, uint16_t port) {
    Endpoint e;
    e.address = addr;
    e.is_ipv6 = true;
    e.port = port;
    return e;
  }
  std::span<const uint8_t> address_bytes() const { return {address.data(), is_ipv6 ? 16u : 4u}; }
};

}  // namespace exitgw::wg
