// Small IPv4 prefix helpers for the policy layer (kept here so the library needs nothing from
// control/ but the header-only Ipv4Prefix type).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/net_parse.h"

namespace exitgw::policy {

// Whether `inner` lies entirely inside `outer` (equal counts).
inline bool prefix_contains(const Ipv4Prefix& outer, const Ipv4Prefix& inner) {
  return inner.len >= outer.len && (inner.addr & outer.mask()) == (outer.addr & outer.mask());
}

inline bool prefix_contains_address(const Ipv4Prefix& outer, uint32_t addr) {
  return (addr & outer.mask()) == (outer.addr & outer.mask());
}

inline std::string format_prefix(const Ipv4Prefix& p) {
  return std::to_string(p.addr >> 24) + "." + std::to_string((p.addr >> 16) & 0xff) + "." +
         std::to_string((p.addr >> 8) & 0xff) + "." + std::to_string(p.addr & 0xff) + "/" +
         std::to_string(p.len);
}

// Strict dotted quad: four decimal octets 0..255, no leading zeros (010 could mean octal).
inline std::optional<uint32_t> parse_address(std::string_view s) {
  uint32_t addr = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (s.empty() || s.front() != '.') return std::nullopt;
      s.remove_prefix(1);
    }
    size_t digits = 0;
    uint32_t value = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9' && digits < 4) {
      value = value * 10 + static_cast<uint32_t>(s[digits] - '0');
      ++digits;
    }
    if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && s[0] == '0')) {
      return std::nullopt;
    }
    addr = addr << 8 | value;
    s.remove_prefix(digits);
  }
  if (!s.empty()) return std::nullopt;
  return addr;
}

// "a.b.c.d" (a /32) or "a.b.c.d/len". `canonical` is false when host bits are set.
struct ParsedPrefix {
  Ipv4Prefix prefix;
  bool canonical = true;
};
inline std::optional<ParsedPrefix> parse_prefix(std::string_view s) {
  const size_t slash = s.find('/');
  const auto addr = parse_address(s.substr(0, slash));
  if (!addr) return std::nullopt;
  uint32_t len = 32;
  if (slash != std::string_view::npos) {
    const std::string_view l = s.substr(slash + 1);
    if (l.empty() || l.size() > 2 || (l.size() > 1 && l[0] == '0')) return std::nullopt;
    len = 0;
    for (char c : l) {
      if (c < '0' || c > '9') return std::nullopt;
      len = len * 10 + static_cast<uint32_t>(c - '0');
    }
    if (len > 32) return std::nullopt;
  }
  ParsedPrefix out;
  out.prefix.addr = *addr;
  out.prefix.len = static_cast<uint8_t>(len);
  out.canonical = (*addr & ~out.prefix.mask()) == 0;
  return out;
}

// Whether `s` looks like an IPv6 address or prefix (hex digits, ':', '.', '/', brackets).
inline bool looks_like_ipv6(std::string_view s) {
  if (s.find(':') == std::string_view::npos) return false;
  for (char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex && c != ':' && c != '.' && c != '/' && c != '[' && c != ']') return false;
  }
  return true;
}

}  // namespace exitgw::policy
