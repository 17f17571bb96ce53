// A worker and the tables it reads, on net_null ports, without running the daemon: what the
// pipeline benchmark and the data-path fuzzer drive bursts through. EAL must be initialised
// with --vdev=net_null0 --vdev=net_null1 before init().
#pragma once

#include <rte_ethdev.h>
#include <rte_lpm.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
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
    dp::DataplaneContext& c = ctx;
    if (nat) {
      nat_config.pool = {dp::nat::Ipv4Prefix{kPool, 28}};
      nat_config.n_workers = 1;
      nat_config.max_sessions = 1u << 18;
      nat_config.ticks_per_second = rte_get_tsc_hz();
      if (Status s = nat_config.validate(); !s) return s;
      c.nat = &nat_config;
    }
    c.n_workers = 1;
    c.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("bed_rcu", rte_rcu_qsbr_get_memsize(1), 64));
    if (c.rcu == nullptr || rte_rcu_qsbr_init(c.rcu, 1) != 0) return make_error("rcu");
    pool = rte_pktmbuf_pool_create("bed_pool", 16383, 256, sizeof(dp::PacketMeta),
                                   RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (pool == nullptr) return make_error("mbuf pool");
    c.pool = pool;
    const char* names[2] = {"net_null0", "net_null1"};
    const uint32_t addrs[2] = {kTunnelIp, kInternetIp};
    const uint32_t routers[2] = {kTunnelRouter, kInternetRouter};
    for (unsigned p = 0; p < 2; ++p) {
      auto id = find_port(names[p]);
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
    }
    c.n_ports = 2;
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
    if (Status s = create_wireguard_tables(c, peers); !s) return s;
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
      rte_lpm_add(c.allowed_ips, peer_addr(i), 32, i);
    }
    // The default policy (members may use the exit) with the node approved by file: the
    // real compile and publish path, so the worker runs its policy stage as in production.
    approvals_path = "/tmp/exitgw-bed-approvals-" + std::to_string(getpid());
    {
      std::ofstream f(approvals_path);
      f << "exit-node approved\n";
    }
    ExitPolicyOptions popt;
    popt.approvals_file = approvals_path;
    popt.own_addresses = {kTunnelIp, kInternetIp};
    policy = std::make_unique<ExitPolicy>(c, popt);
    std::vector<policy::PolicyPeer> pp;
    for (uint32_t i = 0; i < peers; ++i)
      pp.push_back(policy::PolicyPeer{i, "bench@example.com", {}, {Ipv4Prefix{peer_addr(i), 32}}});
    if (Status s = policy->init(std::move(pp)); !s) return s;
    std::remove(approvals_path.c_str());
    dp::set_worker_context(&c);
    worker = std::make_unique<dp::Worker>(c, 0);
    return worker->init();
  }

  // Drains what the worker handed to control, so rings never fill.
  void drain_control() {
    rte_mbuf* m[64];
    unsigned n;
    while (
        (n = rte_ring_dequeue_burst(ctx.workers[0].punt, reinterpret_cast<void**>(m), 64, nullptr)))
      rte_pktmbuf_free_bulk(m, n);
    dp::Event e[64];
    while (rte_ring_dequeue_burst_elem(ctx.workers[0].events, e, sizeof(dp::Event), 64, nullptr)) {
    }
  }

  dp::DataplaneContext ctx;
  rte_mempool* pool = nullptr;
  std::unique_ptr<NeighborTable> neighbors;
  std::unique_ptr<ExitPolicy> policy;
  dp::nat::NatConfig nat_config;
  std::string approvals_path;
  std::vector<Keypair*> keypairs;
  std::unique_ptr<dp::Worker> worker;
};

}  // namespace exitgw::testing
