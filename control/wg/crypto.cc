// WireGuard primitives on libsodium (X25519, ChaCha20-Poly1305, XChaCha20-Poly1305) and OpenSSL 3
// (BLAKE2s), with the OpenSSL algorithms fetched once and their contexts cached per thread.
#include "control/wg/crypto.h"

#include <sodium.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>

namespace exitgw::wg {
namespace {

constexpr size_t kBlake2sBlockLen = 64;

// Fetching an algorithm walks the provider store and takes locks, so it happens once per process;
// the fetched objects are immutable and safe to share between threads.
struct Algorithms {
  EVP_MD* blake2s = nullptr;
  EVP_MAC* blake2s_mac = nullptr;
  bool sodium_ready = false;

  Algorithms() {
    sodium_ready = sodium_init() >= 0;
    blake2s = EVP_MD_fetch(nullptr, "BLAKE2S-256", nullptr);
    blake2s_mac = EVP_MAC_fetch(nullptr, "BLAKE2SMAC", nullptr);
  }
  ~Algorithms() {
    EVP_MD_free(blake2s);
    EVP_MAC_free(blake2s_mac);
  }
};

const Algorithms& algorithms() {
  static const Algorithms algs;
  return algs;
}

// Contexts carry per-operation state, so each thread gets its own, reused across calls; the MAC
// context is created once with its 16-byte output size so a MAC only sets the key.
struct ThreadContexts {
  EVP_MD_CTX* md_ctx = nullptr;
  EVP_MAC_CTX* mac_ctx = nullptr;

  ThreadContexts() {
    const Algorithms& algs = algorithms();
    if (algs.blake2s == nullptr || algs.blake2s_mac == nullptr) return;
    md_ctx = EVP_MD_CTX_new();
    mac_ctx = EVP_MAC_CTX_new(algs.blake2s_mac);
    if (mac_ctx != nullptr) {
      size_t size = kMacLen;
      OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                             OSSL_PARAM_construct_end()};
      if (EVP_MAC_CTX_set_params(mac_ctx, params) != 1) {
        EVP_MAC_CTX_free(mac_ctx);
        mac_ctx = nullptr;
      }
    }
  }
  ~ThreadContexts() {
    EVP_MD_CTX_free(md_ctx);
    EVP_MAC_CTX_free(mac_ctx);
  }
};

ThreadContexts& contexts() {
  thread_local ThreadContexts ctx;
  return ctx;
}

void make_nonce(uint8_t (&nonce)[crypto_aead_chacha20poly1305_IETF_NPUBBYTES], uint64_t counter) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

}  // namespace

Status crypto_init() {
  const Algorithms& algs = algorithms();
  if (!algs.sodium_ready) return make_error("libsodium failed to initialise (sodium_init)");
  if (algs.blake2s == nullptr)
    return make_error("OpenSSL has no BLAKE2S-256 digest (need OpenSSL 3 default provider)");
  if (algs.blake2s_mac == nullptr)
    return make_error("OpenSSL has no BLAKE2SMAC (need OpenSSL 3 default provider)");
  const ThreadContexts& ctx = contexts();
  if (ctx.md_ctx == nullptr || ctx.mac_ctx == nullptr)
    return make_error("OpenSSL BLAKE2s contexts could not be created or sized to 16 bytes");
  return Ok{};
}

bool hash(HashValue& out, std::initializer_list<Bytes> parts) {
  ThreadContexts& ctx = contexts();
  if (ctx.md_ctx == nullptr) return false;
  if (EVP_DigestInit_ex2(ctx.md_ctx, algorithms().blake2s, nullptr) != 1) return false;
  for (Bytes part : parts) {
    if (!part.empty() && EVP_DigestUpdate(ctx.md_ctx, part.data(), part.size()) != 1) return false;
  }
  HashValue result;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.md_ctx, result.data(), &len) != 1 || len != result.size()) {
    return false;
  }
  out = result;
  return true;
}

bool mac(Mac& out, Bytes key, Bytes input) {
  ThreadContexts& ctx = contexts();
  if (ctx.mac_ctx == nullptr) return false;
  if (EVP_MAC_init(ctx.mac_ctx, key.data(), key.size(), nullptr) != 1) return false;
  if (!input.empty() && EVP_MAC_update(ctx.mac_ctx, input.data(), input.size()) != 1) return false;
  size_t len = 0;
  Mac result;
  if (EVP_MAC_final(ctx.mac_ctx, result.data(), &len, result.size()) != 1 || len != result.size()) {
    return false;
  }
  out = result;
  return true;
}

// HMAC built from HASH rather than EVP_MAC("HMAC"): it reuses the cached digest context and needs
// no per-call parameter setup. Keys longer than a block are hashed first, as RFC 2104 says.
bool hmac(HashValue& out, Bytes key, std::initializer_list<Bytes> parts) {
  uint8_t block[kBlake2sBlockLen] = {};
  HashValue key_hash;
  if (key.size() > kBlake2sBlockLen) {
    if (!hash(key_hash, {key})) return false;
    key = as_bytes(key_hash);
  }
  std::memcpy(block, key.data(), key.size());
  for (uint8_t& b : block) b ^= 0x36;
  ThreadContexts& ctx = contexts();
  bool ok = ctx.md_ctx != nullptr &&
            EVP_DigestInit_ex2(ctx.md_ctx, algorithms().blake2s, nullptr) == 1 &&
            EVP_DigestUpdate(ctx.md_ctx, block, sizeof(block)) == 1;
  for (Bytes part : parts) {
    if (ok && !part.empty()) ok = EVP_DigestUpdate(ctx.md_ctx, part.data(), part.size()) == 1;
  }
  HashValue inner;
  unsigned int len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx.md_ctx, inner.data(), &len) == 1 && len == inner.size();
  for (uint8_t& b : block) b ^= 0x36 ^ 0x5c;
  HashValue result;
  ok = ok && hash(result, {as_bytes(block, sizeof(block)), as_bytes(inner)});
  if (ok) out = result;
  secure_zero(block, sizeof(block));
  secure_zero(key_hash);
  secure_zero(inner);
  secure_zero(result);
  return ok;
}

namespace {

bool kdf(HashValue* t1, HashValue* t2, HashValue* t3, const HashValue& key, Bytes input) {
  HashValue tau0;
  HashValue tau1;
  HashValue tau2;
  const uint8_t one = 1;
  const uint8_t two = 2;
  const uint8_t three = 3;
  bool ok = hmac(tau0, as_bytes(key), {input}) && hmac(tau1, as_bytes(tau0), {as_bytes(&one, 1)});
  if (ok && t2 != nullptr) ok = hmac(tau2, as_bytes(tau0), {as_bytes(tau1), as_bytes(&two, 1)});
  if (ok && t3 != nullptr) ok = hmac(*t3, as_bytes(tau0), {as_bytes(tau2), as_bytes(&three, 1)});
  if (ok) {
    *t1 = tau1;
    if (t2 != nullptr) *t2 = tau2;
  }
  secure_zero(tau0);
  secure_zero(tau1);
  secure_zero(tau2);
  return ok;
}

}  // namespace

bool kdf1(HashValue& t1, const HashValue& key, Bytes input) {
  return kdf(&t1, nullptr, nullptr, key, input);
}
bool kdf2(HashValue& t1, HashValue& t2, const HashValue& key, Bytes input) {
  return kdf(&t1, &t2, nullptr, key, input);
}
bool kdf3(HashValue& t1, HashValue& t2, HashValue& t3, const HashValue& key, Bytes input) {
  return kdf(&t1, &t2, &t3, key, input);
}

bool dh(Key& out, const Key& private_key, const Key& public_key) {
  (void)algorithms();
  // libsodium returns -1 for an all-zero result (a small-order public key); check again anyway
  // because accepting a zero secret would let anyone complete the handshake.
  if (crypto_scalarmult(out.data(), private_key.data(), public_key.data()) != 0 ||
      is_zero(as_bytes(out))) {
    secure_zero(out);
    return false;
  }
  return true;
}

void clamp_private_key(Key& key) {
  key[0] &= 248;
  key[31] = static_cast<uint8_t>((key[31] & 127) | 64);
}

Key generate_private_key() {
  Key key;
  random_bytes(key.data(), key.size());
  clamp_private_key(key);
  return key;
}

Key public_key_of(const Key& private_key) {
  (void)algorithms();
  Key pub{};
  crypto_scalarmult_base(pub.data(), private_key.data());
  return pub;
}

void aead_encrypt(uint8_t* out, const Key& key, uint64_t counter, Bytes plain, Bytes aad) {
  uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
  make_nonce(nonce, counter);
  crypto_aead_chacha20poly1305_ietf_encrypt(out, nullptr, plain.data(), plain.size(), aad.data(),
                                            aad.size(), nullptr, nonce, key.data());
}

bool aead_decrypt(uint8_t* out, const Key& key, uint64_t counter, Bytes cipher, Bytes aad) {
  if (cipher.size() < kTagLen) return false;
  uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
  make_nonce(nonce, counter);
  return crypto_aead_chacha20poly1305_ietf_decrypt(out, nullptr, nullptr, cipher.data(),
                                                   cipher.size(), aad.data(), aad.size(), nonce,
                                                   key.data()) == 0;
}

void xaead_encrypt(uint8_t* out, const Key& key, const uint8_t (&nonce)[kCookieNonceLen],
                   Bytes plain, Bytes aad) {
  static_assert(kCookieNonceLen == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out, nullptr, plain.data(), plain.size(), aad.data(),
                                             aad.size(), nullptr, nonce, key.data());
}

bool xaead_decrypt(uint8_t* out, const Key& key, const uint8_t (&nonce)[kCookieNonceLen],
                   Bytes cipher, Bytes aad) {
  if (cipher.size() < kTagLen) return false;
  return crypto_aead_xchacha20poly1305_ietf_decrypt(out, nullptr, nullptr, cipher.data(),
                                                    cipher.size(), aad.data(), aad.size(), nonce,
                                                    key.data()) == 0;
}

std::string key_to_base64(const Key& key) {
  char text[sodium_base64_ENCODED_LEN(kKeyLen, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(text, sizeof(text), key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  return std::string(text);
}

Result<Key> key_from_base64(std::string_view text) {
  constexpr size_t kEncodedLen = 44;
  if (text.size() != kEncodedLen) {
    return make_error("key must be 44 base64 characters, got " + std::to_string(text.size()));
  }
  if (text.back() != '=') return make_error("key must end with '=' (base64 of 32 bytes)");
  Key key{};
  size_t len = 0;
  const char* end = nullptr;
  // libsodium rejects non-canonical padding bits, as `wg` does.
  if (sodium_base642bin(key.data(), key.size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return make_error("key is not valid base64");
  }
  if (len != kKeyLen) return make_error("key does not decode to 32 bytes");
  return key;
}

bool equal_constant_time(Bytes a, Bytes b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool is_zero(Bytes a) {
  return a.empty() || sodium_is_zero(a.data(), a.size()) == 1;
}

void secure_zero(void* data, size_t size) {
  sodium_memzero(data, size);
}

void random_bytes(void* data, size_t size) {
  (void)algorithms();
  randombytes_buf(data, size);
}

uint32_t random_u32() {
  (void)algorithms();
  return randombytes_random();
}

}  // namespace exitgw::wg
