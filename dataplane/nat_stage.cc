// The NAT stages around WireGuard: inbound internet packets are steered to the worker that
// owns their public port (hand-off ring, as VPP's worker hand-off), translated back to the
// subscriber in one burst call and sealed; outbound translation runs inside wg_input.
#include <rte_ip.h>

#include "dataplane/frag_park.h"
#include "dataplane/flow/flow_stage.h"
#include "dataplane/nat/nat_config.h"
#include "dataplane/nat/nat_worker.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

static_assert(drop_reason_of(nat::NatDrop::kMalformed) == DropReason::kMalformed);
static_assert(drop_reason_of(nat::NatDrop::kHairpinUnsupported) == DropReason::kHairpinUnsupported);
static_assert(static_cast<unsigned>(DropReason::kHandoffRingFull) -
                  static_cast<unsigned>(DropReason::kMalformed) ==
              static_cast<unsigned>(nat::NatDrop::kCount));

namespace {

constexpr uint32_t kConsumed = ~uint32_t{0} - 1;

// An inbound fragment with several workers: the datagram's fragments meet at its home worker,
// which learns the owner (by port) from the first fragment and sends the others after it;
// fragments that come before the first wait there. Returns the worker to translate on, or
// kConsumed when the fragment was handed on, held or dropped.
uint32_t fragment_owner(Worker& w, rte_mbuf* m, const rte_ipv4_hdr* ip, uint32_t len,
                        uint64_t now) noexcept {
  DataplaneContext& ctx = w.ctx();
  PacketMeta* pm = meta(m);
  const FragmentPark::Key key = FragmentPark::key_of(ip, true);
  const unsigned home = FragmentPark::home(key, ctx.n_workers);
  if (home != w.index() && !(pm->flags & kMetaFragHome)) {
    pm->flags |= kMetaFragHome;
    w.handoff(home, m);
    return kConsumed;
  }
  pm->flags &= static_cast<uint8_t>(~kMetaFragHome);
  FragmentPark& park = w.frag_park();
  if (!FragmentPark::first_fragment(ip)) {
    const uint8_t owner = park.owner(key, now);
    if (owner != FragmentPark::kNoOwner) return owner;
    if (!park.hold(w, key, m, now)) w.drop(m, DropReason::kFragmentParkFull);
    return kConsumed;
  }
  const uint32_t owner = nat::inbound_owner(*ctx.nat, ip, len);
  if (owner >= ctx.n_workers) return w.index();  // untranslatable: NAT here drops and counts it
  rte_mbuf* held[FragmentPark::kHeld];
  const unsigned n_held = park.learn(w, key, static_cast<uint8_t>(owner), now, held);
  if (owner == w.index() && n_held == 0) return owner;
  // The first fragment goes ahead of the ones that waited for it (the hand-off ring keeps
  // order; on this worker they come back through it, after the burst translated the first).
  if (owner != w.index()) {
    pm->flags |= kMetaNatIn;
    w.handoff(owner, m);
  }
  for (unsigned i = 0; i < n_held; ++i) {
    meta(held[i])->flags |= kMetaNatIn;
    w.handoff(owner, held[i]);
  }
  return owner == w.index() ? owner : kConsumed;
}

}  // namespace

void nat_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  nat::NatWorker* nat = w.nat();
  if (nat == nullptr) {
    if (w.flows()) flow::account_in(*w.flows(), nullptr, w.ctx(), pkts, n, rte_rdtsc());
    wg_seal(w, pkts, n);
    return;
  }
  const nat::NatConfig& cfg = *w.ctx().nat;
  const unsigned n_workers = w.ctx().n_workers;
  const uint64_t now = rte_rdtsc();
  rte_ipv4_hdr* ips[kBurst];
  uint32_t lens[kBurst];
  rte_mbuf* mine[kBurst];
  FragmentPark::Key firsts[kBurst];
  uint16_t k = 0, n_firsts = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
    const uint32_t len = rte_pktmbuf_data_len(m);
    PacketMeta* pm = meta(m);
    if (!(pm->flags & kMetaNatIn)) {
      uint32_t owner;
      if (n_workers > 1 && FragmentPark::fragment(ip)) [[unlikely]] {
        if ((owner = fragment_owner(w, m, ip, len, now)) == kConsumed) continue;
      } else {
        owner = nat::inbound_owner(cfg, ip, len);
      }
      if (owner < n_workers && owner != w.index()) {
        pm->flags |= kMetaNatIn;
        w.handoff(owner, m);
        continue;
      }
    }
    pm->flags &= static_cast<uint8_t>(~kMetaNatIn);
    if (FragmentPark::first_fragment(ip)) [[unlikely]]
      firsts[n_firsts++] = FragmentPark::key_of(ip, true);  // before translation rewrites it
    ips[k] = ip;
    lens[k] = len;
    mine[k++] = m;
  }
  nat::NatVerdict verdict[kBurst];
  nat::NatDrop why[kBurst];
  nat->in_burst(ips, lens, k, now, verdict, why);
  uint16_t out = 0;
  for (uint16_t j = 0; j < k; ++j) {
    if (verdict[j] == nat::NatVerdict::kForward) [[likely]] {
      mine[out++] = mine[j];
    } else if (why[j] == nat::NatDrop::kFragmentNoState &&
               w.frag_park().hold(w, FragmentPark::key_of(ips[j], true), mine[j], now)) {
      // a later fragment before its first one: waits for it (or the timeout)
    } else {
      w.drop(mine[j], drop_reason_of(why[j]));
    }
  }
  if (w.flows()) flow::account_in(*w.flows(), nat, w.ctx(), mine, out, rte_rdtsc());
  wg_seal(w, mine, out);
  // Fragments that waited for a first fragment translated just now follow it.
  for (uint16_t f = 0; f < n_firsts && w.frag_park().holding(); ++f) {
    rte_mbuf* held[FragmentPark::kHeld];
    const unsigned n_held = w.frag_park().release(firsts[f], held);
    for (unsigned i = 0; i < n_held; ++i) meta(held[i])->flags |= kMetaNatIn;
    nat_in(w, held, static_cast<uint16_t>(n_held));
  }
}

}  // namespace exitgw::dp
