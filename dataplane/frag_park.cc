#include "dataplane/frag_park.h"

#include "dataplane/worker.h"

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

// A slot for a new datagram: a free or expired one, else (evict_live) the one closest to
// expiry. Fragments still held in the slot taken are dropped and counted.
FragmentPark::Entry* FragmentPark::claim(Worker& w, const Key& k, uint64_t now,
                                         bool evict_live) noexcept {
  Entry* set = &entries_[set_of(k) * kWays];
  Entry* victim = nullptr;
  for (unsigned i = 0; i < kWays; ++i) {
    Entry& e = set[i];
    if (!e.used || e.expires <= now) {
      victim = &e;
      break;
    }
    if (victim == nullptr || e.expires < victim->expires) victim = &e;
  }
  const bool live = victim->used && victim->expires > now;
  if (live && !evict_live) return nullptr;
  if (victim->used)
    drop_held(w, *victim, live ? DropReason::kFragmentParkFull : DropReason::kFragmentTimeout);
  *victim = Entry{k, now + timeout_, kNoOwner, 0, true, {}};
  return victim;
}

void FragmentPark::drop_held(Worker& w, Entry& e, DropReason why) noexcept {
  for (unsigned i = 0; i < e.n; ++i) w.drop(e.held[i], why);
  n_held_ -= e.n;
  e.n = 0;
}

unsigned FragmentPark::learn(Worker& w, const Key& k, uint8_t owner, uint64_t now,
                             rte_mbuf** out) noexcept {
  Entry* e = find(k, now);
  if (e == nullptr) e = claim(w, k, now, true);
  e->owner = owner;
  e->expires = now + timeout_;
  const unsigned n = e->n;
  for (unsigned i = 0; i < n; ++i) out[i] = e->held[i];
  n_held_ -= n;
  e->n = 0;
  return n;
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

bool FragmentPark::hold(Worker& w, const Key& k, rte_mbuf* m, uint64_t now) noexcept {
  Entry* e = find(k, now);
  if (e == nullptr && (e = claim(w, k, now, false)) == nullptr) return false;
  if (e->n == kHeld) return false;
  e->held[e->n++] = m;
  ++n_held_;
  return true;
}

void FragmentPark::expire(Worker& w, uint64_t now) noexcept {
  for (Entry& e : entries_) {
    if (!e.used || e.expires > now) continue;
    drop_held(w, e, DropReason::kFragmentTimeout);
    e.used = false;
  }
}

}  // namespace exitgw::dp
