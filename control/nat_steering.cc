#include "control/nat_steering.h"

#include <rte_byteorder.h>

namespace exitgw {

namespace {

// The destination-address item of a rule: an IPv4 prefix or an IPv6 one.
void match_address(NatSteeringRule& r, const dp::nat::Ipv4Prefix& prefix) {
  const uint32_t mask = prefix.len == 0 ? 0 : ~uint32_t{0} << (32 - prefix.len);
  r.ip_spec.hdr.dst_addr = rte_cpu_to_be_32(prefix.address & mask);
  r.ip_mask.hdr.dst_addr = rte_cpu_to_be_32(mask);
  r.pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV4, &r.ip_spec, nullptr, &r.ip_mask};
}

void match_address(NatSteeringRule& r, const dp::nat::Ipv6Prefix& prefix) {
  const std::array<uint8_t, 16> addr = prefix.address.bytes();
  for (unsigned bit = 0; bit < prefix.len; ++bit)
    r.ip6_mask.hdr.dst_addr[bit / 8] |= static_cast<uint8_t>(0x80 >> (bit % 8));
  for (unsigned i = 0; i < 16; ++i)
    r.ip6_spec.hdr.dst_addr[i] = addr[i] & r.ip6_mask.hdr.dst_addr[i];
  r.pattern[1] = {RTE_FLOW_ITEM_TYPE_IPV6, &r.ip6_spec, nullptr, &r.ip6_mask};
}

template <class Prefix>
void build(NatSteeringRule& r, const Prefix& prefix, bool tcp, uint16_t first, uint16_t last,
           uint16_t queue) {
  r.pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
  match_address(r, prefix);
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

template <class Prefix>
void add_pool(std::vector<NatSteeringRule>& rules, const std::vector<Prefix>& pool,
              const dp::nat::NatConfig& config, unsigned n_workers) {
  for (const Prefix& prefix : pool)
    for (unsigned w = 0; w < n_workers; ++w)
      for (bool tcp : {false, true}) {
        const uint32_t first = config.slice_first(w);
        const uint32_t last = first + config.slice_size() - 1;
        build(rules.emplace_back(), prefix, tcp, static_cast<uint16_t>(first),
              static_cast<uint16_t>(last), static_cast<uint16_t>(w));
      }
}

std::string flow_error(const rte_flow_error& e) {
  return e.message ? std::string(e.message) : "rte_flow error type " + std::to_string(e.type);
}

}  // namespace

std::vector<NatSteeringRule> nat_steering_rules(const dp::nat::NatConfig& config,
                                                unsigned n_workers) {
  std::vector<NatSteeringRule> rules;
  const bool ipv6 = config.family == dp::nat::NatFamily::kIpv6;
  rules.reserve((ipv6 ? config.pool6.size() : config.pool.size()) * n_workers * 2);
  if (ipv6) {
    add_pool(rules, config.pool6, config, n_workers);
  } else {
    add_pool(rules, config.pool, config, n_workers);
  }
  return rules;
}

Result<unsigned> install_nat_steering(uint16_t port_id, const dp::nat::NatConfig& config,
                                      unsigned n_workers) {
  if (n_workers < 2) return make_error("one worker: nothing to steer");
  std::vector<NatSteeringRule> rules = nat_steering_rules(config, n_workers);
  const rte_flow_attr attr{.group = 0, .priority = 0, .ingress = 1};
  for (NatSteeringRule& r : rules) {
    rte_flow_error err{};
    if (rte_flow_validate(port_id, &attr, r.pattern, r.actions, &err) != 0)
      return make_error("the port cannot steer by destination port range: " + flow_error(err));
  }
  std::vector<rte_flow*> created;
  created.reserve(rules.size());
  for (NatSteeringRule& r : rules) {
    rte_flow_error err{};
    rte_flow* flow = rte_flow_create(port_id, &attr, r.pattern, r.actions, &err);
    if (flow == nullptr) {
      const std::string why = flow_error(err);
      for (rte_flow* f : created) rte_flow_destroy(port_id, f, &err);
      return make_error("creating a steering rule failed: " + why);
    }
    created.push_back(flow);
  }
  return static_cast<unsigned>(rules.size());
}

void remove_nat_steering(uint16_t port_id) {
  rte_flow_error err{};
  rte_flow_flush(port_id, &err);
}

}  // namespace exitgw
