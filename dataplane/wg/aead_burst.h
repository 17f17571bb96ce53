// Batched WireGuard transport AEAD (ChaCha20-Poly1305) on one worker lcore, through Intel ipsec-mb.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "common/result.h"
#include "common/wg_wire.h"

struct IMB_MGR;
struct IMB_JOB;

namespace exitgw::dp {

inline constexpr size_t kAeadNonceLen = 12;

// WireGuard's transport nonce: 32 zero bits, then the 64-bit counter in little-endian order.
inline void make_wireguard_nonce(uint64_t counter, uint8_t* nonce) noexcept {
  static_assert(std::endian::native == std::endian::little, "the nonce is stored little-endian");
  std::memset(nonce, 0, 4);
  std::memcpy(nonce + 4, &counter, sizeof(counter));
}

// One transport packet. In place: `data` is both source and destination; `tag` points at the
// 16 bytes that follow the ciphertext in the packet (written by encrypt, checked by decrypt).
struct AeadOp {
  const uint8_t* key;  // 32-byte symmetric key of the keypair
  uint64_t counter;    // the nonce counter from the transport header
  uint8_t* data;
  uint32_t len;  // may be 0 (keepalive)
  uint8_t* tag;
};

// The general ChaCha20-Poly1305 form (any 12-byte nonce, any AAD) that AeadOp is built on. The
// transport path never needs it; tests use it to check the RFC 8439 vectors through ipsec-mb.
struct RawAeadOp {
  const uint8_t* key;    // 32 bytes
  const uint8_t* nonce;  // 12 bytes
  const uint8_t* aad;    // may be null when aad_len is 0
  uint32_t aad_len;
  uint8_t* data;  // in place
  uint32_t len;
  uint8_t* tag;  // 16 bytes: written by encrypt, compared by decrypt
};

enum class AeadArch : uint8_t { kAuto, kSse, kAvx, kAvx2, kAvx512 };

// Ownership: one AeadBurst per worker lcore, used only by that lcore (the IMB_MGR and the scratch
// are single-threaded). Create it on the lcore that uses it so that first touch places its memory
// on that lcore's NUMA node. Every call submits the whole burst (up to kCapacity) to ipsec-mb in
// one burst submission (IMB_SUBMIT_BURST_NOCHECK in release builds, IMB_SUBMIT_BURST with
// ipsec-mb's job validation otherwise) and drains it with IMB_FLUSH_BURST before returning, so
// no job is left in flight between calls.
class alignas(64) AeadBurst {
 public:
  // Largest burst handed to ipsec-mb in one submission; larger calls are split into chunks.
  static constexpr uint16_t kCapacity = 64;

  // Allocates and initialises the IMB_MGR. kAuto picks the best code path the CPU supports;
  // a forced arch the CPU lacks is an error.
  static Result<std::unique_ptr<AeadBurst>> create(AeadArch arch = AeadArch::kAuto);
  ~AeadBurst();
  AeadBurst(const AeadBurst&) = delete;
  AeadBurst& operator=(const AeadBurst&) = delete;

  // "sse", "avx", "avx2" or "avx512": the ipsec-mb code path in use.
  const char* arch_name() const noexcept;

  // Decrypts in place and verifies each tag in constant time. `ok` has n entries; ok[i] is false
  // when the tag does not match, and that packet's data is then garbage and must be dropped.
  void decrypt_burst(AeadOp* ops, uint16_t n, bool* ok) noexcept;
  // Encrypts in place and writes each tag.
  void encrypt_burst(AeadOp* ops, uint16_t n) noexcept;

  void decrypt_raw(RawAeadOp* ops, uint16_t n, bool* ok) noexcept;
  void encrypt_raw(RawAeadOp* ops, uint16_t n) noexcept;

  // The nonce built for op i of the last chunk (per-lcore scratch: nothing is allocated per
  // packet). Exposed for tests and debugging.
  const uint8_t* nonce(uint16_t i) const noexcept { return scratch_.nonce[i].bytes; }

 private:
  // Per-burst scratch, reused by every call: the nonces ipsec-mb reads, the tags it writes when
  // decrypting (compared with the packet's afterwards), and the job pointers of the burst.
  struct alignas(16) Block16 {
    uint8_t bytes[16];
  };
  struct alignas(64) Scratch {
    Block16 nonce[kCapacity];
    Block16 computed_tag[kCapacity];
    IMB_JOB* jobs[kCapacity];
  };
  static_assert(sizeof(Block16) == 16);
  static_assert(sizeof(Scratch) % 64 == 0);

  AeadBurst(IMB_MGR* mgr, AeadArch arch) noexcept;

  template <bool kEncrypt, typename Op>
  void run(Op* ops, uint16_t n, bool* ok) noexcept;
  template <bool kEncrypt, typename Op>
  void run_chunk(Op* ops, uint16_t n, bool* ok) noexcept;

  Scratch scratch_;
  IMB_MGR* mgr_;
  AeadArch arch_;
};

static_assert(alignof(AeadBurst) == 64);

}  // namespace exitgw::dp
