// Exit policy on the worker: approval first (an unapproved node forwards nothing), then one
// rte_acl_classify call for the burst on (peer class, protocol, destination, port), with a
// hit counter per rule, so operators see which rule allowed or denied what. IPv4 and IPv6 each
// have their own classifier; both answer in the one rule (counter) index space.
#include <rte_acl.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "common/acl_layout.h"
#include "dataplane/ipv6_walk.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

uint16_t destination_port_be(const rte_ipv4_hdr* ip) noexcept {
  // Ports exist only in a first fragment; later ones carry 0 and rules on ports skip them.
  if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)) return 0;
  switch (ip->next_proto_id) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_SCTP: {
      const uint16_t total = rte_be_to_cpu_16(ip->total_length);
      if (total < sizeof(rte_ipv4_hdr) + 4) return 0;
      return reinterpret_cast<const rte_udp_hdr*>(ip + 1)->dst_port;
    }
    default:
      return 0;
  }
}

// The upper-layer protocol and its big-endian destination port (0 without ports, and in a
// non-first fragment, whose data does not start with the upper-layer header).
struct Upper6 {
  uint8_t proto;
  uint16_t dst_port_be;
};
Upper6 upper_layer6(const rte_ipv6_hdr* ip) noexcept {
  Ipv6Layers layers;
  // Validated upstream; a chain that no longer walks gets no port and its last protocol.
  const bool ok = ipv6_walk(ip, rte_be_to_cpu_16(ip->payload_len), layers) == DropReason::kCount;
  if (!ok || (layers.frag_field & 0xfff8) != 0) return {layers.proto, 0};
  switch (layers.proto) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_SCTP: {
      const uint32_t end = sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip->payload_len);
      if (end < uint32_t{layers.l4_offset} + 4) return {layers.proto, 0};
      const auto* l4 = reinterpret_cast<const uint8_t*>(ip) + layers.l4_offset;
      return {layers.proto, reinterpret_cast<const rte_udp_hdr*>(l4)->dst_port};
    }
    default:
      return {layers.proto, 0};
  }
}

// The published view when the node is an approved exit; otherwise drops the burst.
const PolicyView* approved_view(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  const PolicyView* view = w.ctx().policy.load(std::memory_order_acquire);
  if (view == nullptr || !view->exit_approved) [[unlikely]] {
    w.drop_all(pkts, n, DropReason::kExitNotApproved);
    return nullptr;
  }
  return view;
}

// Acts on the classifier's answers: hit counters, allowed packets compacted to the front,
// denied ones dropped.
uint16_t apply_results(Worker& w, const PolicyView& view, rte_mbuf** pkts, const uint32_t* results,
                       uint16_t n) noexcept {
  Counter* hits = view.rule_hits + size_t{w.index()} * view.n_rules;
  uint16_t out = 0;
  for (uint16_t i = 0; i < n; ++i) {
    const uint32_t rule = policy::acl_result_counter(results[i]);
    if (rule < view.n_rules) hits[rule].add();
    if (policy::acl_result_allows(results[i])) [[likely]]
      pkts[out++] = pkts[i];
    else
      w.drop(pkts[i], DropReason::kPolicyDenied);
  }
  return out;
}

}  // namespace

uint16_t exit_policy(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return 0;
  const PolicyView* view = approved_view(w, pkts, n);
  if (view == nullptr) [[unlikely]]
    return 0;
  policy::AclKeyV4 keys[kBurst];
  const uint8_t* data[kBurst];
  uint32_t results[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv4_hdr*);
    const uint32_t slot = meta(pkts[i])->peer_slot;
    const uint32_t cls = slot < view->n_slots ? view->class_by_slot[slot] : 0;
    policy::fill_acl_key_v4(keys[i], cls, ip->next_proto_id, ip->dst_addr, destination_port_be(ip));
    data[i] = reinterpret_cast<const uint8_t*>(&keys[i]);
  }
  rte_acl_classify(view->acl, data, results, n, 1);
  return apply_results(w, *view, pkts, results, n);
}

uint16_t exit_policy6(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return 0;
  const PolicyView* view = approved_view(w, pkts, n);
  if (view == nullptr) [[unlikely]]
    return 0;
  policy::AclKeyV6 keys[kBurst];
  const uint8_t* data[kBurst];
  uint32_t results[kBurst];
  for (uint16_t i = 0; i < n; ++i) {
    const auto* ip = rte_pktmbuf_mtod(pkts[i], const rte_ipv6_hdr*);
    const uint32_t slot = meta(pkts[i])->peer_slot;
    const uint32_t cls = slot < view->n_slots ? view->class_by_slot[slot] : 0;
    const Upper6 upper = upper_layer6(ip);
    policy::fill_acl_key_v6(keys[i], cls, upper.proto, ip->dst_addr, upper.dst_port_be);
    data[i] = reinterpret_cast<const uint8_t*>(&keys[i]);
  }
  // No IPv6 rules at all (rte_acl builds no empty context): everything is the default deny.
  if (view->acl6 != nullptr) [[likely]] {
    rte_acl_classify(view->acl6, data, results, n, 1);
  } else {
    for (uint16_t i = 0; i < n; ++i) results[i] = 0;
  }
  return apply_results(w, *view, pkts, results, n);
}

}  // namespace exitgw::dp
