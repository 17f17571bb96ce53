// The fragment park's table walks that need no drop sink (the rest is in the header).
#include "dataplane/frag_park.h"

namespace exitgw::dp {

FragmentPark::Entry* FragmentPark::find(const Key& k, uint64_t now) noexcept {
  Entry* set = &entries_[set_of(k) * kWays];
  for (unsigned i = 0; i < kWays; ++i)
    if (set[i].used && set[i].key == k && set[i].expires > now) return &set[i];
  return nullptr;
}

uint8_t FragmentPark::owner(const Key& k, uint64_t now) const noexcept {
  const Entry* e = const_cast<FragmentPark*>(this)->find(k, now);
  return e ? e->owner : kNoOwner;
}

FragmentPark::Entry* FragmentPark::victim_for(const Key& k, uint64_t now) noexcept {
  Entry* set = &entries_[set_of(k) * kWays];
  Entry* victim = nullptr;
  for (unsigned i = 0; i < kWays; ++i) {
    Entry& e = set[i];
    if (!e.used || e.expires <= now) return &e;
    if (victim == nullptr || e.expires < victim->expires) victim = &e;
  }
  return victim;
}

unsigned FragmentPark::release(const Key& k, rte_mbuf** out) noexcept {
  Entry* set = &entries_[set_of(k) * kWays];
  for (unsigned i = 0; i < kWays; ++i) {
    Entry& e = set[i];
    if (!e.used || !(e.key == k)) continue;
    const unsigned n = e.n;
    for (unsigned j = 0; j < n; ++j) out[j] = e.held[j];
    n_held_ -= n;
    e.n = 0;
    e.used = e.owner != kNoOwner;  // a home worker's entry still routes later fragments
    return n;
  }
  return 0;
}

}  // namespace exitgw::dp
