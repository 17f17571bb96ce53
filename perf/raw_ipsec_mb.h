// The reference every throughput figure is compared with: Intel ipsec-mb's own
// ChaCha20-Poly1305 through its burst API on the same core, with nothing around it.
#pragma once

#include <intel-ipsec-mb.h>

#include <cstdint>

namespace exitgw::perf {

class RawChachaPoly {
 public:
  RawChachaPoly() : mgr_(alloc_mb_mgr(0)) { init_mb_mgr_auto(mgr_, &arch_); }
  ~RawChachaPoly() { free_mb_mgr(mgr_); }
  RawChachaPoly(const RawChachaPoly&) = delete;
  RawChachaPoly& operator=(const RawChachaPoly&) = delete;

  // One burst of n (<= 64) in-place operations, submitted at once and drained.
  void run(const uint8_t* const* keys, uint8_t* const* data, const uint32_t* len,
           const uint8_t (*nonce)[16], uint8_t (*tag)[16], uint32_t n, bool encrypt) {
    IMB_JOB* jobs[64];
    const uint32_t got = IMB_GET_NEXT_BURST(mgr_, n, jobs);
    for (uint32_t i = 0; i < got; ++i) {
      IMB_JOB* job = jobs[i];
      job->enc_keys = keys[i];
      job->dec_keys = keys[i];
      job->key_len_in_bytes = IMB_KEY_256_BYTES;
      job->src = data[i];
      job->dst = data[i];
      job->cipher_start_src_offset_in_bytes = 0;
      job->msg_len_to_cipher_in_bytes = len[i];
      job->hash_start_src_offset_in_bytes = 0;
      job->msg_len_to_hash_in_bytes = len[i];
      job->iv = nonce[i];
      job->iv_len_in_bytes = 12;
      job->auth_tag_output = tag[i];
      job->auth_tag_output_len_in_bytes = 16;
      job->u.CHACHA20_POLY1305.aad = nonce[i];
      job->u.CHACHA20_POLY1305.aad_len_in_bytes = 0;
      job->cipher_mode = IMB_CIPHER_CHACHA20_POLY1305;
      job->hash_alg = IMB_AUTH_CHACHA20_POLY1305;
      job->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
      job->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
    }
    uint32_t done = IMB_SUBMIT_BURST_NOCHECK(mgr_, got, jobs);
    while (done < got) {
      const uint32_t flushed = IMB_FLUSH_BURST(mgr_, got - done, jobs);
      if (flushed == 0) break;
      done += flushed;
    }
  }
  IMB_ARCH arch() const { return arch_; }

 private:
  IMB_MGR* mgr_;
  IMB_ARCH arch_ = IMB_ARCH_NONE;
};

}  // namespace exitgw::perf
