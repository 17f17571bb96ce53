// Receiver indices for handshakes and sessions: random, unique among live entries, bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>

#include "common/result.h"

namespace exitgw::wg {

// Maps each live receiver index to an opaque owner id (the control code's peer/session handle).
// Indices are random so they reveal nothing about how many sessions exist and cannot be guessed
// by an off-path attacker. Control thread only.
class IndexTable {
 public:
  explicit IndexTable(size_t capacity);

  // A fresh index never equal to a live one, and never 0 (reserved so 0 can mean "none").
  Result<uint32_t> allocate(uint64_t owner);
  // Returns false if index was not live; releasing twice is harmless.
  bool release(uint32_t index);
  std::optional<uint64_t> lookup(uint32_t index) const;

  size_t size() const { return entries_.size(); }
  size_t capacity() const { return capacity_; }

 private:
  size_t capacity_;
  std::unordered_map<uint32_t, uint64_t> entries_;
};

}  // namespace exitgw::wg
