// WireGuard transport AEAD throughput on one core: raw ipsec-mb bursts vs AeadBurst.
#include "dataplane/wg/aead_burst.h"

#include <benchmark/benchmark.h>
#include <intel-ipsec-mb.h>
#include <x86intrin.h>

#include <array>
#include <cstdio>
#include <memory>
#include <vector>

namespace {

using exitgw::dp::AeadBurst;
using exitgw::dp::AeadOp;

constexpr uint16_t kBurst = 32;
constexpr size_t kTag = 16;

// 32 packets of `len` bytes plus a tag each, 64-byte aligned like mbuf data, four peer keys.
struct Packets {
  explicit Packets(uint32_t len) : len(len), stride((len + kTag + 63) / 64 * 64) {
    storage.reset(static_cast<uint8_t*>(aligned_alloc(64, stride * kBurst)));
    for (size_t i = 0; i < stride * kBurst; ++i) storage.get()[i] = static_cast<uint8_t>(i * 31);
    for (size_t k = 0; k < keys.size(); ++k)
      for (size_t b = 0; b < 32; ++b) keys[k][b] = static_cast<uint8_t>(k * 32 + b);
    for (uint16_t i = 0; i < kBurst; ++i) {
      ops[i] = AeadOp{keys[i % keys.size()].data(), 1000u + i, data(i), len, data(i) + len};
    }
  }
  uint8_t* data(uint16_t i) { return storage.get() + size_t{i} * stride; }

  struct Free {
    void operator()(uint8_t* p) const { free(p); }
  };
  uint32_t len;
  size_t stride;
  std::unique_ptr<uint8_t, Free> storage;
  std::array<std::array<uint8_t, 32>, 4> keys{};
  std::array<AeadOp, kBurst> ops{};
};

void set_counters(benchmark::State& state, uint64_t cycles, uint32_t len) {
  const auto packets = static_cast<int64_t>(state.iterations()) * kBurst;
  state.SetItemsProcessed(packets);
  state.SetBytesProcessed(packets * len);
  state.counters["cycles_per_pkt"] =
      benchmark::Counter(packets > 0 ? static_cast<double>(cycles) / packets : 0.0);
}

std::unique_ptr<AeadBurst> make_burst(benchmark::State& state) {
  auto created = AeadBurst::create();
  if (!created.ok()) {
    state.SkipWithError(created.error().c_str());
    return nullptr;
  }
  state.SetLabel(created.value()->arch_name());
  return std::move(created.value());
}

// REFERENCE: what ipsec-mb itself does for 32 ChaCha20-Poly1305 decryptions submitted as one
// burst on this core, with nonces prepared outside the loop and no tag comparison. kValidate
// picks IMB_SUBMIT_BURST (ipsec-mb re-validates each job) or IMB_SUBMIT_BURST_NOCHECK.
template <bool kValidate>
void raw_ipsec_mb(benchmark::State& state) {
  const auto len = static_cast<uint32_t>(state.range(0));
  Packets packets(len);
  IMB_MGR* mgr = alloc_mb_mgr(0);
  if (mgr == nullptr) {
    state.SkipWithError("alloc_mb_mgr failed");
    return;
  }
  IMB_ARCH arch = IMB_ARCH_NONE;
  init_mb_mgr_auto(mgr, &arch);
  alignas(16) uint8_t nonces[kBurst][16] = {};
  alignas(16) uint8_t tags[kBurst][16];
  const uint8_t aad[16] = {};
  for (uint16_t i = 0; i < kBurst; ++i) exitgw::dp::make_wireguard_nonce(1000u + i, nonces[i]);
  IMB_JOB* jobs[kBurst];
  uint64_t cycles = 0;
  for (auto _ : state) {
    const uint64_t start = __rdtsc();
    const uint32_t got = IMB_GET_NEXT_BURST(mgr, kBurst, jobs);
    for (uint32_t i = 0; i < got; ++i) {
      IMB_JOB* job = jobs[i];
      job->enc_keys = packets.ops[i].key;
      job->dec_keys = packets.ops[i].key;
      job->key_len_in_bytes = IMB_KEY_256_BYTES;
      job->src = packets.data(static_cast<uint16_t>(i));
      job->dst = packets.data(static_cast<uint16_t>(i));
      job->cipher_start_src_offset_in_bytes = 0;
      job->msg_len_to_cipher_in_bytes = len;
      job->hash_start_src_offset_in_bytes = 0;
      job->msg_len_to_hash_in_bytes = len;
      job->iv = nonces[i];
      job->iv_len_in_bytes = 12;
      job->auth_tag_output = tags[i];
      job->auth_tag_output_len_in_bytes = 16;
      job->u.CHACHA20_POLY1305.aad = aad;
      job->u.CHACHA20_POLY1305.aad_len_in_bytes = 0;
      job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
      job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
      job->cipher_direction = IMB_DIR_DECRYPT;
      job->chain_order = IMB_ORDER_HASH_CIPHER;
    }
    uint32_t done =
        kValidate ? IMB_SUBMIT_BURST(mgr, got, jobs) : IMB_SUBMIT_BURST_NOCHECK(mgr, got, jobs);
    while (done < got) {
      const uint32_t flushed = IMB_FLUSH_BURST(mgr, got - done, jobs);
      if (flushed == 0) break;
      done += flushed;
    }
    cycles += __rdtsc() - start;
    benchmark::DoNotOptimize(tags);
  }
  set_counters(state, cycles, len);
  static const char* const kArchNames[] = {"none", "noaesni", "sse", "avx", "avx2", "avx512"};
  state.SetLabel(arch < IMB_ARCH_NUM ? kArchNames[arch] : "?");
  free_mb_mgr(mgr);
}

void BM_RawIpsecMb(benchmark::State& state) {
  raw_ipsec_mb<true>(state);
}
void BM_RawIpsecMbNoCheck(benchmark::State& state) {
  raw_ipsec_mb<false>(state);
}

// AeadBurst, as a worker calls it (release build: IMB_SUBMIT_BURST_NOCHECK).
void BM_Decrypt(benchmark::State& state) {
  const auto len = static_cast<uint32_t>(state.range(0));
  Packets packets(len);
  auto burst = make_burst(state);
  if (!burst) return;
  // Seal once so that the first decryption verifies (later ones run on garbage: same cost, the
  // comparison is constant time).
  burst->encrypt_burst(packets.ops.data(), kBurst);
  bool ok[kBurst];
  burst->decrypt_burst(packets.ops.data(), kBurst, ok);
  for (bool b : ok) {
    if (!b) state.SkipWithError("a sealed packet did not verify");
  }
  uint64_t cycles = 0;
  for (auto _ : state) {
    const uint64_t start = __rdtsc();
    burst->decrypt_burst(packets.ops.data(), kBurst, ok);
    cycles += __rdtsc() - start;
    benchmark::DoNotOptimize(ok);
  }
  set_counters(state, cycles, len);
}

void BM_Encrypt(benchmark::State& state) {
  const auto len = static_cast<uint32_t>(state.range(0));
  Packets packets(len);
  auto burst = make_burst(state);
  if (!burst) return;
  uint64_t cycles = 0;
  for (auto _ : state) {
    const uint64_t start = __rdtsc();
    burst->encrypt_burst(packets.ops.data(), kBurst);
    cycles += __rdtsc() - start;
    benchmark::ClobberMemory();
  }
  set_counters(state, cycles, len);
}

BENCHMARK(BM_RawIpsecMb)->Arg(64)->Arg(512)->Arg(1420);
BENCHMARK(BM_RawIpsecMbNoCheck)->Arg(64)->Arg(512)->Arg(1420);
BENCHMARK(BM_Decrypt)->Arg(64)->Arg(512)->Arg(1420);
BENCHMARK(BM_Encrypt)->Arg(64)->Arg(512)->Arg(1420);

}  // namespace

BENCHMARK_MAIN();
