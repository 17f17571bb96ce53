// RFC 1624 incremental Internet checksum updates, on raw (network order) header words.
// One's-complement sums commute with byte swapping, so no byte-order conversion is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace exitgw::dp::nat {

constexpr uint32_t csum_fold32(uint64_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint32_t>(sum);
}

// HC' = ~(~HC + ~m + m'), RFC 1624 eqn. 3, for one 16-bit word.
constexpr uint16_t csum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word) noexcept {
  const uint64_t sum =
      uint64_t{static_cast<uint16_t>(~check)} + static_cast<uint16_t>(~old_word) + new_word;
  return static_cast<uint16_t>(~csum_fold32(sum));
}

// A 32-bit field (an address) as two words; `old_value`/`new_value` as stored in memory.
constexpr uint16_t csum_replace32(uint16_t check, uint32_t old_value, uint32_t new_value) noexcept {
  const uint64_t sum = uint64_t{static_cast<uint16_t>(~check)} + static_cast<uint16_t>(~old_value) +
                       static_cast<uint16_t>(~(old_value >> 16)) + (new_value & 0xffff) +
                       (new_value >> 16);
  return static_cast<uint16_t>(~csum_fold32(sum));
}

// Adjusts `check` for a region whose one's-complement sum went from `old_sum` to `new_sum`
// (both folded to 16 bits): how the outer ICMP checksum follows a rewritten embedded packet.
constexpr uint16_t csum_replace_sum(uint16_t check, uint32_t old_sum, uint32_t new_sum) noexcept {
  const uint64_t sum =
      uint64_t{static_cast<uint16_t>(~check)} + static_cast<uint16_t>(~old_sum) + new_sum;
  return static_cast<uint16_t>(~csum_fold32(sum));
}

// One's-complement sum of an even-length region, folded to 16 bits (not complemented).
inline uint32_t csum_partial(const void* data, size_t len) noexcept {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    uint16_t w;
    std::memcpy(&w, p + i, 2);
    sum += w;
  }
  if (len & 1) sum += p[len - 1];  // little-endian host: the odd byte is the low half
  return csum_fold32(sum);
}

// UDP: a zero checksum means "none" and stays zero; a computed zero is sent as 0xffff.
constexpr uint16_t udp_csum_fixup(uint16_t check) noexcept {
  return check == 0 ? 0xffff : check;
}

}  // namespace exitgw::dp::nat
