// Domain policy on the worker: names from DNS queries, TLS ClientHello SNI and HTTP Host of
// exit traffic of both families (outbound4 and outbound6 call it) are matched in one Hyperscan pass
// per burst (a port pre-filter keeps the rest at a few cycles); 'block' drops and counts, 'log'
// counts and tells control which rule. Each match is also counted against its rule in this worker's
// row of the database's counters.
#include <rte_ip.h>

#include "dataplane/domain/domain_burst.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

uint16_t domain_policy(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const domain::DomainDatabase* db = w.ctx().domains.load(std::memory_order_acquire);
  if (db == nullptr || n == 0) return n;
  domain::DomainScratch* scratch = w.domain_scratch(*db);
  if (scratch == nullptr) [[unlikely]] {
    // No scratch (allocation failed): fail open, counted, rather than block everything.
    w.counters().domain_scan_errors.add(n);
    return n;
  }
  const uint8_t* ips[kBurst];
  uint32_t lens[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    ips[i] = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
    lens[i] = rte_pktmbuf_data_len(pkts[i]);
  }
  domain::DomainResult res[kBurst];
  domain::classify_burst(*db, *scratch, ips, lens, n, res, nullptr);
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (res[i].action == domain::Action::kNone) [[likely]] {
      pkts[out++] = pkts[i];
      continue;
    }
    const bool block = res[i].action == domain::Action::kBlock;
    db->count_match(w.index(), res[i].rule);
    Event e{};
    e.type = EventType::kDomainMatch;
    e.value = res[i].rule;
    e.ip = meta(pkts[i])->peer_slot;
    e.port = block;
    w.event(e);
    if (block) {
      w.counters().domain_blocked.add();
      w.drop(pkts[i], DropReason::kDomainBlocked);
    } else {
      w.counters().domain_logged.add();
      pkts[out++] = pkts[i];
    }
  }
  return out;
}

}  // namespace exitgw::dp
