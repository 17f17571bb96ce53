// The last step of both IP outputs: resolve the burst's distinct next hops in one lookup of
// the family's neighbor table, write the Ethernet header and queue for TX; unresolved next
// hops are punted to control, which queues them (bounded), asks (ARP or neighbor
// solicitation) and transmits them once the answer arrives.
#pragma once

#include <cstring>

#include <rte_ether.h>
#include <rte_hash.h>

#include "dataplane/packet_meta.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

// `next_hop(m, key)` fills packet m's neighbor key (port and next hop) and returns true, or
// drops m and returns false.
template <typename Key, typename NextHop>
inline void neighbor_output(Worker& w, rte_mbuf** pkts, uint16_t n, const rte_hash* table,
                            uint16_t ether_type, PuntReason unresolved,
                            NextHop&& next_hop) noexcept {
  if (n == 0) return;
  // A burst mostly goes to one or two next hops (the gateway of each port): look each distinct
  // key up once. `which[i]` is packet i's entry among the distinct keys.
  Key keys[kBurst];
  uint8_t which[kBurst];
  rte_mbuf* out[kBurst];
  uint16_t n_keys = 0, n_out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    Key key;
    if (!next_hop(pkts[i], key)) continue;
    uint16_t k = n_keys;
    // The last few distinct keys cover the common cases; a miss only costs a repeated lookup.
    for (uint16_t j = n_keys; j > 0 && j + 4 > n_keys; --j)
      if (std::memcmp(&keys[j - 1], &key, sizeof(key)) == 0) {
        k = j - 1;
        break;
      }
    if (k == n_keys) keys[n_keys++] = key;
    which[n_out] = static_cast<uint8_t>(k);
    out[n_out++] = pkts[i];
  }
  if (n_out == 0) return;
  const void* key_ptrs[kBurst];
  void* data[kBurst];
  for (uint16_t k = 0; k < n_keys; ++k) key_ptrs[k] = &keys[k];
  uint64_t hits = 0;
  if (n_keys == 1) {
    hits = rte_hash_lookup_data(table, key_ptrs[0], &data[0]) >= 0;
  } else {
    rte_hash_lookup_bulk_data(table, key_ptrs, n_keys, &hits, data);
  }
  const DataplaneContext& ctx = w.ctx();
  for (uint16_t i = 0; i < n_out; ++i) {
    rte_mbuf* m = out[i];
    const uint16_t k = which[i];
    const uint64_t mac = reinterpret_cast<uintptr_t>(data[k]);
    if (!((hits >> k) & 1) || !(mac & kNeighborValid)) [[unlikely]] {
      w.punt(m, unresolved);
      continue;
    }
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
    if (eth == nullptr) [[unlikely]] {
      w.drop(m, DropReason::kNoMbuf);
      continue;
    }
    const PacketMeta* pm = meta(m);
    eth->dst_addr = neighbor_mac(mac);
    eth->src_addr = ctx.ports[pm->out_port].mac;
    eth->ether_type = rte_cpu_to_be_16(ether_type);
    w.transmit(pm->out_port, m);
  }
}

}  // namespace exitgw::dp
