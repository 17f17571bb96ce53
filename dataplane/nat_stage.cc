// The NAT44 and NAT66 stages and their glue: steering each packet to the worker that owns its NAT
// state (hand-off ring, as VPP's worker hand-off: outbound by the peer's claimed owner, inbound by
// the public port's slice, fragments through their datagram's home worker), the fragment park, and
// one burst call into NatWorker each way. graph.cc wires their exits.
#include <rte_ip.h>

#include "dataplane/frag_park.h"
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
// which learns the owner (by port: first_owner(), asked of the first fragment only) from the
// first fragment and sends the others after it; fragments that come before the first wait
// there. Returns the worker to translate on, or kConsumed when the fragment was handed on,
// held or dropped. IPv4 and IPv6 alike: the key says which.
template <typename FirstOwner>
uint32_t fragment_owner(Worker& w, rte_mbuf* m, const FragmentPark::Key& key, bool first,
                        FirstOwner first_owner, uint64_t now) noexcept {
  DataplaneContext& ctx = w.ctx();
  PacketMeta* pm = meta(m);
  const unsigned home = FragmentPark::home(key, ctx.n_workers);
  if (home != w.index() && !(pm->flags & kMetaFragHome)) {
    pm->flags |= kMetaFragHome;
    w.handoff(home, m);
    return kConsumed;
  }
  pm->flags &= static_cast<uint8_t>(~kMetaFragHome);
  FragmentPark& park = w.frag_park();
  if (!first) {
    const uint8_t owner = park.owner(key, now);
    if (owner != FragmentPark::kNoOwner) return owner;
    if (!park.hold(w, key, m, now)) w.drop(m, DropReason::kFragmentParkFull);
    return kConsumed;
  }
  const uint32_t owner = first_owner();
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

// Sorts one outbound verdict to its exit; false for a drop, which the caller handles.
inline bool to_out_exit(rte_mbuf* m, nat::NatVerdict v, Exits<NatOutExit>& x) noexcept {
  switch (v) {
    case nat::NatVerdict::kForward:
      x.to(NatOutExit::kInternet, m);
      return true;
    // Hairpinned packets were forwarded once (TTL already decremented): sealed as they are.
    case nat::NatVerdict::kHairpin:
      meta(m)->flags |= kMetaLocal;
      x.to(NatOutExit::kHairpin, m);
      return true;
    case nat::NatVerdict::kHairpinHandoff:
      meta(m)->flags |= kMetaLocal;
      x.to(NatOutExit::kHairpinOtherWorker, m);
      return true;
    default:
      return false;
  }
}

}  // namespace

uint16_t nat_out_steer(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (w.ctx().n_workers == 1) return n;
  const auto self = static_cast<uint8_t>(w.index());
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    std::atomic<uint8_t>& owner = w.ctx().peers[meta(pkts[i])->peer_slot].nat_owner;
    uint8_t o = owner.load(std::memory_order_relaxed);
    if (o == PeerRuntime::kNoOwner && owner.compare_exchange_strong(o, self)) o = self;
    if (o == self) {
      pkts[out++] = pkts[i];
    } else {
      meta(pkts[i])->flags |= kMetaNatOut;
      w.handoff(o, pkts[i]);
    }
  }
  return out;
}

namespace {

// What the NAT stages need of a family: its header, its NAT and configuration, and a packet's
// fragment facts (whether it is a fragment, the first one, and its park key, taken before
// translation rewrites the addresses). One stage implementation serves both families.
struct Nat44Stage {
  using Header = rte_ipv4_hdr;
  static nat::NatWorker& nat(Worker& w) noexcept { return *w.nat(); }
  static const nat::NatConfig& config(Worker& w) noexcept { return *w.ctx().nat; }
  static bool fragment(const Header* ip, uint32_t /*len*/, bool inbound, FragmentPark::Key* key,
                       bool* first) noexcept {
    if (!FragmentPark::fragment(ip)) [[likely]]
      return false;
    *key = FragmentPark::key_of(ip, inbound);
    *first = FragmentPark::first_fragment(ip);
    return true;
  }
};

struct Nat66Stage {
  using Header = rte_ipv6_hdr;
  static nat::Nat66Worker& nat(Worker& w) noexcept { return *w.nat66(); }
  static const nat::NatConfig& config(Worker& w) noexcept { return *w.ctx().nat66; }
  static bool fragment(const Header* ip, uint32_t len, bool inbound, FragmentPark::Key* key,
                       bool* first) noexcept {
    FragmentPark::Fragment6 f;
    if (!FragmentPark::fragment6(ip, len, inbound, &f)) [[likely]]
      return false;
    *key = f.key;
    *first = f.first;
    return true;
  }
};

template <class F>
void nat_out_stage(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<NatOutExit>& x,
                   FirstFragments& firsts) noexcept {
  if (n == 0) return;
  auto& nat = F::nat(w);
  typename F::Header* ips[kBurst];
  uint32_t lens[kBurst];
  FragmentPark::Key key;
  bool first;
  for (uint16_t i = 0; i < n; ++i) {
    ips[i] = rte_pktmbuf_mtod(pkts[i], typename F::Header*);
    lens[i] = rte_pktmbuf_data_len(pkts[i]);
    if (F::fragment(ips[i], lens[i], false, &key, &first) && first) [[unlikely]]
      firsts.keys[firsts.n++] = key;
  }
  const uint64_t now = rte_rdtsc();
  nat::NatVerdict verdict[kBurst];
  nat::NatDrop why[kBurst];
  nat.out_burst(ips, lens, n, now, verdict, why);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (to_out_exit(m, verdict[i], x)) [[likely]]
      continue;
    // A later fragment that comes before its first one waits in the park and follows it (its
    // header untranslated: the key is the one its first fragment was listed under).
    if (why[i] == nat::NatDrop::kFragmentNoState &&
        F::fragment(ips[i], lens[i], false, &key, &first) && w.frag_park().hold(w, key, m, now))
      continue;
    w.drop(m, drop_reason_of(why[i]));
  }
}

template <class F>
uint16_t nat_in_stage(Worker& w, rte_mbuf** pkts, uint16_t n, FirstFragments& firsts) noexcept {
  if (n == 0) return 0;
  auto& nat = F::nat(w);
  const nat::NatConfig& cfg = F::config(w);
  const unsigned n_workers = w.ctx().n_workers;
  const uint64_t now = rte_rdtsc();
  typename F::Header* ips[kBurst];
  uint32_t lens[kBurst];
  rte_mbuf** mine = pkts;  // this worker's, compacted in place
  uint16_t k = 0;
  FragmentPark::Key key;
  bool first = false;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod(m, typename F::Header*);
    const uint32_t len = rte_pktmbuf_data_len(m);
    PacketMeta* pm = meta(m);
    const bool fragment = F::fragment(ip, len, true, &key, &first);
    if (!(pm->flags & kMetaNatIn) && n_workers > 1) {
      uint32_t owner;
      if (fragment) [[unlikely]] {
        owner = fragment_owner(
            w, m, key, first, [&] { return nat::inbound_owner(cfg, ip, len); }, now);
        if (owner == kConsumed) continue;
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
    if (fragment && first) [[unlikely]]
      firsts.keys[firsts.n++] = key;  // before translation rewrites the destination
    ips[k] = ip;
    lens[k] = len;
    mine[k++] = m;
  }
  nat::NatVerdict verdict[kBurst];
  nat::NatDrop why[kBurst];
  nat.in_burst(ips, lens, k, now, verdict, why);
  uint16_t out = 0;
  for (uint16_t j = 0; j < k; ++j) {
    if (verdict[j] == nat::NatVerdict::kForward) [[likely]] {
      mine[out++] = mine[j];
    } else if (why[j] == nat::NatDrop::kFragmentNoState &&
               F::fragment(ips[j], lens[j], true, &key, &first) &&
               w.frag_park().hold(w, key, mine[j], now)) {
      // a later fragment before its first one: waits for it (or the timeout)
    } else {
      w.drop(mine[j], drop_reason_of(why[j]));
    }
  }
  return out;
}

}  // namespace

void nat_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<NatOutExit>& x,
             FirstFragments& firsts) noexcept {
  nat_out_stage<Nat44Stage>(w, pkts, n, x, firsts);
}

uint16_t nat_in(Worker& w, rte_mbuf** pkts, uint16_t n, FirstFragments& firsts) noexcept {
  return nat_in_stage<Nat44Stage>(w, pkts, n, firsts);
}

void nat66_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<NatOutExit>& x,
               FirstFragments& firsts) noexcept {
  nat_out_stage<Nat66Stage>(w, pkts, n, x, firsts);
}

uint16_t nat66_in(Worker& w, rte_mbuf** pkts, uint16_t n, FirstFragments& firsts) noexcept {
  return nat_in_stage<Nat66Stage>(w, pkts, n, firsts);
}

// Hand-offs carry what is left to do in their flags; the IP version says which NAT does it.
void handoff_input(Worker& /*w*/, rte_mbuf** pkts, uint16_t n, Exits<HandoffExit>& x) noexcept {
  for (uint16_t i = 0; i < n; ++i) {
    PacketMeta* pm = meta(pkts[i]);
    const bool v6 = (*rte_pktmbuf_mtod(pkts[i], const uint8_t*) >> 4) == 6;
    if (pm->flags & kMetaNatOut) {
      pm->flags &= static_cast<uint8_t>(~kMetaNatOut);
      x.to(v6 ? HandoffExit::kNat66Out : HandoffExit::kNatOut, pkts[i]);
    } else if (pm->flags & kMetaSeal) [[unlikely]] {
      pm->flags &= static_cast<uint8_t>(~kMetaSeal);
      x.to(HandoffExit::kSeal, pkts[i]);
    } else {
      x.to(v6 ? HandoffExit::kNat66In : HandoffExit::kNatIn, pkts[i]);
    }
  }
}

}  // namespace exitgw::dp
