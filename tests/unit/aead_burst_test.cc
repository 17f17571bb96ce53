// AeadBurst against RFC 8439 and against libsodium as an independent ChaCha20-Poly1305.
#include "dataplane/wg/aead_burst.h"

#include <sodium.h>

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace exitgw::dp {
namespace {

using Bytes = std::vector<uint8_t>;
constexpr size_t kTag = wg::kTagLen;

Bytes from_hex(const std::string& hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

std::unique_ptr<AeadBurst> make_burst(AeadArch arch = AeadArch::kAuto) {
  auto burst = AeadBurst::create(arch);
  EXPECT_TRUE(burst.ok()) << (burst.ok() ? "" : burst.error());
  return burst.ok() ? std::move(burst.value()) : nullptr;
}

// One WireGuard transport packet: payload followed by the tag, as it sits in the mbuf.
struct Packet {
  std::array<uint8_t, 32> key{};
  uint64_t counter = 0;
  Bytes buffer;  // len + 16
  uint32_t len = 0;

  AeadOp op() { return AeadOp{key.data(), counter, buffer.data(), len, buffer.data() + len}; }
};

Packet random_packet(std::mt19937_64& rng, uint32_t len) {
  Packet p;
  for (auto& b : p.key) b = static_cast<uint8_t>(rng());
  p.counter = rng() >> (rng() % 64);
  p.len = len;
  p.buffer.resize(len + kTag);
  for (auto& b : p.buffer) b = static_cast<uint8_t>(rng());
  return p;
}

// libsodium's ChaCha20-Poly1305 IETF with WireGuard's nonce: ciphertext || tag.
Bytes sodium_seal(const Packet& p, const uint8_t* plaintext) {
  uint8_t nonce[12] = {};
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(p.counter >> (8 * i));
  Bytes out(p.len + kTag);
  unsigned long long out_len = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &out_len, plaintext, p.len, nullptr, 0,
                                            nullptr, nonce, p.key.data());
  EXPECT_EQ(out_len, p.len + kTag);
  return out;
}

class AeadBurstTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_GE(sodium_init(), 0); }
};

constexpr char kRfcKey[] = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
constexpr char kRfcNonce[] = "070000004041424344454647";
constexpr char kRfcAad[] = "50515253c0c1c2c3c4c5c6c7";
constexpr char kRfcPlaintext[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    "sunscreen would be it.";
constexpr char kRfcCiphertext[] =
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92"
    "728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b"
    "4831d7bc3ff4def08e4b7a9de576d26586cec64b6116";
constexpr char kRfcTag[] = "1ae10b594f09e26a7e902ecbd0600691";

TEST_F(AeadBurstTest, ReportsTheChosenIpsecMbArchitecture) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  const std::string arch = burst->arch_name();
  EXPECT_TRUE(arch == "sse" || arch == "avx" || arch == "avx2" || arch == "avx512") << arch;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
    EXPECT_EQ(arch, "avx512");
  }
}

TEST_F(AeadBurstTest, Rfc8439Section282VectorEncryptsAndDecryptsThroughIpsecMb) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  const Bytes key = from_hex(kRfcKey);
  const Bytes nonce = from_hex(kRfcNonce);
  const Bytes aad = from_hex(kRfcAad);
  Bytes data(kRfcPlaintext, kRfcPlaintext + sizeof(kRfcPlaintext) - 1);
  ASSERT_EQ(data.size(), 114u);
  uint8_t tag[kTag];

  RawAeadOp op{key.data(),  nonce.data(),
               aad.data(),  static_cast<uint32_t>(aad.size()),
               data.data(), static_cast<uint32_t>(data.size()),
               tag};
  burst->encrypt_raw(&op, 1);
  EXPECT_EQ(data, from_hex(kRfcCiphertext));
  EXPECT_EQ(Bytes(tag, tag + kTag), from_hex(kRfcTag));

  bool ok = false;
  burst->decrypt_raw(&op, 1, &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(std::string(data.begin(), data.end()), kRfcPlaintext);

  // Same ciphertext, wrong AAD: the tag must not verify.
  burst->encrypt_raw(&op, 1);
  Bytes other_aad = aad;
  other_aad[0] ^= 1;
  op.aad = other_aad.data();
  burst->decrypt_raw(&op, 1, &ok);
  EXPECT_FALSE(ok);
}

TEST_F(AeadBurstTest, EveryIpsecMbArchitectureReproducesTheRfcVector) {
  for (AeadArch arch : {AeadArch::kSse, AeadArch::kAvx, AeadArch::kAvx2, AeadArch::kAvx512}) {
    auto created = AeadBurst::create(arch);
    if (!created.ok()) continue;  // CPU lacks it
    auto& burst = created.value();
    const Bytes key = from_hex(kRfcKey);
    const Bytes nonce = from_hex(kRfcNonce);
    const Bytes aad = from_hex(kRfcAad);
    Bytes data(kRfcPlaintext, kRfcPlaintext + sizeof(kRfcPlaintext) - 1);
    uint8_t tag[kTag];
    RawAeadOp op{key.data(),  nonce.data(),
                 aad.data(),  static_cast<uint32_t>(aad.size()),
                 data.data(), static_cast<uint32_t>(data.size()),
                 tag};
    burst->encrypt_raw(&op, 1);
    EXPECT_EQ(data, from_hex(kRfcCiphertext)) << burst->arch_name();
    EXPECT_EQ(Bytes(tag, tag + kTag), from_hex(kRfcTag)) << burst->arch_name();
  }
}

TEST_F(AeadBurstTest, BuildsTheWireGuardNonceFromTheCounter) {
  uint8_t nonce[12];
  make_wireguard_nonce(0x0102030405060708ull, nonce);
  const uint8_t expected[12] = {0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1};
  EXPECT_EQ(0, std::memcmp(nonce, expected, 12));
}

TEST_F(AeadBurstTest, EncryptBurstMatchesLibsodiumForRandomLengthsKeysAndCounters) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  std::mt19937_64 rng(1);
  for (int round = 0; round < 40; ++round) {
    std::vector<Packet> packets;
    std::vector<Bytes> plaintexts;
    const uint16_t n = static_cast<uint16_t>(1 + rng() % AeadBurst::kCapacity);
    for (uint16_t i = 0; i < n; ++i) {
      packets.push_back(random_packet(rng, static_cast<uint32_t>(rng() % 1501)));
      plaintexts.emplace_back(packets.back().buffer.begin(),
                              packets.back().buffer.begin() + packets.back().len);
    }
    std::vector<AeadOp> ops;
    for (auto& p : packets) ops.push_back(p.op());
    burst->encrypt_burst(ops.data(), n);
    for (uint16_t i = 0; i < n; ++i) {
      ASSERT_EQ(packets[i].buffer, sodium_seal(packets[i], plaintexts[i].data()))
          << "round " << round << " packet " << i << " len " << packets[i].len;
      uint8_t nonce[12];
      make_wireguard_nonce(packets[i].counter, nonce);
      EXPECT_EQ(0, std::memcmp(burst->nonce(i), nonce, 12));
    }
  }
}

TEST_F(AeadBurstTest, DecryptBurstOpensWhatLibsodiumSealed) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  std::mt19937_64 rng(2);
  const uint16_t n = 32;
  std::vector<Packet> packets;
  std::vector<Bytes> plaintexts;
  for (uint16_t i = 0; i < n; ++i) {
    Packet p = random_packet(rng, static_cast<uint32_t>(rng() % 1501));
    plaintexts.emplace_back(p.buffer.begin(), p.buffer.begin() + p.len);
    p.buffer = sodium_seal(p, plaintexts.back().data());
    packets.push_back(std::move(p));
  }
  std::vector<AeadOp> ops;
  for (auto& p : packets) ops.push_back(p.op());
  bool ok[n];
  burst->decrypt_burst(ops.data(), n, ok);
  for (uint16_t i = 0; i < n; ++i) {
    EXPECT_TRUE(ok[i]) << i;
    EXPECT_EQ(Bytes(packets[i].buffer.begin(), packets[i].buffer.begin() + packets[i].len),
              plaintexts[i]);
  }
}

TEST_F(AeadBurstTest, TamperedCiphertextOrTagFailsOnlyThatPacketInAMixedBurst) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  std::mt19937_64 rng(3);
  const uint16_t n = 48;
  // Mixed lengths (including 0 and 1500) and keys; a few keys shared, as with one peer's burst.
  std::array<std::array<uint8_t, 32>, 3> shared_keys{};
  for (auto& k : shared_keys)
    for (auto& b : k) b = static_cast<uint8_t>(rng());
  std::vector<Packet> packets;
  std::vector<Bytes> plaintexts;
  for (uint16_t i = 0; i < n; ++i) {
    const uint32_t len = i == 0 ? 0 : i == 1 ? 1500 : static_cast<uint32_t>(rng() % 1501);
    Packet p = random_packet(rng, len);
    if (i % 2 == 0) p.key = shared_keys[i % 3];
    plaintexts.emplace_back(p.buffer.begin(), p.buffer.begin() + p.len);
    packets.push_back(std::move(p));
  }
  std::vector<AeadOp> ops;
  for (auto& p : packets) ops.push_back(p.op());
  burst->encrypt_burst(ops.data(), n);

  // Tamper: 5 flips a ciphertext byte, 6 a tag byte, 0 (empty payload) its tag, 9 uses the wrong
  // counter (nonce), 12 the wrong key.
  ASSERT_GT(packets[5].len, 0u);
  packets[5].buffer[packets[5].len / 2] ^= 0x80;
  packets[6].buffer[packets[6].len + 15] ^= 0x01;
  packets[0].buffer[3] ^= 0x10;
  ops[9].counter += 1;
  ASSERT_EQ(packets[12].key, shared_keys[0]);
  ops[12].key = shared_keys[1].data();

  bool ok[n];
  burst->decrypt_burst(ops.data(), n, ok);
  for (uint16_t i = 0; i < n; ++i) {
    const bool tampered = i == 0 || i == 5 || i == 6 || i == 9 || i == 12;
    EXPECT_EQ(ok[i], !tampered) << "packet " << i;
    if (!tampered) {
      EXPECT_EQ(Bytes(packets[i].buffer.begin(), packets[i].buffer.begin() + packets[i].len),
                plaintexts[i])
          << "packet " << i;
    }
  }
}

TEST_F(AeadBurstTest, EmptyBurstTouchesNothing) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  bool ok = true;
  burst->encrypt_burst(nullptr, 0);
  burst->decrypt_burst(nullptr, 0, &ok);
  EXPECT_TRUE(ok);
  // Still usable afterwards.
  std::mt19937_64 rng(4);
  Packet p = random_packet(rng, 100);
  Bytes plaintext(p.buffer.begin(), p.buffer.begin() + p.len);
  AeadOp op = p.op();
  burst->encrypt_burst(&op, 1);
  EXPECT_EQ(p.buffer, sodium_seal(p, plaintext.data()));
}

TEST_F(AeadBurstTest, BurstLargerThanCapacityIsSplitAndEveryPacketProcessed) {
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  std::mt19937_64 rng(5);
  for (uint16_t n : {uint16_t{AeadBurst::kCapacity}, uint16_t{AeadBurst::kCapacity + 1},
                     uint16_t{3 * AeadBurst::kCapacity + 7}, uint16_t{1000}}) {
    std::vector<Packet> packets;
    std::vector<Bytes> plaintexts;
    for (uint16_t i = 0; i < n; ++i) {
      packets.push_back(random_packet(rng, static_cast<uint32_t>(rng() % 1501)));
      plaintexts.emplace_back(packets.back().buffer.begin(),
                              packets.back().buffer.begin() + packets.back().len);
    }
    std::vector<AeadOp> ops;
    for (auto& p : packets) ops.push_back(p.op());
    burst->encrypt_burst(ops.data(), n);
    for (uint16_t i = 0; i < n; ++i) {
      ASSERT_EQ(packets[i].buffer, sodium_seal(packets[i], plaintexts[i].data()))
          << "n " << n << " packet " << i;
    }
    // Tamper one packet in the last chunk; only it fails.
    packets[n - 1].buffer[packets[n - 1].len] ^= 1;
    auto ok = std::make_unique<bool[]>(n);
    burst->decrypt_burst(ops.data(), n, ok.get());
    for (uint16_t i = 0; i < n; ++i) {
      ASSERT_EQ(ok[i], i != n - 1) << "n " << n << " packet " << i;
      if (i != n - 1) {
        ASSERT_EQ(Bytes(packets[i].buffer.begin(), packets[i].buffer.begin() + packets[i].len),
                  plaintexts[i]);
      }
    }
  }
}

TEST_F(AeadBurstTest, EveryLengthFromZeroTo300RoundTripsInOneBurst) {
  // Exercises every tail size of the 64-byte ChaCha block and 16-byte Poly1305 block.
  auto burst = make_burst();
  ASSERT_NE(burst, nullptr);
  std::mt19937_64 rng(6);
  std::vector<Packet> packets;
  std::vector<Bytes> plaintexts;
  for (uint32_t len = 0; len <= 300; ++len) {
    packets.push_back(random_packet(rng, len));
    plaintexts.emplace_back(packets.back().buffer.begin(),
                            packets.back().buffer.begin() + packets.back().len);
  }
  std::vector<AeadOp> ops;
  for (auto& p : packets) ops.push_back(p.op());
  const auto n = static_cast<uint16_t>(ops.size());
  burst->encrypt_burst(ops.data(), n);
  for (uint16_t i = 0; i < n; ++i) {
    ASSERT_EQ(packets[i].buffer, sodium_seal(packets[i], plaintexts[i].data())) << i;
  }
  auto ok = std::make_unique<bool[]>(n);
  burst->decrypt_burst(ops.data(), n, ok.get());
  for (uint16_t i = 0; i < n; ++i) {
    ASSERT_TRUE(ok[i]) << i;
    ASSERT_EQ(Bytes(packets[i].buffer.begin(), packets[i].buffer.begin() + packets[i].len),
              plaintexts[i]);
  }
}

}  // namespace
}  // namespace exitgw::dp
