// IPv6 address classes (RFC 4291) the data path and control both test: one definition each.
// Addresses are 16 bytes in network order.
#pragma once

#include <cstdint>
#include <cstring>

namespace exitgw {

// ff02::1, every node on the link.
inline constexpr uint8_t kIpv6AllNodes[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

inline bool ipv6_unspecified(const uint8_t* a) noexcept {
  static constexpr uint8_t kZero[16] = {};
  return std::memcmp(a, kZero, 16) == 0;
}

// ::1.
inline bool ipv6_loopback(const uint8_t* a) noexcept {
  static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return std::memcmp(a, kLoopback, 16) == 0;
}

// :: or ::1 (the first 15 bytes zero).
inline bool ipv6_unspecified_or_loopback(const uint8_t* a) noexcept {
  static constexpr uint8_t kZero[15] = {};
  return std::memcmp(a, kZero, 15) == 0;
}

inline bool ipv6_multicast(const uint8_t* a) noexcept {
  return a[0] == 0xff;
}

// fe80::/10.
inline bool ipv6_link_local(const uint8_t* a) noexcept {
  return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

// The first `len` bits of `a` and `prefix` agree (len 0..128).
inline bool ipv6_prefix_match(const uint8_t* a, const uint8_t* prefix, unsigned len) noexcept {
  const unsigned bytes = len / 8, bits = len % 8;
  if (std::memcmp(a, prefix, bytes) != 0) return false;
  return bits == 0 || ((a[bytes] ^ prefix[bytes]) & uint8_t(0xff << (8 - bits))) == 0;
}

// The prefix `a`/`len` shares addresses with multicast (ff00::/8), link-local (fe80::/10),
// :: and ::1 (::/127) or IPv4-mapped addresses (::ffff:0:0/96): not one a translator may map
// to or from (a short prefix such as 8000::/1 holds multicast although its first address is
// not).
inline bool ipv6_prefix_overlaps_special(const uint8_t* a, unsigned len) noexcept {
  static constexpr struct {
    uint8_t addr[16];
    unsigned len;
  } kSpecial[] = {
      {{0xff}, 8}, {{0xfe, 0x80}, 10}, {{}, 127}, {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96}};
  for (const auto& s : kSpecial)
    if (ipv6_prefix_match(a, s.addr, len < s.len ? len : s.len)) return true;
  return false;
}

// ff02::1:ffXX:XXXX, the solicited-node group of `a` (RFC 4291 2.7.1): where a neighbor
// solicitation for `a` goes.
inline constexpr uint8_t kIpv6SolicitedNodePrefix[13] = {0xff, 0x02, 0, 0, 0, 0,   0,
                                                         0,    0,    0, 0, 1, 0xff};
inline void ipv6_solicited_node(const uint8_t* a, uint8_t out[16]) noexcept {
  std::memcpy(out, kIpv6SolicitedNodePrefix, 13);
  std::memcpy(out + 13, a + 13, 3);
}

}  // namespace exitgw
