// AeadBurst: fills one ipsec-mb job per packet, submits the burst once, drains it, checks tags.
#include "dataplane/wg/aead_burst.h"

#include <intel-ipsec-mb.h>

#include <new>
#include <string>
#include <type_traits>

namespace exitgw::dp {
namespace {

static_assert(wg::kTagLen == 16);
static_assert(AeadBurst::kCapacity >= 64 && AeadBurst::kCapacity <= IMB_MAX_BURST_SIZE,
              "one chunk must fit in a single IMB_SUBMIT_BURST");

// IMB_SUBMIT_BURST validates every job (about 30-40 cycles each on AVX-512, 10% of a 64-byte
// packet). Every field is set here from values the caller already owns and bounds (keypair key,
// mbuf data and length), so release builds submit with IMB_SUBMIT_BURST_NOCHECK - the same single
// burst submission, minus the re-validation - and debug builds keep ipsec-mb's checks.
#ifdef NDEBUG
constexpr bool kValidateJobs = false;
#else
constexpr bool kValidateJobs = true;
#endif

// Never hand ipsec-mb a null AAD pointer, even for WireGuard's empty AAD: its job checks and
// code paths do not promise to accept one.
alignas(16) constexpr uint8_t kEmptyAad[16] = {};

// Constant time: no branch and no early exit depend on the tag bytes.
inline bool tags_equal(const uint8_t* a, const uint8_t* b) noexcept {
  uint64_t a0, a1, b0, b1;
  std::memcpy(&a0, a, 8);
  std::memcpy(&a1, a + 8, 8);
  std::memcpy(&b0, b, 8);
  std::memcpy(&b1, b + 8, 8);
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

const char* arch_to_name(AeadArch arch) noexcept {
  switch (arch) {
    case AeadArch::kSse:
      return "sse";
    case AeadArch::kAvx:
      return "avx";
    case AeadArch::kAvx2:
      return "avx2";
    case AeadArch::kAvx512:
      return "avx512";
    case AeadArch::kAuto:
      break;
  }
  return "unknown";
}

}  // namespace

Result<std::unique_ptr<AeadBurst>> AeadBurst::create(AeadArch arch) {
  IMB_MGR* mgr = alloc_mb_mgr(0);
  if (mgr == nullptr) {
    return make_error(std::string("ipsec-mb: alloc_mb_mgr failed: ") +
                      imb_get_strerror(imb_get_errno(nullptr)));
  }
  const uint64_t features = mgr->features;
  auto require = [&](uint64_t flags) -> bool {
    if ((features & flags) == flags) return true;
    free_mb_mgr(mgr);
    return false;
  };
  AeadArch used = arch;
  switch (arch) {
    case AeadArch::kAuto: {
      IMB_ARCH detected = IMB_ARCH_NONE;
      init_mb_mgr_auto(mgr, &detected);
      switch (detected) {
        case IMB_ARCH_SSE:
          used = AeadArch::kSse;
          break;
        case IMB_ARCH_AVX:
          used = AeadArch::kAvx;
          break;
        case IMB_ARCH_AVX2:
          used = AeadArch::kAvx2;
          break;
        case IMB_ARCH_AVX512:
          used = AeadArch::kAvx512;
          break;
        default:
          free_mb_mgr(mgr);
          return make_error(
              "ipsec-mb: no usable code path on this CPU (needs at least SSE4.2, AES-NI and "
              "PCLMULQDQ)");
      }
      break;
    }
    case AeadArch::kSse:
      if (!require(IMB_CPUFLAGS_SSE)) return make_error("ipsec-mb: CPU lacks the SSE path");
      init_mb_mgr_sse(mgr);
      break;
    case AeadArch::kAvx:
      if (!require(IMB_CPUFLAGS_AVX)) return make_error("ipsec-mb: CPU lacks the AVX path");
      init_mb_mgr_avx(mgr);
      break;
    case AeadArch::kAvx2:
      if (!require(IMB_CPUFLAGS_AVX2)) return make_error("ipsec-mb: CPU lacks the AVX2 path");
      init_mb_mgr_avx2(mgr);
      break;
    case AeadArch::kAvx512:
      if (!require(IMB_CPUFLAGS_AVX512)) return make_error("ipsec-mb: CPU lacks the AVX-512 path");
      init_mb_mgr_avx512(mgr);
      break;
  }
  if (const int err = imb_get_errno(mgr); err != 0) {
    std::string message = std::string("ipsec-mb: init_mb_mgr failed: ") + imb_get_strerror(err);
    free_mb_mgr(mgr);
    return make_error(std::move(message));
  }
  auto* burst = new (std::nothrow) AeadBurst(mgr, used);
  if (burst == nullptr) {
    free_mb_mgr(mgr);
    return make_error("AeadBurst: out of memory");
  }
  return std::unique_ptr<AeadBurst>(burst);
}

AeadBurst::AeadBurst(IMB_MGR* mgr, AeadArch arch) noexcept : scratch_{}, mgr_(mgr), arch_(arch) {}

AeadBurst::~AeadBurst() {
  free_mb_mgr(mgr_);
}

const char* AeadBurst::arch_name() const noexcept {
  return arch_to_name(arch_);
}

void AeadBurst::decrypt_burst(AeadOp* ops, uint16_t n, bool* ok) noexcept {
  run<false>(ops, n, ok);
}

void AeadBurst::encrypt_burst(AeadOp* ops, uint16_t n) noexcept {
  run<true>(ops, n, nullptr);
}

void AeadBurst::decrypt_raw(RawAeadOp* ops, uint16_t n, bool* ok) noexcept {
  run<false>(ops, n, ok);
}

void AeadBurst::encrypt_raw(RawAeadOp* ops, uint16_t n) noexcept {
  run<true>(ops, n, nullptr);
}

template <bool kEncrypt, typename Op>
void AeadBurst::run(Op* ops, uint16_t n, bool* ok) noexcept {
  while (n > 0) {
    const uint16_t chunk = n < kCapacity ? n : kCapacity;
    run_chunk<kEncrypt>(ops, chunk, ok);
    ops += chunk;
    if constexpr (!kEncrypt) ok += chunk;
    n = static_cast<uint16_t>(n - chunk);
  }
}

template <bool kEncrypt, typename Op>
void AeadBurst::run_chunk(Op* ops, uint16_t n, bool* ok) noexcept {
  IMB_JOB** jobs = scratch_.jobs;
  // The queue is empty here (every call drains it), so ipsec-mb hands out n jobs.
  const uint32_t got = IMB_GET_NEXT_BURST(mgr_, n, jobs);
  if (got < n) [[unlikely]] {
    for (uint16_t i = 0; i < n; ++i) {
      if constexpr (kEncrypt) {
        std::memset(ops[i].tag, 0, wg::kTagLen);  // the peer will reject it
      } else {
        ok[i] = false;
      }
    }
    return;
  }

  for (uint16_t i = 0; i < n; ++i) {
    IMB_JOB* job = jobs[i];
    const Op& op = ops[i];
    const uint8_t* nonce;
    const uint8_t* aad;
    uint32_t aad_len;
    if constexpr (std::is_same_v<Op, AeadOp>) {
      make_wireguard_nonce(op.counter, scratch_.nonce[i].bytes);
      nonce = scratch_.nonce[i].bytes;
      aad = kEmptyAad;
      aad_len = 0;
    } else {
      nonce = op.nonce;
      aad = op.aad != nullptr ? op.aad : kEmptyAad;
      aad_len = op.aad_len;
    }
    job->enc_keys = op.key;
    job->dec_keys = op.key;
    job->key_len_in_bytes = IMB_KEY_256_BYTES;
    job->src = op.data;
    job->dst = op.data;
    job->cipher_start_src_offset_in_bytes = 0;
    job->msg_len_to_cipher_in_bytes = op.len;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = op.len;
    job->iv = nonce;
    job->iv_len_in_bytes = kAeadNonceLen;
    job->auth_tag_output = kEncrypt ? op.tag : scratch_.computed_tag[i].bytes;
    job->auth_tag_output_len_in_bytes = wg::kTagLen;
    job->u.CHACHA20_POLY1305.aad = aad;
    job->u.CHACHA20_POLY1305.aad_len_in_bytes = aad_len;
    job->u.CHACHA20_POLY1305.ctx = nullptr;
    job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
    job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
    job->cipher_direction = kEncrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
    job->chain_order = kEncrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
    job->user_data = reinterpret_cast<void*>(static_cast<uintptr_t>(i));
  }

  // Completed jobs come back in submission order, possibly fewer than n (multi-buffer lanes
  // not yet full); the flush completes the rest. user_data maps a job back to its op.
  auto finish = [&](uint32_t count) noexcept {
    for (uint32_t k = 0; k < count; ++k) {
      const IMB_JOB* job = jobs[k];
      const auto i = static_cast<uint16_t>(reinterpret_cast<uintptr_t>(job->user_data));
      const bool completed = job->status == IMB_STATUS_COMPLETED;
      if constexpr (kEncrypt) {
        if (!completed) [[unlikely]]
          std::memset(ops[i].tag, 0, wg::kTagLen);
      } else {
        ok[i] = completed & tags_equal(scratch_.computed_tag[i].bytes, ops[i].tag);
      }
    }
  };

  uint32_t done =
      kValidateJobs ? IMB_SUBMIT_BURST(mgr_, n, jobs) : IMB_SUBMIT_BURST_NOCHECK(mgr_, n, jobs);
  if (kValidateJobs && done == 0 && imb_get_errno(mgr_) != 0) [[unlikely]] {
    // A job failed validation (null key or buffer): nothing was queued. Fail the whole chunk.
    for (uint16_t i = 0; i < n; ++i) {
      if constexpr (kEncrypt) {
        if (ops[i].tag != nullptr) std::memset(ops[i].tag, 0, wg::kTagLen);
      } else {
        ok[i] = false;
      }
    }
    return;
  }
  finish(done);
  while (done < n) {
    const uint32_t flushed = IMB_FLUSH_BURST(mgr_, n - done, jobs);
    if (flushed == 0) [[unlikely]]
      break;
    finish(flushed);
    done += flushed;
  }
}

}  // namespace exitgw::dp
