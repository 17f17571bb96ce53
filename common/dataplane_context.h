// What every worker sees: port facts fixed at start, lock-free tables control writes, and
// the per-worker rings and counters. Built by control before workers launch.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include <rte_acl.h>
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "common/ipv6_addr.h"
#include "common/nptv6.h"
#include "common/tailnet_addrs.h"
#include "common/wg_state.h"
#include "common/counters.h"

namespace exitgw::dp {

namespace domain {
class DomainDatabase;
}  // namespace domain

namespace flow {
struct FlowKey;
struct FlowKey6;
template <class Key>
class BasicFlowTable;
using FlowTable = BasicFlowTable<FlowKey>;
using FlowTable6 = BasicFlowTable<FlowKey6>;
}  // namespace flow

namespace nat {
struct NatConfig;
class NatEventRing;
struct NatCounters;
}  // namespace nat

// The exit policy as workers see it: immutable once published (control swaps the pointer and
// frees the old view after an RCU grace period). Rule hit counters are per worker, written
// only by that worker: rule_hits[worker * n_rules + rule]; one rule index space for both
// families (both classifiers' results index the same counters).
struct PolicyView {
  const rte_acl_ctx* acl = nullptr;         // IPv4 (AclKeyV4)
  const rte_acl_ctx* acl6 = nullptr;        // IPv6 (AclKeyV6); null: no IPv6 rules, all denied
  const uint32_t* class_by_slot = nullptr;  // peer slot -> policy class
  uint32_t n_slots = 0;
  uint32_t n_rules = 0;
  bool exit_approved = false;
  Counter* rule_hits = nullptr;
};

inline constexpr uint16_t kBurst = 32;
inline constexpr unsigned kMaxWorkers = 16;
inline constexpr unsigned kMaxPortAddrs = 4;
// IPv6 on a port: its link-local address (from the MAC) and up to two configured ones.
inline constexpr unsigned kMaxPortAddrs6 = 3;
inline constexpr uint8_t kNoPort = 0xff;

enum class PortRole : uint8_t { kTunnel = 0, kInternet = 1, kCount };

// Immutable after start.
struct PortInfo {
  uint16_t port_id = 0;
  rte_ether_addr mac{};
  uint32_t addrs[kMaxPortAddrs] = {};     // own IPv4 addresses, network order
  uint32_t netmasks[kMaxPortAddrs] = {};  // their connected subnets' masks, network order
  unsigned n_addrs = 0;
  uint32_t gateway = 0;  // next hop for off-link destinations, network order; 0 = none
  uint16_t tx_queue_control = 0;
  uint16_t n_rx_queues = 1;  // worker w polls queues w, w + n_workers, ...
  bool l3 = false;           // a TUN device (the exception port): IP packets, no Ethernet
  // IPv6, on when n_addrs6 > 0: addrs6[0] is the link-local address derived from the MAC
  // (RFC 4291 appendix A), the others configured, each with its prefix length.
  uint8_t addrs6[kMaxPortAddrs6][16] = {};
  uint8_t prefix6[kMaxPortAddrs6] = {};
  unsigned n_addrs6 = 0;
  uint8_t gateway6[16] = {};  // next hop for off-link IPv6 destinations; all zero: none

  bool owns(uint32_t ip) const noexcept {
    for (unsigned i = 0; i < n_addrs; ++i)
      if (addrs[i] == ip) return true;
    return false;
  }
  // The network or broadcast address of one of our connected subnets: never a host.
  bool subnet_edge(uint32_t ip) const noexcept {
    for (unsigned i = 0; i < n_addrs; ++i) {
      if ((ip & netmasks[i]) != (addrs[i] & netmasks[i])) continue;
      const uint32_t host = ip & ~netmasks[i];
      if (host == 0 || host == ~netmasks[i]) return true;
    }
    return false;
  }
  bool on_link(uint32_t ip) const noexcept {
    for (unsigned i = 0; i < n_addrs; ++i)
      if ((ip & netmasks[i]) == (addrs[i] & netmasks[i])) return true;
    return false;
  }
  uint32_t next_hop(uint32_t dst) const noexcept {
    return (gateway == 0 || on_link(dst)) ? dst : gateway;
  }

  bool ipv6() const noexcept { return n_addrs6 != 0; }
  // The link-local address of a MAC (RFC 4291 appendix A): fe80::, then the MAC with the
  // universal/local bit flipped and ff:fe in its middle.
  static void link_local6(const rte_ether_addr& mac, uint8_t out[16]) noexcept {
    const uint8_t* b = mac.addr_bytes;
    const uint8_t ll[16] = {0xfe, 0x80, 0,    0,    0,    0,    0,   0, uint8_t(b[0] ^ 0x02),
                            b[1], b[2], 0xff, 0xfe, b[3], b[4], b[5]};
    std::memcpy(out, ll, 16);
  }
  bool owns6(const uint8_t* a) const noexcept {
    for (unsigned i = 0; i < n_addrs6; ++i)
      if (std::memcmp(addrs6[i], a, 16) == 0) return true;
    return false;
  }
  // On this port's link: link-local, or inside one of its configured prefixes (addrs6[0] is
  // the link-local address); never multicast.
  bool on_link6(const uint8_t* a) const noexcept {
    if (n_addrs6 == 0 || ipv6_multicast(a)) return false;
    if (ipv6_link_local(a)) return true;
    for (unsigned i = 1; i < n_addrs6; ++i)
      if (ipv6_prefix_match(a, addrs6[i], prefix6[i])) return true;
    return false;
  }
  // The solicited-node group (RFC 4291 2.7.1) of one of our addresses: where a neighbor
  // solicitation for it is sent.
  bool solicited_node6(const uint8_t* a) const noexcept {
    if (std::memcmp(a, kIpv6SolicitedNodePrefix, sizeof(kIpv6SolicitedNodePrefix)) != 0)
      return false;
    for (unsigned i = 0; i < n_addrs6; ++i)
      if (std::memcmp(addrs6[i] + 13, a + 13, 3) == 0) return true;
    return false;
  }
  static bool all_nodes6(const uint8_t* a) noexcept {
    return std::memcmp(a, kIpv6AllNodes, 16) == 0;
  }
  // The source for a packet we originate to `dst`: the link-local address for a link-local
  // destination, else the first configured address (the link-local one if there is none).
  const uint8_t* source6(const uint8_t* dst) const noexcept {
    return n_addrs6 > 1 && !ipv6_link_local(dst) ? addrs6[1] : addrs6[0];
  }
  bool has_gateway6() const noexcept { return !ipv6_unspecified(gateway6); }
  // The Ethernet groups IPv6 maps those to (RFC 2464 7): 33:33 and the address's last 32 bits.
  bool accepts_group6(const rte_ether_addr& mac) const noexcept {
    const uint8_t* b = mac.addr_bytes;
    if (n_addrs6 == 0 || b[0] != 0x33 || b[1] != 0x33) return false;
    if (b[2] == 0 && b[3] == 0 && b[4] == 0 && b[5] == 1) return true;  // ff02::1
    if (b[2] != 0xff) return false;
    for (unsigned i = 0; i < n_addrs6; ++i)
      if (std::memcmp(addrs6[i] + 13, b + 3, 3) == 0) return true;
    return false;
  }
};

// Neighbor table key: written by control only (rte_hash, lock-free readers). The data word
// is the MAC in the low 48 bits with kNeighborValid set, so a lookup needs no second load.
struct NeighborKey {
  uint32_t ip;  // network order
  uint16_t port;
  uint16_t zero;
};
static_assert(sizeof(NeighborKey) == 8);
inline constexpr uint64_t kNeighborValid = 1ull << 48;
// The IPv6 neighbor table's key (the same data word).
struct Neighbor6Key {
  uint8_t ip[16];
  uint16_t port;
  uint16_t zero[3];
};
static_assert(sizeof(Neighbor6Key) == 24);

inline uint64_t neighbor_word(const rte_ether_addr& mac) noexcept {
  uint64_t w = kNeighborValid;
  for (unsigned b = 0; b < RTE_ETHER_ADDR_LEN; ++b) w |= uint64_t{mac.addr_bytes[b]} << (8 * b);
  return w;
}
inline rte_ether_addr neighbor_mac(uint64_t word) noexcept {
  rte_ether_addr mac;
  for (unsigned b = 0; b < RTE_ETHER_ADDR_LEN; ++b) mac.addr_bytes[b] = uint8_t(word >> (8 * b));
  return mac;
}

// Rings between one worker and control; the worker is the only producer.
struct alignas(64) WorkerShared {
  rte_ring* punt = nullptr;    // mbufs for control (handshakes, packets waiting for ARP)
  rte_ring* events = nullptr;  // Event records (32 bytes each)
  // Packets other workers pass to this one (multi-producer): NAT state for a public port
  // lives on the worker that owns the port's slice.
  rte_ring* handoff = nullptr;
  nat::NatEventRing* nat_events = nullptr;  // block allocations, exhaustion (to control)
  rte_ring* commands = nullptr;             // WorkerCommand records from control
  // Commands this worker has carried out, in ring order (written by it alone): control releases
  // what waits for a command (a moved prefix's route) only once it is done, not just queued.
  std::atomic<uint64_t> commands_done{0};
  std::atomic<const nat::NatCounters*> nat_counters{nullptr};    // set by the worker at start
  std::atomic<const nat::NatCounters*> nat66_counters{nullptr};  // the same for NAT66
  // Flow accounting (null: off). Allocated by control before launch, written by this worker
  // alone while it runs; control pops its record ring and, once the worker stopped, flushes it.
  flow::FlowTable* flows = nullptr;
  flow::FlowTable6* flows6 = nullptr;  // IPv6 flows, the same way
  unsigned lcore_id = 0;
  uint16_t queue = 0;  // RX queue and TX queue index on every port
  std::atomic<bool> running{false};
  LcoreCounters counters;
};

enum class PollMode : uint8_t { kAdaptive, kBusy };

struct DataplaneContext {
  PortInfo ports[kMaxPorts];
  unsigned n_ports = 0;
  uint8_t role_port[static_cast<size_t>(PortRole::kCount)] = {};  // role -> index in ports
  uint16_t wg_port_be = 0;  // UDP listen port of the tunnel side, network order

  rte_hash* neighbors = nullptr;
  rte_hash* neighbors6 = nullptr;  // Neighbor6Key -> data word, as `neighbors`
  rte_rcu_qsbr* rcu = nullptr;
  rte_mempool* pool = nullptr;  // for packets workers originate (ICMP errors)

  // WireGuard: keypairs by our receiver index (rte_hash, lock-free readers), peers by inner
  // address (rte_lpm over allowed IPs, next hop = peer slot), and the per-peer runtime blocks.
  rte_hash* keypairs = nullptr;
  rte_lpm* allowed_ips = nullptr;
  // The same for inner IPv6 (rte_lpm6, next hop = peer slot). rte_lpm6 has no RCU support, so
  // control builds a whole new table for every change of the IPv6 routes, publishes it here
  // and frees the old one after an RCU grace period. Null: no peer has an IPv6 prefix.
  std::atomic<const rte_lpm6*> allowed_ips6{nullptr};
  PeerRuntime* peers = nullptr;
  PeerEndpoint6* endpoints6 = nullptr;  // beside peers: IPv6 endpoint addresses (wg_state.h)
  PeerCounterTable peer_counters;       // per-worker rows of per-peer rx/tx counts
  uint32_t max_peers = 0;
  uint16_t tunnel_mtu = 1420;  // largest inner packet sealed toward a peer
  // Transport messages' outer UDP checksum left to the AEAD: not verified, sent as 0 (over
  // IPv4 only: IPv6 makes the UDP checksum mandatory, RFC 8200 8.1).
  bool wg_udp_checksum_aead = false;

  // Exit approval and policy; null until control publishes the first one (forward nothing).
  std::atomic<const PolicyView*> policy{nullptr};

  // Domain policy (Hyperscan database); null: no domain list. Swapped by control, freed after
  // an RCU grace period.
  std::atomic<const domain::DomainDatabase*> domains{nullptr};

  // Carrier-grade NAT: null means routed mode (peers' addresses leave untranslated).
  const nat::NatConfig* nat = nullptr;
  // Stateful NAT66 (--nat6_mode=stateful): the same NAT core and settings over the IPv6 pool;
  // null: IPv6 is translated by NPTv6 (below) or, with neither, untranslated in routed mode
  // and dropped in NAT mode.
  const nat::NatConfig* nat66 = nullptr;
  // IPv6 prefix translation (RFC 6296): --nat_inside6 to --nat_pool6 (--nat6_mode=nptv6) and
  // each --nptv6_map pair. Beside NAT66 the mappings come first: a source in an inside prefix
  // leaves through NPTv6, the rest through the stateful pool. Empty and no NAT66: IPv6 leaves
  // untranslated in routed mode and is dropped in NAT mode.
  Nptv6Table nptv6;
  // Routed mode with --nptv6_map alone (no --nat_pool, no --nat_pool6): an IPv6 source (an
  // internet destination) no mapping holds passes untranslated, as all IPv6 does in routed
  // mode without mappings; false: it is dropped.
  bool nptv6_route_unmapped = false;

  // The exception path: inner packets for the gateway's own tailnet addresses (written by
  // control from the connector's report; 0: none, network order) leave through this port, a
  // kernel TUN where the connector serves PeerAPI DNS; kNoPort: no exception port.
  std::atomic<uint32_t> tailnet_addrs[kMaxTailnetAddrs] = {};
  TailnetAddrs6 tailnet_addrs6;  // the IPv6 ones (fd7a:115c:a1e0::/48), the same way
  uint8_t exception_port = kNoPort;
  unsigned exception_rate_per_sec = 20000;  // per worker, to the host
  // The DERP relay on the exception port (--relay_net; 0: off), network order: the connector's
  // sockets on the host side (relay_host) send relayed peers' packets to relay_gateway at the
  // WireGuard port; peers whose endpoint is relay_host:port are answered through the TUN.
  uint32_t relay_host = 0;
  uint32_t relay_gateway = 0;
  unsigned exception_burst = 2000;

  PollMode poll_mode = PollMode::kAdaptive;
  unsigned idle_sleep_max_us = 200;
  unsigned icmp_rate_per_sec = 1000;  // per worker
  unsigned icmp_burst = 50;

  std::atomic<bool> stop{false};
  unsigned n_workers = 0;
  WorkerShared workers[kMaxWorkers];
  LcoreCounters control_counters;  // packets control itself sends (ARP requests, handshakes)

  const PortInfo& port(PortRole r) const noexcept {
    return ports[role_port[static_cast<size_t>(r)]];
  }
  uint8_t port_index(PortRole r) const noexcept { return role_port[static_cast<size_t>(r)]; }
};

}  // namespace exitgw::dp
