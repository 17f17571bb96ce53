// Parsers for addresses in flags and config: IPv4, prefixes, MACs, HOST:PORT.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace exitgw {

struct Ipv4Prefix {
  uint32_t addr = 0;  // host order
  uint8_t len = 0;
  uint32_t mask() const { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }
  bool operator==(const Ipv4Prefix&) const = default;
};

struct Ipv6Prefix {
  std::array<uint8_t, 16> addr{};
  uint8_t len = 0;
  bool operator==(const Ipv6Prefix&) const = default;
  auto operator<=>(const Ipv6Prefix&) const = default;
};

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

struct StaticNeighbor {
  uint32_t ip = 0;  // host order
  uint8_t mac[6] = {};
};

// Dotted quad, exactly four decimal octets 0..255, no leading '+' or spaces.
Result<uint32_t> parse_ipv4(std::string_view s);
// "a.b.c.d/len"; a bare address means /32.
Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view s);
// "aa:bb:cc:dd:ee:ff" (also with '-'); the broadcast and multicast addresses are refused.
Result<std::vector<uint8_t>> parse_mac(std::string_view s);
Result<HostPort> parse_host_port(std::string_view s);
// "ip=mac,ip=mac"; empty string gives an empty list.
Result<std::vector<StaticNeighbor>> parse_static_neighbors(std::string_view s);
std::string format_ipv4(uint32_t host_order);
// RFC 4291 2.2 text (any of its forms, no zone index); canonical RFC 5952 text out.
Result<std::array<uint8_t, 16>> parse_ipv6(std::string_view s);
// "addr/len"; a bare address means /128.
Result<Ipv6Prefix> parse_ipv6_prefix(std::string_view s);
std::string format_ipv6(const uint8_t addr[16]);

}  // namespace exitgw
