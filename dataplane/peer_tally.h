// Per-peer packet and byte counts summed over runs of the same peer, so a burst from one peer
// costs one atomic add per counter rather than one per packet (several workers may count the
// same peer, hence atomics at all).
#pragma once

#include <atomic>
#include <cstdint>

#include "common/wg_state.h"

namespace exitgw::dp {

class PeerTally {
 public:
  enum Direction { kRx, kTx };
  PeerTally(PeerRuntime* peers, Direction d) : peers_(peers), dir_(d) {}
  ~PeerTally() { flush(); }
  PeerTally(const PeerTally&) = delete;
  PeerTally& operator=(const PeerTally&) = delete;

  void add(uint32_t slot, uint32_t bytes) noexcept {
    if (slot != slot_) {
      flush();
      slot_ = slot;
    }
    ++packets_;
    bytes_ += bytes;
  }

 private:
  void flush() noexcept {
    if (packets_ == 0) return;
    PeerRuntime& p = peers_[slot_];
    (dir_ == kRx ? p.rx_packets : p.tx_packets).fetch_add(packets_, std::memory_order_relaxed);
    (dir_ == kRx ? p.rx_bytes : p.tx_bytes).fetch_add(bytes_, std::memory_order_relaxed);
    packets_ = bytes_ = 0;
  }
  PeerRuntime* peers_;
  Direction dir_;
  uint32_t slot_ = UINT32_MAX;
  uint64_t packets_ = 0, bytes_ = 0;
};

}  // namespace exitgw::dp
