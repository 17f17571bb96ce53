// Random receiver-index allocation with rejection of collisions.
#include "control/wg/index_table.h"

#include <string>

#include "control/wg/crypto.h"

namespace exitgw::wg {

IndexTable::IndexTable(size_t capacity) : capacity_(capacity) {
  entries_.reserve(capacity);
}

Result<uint32_t> IndexTable::allocate(uint64_t owner) {
  if (entries_.size() >= capacity_) {
    return make_error("receiver index table full (" + std::to_string(capacity_) + " entries)");
  }
  // The table is at most a tiny fraction of 2^32, so a draw almost never collides; the bound
  // only guards against a broken random source.
  constexpr int kMaxAttempts = 64;
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const uint32_t index = random_u32();
    if (index == 0) continue;
    if (entries_.try_emplace(index, owner).second) return index;
  }
  return make_error("no free receiver index after 64 random draws (random source broken?)");
}

bool IndexTable::release(uint32_t index) {
  return entries_.erase(index) > 0;
}

std::optional<uint64_t> IndexTable::lookup(uint32_t index) const {
  const auto it = entries_.find(index);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

}  // namespace exitgw::wg
