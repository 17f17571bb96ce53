// IPv6-to-IPv6 Network Prefix Translation (NPTv6, RFC 6296): stateless, 1:1 and
// checksum-neutral. The inside prefix (the peers' IPv6 addresses, the tailnet's ULA /48 by
// default) and the outside one (--nat_pool6, routed to the gateway) have the same length,
// /48 or shorter; the prefix bits are swapped and bits 48-63 (the subnet word) take the
// one's-complement adjustment that keeps the sum of the address, so every checksum over it
// (TCP, UDP, ICMPv6 pseudo-headers; an ICMPv6 error's quoted header) stays valid unchanged
// (RFC 6296 3.2 and 3.5). Header-only, no DPDK: workers translate, control configures, tests
// check it against the RFC's example.
#pragma once

#include <bit>
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
  // A longer prefix would overlap the adjusted word: such a mapping is off (control refuses it).
  Nptv6(const uint8_t inside[16], const uint8_t outside[16], uint8_t len) noexcept
      : len_(len <= kMaxLen ? len : 0) {
    len = len_;
    // The prefixes and the adjusted word all lie in the address's first 64 bits: one masked
    // 64-bit compare matches, one masked merge translates.
    mask_ = len == 0 ? 0 : ~uint64_t{0} << (64 - len);
    inside64_ = load(inside) & mask_;
    outside64_ = load(outside) & mask_;
    store(inside64_, inside_);
    store(outside64_, outside_);
    // Inside -> outside adds (sum(inside) - sum(outside)); the reverse adds its negation.
    const uint16_t in_sum = sum48(inside64_), out_sum = sum48(outside64_);
    to_outside_ = add(in_sum, static_cast<uint16_t>(~out_sum));
    to_inside_ = add(out_sum, static_cast<uint16_t>(~in_sum));
  }

  bool on() const noexcept { return len_ != 0; }
  uint8_t length() const noexcept { return len_; }
  const uint8_t* inside() const noexcept { return inside_; }
  const uint8_t* outside() const noexcept { return outside_; }

  // Source of an outgoing packet, inside -> outside, in place.
  Result to_outside(uint8_t addr[16]) const noexcept {
    return translate(addr, inside64_, outside64_, to_outside_);
  }
  // Destination of an incoming packet (and the source quoted in an ICMPv6 error about one of
  // ours), outside -> inside, in place.
  Result to_inside(uint8_t addr[16]) const noexcept {
    return translate(addr, outside64_, inside64_, to_inside_);
  }
  bool in_inside(const uint8_t addr[16]) const noexcept {
    return on() && (load(addr) & mask_) == inside64_;
  }
  bool in_outside(const uint8_t addr[16]) const noexcept {
    return on() && (load(addr) & mask_) == outside64_;
  }

 private:
  // The address's first 64 bits as a number (network order read).
  static uint64_t load(const uint8_t* a) noexcept {
    uint64_t v;
    std::memcpy(&v, a, sizeof(v));
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    return v;
  }
  static void store(uint64_t v, uint8_t* a) noexcept {
    if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
    std::memcpy(a, &v, sizeof(v));
  }
  // One's-complement addition (end-around carry).
  static uint16_t add(uint16_t a, uint16_t b) noexcept {
    const uint32_t s = uint32_t{a} + b;
    return static_cast<uint16_t>((s & 0xffff) + (s >> 16));
  }
  // The one's-complement sum of words 0-2 (bits 0-47) of a prefix.
  static uint16_t sum48(uint64_t v) noexcept {
    return add(add(static_cast<uint16_t>(v >> 48), static_cast<uint16_t>(v >> 32)),
               static_cast<uint16_t>(v >> 16));
  }
  Result translate(uint8_t* a, uint64_t from, uint64_t to, uint16_t adjustment) const noexcept {
    if (!on()) return Result::kNotInPrefix;
    uint64_t v = load(a);
    if ((v & mask_) != from) return Result::kNotInPrefix;
    const auto w = static_cast<uint16_t>(v);  // word 3 (bits 48-63)
    // 0xFFFF is one's complement's second zero: such an address cannot be mapped back
    // unambiguously (RFC 6296 3.5), so it is not translated.
    if (w == 0xffff) return Result::kUntranslatable;
    uint16_t n = add(w, adjustment);
    if (n == 0xffff) n = 0;
    v = ((v & ~mask_ & ~uint64_t{0xffff}) | to | n);
    store(v, a);
    return Result::kTranslated;
  }

  uint64_t mask_ = 0;  // the prefix's bits of the first 64
  uint64_t inside64_ = 0, outside64_ = 0;
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
