// WireGuard primitives against published vectors (RFC 7748, 7693, 8439, draft-irtf-cfrg-xchacha)
// and against the independent Python reference in vectors/gen_wg_handshake.py.
#include "control/wg/crypto.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "tests/unit/vectors/wg_handshake_vectors.h"

namespace exitgw::wg {
namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

template <size_t N>
std::array<uint8_t, N> array_from_hex(std::string_view hex) {
  std::array<uint8_t, N> out{};
  const auto bytes = from_hex(hex);
  EXPECT_EQ(bytes.size(), N);
  std::copy_n(bytes.begin(), std::min(N, bytes.size()), out.begin());
  return out;
}

template <size_t N>
std::array<uint8_t, N> array_of(const uint8_t (&raw)[N]) {
  std::array<uint8_t, N> out;
  std::copy_n(raw, N, out.begin());
  return out;
}

constexpr std::string_view kSunscreen =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    "sunscreen would be it.";

TEST(WgCrypto, InitialisesOpenSslAndSodium) {
  const Status s = crypto_init();
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error());
}

// RFC 7693 Appendix A: BLAKE2s-256("abc").
TEST(WgCrypto, HashOfAbcMatchesRfc7693AppendixA) {
  HashValue out;
  ASSERT_TRUE(hash(out, {as_bytes("abc")}));
  EXPECT_EQ(out,
            array_from_hex<32>("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"));
}

TEST(WgCrypto, HashOfPartsEqualsHashOfConcatenation) {
  HashValue split;
  HashValue whole;
  ASSERT_TRUE(hash(split, {as_bytes("ab"), as_bytes(""), as_bytes("c")}));
  ASSERT_TRUE(hash(whole, {as_bytes("abc")}));
  EXPECT_EQ(split, whole);
}

// Keyed BLAKE2s with a 16-byte digest (digest length is a parameter, not a truncation). Source:
// Python hashlib.blake2s(b"", key=bytes(range(32)), digest_size=16).hexdigest().
TEST(WgCrypto, MacIsKeyedBlake2sWithSixteenByteDigest) {
  Key key;
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  Mac out;
  ASSERT_TRUE(mac(out, as_bytes(key), {}));
  EXPECT_EQ(out, array_from_hex<16>("9536f9b267655743dee97b8a670f9f53"));
  ASSERT_TRUE(mac(out, as_bytes(vectors::kPrimKey, 32), as_bytes(vectors::kPrimInput, 16)));
  EXPECT_EQ(out, array_of(vectors::kMac16));
}

TEST(WgCrypto, HmacMatchesPythonHmacBlake2sForShortAndLongKeys) {
  HashValue out;
  ASSERT_TRUE(hmac(out, as_bytes(vectors::kPrimKey, 32), {as_bytes(vectors::kPrimInput, 16)}));
  EXPECT_EQ(out, array_of(vectors::kHmacShortKey));
  ASSERT_TRUE(hmac(out, as_bytes(vectors::kPrimLongKey, sizeof(vectors::kPrimLongKey)),
                   {as_bytes(vectors::kPrimInput, 16)}));
  EXPECT_EQ(out, array_of(vectors::kHmacLongKey));
}

TEST(WgCrypto, KdfOutputsMatchPythonHkdf) {
  const HashValue key = array_of(vectors::kPrimKey);
  const Bytes input = as_bytes(vectors::kPrimInput, sizeof(vectors::kPrimInput));
  HashValue t1;
  HashValue t2;
  HashValue t3;
  ASSERT_TRUE(kdf1(t1, key, input));
  EXPECT_EQ(t1, array_of(vectors::kKdf1));
  ASSERT_TRUE(kdf3(t1, t2, t3, key, input));
  EXPECT_EQ(t1, array_of(vectors::kKdf3T1));
  EXPECT_EQ(t2, array_of(vectors::kKdf3T2));
  EXPECT_EQ(t3, array_of(vectors::kKdf3T3));
  ASSERT_TRUE(kdf2(t1, t2, key, {}));
  EXPECT_EQ(t1, array_of(vectors::kKdf2EmptyT1));
  EXPECT_EQ(t2, array_of(vectors::kKdf2EmptyT2));
}

TEST(WgCrypto, KdfAllowsOutputToAliasTheChainingKey) {
  HashValue chaining = array_of(vectors::kPrimKey);
  HashValue key;
  ASSERT_TRUE(kdf2(chaining, key, chaining, as_bytes(vectors::kPrimInput, 16)));
  EXPECT_EQ(chaining, array_of(vectors::kKdf3T1));
  EXPECT_EQ(key, array_of(vectors::kKdf3T2));
}

// RFC 7748 section 5.2.
TEST(WgCrypto, X25519MatchesRfc7748Section5_2) {
  Key out;
  ASSERT_TRUE(dh(
      out, array_from_hex<32>("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
      array_from_hex<32>("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")));
  EXPECT_EQ(out,
            array_from_hex<32>("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"));
  ASSERT_TRUE(dh(
      out, array_from_hex<32>("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
      array_from_hex<32>("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")));
  EXPECT_EQ(out,
            array_from_hex<32>("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"));
}

// RFC 7748 section 6.1: Alice and Bob.
TEST(WgCrypto, X25519AliceAndBobMatchRfc7748Section6_1) {
  const Key alice =
      array_from_hex<32>("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const Key bob =
      array_from_hex<32>("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  const Key alice_public = public_key_of(alice);
  const Key bob_public = public_key_of(bob);
  EXPECT_EQ(alice_public,
            array_from_hex<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
  EXPECT_EQ(bob_public,
            array_from_hex<32>("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
  const Key shared =
      array_from_hex<32>("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  Key a;
  Key b;
  ASSERT_TRUE(dh(a, alice, bob_public));
  ASSERT_TRUE(dh(b, bob, alice_public));
  EXPECT_EQ(a, shared);
  EXPECT_EQ(b, shared);
}

TEST(WgCrypto, DhRejectsLowOrderPublicKeys) {
  const Key priv = generate_private_key();
  Key out;
  EXPECT_FALSE(dh(out, priv, Key{}));  // the point at u = 0
  Key one{};
  one[0] = 1;
  EXPECT_FALSE(dh(out, priv, one));  // u = 1 has order 4
  EXPECT_TRUE(is_zero(as_bytes(out)));
}

TEST(WgCrypto, GeneratedPrivateKeysAreClampedAndDistinct) {
  const Key a = generate_private_key();
  const Key b = generate_private_key();
  EXPECT_NE(a, b);
  EXPECT_EQ(a[0] & 7, 0);
  EXPECT_EQ(a[31] & 0x80, 0);
  EXPECT_EQ(a[31] & 0x40, 0x40);
  Key shared_ab;
  Key shared_ba;
  ASSERT_TRUE(dh(shared_ab, a, public_key_of(b)));
  ASSERT_TRUE(dh(shared_ba, b, public_key_of(a)));
  EXPECT_EQ(shared_ab, shared_ba);
}

// RFC 8439 section 2.8.2, through libsodium directly: the RFC's nonce starts 07 00 00 00, which
// WireGuard's nonce format (4 zero bytes || counter) cannot express.
TEST(WgCrypto, ChaCha20Poly1305MatchesRfc8439Section2_8_2) {
  const auto key = from_hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const auto nonce = from_hex("070000004041424344454647");
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  const auto expected = from_hex(
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
      "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
      "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
      "3ff4def08e4b7a9de576d26586cec64b6116"
      "1ae10b594f09e26a7e902ecbd0600691");
  std::vector<uint8_t> out(kSunscreen.size() + kTagLen);
  crypto_aead_chacha20poly1305_ietf_encrypt(
      out.data(), nullptr, reinterpret_cast<const uint8_t*>(kSunscreen.data()), kSunscreen.size(),
      aad.data(), aad.size(), nullptr, nonce.data(), key.data());
  EXPECT_EQ(out, expected);
}

TEST(WgCrypto, AeadUsesFourZeroBytesThenLittleEndianCounterAsNonce) {
  const Key key = array_of(vectors::kPrimKey);
  const uint64_t counter = 0x0807060504030201;
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  std::vector<uint8_t> ours(kSunscreen.size() + kTagLen);
  aead_encrypt(ours.data(), key, counter, as_bytes(kSunscreen), as_bytes(aad.data(), aad.size()));
  const auto nonce = from_hex("000000000102030405060708");
  std::vector<uint8_t> reference(ours.size());
  crypto_aead_chacha20poly1305_ietf_encrypt(
      reference.data(), nullptr, reinterpret_cast<const uint8_t*>(kSunscreen.data()),
      kSunscreen.size(), aad.data(), aad.size(), nullptr, nonce.data(), key.data());
  EXPECT_EQ(ours, reference);

  std::vector<uint8_t> plain(kSunscreen.size());
  ASSERT_TRUE(aead_decrypt(plain.data(), key, counter, as_bytes(ours.data(), ours.size()),
                           as_bytes(aad.data(), aad.size())));
  EXPECT_EQ(std::string(plain.begin(), plain.end()), kSunscreen);
  EXPECT_FALSE(aead_decrypt(plain.data(), key, counter + 1, as_bytes(ours.data(), ours.size()),
                            as_bytes(aad.data(), aad.size())));
  ours[0] ^= 1;
  EXPECT_FALSE(aead_decrypt(plain.data(), key, counter, as_bytes(ours.data(), ours.size()),
                            as_bytes(aad.data(), aad.size())));
}

TEST(WgCrypto, AeadDecryptRejectsInputShorterThanTag) {
  uint8_t out[16];
  const uint8_t short_input[15] = {};
  EXPECT_FALSE(aead_decrypt(out, Key{}, 0, as_bytes(short_input, sizeof(short_input)), {}));
}

// draft-irtf-cfrg-xchacha-03 appendix A.3.1.
TEST(WgCrypto, XChaCha20Poly1305MatchesDraftAppendixA3_1) {
  const Key key =
      array_from_hex<32>("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  uint8_t nonce[kCookieNonceLen];
  for (size_t i = 0; i < kCookieNonceLen; ++i) nonce[i] = static_cast<uint8_t>(0x40 + i);
  const auto aad = from_hex("50515253c0c1c2c3c4c5c6c7");
  const auto expected = from_hex(
      "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
      "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
      "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
      "21f9664c97637da9768812f615c68b13b52e"
      "c0875924c1c7987947deafd8780acf49");
  std::vector<uint8_t> out(kSunscreen.size() + kTagLen);
  xaead_encrypt(out.data(), key, nonce, as_bytes(kSunscreen), as_bytes(aad.data(), aad.size()));
  EXPECT_EQ(out, expected);
  std::vector<uint8_t> plain(kSunscreen.size());
  EXPECT_TRUE(xaead_decrypt(plain.data(), key, nonce, as_bytes(out.data(), out.size()),
                            as_bytes(aad.data(), aad.size())));
  out.back() ^= 0x80;
  EXPECT_FALSE(xaead_decrypt(plain.data(), key, nonce, as_bytes(out.data(), out.size()),
                             as_bytes(aad.data(), aad.size())));
}

TEST(WgCrypto, Base64KeysRoundTripInWgFormat) {
  EXPECT_EQ(key_to_base64(Key{}), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  const Key key = array_of(vectors::kResponderStaticPublic);
  const std::string text = key_to_base64(key);
  EXPECT_EQ(text.size(), 44u);
  auto back = key_from_base64(text);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(*back, key);
  // RFC 7748 Alice's public key as `wg pubkey` prints it.
  auto alice = key_from_base64("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
  ASSERT_TRUE(alice.ok()) << alice.error();
  EXPECT_EQ(*alice,
            array_from_hex<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
}

TEST(WgCrypto, Base64DecodeRejectsMalformedKeysWithNamedErrors) {
  auto short_key = key_from_base64("AAAA");
  ASSERT_FALSE(short_key.ok());
  EXPECT_NE(short_key.error().find("44"), std::string::npos);
  auto no_padding = key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  ASSERT_FALSE(no_padding.ok());
  EXPECT_NE(no_padding.error().find("="), std::string::npos);
  auto bad_char = key_from_base64("AAAAAAAAAAAAAAAAAAAAAA*AAAAAAAAAAAAAAAAAAAA=");
  ASSERT_FALSE(bad_char.ok());
  EXPECT_NE(bad_char.error().find("base64"), std::string::npos);
  // Non-zero padding bits: 'B' as the last data character encodes bits past byte 32.
  EXPECT_FALSE(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=").ok());
  EXPECT_FALSE(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==").ok());
}

TEST(WgCrypto, ConstantTimeCompareDistinguishesContentAndLength) {
  const uint8_t a[4] = {1, 2, 3, 4};
  const uint8_t b[4] = {1, 2, 3, 5};
  EXPECT_TRUE(equal_constant_time(as_bytes(a, 4), as_bytes(a, 4)));
  EXPECT_FALSE(equal_constant_time(as_bytes(a, 4), as_bytes(b, 4)));
  EXPECT_FALSE(equal_constant_time(as_bytes(a, 4), as_bytes(a, 3)));
}

TEST(WgCrypto, SecureZeroClearsKeys) {
  Key key = generate_private_key();
  secure_zero(key);
  EXPECT_TRUE(is_zero(as_bytes(key)));
}

}  // namespace
}  // namespace exitgw::wg
