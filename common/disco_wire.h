// Tailscale's disco frame as it arrives on the WireGuard UDP port (tailscale.com/disco): what a
// worker needs to recognise one and punt it. The control thread opens and answers it
// (control/wg/disco.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace exitgw::disco {

// "TS💬": never the start of a WireGuard message, whose first byte is its type (1..4) followed
// by three zero bytes.
inline constexpr std::array<uint8_t, 6> kMagic = {0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac};
inline constexpr size_t kKeyLen = 32;
inline constexpr size_t kNonceLen = 24;
inline constexpr size_t kBoxTagLen = 16;  // Poly1305 tag, in front of the ciphertext
// magic | sender disco public key | nonce
inline constexpr size_t kHeaderLen = kMagic.size() + kKeyLen + kNonceLen;

inline bool has_magic(const uint8_t* payload, size_t len) noexcept {
  return len >= kMagic.size() && std::memcmp(payload, kMagic.data(), kMagic.size()) == 0;
}

}  // namespace exitgw::disco
