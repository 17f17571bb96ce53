// WireGuard's cryptographic primitives (HASH, MAC, HMAC, KDFn, DH, AEAD, XAEAD) for the control
// thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/wg_wire.h"

namespace exitgw::wg {

using Key = std::array<uint8_t, kKeyLen>;        // X25519 keys, symmetric keys
using HashValue = std::array<uint8_t, kKeyLen>;  // BLAKE2s-256 output, chaining keys
using Mac = std::array<uint8_t, kMacLen>;        // keyed BLAKE2s-128 output, cookies
using Bytes = std::span<const uint8_t>;

// Views any trivially copyable object or array as bytes, for hashing and AEAD inputs.
inline Bytes as_bytes(const void* data, size_t size) {
  return {static_cast<const uint8_t*>(data), size};
}
inline Bytes as_bytes(std::string_view s) {
  return as_bytes(s.data(), s.size());
}
template <size_t N>
Bytes as_bytes(const std::array<uint8_t, N>& a) {
  return {a.data(), a.size()};
}

// Initialises libsodium and fetches the OpenSSL algorithms once; reports what is missing so
// start-up fails with a clear message. The primitives also call it lazily.
Status crypto_init();

// The primitives below return false only if OpenSSL fails internally (allocation); callers must
// treat that as a failed handshake, never use the (zeroed) output.

// HASH(input) = BLAKE2s-256 over the concatenation of the parts.
[[nodiscard]] bool hash(HashValue& out, std::initializer_list<Bytes> parts);
// MAC(key, input) = keyed BLAKE2s with a 16-byte digest (not a truncated 32-byte one).
[[nodiscard]] bool mac(Mac& out, Bytes key, Bytes input);
// HMAC(key, input) with BLAKE2s-256 as the hash (RFC 2104, 64-byte block).
[[nodiscard]] bool hmac(HashValue& out, Bytes key, std::initializer_list<Bytes> parts);
// KDFn(key, input): HKDF as WireGuard uses it: tau0 = HMAC(key, input), tau1 = HMAC(tau0, 0x1),
// taui = HMAC(tau0, tau(i-1) || i).
[[nodiscard]] bool kdf1(HashValue& t1, const HashValue& key, Bytes input);
[[nodiscard]] bool kdf2(HashValue& t1, HashValue& t2, const HashValue& key, Bytes input);
[[nodiscard]] bool kdf3(HashValue& t1, HashValue& t2, HashValue& t3, const HashValue& key,
                        Bytes input);

// DH(private, public) = X25519; false if the result is all zero (a low-order public key), which
// WireGuard rejects.
[[nodiscard]] bool dh(Key& out, const Key& private_key, const Key& public_key);
// A fresh clamped Curve25519 private key from libsodium's CSPRNG.
Key generate_private_key();
// Clamps a 32-byte scalar the way Curve25519 private keys are stored.
void clamp_private_key(Key& key);
Key public_key_of(const Key& private_key);

// AEAD(key, counter, plain, aad): ChaCha20-Poly1305 IETF with nonce = 4 zero bytes || LE64
// counter. out must hold plain.size() + kTagLen bytes.
void aead_encrypt(uint8_t* out, const Key& key, uint64_t counter, Bytes plain, Bytes aad);
// Returns false if the tag does not verify; out must hold cipher.size() - kTagLen bytes.
[[nodiscard]] bool aead_decrypt(uint8_t* out, const Key& key, uint64_t counter, Bytes cipher,
                                Bytes aad);
// XAEAD: XChaCha20-Poly1305 with a 24-byte nonce.
void xaead_encrypt(uint8_t* out, const Key& key, const uint8_t (&nonce)[kCookieNonceLen],
                   Bytes plain, Bytes aad);
[[nodiscard]] bool xaead_decrypt(uint8_t* out, const Key& key,
                                 const uint8_t (&nonce)[kCookieNonceLen], Bytes cipher, Bytes aad);

// Keys as `wg` prints them: standard base64 with padding, 44 characters.
std::string key_to_base64(const Key& key);
Result<Key> key_from_base64(std::string_view text);

// Constant-time comparison of equal-length byte strings (false if the lengths differ).
bool equal_constant_time(Bytes a, Bytes b);
bool is_zero(Bytes a);
void secure_zero(void* data, size_t size);
template <size_t N>
void secure_zero(std::array<uint8_t, N>& a) {
  secure_zero(a.data(), a.size());
}
void random_bytes(void* data, size_t size);
uint32_t random_u32();

// Wire integers are little-endian whatever the host is.
inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint32_t to_le32(uint32_t v) {
  uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
  uint32_t out;
  __builtin_memcpy(&out, b, sizeof(out));
  return out;
}
inline uint32_t from_le32(uint32_t v) {
  return to_le32(v);
}

}  // namespace exitgw::wg
