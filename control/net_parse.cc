// Parsers for addresses in flags and config; every failure names the input and the problem.
#include "control/net_parse.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>

namespace exitgw {

namespace {

Result<unsigned> parse_uint(std::string_view s, unsigned max, std::string_view what) {
  unsigned v = 0;
  if (s.empty() || s.size() > 10 || (s.size() > 1 && s[0] == '0'))
    return make_error(std::string(what) + " '" + std::string(s) + "' is not a decimal number");
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size())
    return make_error(std::string(what) + " '" + std::string(s) + "' is not a decimal number");
  if (v > max)
    return make_error(std::string(what) + " " + std::string(s) + " is larger than " +
                      std::to_string(max));
  return v;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "addr/len" with the address parsed by parse_addr; a bare address means the host prefix.
template <typename Prefix, unsigned kMaxLen, typename ParseAddr>
Result<Prefix> parse_prefix(std::string_view s, ParseAddr parse_addr) {
  const size_t slash = s.find('/');
  auto addr = parse_addr(s.substr(0, slash));
  if (!addr) return make_error(addr.error());
  Prefix p{*addr, kMaxLen};
  if (slash != std::string_view::npos) {
    auto len = parse_uint(s.substr(slash + 1), kMaxLen, "prefix length");
    if (!len) return make_error("'" + std::string(s) + "': " + len.error());
    p.len = static_cast<uint8_t>(*len);
  }
  return p;
}

}  // namespace

Result<uint32_t> parse_ipv4(std::string_view s) {
  uint32_t addr = 0;
  std::string_view rest = s;
  for (int i = 0; i < 4; ++i) {
    const size_t dot = rest.find('.');
    const std::string_view part = i < 3 ? rest.substr(0, dot) : rest;
    if (i < 3 && dot == std::string_view::npos)
      return make_error("'" + std::string(s) + "' is not an IPv4 address (need a.b.c.d)");
    auto octet = parse_uint(part, 255, "octet");
    if (!octet)
      return make_error("'" + std::string(s) + "' is not an IPv4 address: " + octet.error());
    addr = (addr << 8) | *octet;
    if (i < 3) rest = rest.substr(dot + 1);
  }
  return addr;
}

Result<Ipv4Prefix> parse_ipv4_prefix(std::string_view s) {
  return parse_prefix<Ipv4Prefix, 32>(s, parse_ipv4);
}

Result<std::vector<uint8_t>> parse_mac(std::string_view s) {
  if (s.size() != 17)
    return make_error("'" + std::string(s) + "' is not a MAC address (need aa:bb:cc:dd:ee:ff)");
  std::vector<uint8_t> mac(6);
  for (int i = 0; i < 6; ++i) {
    const int hi = hex_digit(s[i * 3]), lo = hex_digit(s[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':' && s[i * 3 + 2] != '-'))
      return make_error("'" + std::string(s) + "' is not a MAC address (need aa:bb:cc:dd:ee:ff)");
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (mac[0] & 1)
    return make_error("'" + std::string(s) + "' is a multicast or broadcast MAC, not a host");
  return mac;
}

Result<HostPort> parse_host_port(std::string_view s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    return make_error("'" + std::string(s) + "' is not HOST:PORT");
  auto port = parse_uint(s.substr(colon + 1), 65535, "port");
  if (!port) return make_error("'" + std::string(s) + "': " + port.error());
  std::string host(s.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return HostPort{host, static_cast<uint16_t>(*port)};
}

Result<std::vector<StaticNeighbor>> parse_static_neighbors(std::string_view s) {
  std::vector<StaticNeighbor> out;
  while (!s.empty()) {
    const size_t comma = s.find(',');
    const std::string_view item = s.substr(0, comma);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return make_error("static neighbor '" + std::string(item) + "' is not IP=MAC");
    auto ip = parse_ipv4(item.substr(0, eq));
    if (!ip) return make_error("static neighbor: " + ip.error());
    auto mac = parse_mac(item.substr(eq + 1));
    if (!mac) return make_error("static neighbor: " + mac.error());
    StaticNeighbor n;
    n.ip = *ip;
    std::copy(mac->begin(), mac->end(), n.mac);
    out.push_back(n);
    if (comma == std::string_view::npos) break;
    s = s.substr(comma + 1);
    if (s.empty()) return make_error("static neighbors end with a stray ','");
  }
  return out;
}

std::string format_ipv4(uint32_t a) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
  return buf;
}

Result<std::array<uint8_t, 16>> parse_ipv6(std::string_view s) {
  std::array<uint8_t, 16> a{};
  // inet_pton wants a C string: a NUL inside the view must not end it early.
  if (s.empty() || s.size() > 45 || s.find('\0') != std::string_view::npos ||
      inet_pton(AF_INET6, std::string(s).c_str(), a.data()) != 1)
    return make_error("'" + std::string(s) + "' is not an IPv6 address");
  return a;
}

Result<Ipv6Prefix> parse_ipv6_prefix(std::string_view s) {
  return parse_prefix<Ipv6Prefix, 128>(s, parse_ipv6);
}

std::string format_ipv6(const uint8_t addr[16]) {
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(AF_INET6, addr, buf, sizeof(buf)) ? buf : "?";
}

}  // namespace exitgw
