// Per-peer packet and byte counts summed over runs of the same peer, written to this worker's
// own row of the peer counter table: a run of one peer costs one plain add per counter, and no
// counter line is shared with another worker (control sums the rows).
#pragma once

#include <cstdint>

#include "common/wg_state.h"

namespace exitgw::dp {

class PeerTally {
 public:
  enum Direction { kRx, kTx };
  // `row`: this worker's row (PeerCounterTable::row(worker index)).
  PeerTally(PeerCounters* row, Direction d) noexcept : row_(row), dir_(d) {}
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

  void flush() noexcept {
    if (packets_ == 0) return;
    PeerCounters& c = row_[slot_];
    PeerCounters::bump(dir_ == kRx ? c.rx_packets : c.tx_packets, packets_);
    PeerCounters::bump(dir_ == kRx ? c.rx_bytes : c.tx_bytes, bytes_);
    packets_ = bytes_ = 0;
  }

 private:
  PeerCounters* row_;
  Direction dir_;
  uint32_t slot_ = UINT32_MAX;
  uint64_t packets_ = 0, bytes_ = 0;
};

}  // namespace exitgw::dp
