#include "control/nat_steering.h"

#include <rte_byteorder.h>
#include <rte_flow.h>

#include <vector>

namespace exitgw {

namespace {

struct Rule {
  rte_flow_item_ipv4 ip_spec{}, ip_mask{};
  rte_flow_item_tcp tcp_spec{}, tcp_last{}, tcp_mask{};
  rte_flow_item_udp udp_spec{}, udp_last{}, udp_mask{};
  rte_flow_action_queue queue{};
  rte_flow_item pattern[4]{};
  rte_flow_action actions[2]{};
};

// ETH / IPV4 dst in the pool prefix / TCP or UDP dst port in [first, last] -> QUEUE worker.
void build(Rule& r, const dp::nat::Ipv4Prefix& prefix, bool tcp, uint16_t first, uint16_t last,
           uint16_t queue) {
  const uint32_t mask = prefix.len == 0 ? 0 : ~uint32_t{0} << (32 - prefix.len);
  r.ip_spec.hdr.dst_addr = rte_cpu_to_be_32(prefix.address & mask);
  r.ip_mask.hdr.dst_addr = rte_cpu_to_be_32(mask);
  r.pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
  r.pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV4, &r.ip_spec, nullptr, &r.ip_mask};
  if (tcp) {
    r.tcp_spec.hdr.dst_port = rte_cpu_to_be_16(first);
    r.tcp_last.hdr.dst_port = rte_cpu_to_be_16(last);
    r.tcp_mask.hdr.dst_port = RTE_BE16(0xffff);
    r.pattern[2] = {RTE_FLOW_ITEM_TYPE_TCP, &r.tcp_spec, &r.tcp_last, &r.tcp_mask};
  } else {
    r.udp_spec.hdr.dst_port = rte_cpu_to_be_16(first);
    r.udp_last.hdr.dst_port = rte_cpu_to_be_16(last);
    r.udp_mask.hdr.dst_port = RTE_BE16(0xffff);
    r.pattern[2] = {RTE_FLOW_ITEM_TYPE_UDP, &r.udp_spec, &r.udp_last, &r.udp_mask};
  }
  r.pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
  r.queue.index = queue;
  r.actions[0] = {RTE_FLOW_ACTION_TYPE_QUEUE, &r.queue};
  r.actions[1] = {RTE_FLOW_ACTION_TYPE_END, nullptr};
}

std::string flow_error(const rte_flow_error& e) {
  return e.message ? std::string(e.message) : "rte_flow error type " + std::to_string(e.type);
}

}  // namespace

Result<unsigned> install_nat_steering(uint16_t port_id, const dp::nat::NatConfig& config,
                                      unsigned n_workers) {
  if (n_workers < 2) return make_error("one worker: nothing to steer");
  std::vector<Rule> rules;
  // Reserved whole: each rule's pattern points into its own element.
  rules.reserve(config.pool.size() * n_workers * 2);
  for (const dp::nat::Ipv4Prefix& prefix : config.pool)
    for (unsigned w = 0; w < n_workers; ++w)
      for (bool tcp : {false, true}) {
        const uint32_t first = config.slice_first(w);
        const uint32_t last = first + config.slice_size() - 1;
        build(rules.emplace_back(), prefix, tcp, static_cast<uint16_t>(first),
              static_cast<uint16_t>(last), static_cast<uint16_t>(w));
      }
  const rte_flow_attr attr{.group = 0, .priority = 0, .ingress = 1};
  for (Rule& r : rules) {
    rte_flow_error err{};
    if (rte_flow_validate(port_id, &attr, r.pattern, r.actions, &err) != 0)
      return make_error("the port cannot steer by destination port range: " + flow_error(err));
  }
  for (Rule& r : rules) {
    rte_flow_error err{};
    if (rte_flow_create(port_id, &attr, r.pattern, r.actions, &err) == nullptr) {
      rte_flow_flush(port_id, &err);
      return make_error("creating a steering rule failed: " + flow_error(err));
    }
  }
  return static_cast<unsigned>(rules.size());
}

void remove_nat_steering(uint16_t port_id) {
  rte_flow_error err{};
  rte_flow_flush(port_id, &err);
}

}  // namespace exitgw
