// Small IPv4 and IPv6 prefix helpers for the policy layer (kept here so the library needs
// nothing from control/ but the prefix types and parsers of net_parse).
#pragma once

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <utility>
#include <string>
#include <string_view>

#include "common/result.h"
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

// IPv6 prefixes. Addresses are 16 network-order bytes; bits past `len` may be set in an
// outer prefix and are ignored.
inline constexpr bool prefix_bits_equal(const std::array<uint8_t, 16>& a,
                                        const std::array<uint8_t, 16>& b, unsigned len) {
  for (unsigned i = 0; i < 16 && len > 0; ++i, len = len >= 8 ? len - 8 : 0) {
    const uint8_t m = len >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - len));
    if ((a[i] & m) != (b[i] & m)) return false;
  }
  return true;
}
inline constexpr bool prefix_contains(const Ipv6Prefix& outer, const Ipv6Prefix& inner) {
  return inner.len >= outer.len && prefix_bits_equal(outer.addr, inner.addr, outer.len);
}
inline constexpr bool prefix_contains_address(const Ipv6Prefix& outer,
                                              const std::array<uint8_t, 16>& addr) {
  return prefix_bits_equal(outer.addr, addr, outer.len);
}
// The prefix with its host bits cleared.
inline constexpr Ipv6Prefix canonical(Ipv6Prefix p) {
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned keep = p.len > i * 8 ? p.len - i * 8 : 0;
    p.addr[i] &= keep >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - keep));
  }
  return p;
}
inline Ipv4Prefix canonical(Ipv4Prefix p) {
  p.addr &= p.mask();
  return p;
}
// A prefix from its leading 16-bit groups (the rest zero): make_prefix6({0x2001, 0xdb8}, 32).
inline constexpr Ipv6Prefix make_prefix6(std::initializer_list<uint16_t> groups, uint8_t len) {
  Ipv6Prefix p;
  unsigned i = 0;
  for (uint16_t g : groups) {
    p.addr[i++] = static_cast<uint8_t>(g >> 8);
    p.addr[i++] = static_cast<uint8_t>(g);
  }
  p.len = len;
  return p;
}
// The two halves of a prefix (len < the family's width).
inline std::pair<Ipv4Prefix, Ipv4Prefix> split_prefix(const Ipv4Prefix& p) {
  const uint8_t len = static_cast<uint8_t>(p.len + 1);
  return {{p.addr & p.mask(), len}, {(p.addr & p.mask()) | (uint32_t{1} << (32 - len)), len}};
}
inline std::pair<Ipv6Prefix, Ipv6Prefix> split_prefix(const Ipv6Prefix& p) {
  Ipv6Prefix lo = canonical(p);
  ++lo.len;
  Ipv6Prefix hi = lo;
  hi.addr[p.len / 8] |= static_cast<uint8_t>(0x80 >> (p.len % 8));
  return {lo, hi};
}

inline std::string format_prefix(const Ipv6Prefix& p) {
  char buf[INET6_ADDRSTRLEN];
  return std::string(inet_ntop(AF_INET6, p.addr.data(), buf, sizeof buf) ? buf : "?") + "/" +
         std::to_string(p.len);
}

// "addr" (a /128) or "addr/len", RFC 4291 text. `canonical` is false when host bits are set.
struct ParsedPrefix6 {
  Ipv6Prefix prefix;
  bool canonical = true;
};
// The error says what is wrong with the text.
inline Result<ParsedPrefix6> parse_prefix6(std::string_view s) {
  const size_t slash = s.find('/');
  const std::string addr(s.substr(0, slash));
  ParsedPrefix6 out;
  out.prefix.len = 128;
  // inet_pton reads a C string: a NUL inside the text must not end it early.
  if (addr.empty() || addr.size() > 45 || addr.find('\0') != std::string::npos ||
      inet_pton(AF_INET6, addr.c_str(), out.prefix.addr.data()) != 1) {
    return make_error("the address is not IPv6 text (RFC 4291 2.2)");
  }
  if (slash != std::string_view::npos) {
    const std::string_view l = s.substr(slash + 1);
    unsigned len = 0;
    bool digits = !l.empty() && l.size() <= 3 && (l.size() == 1 || l[0] != '0');
    for (char c : l) {
      digits = digits && c >= '0' && c <= '9';
      len = len * 10 + static_cast<unsigned>(c - '0');
    }
    if (!digits || len > 128) {
      return make_error("the prefix length \"" + std::string(l.substr(0, 8)) +
                        "\" is not a number 0..128");
    }
    out.prefix.len = static_cast<uint8_t>(len);
  }
  out.canonical = canonical(out.prefix) == out.prefix;
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
