// IPv6-to-IPv6 Network Prefix Translation (NPTv6, RFC 6296): stateless, 1:1 and
// checksum-neutral. The inside prefix (the peers' IPv6 addresses, the tailnet's ULA /48 by
// default) and the outside one (--nat_pool6, routed to the gateway) have the same length,
// /48 or shorter; the prefix bits are swapped and bits 48-63 (the subnet word) take the
// one's-complement adjustment that keeps the sum of the address, so every checksum over it
// (TCP, UDP, ICMPv6 pseudo-headers; an ICMPv6 error's quoted header) stays valid unchanged
// (RFC 6296 3.2 and 3.5). Header-only, no DPDK: workers translate, control configures, tests
// check it against the RFC's example.
#pragma once

#include <cstdint>
#include <cstring>

namespace exitgw::dp {

class Nptv6 {
 public:
  static constexpr unsigned kMaxLen = 48;  // RFC 6296 3.5: the adjustment goes in bits 48-63
  static constexpr unsigned kWord = 3;     // that word's index (16-bit words from 0)

  enum class Result : uint8_t { kTranslated, kNotInPrefix, kUntranslatable };

  Nptv6() = default;
  // `inside` and `outside` with bits past `len` ignored; len <= kMaxLen (checked by control).
  Nptv6(const uint8_t inside[16], const uint8_t outside[16], uint8_t len) noexcept : len_(len) {
    masked(inside, inside_);
    masked(outside, outside_);
    // Inside -> outside adds (sum(inside) - sum(outside)); the reverse adds its negation.
    const uint16_t in_sum = sum48(inside_), out_sum = sum48(outside_);
    to_outside_ = add(in_sum, static_cast<uint16_t>(~out_sum));
    to_inside_ = add(out_sum, static_cast<uint16_t>(~in_sum));
  }

  bool on() const noexcept { return len_ != 0; }
  uint8_t length() const noexcept { return len_; }
  const uint8_t* inside() const noexcept { return inside_; }
  const uint8_t* outside() const noexcept { return outside_; }

  // Source of an outgoing packet, inside -> outside, in place.
  Result to_outside(uint8_t addr[16]) const noexcept {
    return translate(addr, inside_, outside_, to_outside_);
  }
  // Destination of an incoming packet (and the source quoted in an ICMPv6 error about one of
  // ours), outside -> inside, in place.
  Result to_inside(uint8_t addr[16]) const noexcept {
    return translate(addr, outside_, inside_, to_inside_);
  }
  bool in_inside(const uint8_t addr[16]) const noexcept { return match(addr, inside_); }
  bool in_outside(const uint8_t addr[16]) const noexcept { return match(addr, outside_); }

 private:
  // One's-complement addition (end-around carry).
  static uint16_t add(uint16_t a, uint16_t b) noexcept {
    const uint32_t s = uint32_t{a} + b;
    return static_cast<uint16_t>((s & 0xffff) + (s >> 16));
  }
  static uint16_t word(const uint8_t* a, unsigned i) noexcept {
    return static_cast<uint16_t>(a[2 * i] << 8 | a[2 * i + 1]);
  }
  static uint16_t sum48(const uint8_t* a) noexcept {
    return add(add(word(a, 0), word(a, 1)), word(a, 2));
  }
  void masked(const uint8_t* a, uint8_t* out) const noexcept {
    std::memset(out, 0, 16);
    for (unsigned b = 0; b < len_; b += 8) {
      const unsigned keep = len_ - b >= 8 ? 8 : len_ - b;
      out[b / 8] = static_cast<uint8_t>(a[b / 8] & (0xff00 >> keep));
    }
  }
  bool match(const uint8_t* a, const uint8_t* prefix) const noexcept {
    for (unsigned b = 0; b < len_; b += 8) {
      const unsigned keep = len_ - b >= 8 ? 8 : len_ - b;
      const auto mask = static_cast<uint8_t>(0xff00 >> keep);
      if ((a[b / 8] & mask) != prefix[b / 8]) return false;
    }
    return true;
  }
  Result translate(uint8_t* a, const uint8_t* from, const uint8_t* to,
                   uint16_t adjustment) const noexcept {
    if (!match(a, from)) return Result::kNotInPrefix;
    const uint16_t w = word(a, kWord);
    // 0xFFFF is one's complement's second zero: such an address cannot be mapped back
    // unambiguously (RFC 6296 3.5), so it is not translated.
    if (w == 0xffff) return Result::kUntranslatable;
    for (unsigned b = 0; b < len_; b += 8) {
      const unsigned keep = len_ - b >= 8 ? 8 : len_ - b;
      const auto mask = static_cast<uint8_t>(0xff00 >> keep);
      a[b / 8] = static_cast<uint8_t>((a[b / 8] & ~mask) | to[b / 8]);
    }
    uint16_t n = add(w, adjustment);
    if (n == 0xffff) n = 0;
    a[2 * kWord] = static_cast<uint8_t>(n >> 8);
    a[2 * kWord + 1] = static_cast<uint8_t>(n);
    return Result::kTranslated;
  }

  uint8_t inside_[16] = {};
  uint8_t outside_[16] = {};
  uint8_t len_ = 0;  // 0: off
  uint16_t to_outside_ = 0, to_inside_ = 0;
};

// The gateway's NPTv6 mappings (--nat_inside6/--nat_pool6 and --nptv6_map): a fixed table, no
// allocation, searched first match by a linear scan (16 mappings at most, usually one or two;
// control refuses overlapping prefixes, so at most one matches). Written by control before the
// workers start, read-only after.
class Nptv6Table {
 public:
  static constexpr unsigned kMax = 16;
  static constexpr unsigned kNone = kMax;  // find_*: no mapping holds the address

  Nptv6Table() = default;
  // A table of just `one` (empty when it is off): the single --nat_pool6 mapping.
  Nptv6Table(const Nptv6& one) noexcept {  // NOLINT(google-explicit-constructor)
    if (one.on()) add(one);
  }

  // False when the table is full or `m` is off.
  bool add(const Nptv6& m) noexcept {
    if (n_ == kMax || !m.on()) return false;
    maps_[n_++] = m;
    return true;
  }
  bool on() const noexcept { return n_ != 0; }
  unsigned size() const noexcept { return n_; }
  const Nptv6& operator[](unsigned i) const noexcept { return maps_[i]; }

  // Index of the first mapping whose inside (outside) prefix holds `addr`, else kNone.
  unsigned find_inside(const uint8_t addr[16]) const noexcept {
    for (unsigned i = 0; i < n_; ++i)
      if (maps_[i].in_inside(addr)) return i;
    return kNone;
  }
  unsigned find_outside(const uint8_t addr[16]) const noexcept {
    for (unsigned i = 0; i < n_; ++i)
      if (maps_[i].in_outside(addr)) return i;
    return kNone;
  }
  bool in_outside(const uint8_t addr[16]) const noexcept { return find_outside(addr) != kNone; }
  // Through the first mapping that holds `addr`; kNotInPrefix when none does.
  Nptv6::Result to_outside(uint8_t addr[16]) const noexcept {
    const unsigned i = find_inside(addr);
    return i == kNone ? Nptv6::Result::kNotInPrefix : maps_[i].to_outside(addr);
  }
  Nptv6::Result to_inside(uint8_t addr[16]) const noexcept {
    const unsigned i = find_outside(addr);
    return i == kNone ? Nptv6::Result::kNotInPrefix : maps_[i].to_inside(addr);
  }

 private:
  Nptv6 maps_[kMax];
  unsigned n_ = 0;
};

}  // namespace exitgw::dp
