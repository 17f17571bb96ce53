// The NAT stages around WireGuard: inbound internet packets are steered to the worker that
// owns their public port (hand-off ring, as VPP's worker hand-off), translated back to the
// subscriber in one burst call and sealed; outbound translation runs inside wg_input.
#include <rte_ip.h>

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

void nat_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  nat::NatWorker* nat = w.nat();
  if (nat == nullptr) {
    if (w.flows()) flow::account_in(*w.flows(), nullptr, w.ctx().allowed_ips, pkts, n, rte_rdtsc());
    wg_seal(w, pkts, n);
    return;
  }
  const nat::NatConfig& cfg = *w.ctx().nat;
  rte_ipv4_hdr* ips[kBurst];
  uint32_t lens[kBurst];
  rte_mbuf* mine[kBurst];
  uint16_t k = 0;
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
    const uint32_t len = rte_pktmbuf_data_len(m);
    PacketMeta* pm = meta(m);
    if (!(pm->flags & kMetaNatIn)) {
      const uint32_t owner = nat::inbound_owner(cfg, ip, len);
      if (owner < w.ctx().n_workers && owner != w.index()) {
        pm->flags |= kMetaNatIn;
        w.handoff(owner, m);
        continue;
      }
    }
    pm->flags &= static_cast<uint8_t>(~kMetaNatIn);
    ips[k] = ip;
    lens[k] = len;
    mine[k++] = m;
  }
  nat::NatVerdict verdict[kBurst];
  nat::NatDrop why[kBurst];
  nat->in_burst(ips, lens, k, rte_rdtsc(), verdict, why);
  uint16_t out = 0;
  for (uint16_t j = 0; j < k; ++j) {
    if (verdict[j] == nat::NatVerdict::kForward) [[likely]]
      mine[out++] = mine[j];
    else
      w.drop(mine[j], drop_reason_of(why[j]));
  }
  if (w.flows()) flow::account_in(*w.flows(), nat, w.ctx().allowed_ips, mine, out, rte_rdtsc());
  wg_seal(w, mine, out);
}

}  // namespace exitgw::dp
