// The rte_flow rules NAT steering asks the internet port for (control/nat_steering.cc): one
// per pool prefix, worker slice and protocol, for NAT44's IPv4 pool and the stateful NAT66
// pool's IPv6 prefixes, each matching the prefix under its mask and the worker's port slice
// as a spec..last range, queued to that worker. No NIC here runs them: this checks what would
// be asked, byte for byte.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <array>
#include <cstring>

#include "control/nat_steering.h"

namespace exitgw {
namespace {

dp::nat::NatConfig config(unsigned workers) {
  dp::nat::NatConfig c;
  c.n_workers = workers;
  c.port_min = 1024;
  c.port_max = 65535;
  return c;
}

std::array<uint8_t, 16> v6(const char* text) {
  std::array<uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

uint16_t port(rte_be16_t be) {
  return ntohs(be);
}

// Every rule of one family's list: its slice, protocol and queue, its pointers into itself.
void check_slices_and_queues(const std::vector<NatSteeringRule>& rules) {
  for (size_t i = 0; i < rules.size(); ++i) {
    const NatSteeringRule& r = rules[i];
    const unsigned worker = unsigned(i / 2 % 2);
    const bool tcp = i % 2 == 1;
    EXPECT_EQ(r.pattern[0].type, RTE_FLOW_ITEM_TYPE_ETH);
    EXPECT_EQ(r.pattern[3].type, RTE_FLOW_ITEM_TYPE_END);
    EXPECT_EQ(r.queue.index, worker);
    EXPECT_EQ(r.actions[0].type, RTE_FLOW_ACTION_TYPE_QUEUE);
    EXPECT_EQ(r.actions[0].conf, &r.queue);  // points into its own rule
    EXPECT_EQ(r.actions[1].type, RTE_FLOW_ACTION_TYPE_END);
    const uint16_t first = worker == 0 ? 1024 : 1024 + 32256;
    if (tcp) {
      ASSERT_EQ(r.pattern[2].type, RTE_FLOW_ITEM_TYPE_TCP);
      EXPECT_EQ(port(r.tcp_spec.hdr.dst_port), first);
      EXPECT_EQ(port(r.tcp_last.hdr.dst_port), first + 32255);
      EXPECT_EQ(port(r.tcp_mask.hdr.dst_port), 0xffff);
    } else {
      ASSERT_EQ(r.pattern[2].type, RTE_FLOW_ITEM_TYPE_UDP);
      EXPECT_EQ(port(r.udp_spec.hdr.dst_port), first);
      EXPECT_EQ(port(r.udp_last.hdr.dst_port), first + 32255);
      EXPECT_EQ(r.pattern[2].spec, &r.udp_spec);
      EXPECT_EQ(r.pattern[2].last, &r.udp_last);
    }
  }
}

TEST(NicSteering, RulesCoverEveryPrefixOfBothPoolsEverySliceAndProtocol) {
  dp::nat::NatConfig nat44 = config(2);
  nat44.pool = {{0xcb007100, 30}};  // 203.0.113.0/30
  dp::nat::NatConfig nat66 = config(2);
  nat66.family = dp::nat::NatFamily::kIpv6;
  nat66.pool6 = {{dp::nat::Ipv6Address::from_array(v6("2001:db8:100::5")), 120},
                 {dp::nat::Ipv6Address::from_array(v6("2001:db8:200::9")), 128}};
  const std::vector<NatSteeringRule> rules = nat_steering_rules(nat44, 2);
  const std::vector<NatSteeringRule> rules6 = nat_steering_rules(nat66, 2);
  ASSERT_EQ(rules.size(), 1u * 2 * 2);  // prefixes x workers x {UDP, TCP}
  ASSERT_EQ(rules6.size(), 2u * 2 * 2);
  check_slices_and_queues(rules);
  check_slices_and_queues(rules6);
  // NAT44: the IPv4 prefix under its /30 mask.
  EXPECT_EQ(rules[0].pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV4);
  EXPECT_EQ(ntohl(rules[0].ip_spec.hdr.dst_addr), 0xcb007100u);
  EXPECT_EQ(ntohl(rules[0].ip_mask.hdr.dst_addr), 0xfffffffcu);
  EXPECT_EQ(rules[0].pattern[1].spec, &rules[0].ip_spec);
  // NAT66: the /120 with its host bits cleared under a 120-bit mask; the /128 whole.
  const NatSteeringRule& a = rules6[0];
  ASSERT_EQ(a.pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV6);
  EXPECT_EQ(a.pattern[1].spec, &a.ip6_spec);
  EXPECT_EQ(a.pattern[1].mask, &a.ip6_mask);
  EXPECT_EQ(std::memcmp(a.ip6_spec.hdr.dst_addr, v6("2001:db8:100::").data(), 16), 0);
  std::array<uint8_t, 16> mask120;
  mask120.fill(0xff);
  mask120[15] = 0;
  EXPECT_EQ(std::memcmp(a.ip6_mask.hdr.dst_addr, mask120.data(), 16), 0);
  for (uint8_t b : a.ip6_mask.hdr.src_addr) EXPECT_EQ(b, 0);  // only the destination matters
  const NatSteeringRule& b = rules6[4];
  EXPECT_EQ(std::memcmp(b.ip6_spec.hdr.dst_addr, v6("2001:db8:200::9").data(), 16), 0);
  for (uint8_t x : b.ip6_mask.hdr.dst_addr) EXPECT_EQ(x, 0xff);
}

TEST(NicSteering, EachConfigGivesItsOwnFamilysPoolOnly) {
  dp::nat::NatConfig nat66 = config(3);
  nat66.family = dp::nat::NatFamily::kIpv6;
  nat66.pool6 = {{dp::nat::Ipv6Address::from_array(v6("2001:db8:100::")), 112}};
  nat66.pool = {{0xcb007101, 32}};  // not its family's: never asked for
  const auto r6 = nat_steering_rules(nat66, 3);
  ASSERT_EQ(r6.size(), 6u);
  for (const NatSteeringRule& r : r6) EXPECT_EQ(r.pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV6);
  dp::nat::NatConfig nat44 = config(3);
  nat44.pool = {{0xcb007101, 32}};
  const auto r4 = nat_steering_rules(nat44, 3);
  ASSERT_EQ(r4.size(), 6u);
  for (const NatSteeringRule& r : r4) EXPECT_EQ(r.pattern[1].type, RTE_FLOW_ITEM_TYPE_IPV4);
  EXPECT_TRUE(nat_steering_rules(config(3), 3).empty());
}

}  // namespace
}  // namespace exitgw
