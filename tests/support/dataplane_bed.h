// A worker and the tables it reads, on net_null ports, without running the daemon: what the
// pipeline benchmark, the data-path fuzzer and the worker drop tests drive bursts through. EAL
// must be initialised with --vdev=net_null0 --vdev=net_null1 (or the ports named in
// BedOptions created) before init().
#pragma once

#include <rte_ethdev.h>
#include <rte_lpm.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "control/exit_policy.h"
#include "control/neighbor.h"
#include "control/ports.h"
#include "control/wireguard.h"
#include "dataplane/nat/nat_config.h"
#include "dataplane/worker.h"

namespace exitgw::testing {

// What init() builds; the defaults are the small bed the fuzzer and the pipeline figures use.
struct BedOptions {
  uint32_t peers = 1;
  bool nat = false;
  // The NAT pool and table size. One port block per subscriber is the least a peer needs:
  // the default /28 has 16 x 126 blocks, so about 2,000 subscribers; a /22 holds 129,000.
  dp::nat::Ipv4Prefix nat_pool{RTE_IPV4(192, 0, 2, 128), 28};
  uint32_t nat_max_sessions = 1u << 18;
  // Stateful NAT66 (--nat6_mode=stateful) to this pool (IPv6 addresses or /112../128 prefixes,
  // as --nat_pool6 takes them), the other settings NAT44's; empty: no NAT66.
  std::vector<dp::nat::Ipv6Prefix> nat_pool6;
  // A tailnet policy file (HuJSON) to compile instead of the default policy (every member
  // may use the exit).
  std::string policy_text;
  // The ports by DPDK name (tunnel, internet); tests that read what was sent use ring ports
  // (rte_eth_from_rings) with one RX and two TX rings each.
  std::array<std::string, 2> ports{"net_null0", "net_null1"};
  // An exception port (a ring port standing in for the host's TUN) by DPDK name; empty: none.
  std::string exception_port;
  // The real WireGuard control (its identity and peers file) instead of `peers` synthetic
  // peers with ready keypairs: what the punt fuzzer drives handshakes through.
  std::optional<WireGuardOptions> wireguard;
};

// DPDK heap in use (rte_malloc, every socket) and the process's resident set: init() records
// both around each part it builds, so a benchmark reports measured memory, not an estimate.
struct MemoryUse {
  size_t heap_bytes = 0;
  size_t rss_bytes = 0;
};

inline size_t dpdk_heap_bytes() {
  size_t total = 0;
  for (int s = 0; s < RTE_MAX_NUMA_NODES; ++s) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(s, &st) == 0) total += st.heap_allocsz_bytes;
  }
  return total;
}

inline size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

inline MemoryUse memory_now() {
  return MemoryUse{dpdk_heap_bytes(), rss_bytes()};
}

// What grew between two readings (a reading that shrank counts as 0).
inline MemoryUse memory_since(const MemoryUse& before) {
  const MemoryUse now = memory_now();
  return MemoryUse{now.heap_bytes > before.heap_bytes ? now.heap_bytes - before.heap_bytes : 0,
                   now.rss_bytes > before.rss_bytes ? now.rss_bytes - before.rss_bytes : 0};
}

class DataplaneBed {
 public:
  static constexpr uint32_t kTunnelIp = RTE_IPV4(10, 77, 0, 1);
  static constexpr uint32_t kTunnelRouter = RTE_IPV4(10, 77, 0, 254);
  static constexpr uint32_t kInternetIp = RTE_IPV4(192, 0, 2, 1);
  static constexpr uint32_t kInternetRouter = RTE_IPV4(192, 0, 2, 2);
  static constexpr uint16_t kWgPort = 51820;
  static constexpr uint32_t kPool = RTE_IPV4(192, 0, 2, 128);

  static uint32_t peer_addr(uint32_t i) { return RTE_IPV4(100, 64, 0, 0) + i; }
  static uint32_t endpoint_addr(uint32_t i) {
    return RTE_IPV4(203, 0, 113, 0) + (i % 250) + ((i / 250) << 8);
  }

  // `peers` peers with one keypair each (receiver index i + 1), allowed IP 100.64.0.0 + i.
  // With `nat`, a 16-address pool (kPool) translates as in production.
  Status init(uint32_t peers, bool nat = false) {
    BedOptions o;
    o.peers = peers;
    o.nat = nat;
    return init(o);
  }

  // Peer i: allowed IP 100.64.0.0 + i (a /32 each, 256 to a tbl8 group of the LPM), so up to
  // 4,194,304 peers stay inside 100.64.0.0/10.
  Status init(const BedOptions& opt) {
    dp::DataplaneContext& c = ctx;
    const uint32_t peers = opt.peers;
    if (!opt.wireguard && (peers == 0 || peers > (1u << 22)))
      return make_error("bed: peers must be 1..4194304");
    if (opt.nat) {
      nat_config.pool = {opt.nat_pool};
      nat_config.n_workers = 1;
      nat_config.max_sessions = opt.nat_max_sessions;
      nat_config.ticks_per_second = rte_get_tsc_hz();
      if (Status s = nat_config.validate(); !s) return s;
      c.nat = &nat_config;
    }
    if (!opt.nat_pool6.empty()) {
      nat66_config.family = dp::nat::NatFamily::kIpv6;
      nat66_config.pool6 = opt.nat_pool6;
      nat66_config.n_workers = 1;
      nat66_config.max_sessions = opt.nat_max_sessions;
      nat66_config.ticks_per_second = rte_get_tsc_hz();
      if (Status s = nat66_config.validate(); !s) return s;
      c.nat66 = &nat66_config;
    }
    c.n_workers = 1;
    c.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("bed_rcu", rte_rcu_qsbr_get_memsize(1), 64));
    if (c.rcu == nullptr || rte_rcu_qsbr_init(c.rcu, 1) != 0) return make_error("rcu");
    pool = rte_pktmbuf_pool_create("bed_pool", 16383, 256, sizeof(dp::PacketMeta),
                                   RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (pool == nullptr) return make_error("mbuf pool");
    c.pool = pool;
    const uint32_t addrs[2] = {kTunnelIp, kInternetIp};
    const uint32_t routers[2] = {kTunnelRouter, kInternetRouter};
    for (unsigned p = 0; p < 2; ++p) {
      auto id = find_port(opt.ports[p]);
      if (!id) return make_error(id.error());
      std::string notes;
      auto rxq = start_port(*id, PortOptions{1, 1024, 1024, false}, pool, &notes);
      if (!rxq) return make_error(rxq.error());
      dp::PortInfo& info = c.ports[p];
      info.port_id = *id;
      info.n_rx_queues = *rxq;
      info.tx_queue_control = 1;
      rte_eth_macaddr_get(*id, &info.mac);
      info.addrs[0] = rte_cpu_to_be_32(addrs[p]);
      info.netmasks[0] = rte_cpu_to_be_32(0xffffff00u);
      info.n_addrs = 1;
      info.gateway = rte_cpu_to_be_32(routers[p]);
      // IPv6: the link-local address from the MAC (as the daemon derives it) and
      // 2001:db8:77::1/64 (tunnel) or 2001:db8:1::1/64 (internet).
      dp::PortInfo::link_local6(info.mac, info.addrs6[0]);
      const uint8_t global[16] = {0x20, 0x01, 0x0d, 0xb8, 0, uint8_t(p ? 1 : 0x77), 0, 0, 0, 0, 0,
                                  0,    0,    0,    0,    1};
      std::memcpy(info.addrs6[1], global, 16);
      info.prefix6[0] = info.prefix6[1] = 64;
      info.n_addrs6 = 2;
    }
    c.n_ports = 2;
    if (!opt.exception_port.empty()) {
      auto id = find_port(opt.exception_port);
      if (!id) return make_error(id.error());
      std::string notes;
      auto rxq = start_port(*id, PortOptions{1, 1024, 1024, false}, pool, &notes);
      if (!rxq) return make_error(rxq.error());
      dp::PortInfo& info = c.ports[2];
      info.port_id = *id;
      info.n_rx_queues = *rxq;
      info.tx_queue_control = 1;
      info.l3 = true;
      c.exception_port = 2;
      c.n_ports = 3;
    }
    c.role_port[0] = 0;
    c.role_port[1] = 1;
    c.wg_port_be = rte_cpu_to_be_16(kWgPort);
    c.workers[0].queue = 0;
    c.workers[0].events = rte_ring_create_elem("bed_ev", sizeof(dp::Event), 4096, 0, 0);
    c.workers[0].punt = rte_ring_create("bed_punt", 1024, 0, 0);
    neighbors = std::make_unique<NeighborTable>(c, pool, NeighborOptions{});
    if (Status s = neighbors->create_table(); !s) return s;
    const uint8_t router_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
    if (Status s = neighbors->add_static(kTunnelRouter, router_mac); !s) return s;
    if (Status s = neighbors->add_static(kInternetRouter, router_mac); !s) return s;
    std::vector<policy::PolicyPeer> pp;
    if (opt.wireguard) {
      wireguard_options = *opt.wireguard;
      if (Status s = restart_wireguard(); !s) return s;
      pp = wireguard->policy_peers();
    } else if (Status s = add_synthetic_peers(peers, pp); !s) {
      return s;
    }
    return finish_init(opt, std::move(pp));
  }

  // A new WireGuard control with the options init() was given: nothing kept from the last one
  // (handshake and replay state, keypairs, rate limits), so a fuzz input can start afresh.
  Status restart_wireguard() {
    wireguard.reset();
    wireguard = std::make_unique<WireGuard>(ctx, *neighbors, pool, wireguard_options);
    return wireguard->init();
  }

 private:
  // `peers` peers with a published keypair each, as after a handshake, without WireGuard.
  Status add_synthetic_peers(uint32_t peers, std::vector<policy::PolicyPeer>& pp) {
    dp::DataplaneContext& c = ctx;
    // Measured from here: the peer tables (keypair hash, allowed-IPs LPM, PeerRuntime array)
    // and one keypair per peer, as the gateway allocates them for this many peers.
    const MemoryUse before_peers = memory_now();
    if (Status s = create_wireguard_tables(c, peers); !s) return s;
    peer_table_memory = memory_since(before_peers);
    keypairs.reserve(peers);
    std::mt19937 rng(7);
    for (uint32_t i = 0; i < peers; ++i) {
      wg::SessionKeys keys;
      for (auto& x : keys.send_key) x = uint8_t(rng());
      for (auto& x : keys.recv_key) x = uint8_t(rng());
      keys.local_index = i + 1;
      keys.remote_index = 0x10000000 + i;
      Keypair* kp = publish_keypair(c, keys, i, 3600, 7200);
      if (kp == nullptr) return make_error("keypair");
      keypairs.push_back(kp);
      c.peers[i].active = 1;
      c.peers[i].send_keypair = kp;
      c.peers[i].endpoint = pack_endpoint(rte_cpu_to_be_32(endpoint_addr(i)),
                                          rte_cpu_to_be_16(uint16_t(30000 + i % 30000)));
      if (rte_lpm_add(c.allowed_ips, peer_addr(i), 32, i) != 0)
        return make_error("bed: allowed-IPs LPM full at peer " + std::to_string(i));
    }
    peer_memory = memory_since(before_peers);
    pp.reserve(peers);
    for (uint32_t i = 0; i < peers; ++i)
      pp.push_back(policy::PolicyPeer{i, "bench@example.com", {}, {Ipv4Prefix{peer_addr(i), 32}}});
    return Ok{};
  }

  Status finish_init(const BedOptions& opt, std::vector<policy::PolicyPeer> pp) {
    dp::DataplaneContext& c = ctx;
    // The default policy (members may use the exit) with the node approved by file: the
    // real compile and publish path, so the worker runs its policy stage as in production.
    approvals_path = "/tmp/exitgw-bed-approvals-" + std::to_string(getpid());
    {
      std::ofstream f(approvals_path);
      f << "exit-node approved\n";
    }
    ExitPolicyOptions popt;
    popt.approvals_file = approvals_path;
    if (!opt.policy_text.empty()) {
      policy_path = "/tmp/exitgw-bed-policy-" + std::to_string(getpid()) + ".hujson";
      std::ofstream f(policy_path);
      f << opt.policy_text;
      popt.policy_file = policy_path;
    }
    popt.own_addresses = {kTunnelIp, kInternetIp};
    policy = std::make_unique<ExitPolicy>(c, popt);
    // The compiled classifier (rte_acl), class-by-slot table and the control side's copy.
    const MemoryUse before_policy = memory_now();
    const Status policy_status = policy->init(std::move(pp));
    policy_memory = memory_since(before_policy);
    std::remove(approvals_path.c_str());
    if (!policy_path.empty()) std::remove(policy_path.c_str());
    if (!policy_status) return policy_status;
    dp::set_worker_context(&c);
    // The worker's own tables: NAT (sized by nat_max_sessions), flow accounting, scratch.
    const MemoryUse before_worker = memory_now();
    worker = std::make_unique<dp::Worker>(c, 0);
    const Status worker_status = worker->init();
    worker_memory = memory_since(before_worker);
    return worker_status;
  }

 public:
  // Drains what the worker handed to control, so rings never fill.
  void drain_control() {
    rte_mbuf* m[64];
    unsigned n;
    while (
        (n = rte_ring_dequeue_burst(ctx.workers[0].punt, reinterpret_cast<void**>(m), 64, nullptr)))
      rte_pktmbuf_free_bulk(m, n);
    dp::Event e[64];
    unsigned ne;
    while ((
        ne = rte_ring_dequeue_burst_elem(ctx.workers[0].events, e, sizeof(dp::Event), 64, nullptr)))
      for (unsigned i = 0; i < ne; ++i)
        if (e[i].type == dp::EventType::kNeighborSeen6)
          neighbors->learn6(e[i].port, e[i].ip6, e[i].mac, 0);
  }

  dp::DataplaneContext ctx;
  rte_mempool* pool = nullptr;
  std::unique_ptr<NeighborTable> neighbors;
  std::unique_ptr<ExitPolicy> policy;
  dp::nat::NatConfig nat_config, nat66_config;
  std::string approvals_path, policy_path;
  std::vector<Keypair*> keypairs;
  // What init() measured: peer_memory is the peer tables (keypair hash, allowed-IPs LPM,
  // PeerRuntime array: peer_table_memory, sized by the peer count before any peer is added)
  // plus one keypair and one LPM route per peer.
  MemoryUse peer_memory, peer_table_memory, policy_memory, worker_memory;
  std::unique_ptr<dp::Worker> worker;
  // With BedOptions::wireguard: the control side's WireGuard, which owns the peer tables.
  WireGuardOptions wireguard_options;
  std::unique_ptr<WireGuard> wireguard;
};

}  // namespace exitgw::testing
