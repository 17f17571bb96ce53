// The WireGuard control thread's promises to the workers, on a real WireGuard instance (key
// file, peer table, handshake) over ring ports: a retired keypair keeps its keys until every
// worker has passed a quiescent state and is zeroed and freed after; NAT removals for a full
// worker command ring wait and are delivered in order, never lost; the IPv6 allowed-IPs table
// is published whole for every change and only for a change that applies.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_udp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/ipv6_addr.h"
#include "control/neighbor.h"
#include "control/ports.h"
#include "control/wg/noise.h"
#include "control/wireguard.h"
#include "dataplane/nat/nat_config.h"
#include "dataplane/packet_meta.h"
#include "tests/support/eal_environment.h"

namespace exitgw {
namespace {

// Room for the IPv4 table and two IPv6 tables (an rte_lpm6 is 64 MiB) while one is replaced.
EXITGW_EAL_ENVIRONMENT("wireguard_control_test", 512);

constexpr uint32_t kTunnelIp = RTE_IPV4(10, 77, 0, 1);
constexpr uint32_t kEndpoint = RTE_IPV4(10, 77, 0, 10);
constexpr uint16_t kWgPort = 51820;

Ipv4Prefix host(uint32_t a) {
  return Ipv4Prefix{a, 32};
}

size_t heap_allocations() {
  size_t n = 0;
  for (int s = 0; s < RTE_MAX_NUMA_NODES; ++s) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(s, &st) == 0) n += st.alloc_count;
  }
  return n;
}

class WireGuardControl : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pool_ = rte_pktmbuf_pool_create("wgc_pool", 1023, 0, sizeof(dp::PacketMeta),
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(pool_, nullptr);
    rte_ring* rx = rte_ring_create("wgc_rx", 64, SOCKET_ID_ANY, 0);
    rte_ring* tx[2] = {rte_ring_create("wgc_tx0", 64, SOCKET_ID_ANY, 0),
                       rte_ring_create("wgc_tx1", 64, SOCKET_ID_ANY, 0)};
    const int id = rte_eth_from_rings("wgc_port", &rx, 1, tx, 2, rte_socket_id());
    ASSERT_GE(id, 0);
    tx_ = tx[1];  // control's queue
    port_id_ = static_cast<uint16_t>(id);
    std::string notes;
    ASSERT_TRUE(start_port(port_id_, PortOptions{1, 64, 64, false}, pool_, &notes).ok());
  }

  void SetUp() override {
    ctx_ = std::make_unique<dp::DataplaneContext>();
    dp::DataplaneContext& c = *ctx_;
    c.n_workers = 1;
    c.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc(nullptr, rte_rcu_qsbr_get_memsize(1), 64));
    ASSERT_NE(c.rcu, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(c.rcu, 1), 0);
    // One port plays both roles (the gateway allows it).
    dp::PortInfo& p = c.ports[0];
    p.port_id = port_id_;
    rte_eth_macaddr_get(port_id_, &p.mac);
    p.addrs[0] = rte_cpu_to_be_32(kTunnelIp);
    p.netmasks[0] = rte_cpu_to_be_32(0xffffff00u);
    p.n_addrs = 1;
    p.tx_queue_control = 1;
    c.n_ports = 1;
    c.wg_port_be = rte_cpu_to_be_16(kWgPort);
    c.nat = &nat_config_;  // NAT on: a prefix leaving its peer takes its NAT state along
    c.workers[0].commands = rte_ring_create_elem(("wgc_cmd" + std::to_string(serial_++)).c_str(),
                                                 sizeof(dp::WorkerCommand), 4, SOCKET_ID_ANY,
                                                 RING_F_SP_ENQ | RING_F_SC_DEQ);  // room for 3
    ASSERT_NE(c.workers[0].commands, nullptr);
    neighbors_ = std::make_unique<NeighborTable>(c, pool_, NeighborOptions{});
    ASSERT_TRUE(neighbors_->create_table().ok());
    const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x10};
    ASSERT_TRUE(neighbors_->add_static(kEndpoint, mac).ok());

    key_path_ = "/tmp/exitgw-wgc-" + std::to_string(getpid()) + ".key";
    const wg::Key gateway_key = wg::generate_private_key();
    {
      std::ofstream f(key_path_);
      f << wg::key_to_base64(gateway_key) << "\n";
    }
    ::chmod(key_path_.c_str(), 0600);
    gateway_pub_ = wg::LocalIdentity::from_private_key(gateway_key)->public_key;
    WireGuardOptions o;
    o.private_key_file = key_path_;
    o.max_peers = 16;
    wg_ = std::make_unique<WireGuard>(c, *neighbors_, pool_, o);
    const Status s = wg_->init();
    ASSERT_TRUE(s.ok()) << s.error();
  }

  void TearDown() override {
    wg_.reset();
    neighbors_.reset();  // frees the neighbor tables
    rte_ring_free(ctx_->workers[0].commands);
    rte_free(ctx_->rcu);
    std::remove(key_path_.c_str());
    rte_mbuf* m;
    while (rte_ring_dequeue(tx_, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
  }

  // A peer with a fresh identity (its private key kept for handshakes) and these addresses.
  PeerConfig peer(std::vector<Ipv4Prefix> allowed, wg::Key* private_key = nullptr) {
    const wg::Key k = wg::generate_private_key();
    if (private_key) *private_key = k;
    PeerConfig pc;
    pc.public_key = wg::LocalIdentity::from_private_key(k)->public_key;
    pc.allowed_ips = std::move(allowed);
    pc.user = "alice@example.com";
    return pc;
  }

  // The peer slot the allowed-IPs table routes `addr` to; -1: no route.
  int64_t route(uint32_t addr) const {
    uint32_t slot = 0;
    return rte_lpm_lookup(ctx_->allowed_ips, addr, &slot) == 0 ? int64_t{slot} : -1;
  }

  // The peer slot the published IPv6 table routes `addr` to; -1: no route or no table.
  int64_t route6(const char* addr) const {
    const rte_lpm6* table = ctx_->allowed_ips6.load(std::memory_order_acquire);
    const auto a = parse_ipv6(addr);
    EXPECT_TRUE(a.ok()) << addr;
    uint32_t slot = 0;
    return table != nullptr && rte_lpm6_lookup(table, a->data(), &slot) == 0 ? int64_t{slot} : -1;
  }

  static Ipv6Prefix prefix6(const char* text) {
    auto p = parse_ipv6_prefix(text);
    EXPECT_TRUE(p.ok()) << text;
    return *p;
  }

  // Restarts WireGuard with `o` (the key and the context stay).
  void restart(WireGuardOptions o) {
    wg_.reset();
    o.private_key_file = key_path_;
    o.max_peers = 16;
    wg_ = std::make_unique<WireGuard>(*ctx_, *neighbors_, pool_, o);
    const Status s = wg_->init();
    ASSERT_TRUE(s.ok()) << s.error();
  }

  // The worker's part: takes every command from its ring, and says it carried them out only
  // with `done` (as Worker::process_commands does after each batch).
  std::vector<dp::WorkerCommand> commands(bool done = true) {
    std::vector<dp::WorkerCommand> out;
    dp::WorkerCommand c;
    while (rte_ring_dequeue_elem(ctx_->workers[0].commands, &c, sizeof(c)) == 0) out.push_back(c);
    if (done) ctx_->workers[0].commands_done += out.size();
    return out;
  }

  // Peers A (100.64.1.1) and B (100.64.2.1); then 100.64.1.1 moves to B. B's slot.
  int64_t move_one_address() {
    PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
    PeerConfig b = peer({host(RTE_IPV4(100, 64, 2, 1))});
    EXPECT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
    a.allowed_ips = {host(RTE_IPV4(100, 64, 3, 1))};
    b.allowed_ips.push_back(host(RTE_IPV4(100, 64, 1, 1)));
    EXPECT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
    return route(RTE_IPV4(100, 64, 2, 1));
  }

  // The peer's handshake initiation, from kEndpoint, as a worker punts it.
  rte_mbuf* initiation(const wg::Key& peer_private) {
    auto id = wg::LocalIdentity::from_private_key(peer_private);
    auto pc = wg::PeerCrypto::create(*id, gateway_pub_);
    EXPECT_TRUE(pc.ok());
    auto init = wg::create_initiation(*id, *pc, 0x4242, wg::tai64n_now(), 1'000'000'000);
    EXPECT_TRUE(init.ok());
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    const size_t len = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) +
                       sizeof(wg::MessageInitiation);
    auto* d = rte_pktmbuf_mtod(m, uint8_t*);
    rte_pktmbuf_append(m, static_cast<uint16_t>(len));
    std::memset(d, 0, len);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(d + sizeof(rte_ether_hdr));
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(len - sizeof(rte_ether_hdr)));
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->src_addr = rte_cpu_to_be_32(kEndpoint);
    ip->dst_addr = rte_cpu_to_be_32(kTunnelIp);
    udp->src_port = rte_cpu_to_be_16(51000);
    udp->dst_port = rte_cpu_to_be_16(kWgPort);
    udp->dgram_len =
        rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + sizeof(init->message)));
    std::memcpy(udp + 1, &init->message, sizeof(init->message));
    return m;
  }

  static inline rte_mempool* pool_ = nullptr;
  static inline uint16_t port_id_ = 0;
  static inline rte_ring* tx_ = nullptr;
  static inline unsigned serial_ = 0;
  dp::nat::NatConfig nat_config_;
  std::unique_ptr<dp::DataplaneContext> ctx_;
  std::unique_ptr<NeighborTable> neighbors_;
  std::unique_ptr<WireGuard> wg_;
  std::string key_path_;
  wg::Key gateway_pub_{};
};

TEST_F(WireGuardControl, NatRemovalsForAFullCommandRingWaitAndArriveInOrder) {
  std::vector<Ipv4Prefix> moving;
  for (uint32_t i = 1; i <= 5; ++i) moving.push_back(host(RTE_IPV4(100, 64, 1, i)));
  PeerConfig a = peer(moving);
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 2, 1))});
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_TRUE(commands().empty());

  // All five addresses move from A to B: five removals for a ring with room for three.
  a.allowed_ips = {host(RTE_IPV4(100, 64, 3, 1))};
  b.allowed_ips.insert(b.allowed_ips.end(), moving.begin(), moving.end());
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  std::vector<dp::WorkerCommand> got = commands();
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(wg_->stats().worker_commands_waiting.load(), 2u);
  // The worker drained its ring; the next tick delivers the rest.
  wg_->tick(2'000'000'000);
  const std::vector<dp::WorkerCommand> rest = commands();
  got.insert(got.end(), rest.begin(), rest.end());
  wg_->collect_done_commands();
  EXPECT_EQ(wg_->stats().worker_commands_waiting.load(), 0u);
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 0u);
  ASSERT_EQ(got.size(), 5u);
  std::set<uint32_t> prefixes;
  for (const dp::WorkerCommand& c : got) {
    EXPECT_EQ(c.type, dp::WorkerCommandType::kNatRemoveSubscribers);
    EXPECT_EQ(c.len, 32);
    prefixes.insert(c.prefix);
  }
  std::set<uint32_t> want;
  for (const Ipv4Prefix& p : moving) want.insert(p.addr);
  EXPECT_EQ(prefixes, want);

  // Removing peer B altogether: its six prefixes, nothing lost across several ticks.
  ASSERT_TRUE(wg_->set_source_peers("file", {a}).ok());
  got = commands();
  for (uint64_t t = 3; got.size() < 6 && t < 10; ++t) {
    wg_->tick(t * 1'000'000'000);
    const auto more = commands();
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got.size(), 6u);
}

// A prefix that moves gets no route to its new owner until every worker has carried out the
// removal of its NAT state, whether the removal waits for room in a full ring or sits in the
// ring: the new owner's fresh sessions are never deleted by it, and never inherit the old
// owner's.
TEST_F(WireGuardControl, APrefixIsRoutedToItsNewOwnerOnlyOnceEveryWorkerCarriedOutItsNatRemoval) {
  std::vector<Ipv4Prefix> moving;
  for (uint32_t i = 1; i <= 5; ++i) moving.push_back(host(RTE_IPV4(100, 64, 1, i)));
  PeerConfig a = peer(moving);
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 2, 1))});
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  const int64_t slot_a = route(RTE_IPV4(100, 64, 1, 1));
  const int64_t slot_b = route(RTE_IPV4(100, 64, 2, 1));
  ASSERT_GE(slot_a, 0);
  ASSERT_GE(slot_b, 0);

  // Five removals for a ring with room for three: three in the ring, two waiting; none routed.
  a.allowed_ips = {host(RTE_IPV4(100, 64, 3, 1))};
  b.allowed_ips.insert(b.allowed_ips.end(), moving.begin(), moving.end());
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  ASSERT_EQ(wg_->stats().worker_commands_waiting.load(), 2u);
  ASSERT_EQ(wg_->stats().worker_commands_in_ring.load(), 0u);  // counted when collected
  auto routed_to_b = [&] {
    size_t n = 0;
    for (const Ipv4Prefix& p : moving) {
      const int64_t r = route(p.addr);
      EXPECT_TRUE(r == -1 || r == slot_b) << format_ipv4(p.addr) << " still routed to A";
      n += r == slot_b;
    }
    return n;
  };
  EXPECT_EQ(routed_to_b(), 0u) << "routed before any NAT removal was carried out";

  // The worker takes the three from its ring but has not carried them out: still no route.
  std::vector<dp::WorkerCommand> got = commands(/*done=*/false);
  ASSERT_EQ(got.size(), 3u);
  wg_->collect_done_commands();
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 3u);
  EXPECT_EQ(routed_to_b(), 0u) << "routed when its NAT removal was only taken from the ring";

  // B loses them and gets them back meanwhile (the two waiting move into the room the worker
  // made): every removal is still to be carried out, so none is repeated, and none is routed.
  PeerConfig b_without = b;
  b_without.allowed_ips = {host(RTE_IPV4(100, 64, 2, 1))};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b_without}).ok());
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_EQ(wg_->stats().worker_commands_waiting.load(), 0u);
  EXPECT_EQ(rte_ring_count(ctx_->workers[0].commands), 2u) << "a removal was repeated";
  EXPECT_EQ(routed_to_b(), 0u);

  // The worker carried out the three: routed at the control loop's next look, not before.
  ctx_->workers[0].commands_done += 3;
  EXPECT_EQ(routed_to_b(), 0u);
  wg_->collect_done_commands();
  EXPECT_EQ(routed_to_b(), 3u);
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 2u);

  // The other two, once carried out.
  wg_->tick(2'000'000'000);
  EXPECT_EQ(routed_to_b(), 3u);
  for (const dp::WorkerCommand& c : commands()) got.push_back(c);
  wg_->collect_done_commands();
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(routed_to_b(), 5u);
  // After the routes came, no removal is left to delete the new owner's sessions.
  for (uint64_t t = 3; t < 6; ++t) wg_->tick(t * 1'000'000'000);
  EXPECT_TRUE(commands().empty());
  EXPECT_EQ(wg_->stats().worker_commands_dropped.load(), 0u);
  EXPECT_EQ(wg_->stats().worker_commands_overdue.load(), 0u);
}

// Every worker, not the first: with two, a moved prefix waits for the one that is slower.
TEST_F(WireGuardControl, AMovedPrefixWaitsForEveryWorkerToCarryOutItsRemoval) {
  rte_ring* second = rte_ring_create_elem(("wgc_cmd" + std::to_string(serial_++)).c_str(),
                                          sizeof(dp::WorkerCommand), 16, SOCKET_ID_ANY,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
  ASSERT_NE(second, nullptr);
  ctx_->workers[1].commands = second;
  ctx_->n_workers = 2;
  const int64_t slot_b = move_one_address();
  ASSERT_GE(slot_b, 0);
  ASSERT_EQ(commands().size(), 1u);  // worker 0 carried it out
  wg_->collect_done_commands();
  EXPECT_EQ(route(RTE_IPV4(100, 64, 1, 1)), -1) << "routed before worker 1 removed its state";
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 1u);
  dp::WorkerCommand c;
  ASSERT_EQ(rte_ring_dequeue_elem(second, &c, sizeof(c)), 0);
  EXPECT_EQ(c.type, dp::WorkerCommandType::kNatRemoveSubscribers);
  EXPECT_EQ(c.prefix, RTE_IPV4(100, 64, 1, 1));
  ctx_->workers[1].commands_done += 1;
  wg_->collect_done_commands();
  EXPECT_EQ(route(RTE_IPV4(100, 64, 1, 1)), slot_b);
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 0u);
  ctx_->n_workers = 1;
  ctx_->workers[1].commands = nullptr;
  rte_ring_free(second);
}

// A worker that never carries out a removal in its ring (stuck) keeps the prefix unrouted for
// 20 ticks (2 s), not for ever: then it is routed, counted and logged once.
TEST_F(WireGuardControl, ARemovalAWorkerLeavesUndoneReleasesItsRouteAfterTwoSeconds) {
  const int64_t slot_b = move_one_address();
  ASSERT_GE(slot_b, 0);
  ASSERT_EQ(commands(/*done=*/false).size(), 1u);
  uint64_t t = 1;
  for (; t <= 20; ++t) {
    wg_->tick(t * 100'000'000);
    ASSERT_EQ(route(RTE_IPV4(100, 64, 1, 1)), -1) << "released after " << t << " ticks";
  }
  wg_->tick(t * 100'000'000);
  EXPECT_EQ(route(RTE_IPV4(100, 64, 1, 1)), slot_b);
  EXPECT_EQ(wg_->stats().worker_commands_overdue.load(), 1u);
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 1u);  // released, still to be done
  // The worker recovers and carries it out: nothing is released twice, nothing is left.
  ctx_->workers[0].commands_done += 1;
  wg_->tick(++t * 100'000'000);
  EXPECT_EQ(wg_->stats().worker_commands_in_ring.load(), 0u);
  EXPECT_EQ(wg_->stats().worker_commands_overdue.load(), 1u);
  EXPECT_EQ(route(RTE_IPV4(100, 64, 1, 1)), slot_b);
}

// At most max_waiting_worker_commands removals wait per worker to enter its ring; the rest are
// dropped and counted, and their prefixes are routed. A worker that carries none out keeps
// the others unrouted for 2 s, whether in its ring or still waiting for room in it.
TEST_F(WireGuardControl, WaitingNatRemovalsAreCappedAndTheOverflowIsCounted) {
  WireGuardOptions o;
  o.max_waiting_worker_commands = 2;
  restart(o);
  std::vector<Ipv4Prefix> moving;
  for (uint32_t i = 1; i <= 7; ++i) moving.push_back(host(RTE_IPV4(100, 64, 1, i)));
  PeerConfig a = peer(moving);
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 2, 1))});
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  a.allowed_ips = {host(RTE_IPV4(100, 64, 3, 1))};
  b.allowed_ips.insert(b.allowed_ips.end(), moving.begin(), moving.end());
  // Seven removals queued by one update before it sends any: two queued, five dropped; the
  // two enter the ring when the update is done. Only the dropped are routed.
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_EQ(wg_->stats().worker_commands_dropped.load(), 5u);
  EXPECT_EQ(wg_->stats().worker_commands_waiting.load(), 0u);
  EXPECT_EQ(rte_ring_count(ctx_->workers[0].commands), 2u);
  const auto routed = [&] {
    size_t n = 0;
    for (const Ipv4Prefix& p : moving) n += route(p.addr) >= 0;
    return n;
  };
  EXPECT_EQ(routed(), 5u);
  // The worker stuck, its ring with room for one: of the next move's two removals, one waits.
  PeerConfig c = peer({host(RTE_IPV4(100, 64, 4, 1))});
  std::vector<Ipv4Prefix> next;
  for (uint32_t i = 1; i <= 2; ++i) next.push_back(host(RTE_IPV4(100, 64, 5, i)));
  a.allowed_ips.insert(a.allowed_ips.end(), next.begin(), next.end());
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b, c}).ok());
  c.allowed_ips.insert(c.allowed_ips.end(), next.begin(), next.end());
  a.allowed_ips.resize(1);
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b, c}).ok());
  EXPECT_EQ(wg_->stats().worker_commands_waiting.load(), 1u);  // the ring took one
  EXPECT_EQ(wg_->stats().worker_commands_dropped.load(), 5u);
  const auto routed_next = [&] {
    size_t n = 0;
    for (const Ipv4Prefix& p : next) n += route(p.addr) >= 0;
    return n;
  };
  EXPECT_EQ(routed_next(), 0u);
  // Nothing carried out for 2 s: every held prefix is routed, in the ring or waiting.
  for (uint64_t t = 1; t <= 22; ++t) wg_->tick(t * 100'000'000);
  EXPECT_EQ(routed(), 7u);
  EXPECT_EQ(routed_next(), 2u);
  EXPECT_EQ(wg_->stats().worker_commands_overdue.load(), 4u);
}

// No source may make the gateway its own peer: the file's reload goes the same way as the API.
TEST_F(WireGuardControl, APeerWithTheGatewaysOwnKeyIsRefusedFromEverySource) {
  PeerConfig good = peer({host(RTE_IPV4(100, 64, 1, 1))});
  ASSERT_TRUE(wg_->set_source_peers("file", {good}).ok());
  PeerConfig self = peer({host(RTE_IPV4(100, 64, 1, 2))});
  self.public_key = gateway_pub_;
  for (const char* source : {"file", "admin", "etcd"}) {
    const Status s = wg_->set_source_peers(source, std::string(source) == "file"
                                                       ? std::vector<PeerConfig>{good, self}
                                                       : std::vector<PeerConfig>{self});
    ASSERT_FALSE(s.ok()) << source;
    EXPECT_NE(s.error().find("is the gateway's own key"), std::string::npos) << s.error();
  }
  EXPECT_EQ(wg_->source_peers("file").size(), 1u);  // the running set unchanged
}

// The endpoint checks the admin API makes hold for the peers file too: a peer whose endpoint is
// the gateway's own address, its NAT pool or an address no peer can have is refused whole.
TEST_F(WireGuardControl, APeerWhoseEndpointIsTheGatewayItselfIsRefusedFromTheFile) {
  WireGuardOptions o;
  o.self.interfaces = {{kTunnelIp, 24}};
  o.self.nat_pool = {{RTE_IPV4(198, 51, 100, 0), 28}};
  restart(o);
  PeerConfig good = peer({host(RTE_IPV4(100, 64, 1, 1))});
  ASSERT_TRUE(wg_->set_source_peers("file", {good}).ok());
  const struct {
    uint32_t ip;
    const char* why;
  } cases[] = {
      {kTunnelIp, "the gateway's own address"},
      {(kTunnelIp & 0xffffff00u) | 0xff, "the broadcast address of the gateway's subnet"},
      {RTE_IPV4(198, 51, 100, 5), "in the gateway's own NAT pool"},
      {RTE_IPV4(127, 0, 0, 1), "a loopback address"},
      {RTE_IPV4(224, 0, 0, 9), "a multicast address"},
      {0, "unspecified"},
  };
  for (const auto& c : cases) {
    PeerConfig bad = peer({host(RTE_IPV4(100, 64, 1, 2))});
    bad.has_endpoint = true;
    bad.endpoint_ip = c.ip;
    bad.endpoint_port = 51820;
    const Status s = wg_->set_source_peers("file", {good, bad});
    ASSERT_FALSE(s.ok()) << c.why;
    EXPECT_NE(s.error().find(c.why), std::string::npos) << s.error();
  }
  EXPECT_EQ(wg_->source_peers("file").size(), 1u);  // the running set unchanged
}

// The same for an IPv6 endpoint inside the gateway's IPv6 NAT pool, with either --nat6_mode:
// NPTv6's /48 or shorter prefix, stateful NAT66's addresses and /112../128 ranges.
TEST_F(WireGuardControl, APeerWhoseIpv6EndpointIsInTheGatewaysIpv6NatPoolIsRefusedFromTheFile) {
  const struct {
    const char* mode;
    std::vector<Ipv6Prefix> pool6;
    std::vector<const char*> inside, outside;
  } modes[] = {
      {"nptv6",
       {prefix6("2001:db8:a00::/48")},
       {"2001:db8:a00::1", "2001:db8:a00:ffff:ffff:ffff:ffff:ffff"},
       {"2001:db8:a01::1", "2001:db8:9ff:ffff::1"}},
      {"stateful",
       {prefix6("2001:db8:100::/120"), prefix6("2001:db8:100:1::7/128")},
       {"2001:db8:100::", "2001:db8:100::ff", "2001:db8:100:1::7"},
       {"2001:db8:100::100", "2001:db8:100:1::8"}},
  };
  for (const auto& m : modes) {
    WireGuardOptions o;
    o.self.interfaces = {{kTunnelIp, 24}};
    o.self.nat_pool6 = m.pool6;
    restart(o);
    PeerConfig good = peer({host(RTE_IPV4(100, 64, 1, 1))});
    ASSERT_TRUE(wg_->set_source_peers("file", {good}).ok());
    const auto with_endpoint = [&](const char* addr) {
      PeerConfig pc = peer({host(RTE_IPV4(100, 64, 1, 2))});
      pc.has_endpoint = true;
      pc.endpoint_is_ipv6 = true;
      pc.endpoint_ip6 = *parse_ipv6(addr);
      pc.endpoint_port = 51820;
      return pc;
    };
    for (const char* addr : m.inside) {
      const Status s = wg_->set_source_peers("file", {good, with_endpoint(addr)});
      ASSERT_FALSE(s.ok()) << m.mode << " " << addr;
      EXPECT_NE(s.error().find("in the gateway's own NAT pool"), std::string::npos) << s.error();
      EXPECT_EQ(wg_->source_peers("file").size(), 1u);  // the running set unchanged
    }
    for (const char* addr : m.outside) {
      const Status s = wg_->set_source_peers("file", {good, with_endpoint(addr)});
      EXPECT_TRUE(s.ok()) << m.mode << " " << addr << ": " << s.error();
    }
  }
}

TEST_F(WireGuardControl, RetiredKeypairKeepsKeysUntilGracePeriodThenZeroedAndFreed) {
  wg::Key peer_private{};
  ASSERT_TRUE(
      wg_->set_source_peers("file", {peer({host(RTE_IPV4(100, 64, 0, 10))}, &peer_private)}).ok());
  wg_->handle_punt(initiation(peer_private), 1'000'000'000);
  ASSERT_EQ(wg_->stats().responses_sent.load(), 1u) << "handshake not answered";
  // The responder's keypair, the only one in the table.
  const void* key = nullptr;
  void* data = nullptr;
  uint32_t next = 0;
  ASSERT_GE(rte_hash_iterate(ctx_->keypairs, &key, &data, &next), 0);
  auto* kp = static_cast<Keypair*>(data);
  uint8_t keys[2 * wg::kKeyLen];
  std::memcpy(keys, kp->send_key, wg::kKeyLen);
  std::memcpy(keys + wg::kKeyLen, kp->recv_key, wg::kKeyLen);
  ASSERT_FALSE(std::all_of(std::begin(keys), std::end(keys), [](uint8_t b) { return b == 0; }));

  // A worker is mid-burst (online, not yet quiescent) when the peer is removed.
  ASSERT_EQ(rte_rcu_qsbr_thread_register(ctx_->rcu, 0), 0);
  rte_rcu_qsbr_thread_online(ctx_->rcu, 0);
  const size_t allocations = heap_allocations();
  ASSERT_TRUE(wg_->set_source_peers("file", {}).ok());
  for (uint64_t t = 2; t < 5; ++t) wg_->tick(t * 1'000'000'000);
  // It may still be reading the keypair: keys intact, memory not freed.
  EXPECT_EQ(std::memcmp(kp->send_key, keys, wg::kKeyLen), 0);
  EXPECT_EQ(std::memcmp(kp->recv_key, keys + wg::kKeyLen, wg::kKeyLen), 0);
  EXPECT_EQ(heap_allocations(), allocations);

  // Once it has passed a quiescent state the keypair is zeroed and freed.
  rte_rcu_qsbr_quiescent(ctx_->rcu, 0);
  wg_->tick(6'000'000'000);
  EXPECT_EQ(heap_allocations(), allocations - 1);
  const volatile uint8_t* mem = kp->send_key;
  bool zero = true;
  for (size_t i = 0; i < 2 * wg::kKeyLen; ++i) zero = zero && mem[i] == 0;
  EXPECT_TRUE(zero) << "key bytes left in freed memory";
  rte_rcu_qsbr_thread_offline(ctx_->rcu, 0);
  rte_rcu_qsbr_thread_unregister(ctx_->rcu, 0);
}

TEST_F(WireGuardControl, IPv6AllowedIPsArePublishedAsOneTableRoutingToThePeersSlots) {
  EXPECT_EQ(ctx_->allowed_ips6.load(), nullptr);  // no peer with IPv6: no table
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128"), prefix6("2001:db8:1::/48")};
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 1, 2))});
  b.allowed_ips6 = {prefix6("fd7a:115c:a1e0::2/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  ASSERT_NE(ctx_->allowed_ips6.load(), nullptr);
  const int64_t slot_a = route(RTE_IPV4(100, 64, 1, 1)), slot_b = route(RTE_IPV4(100, 64, 1, 2));
  ASSERT_GE(slot_a, 0);
  ASSERT_GE(slot_b, 0);
  EXPECT_EQ(route6("fd7a:115c:a1e0::1"), slot_a);
  EXPECT_EQ(route6("2001:db8:1:ffff::9"), slot_a);
  EXPECT_EQ(route6("fd7a:115c:a1e0::2"), slot_b);
  EXPECT_EQ(route6("fd7a:115c:a1e0::3"), -1);
  EXPECT_EQ(route6("2001:db8:2::1"), -1);
  EXPECT_EQ(wg_->stats().allowed_ips6_routes.load(), 3u);
}

TEST_F(WireGuardControl, ARemovedPeersIPv6PrefixIsGoneFromTheNewlyPublishedTable) {
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128")};
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 1, 2))});
  b.allowed_ips6 = {prefix6("fd7a:115c:a1e0::2/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  const rte_lpm6* before = ctx_->allowed_ips6.load();
  ASSERT_TRUE(wg_->set_source_peers("file", {b}).ok());
  EXPECT_NE(ctx_->allowed_ips6.load(), before);  // a new table, not an edited one
  EXPECT_EQ(route6("fd7a:115c:a1e0::1"), -1);
  EXPECT_EQ(route6("fd7a:115c:a1e0::2"), route(RTE_IPV4(100, 64, 1, 2)));
  EXPECT_EQ(wg_->stats().allowed_ips6_routes.load(), 1u);
  // The last IPv6 prefix gone: no table at all.
  b.allowed_ips6.clear();
  ASSERT_TRUE(wg_->set_source_peers("file", {b}).ok());
  EXPECT_EQ(ctx_->allowed_ips6.load(), nullptr);
  EXPECT_EQ(wg_->stats().allowed_ips6_routes.load(), 0u);
}

// Stateful NAT66: an IPv6 prefix that leaves its peer (removed, or moved to another) takes its
// NAT66 state along, as an IPv4 prefix does; without NAT66 no such command is sent.
TEST_F(WireGuardControl, AnIPv6PrefixLeavingItsPeerRemovesItsNat66StateOnEveryWorker) {
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128")};
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 1, 2))});
  b.allowed_ips6 = {prefix6("fd7a:115c:a1e0::2/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  ASSERT_TRUE(wg_->set_source_peers("file", {b}).ok());
  for (const dp::WorkerCommand& c : commands())
    EXPECT_EQ(c.type, dp::WorkerCommandType::kNatRemoveSubscribers);  // NAT66 off: none

  ctx_->nat66 = &nat_config_;
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_TRUE(commands().empty());
  b.allowed_ips6.push_back(prefix6("fd7a:115c:a1e0::1/128"));  // moves from A to B
  a.allowed_ips6.clear();
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  std::vector<dp::WorkerCommand> got = commands();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, dp::WorkerCommandType::kNat66RemoveSubscribers);
  EXPECT_EQ(got[0].len, 128);
  const Ipv6Prefix moved = prefix6("fd7a:115c:a1e0::1/128");
  EXPECT_EQ(std::memcmp(got[0].prefix6, moved.addr.data(), 16), 0);
  EXPECT_EQ(route6("fd7a:115c:a1e0::1"), -1);  // until the worker has removed A's state
  wg_->tick(2'000'000'000);
  EXPECT_EQ(route6("fd7a:115c:a1e0::1"), route(RTE_IPV4(100, 64, 1, 2)));
  // Peer B removed: its IPv4 and both IPv6 prefixes.
  ASSERT_TRUE(wg_->set_source_peers("file", {a}).ok());
  got = commands();
  size_t v4 = 0, v6 = 0;
  for (const dp::WorkerCommand& c : got)
    (c.type == dp::WorkerCommandType::kNat66RemoveSubscribers ? v6 : v4)++;
  EXPECT_EQ(v4, 1u);
  EXPECT_EQ(v6, 2u);
  ctx_->nat66 = nullptr;
}

// Stateful NAT66 orders a moving prefix's state removal against its new route as NAT44 does
// (APrefixIsRoutedToItsNewOwnerOnlyOnceEveryWorkerCarriedOutItsNatRemoval): while some worker
// has not carried out the removal, the prefix is absent from the published IPv6 table (its
// packets are dropped as from an unknown source), so the new owner's sessions are never
// deleted by the removal nor inherit the old owner's; once every worker has, one new table
// routes it.
TEST_F(WireGuardControl, AnIPv6PrefixIsPublishedOnlyOnceEveryWorkerCarriedOutItsNat66Removal) {
  ctx_->nat66 = &nat_config_;
  std::vector<Ipv6Prefix> moving;
  for (const char* p : {"fd7a:115c:a1e0::1/128", "fd7a:115c:a1e0::2/128", "fd7a:115c:a1e0::3/128",
                        "2001:db8:7::/48", "2001:db8:8:1::/64"})
    moving.push_back(prefix6(p));
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = moving;
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 2, 1))});
  b.allowed_ips6 = {prefix6("fd7a:115c:a1e0::99/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  const int64_t slot_a = route(RTE_IPV4(100, 64, 1, 1));
  const int64_t slot_b = route(RTE_IPV4(100, 64, 2, 1));
  ASSERT_GE(slot_a, 0);
  ASSERT_GE(slot_b, 0);
  const auto address_in = [](const Ipv6Prefix& p) {
    return format_ipv6(p.addr.data());  // the prefix's first address
  };
  for (const Ipv6Prefix& p : moving) ASSERT_EQ(route6(address_in(p).c_str()), slot_a);
  EXPECT_TRUE(commands().empty());
  auto routed_to_b = [&] {
    size_t n = 0;
    for (const Ipv6Prefix& p : moving) {
      const int64_t r = route6(address_in(p).c_str());
      EXPECT_TRUE(r == -1 || r == slot_b) << address_in(p) << " still routed to A";
      n += r == slot_b;
    }
    return n;
  };

  // All five move to B: five NAT66 removals for a ring with room for three, none carried out:
  // none of them is in the published table; B's own route is.
  a.allowed_ips6.clear();
  b.allowed_ips6.insert(b.allowed_ips6.end(), moving.begin(), moving.end());
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  ASSERT_EQ(wg_->stats().worker_commands_waiting.load(), 2u);
  EXPECT_EQ(routed_to_b(), 0u) << "published before their NAT66 removal was carried out";
  EXPECT_EQ(route6("fd7a:115c:a1e0::99"), slot_b);
  EXPECT_EQ(wg_->stats().allowed_ips6_routes.load(), 6u);  // the held ones are B's all the same

  // The worker takes three from its ring without carrying them out yet; B loses them and gets
  // them back meanwhile: no removal is repeated and none is published.
  std::vector<dp::WorkerCommand> got = commands(/*done=*/false);
  ASSERT_EQ(got.size(), 3u);
  wg_->collect_done_commands();
  PeerConfig b_without = b;
  b_without.allowed_ips6 = {prefix6("fd7a:115c:a1e0::99/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b_without}).ok());
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_EQ(wg_->stats().worker_commands_waiting.load(), 0u);  // moved into the room made
  EXPECT_EQ(rte_ring_count(ctx_->workers[0].commands), 2u) << "a removal was repeated";
  EXPECT_EQ(routed_to_b(), 0u);
  // A tick in which nothing was carried out publishes nothing.
  const rte_lpm6* held = ctx_->allowed_ips6.load();
  wg_->tick(2'000'000'000);
  EXPECT_EQ(ctx_->allowed_ips6.load(), held);

  // The worker carries out the three: one table with them at the next tick, however many were
  // done since the last one.
  ctx_->workers[0].commands_done += 3;
  wg_->collect_done_commands();
  EXPECT_EQ(routed_to_b(), 0u) << "published between ticks";
  wg_->tick(3'000'000'000);
  EXPECT_EQ(routed_to_b(), 3u);
  const rte_lpm6* three = ctx_->allowed_ips6.load();
  EXPECT_NE(three, held);
  for (const dp::WorkerCommand& c : commands()) got.push_back(c);
  wg_->tick(4'000'000'000);
  EXPECT_EQ(got.size(), 5u);
  for (const dp::WorkerCommand& c : got)
    EXPECT_EQ(c.type, dp::WorkerCommandType::kNat66RemoveSubscribers);
  EXPECT_EQ(routed_to_b(), 5u);
  EXPECT_EQ(route6("fd7a:115c:a1e0::99"), slot_b);
  // After the routes came, no removal is left to delete the new owner's sessions, and nothing
  // more to publish.
  const rte_lpm6* all = ctx_->allowed_ips6.load();
  for (uint64_t t = 5; t < 8; ++t) wg_->tick(t * 1'000'000'000);
  EXPECT_TRUE(commands().empty());
  EXPECT_EQ(ctx_->allowed_ips6.load(), all);
  EXPECT_EQ(wg_->stats().worker_commands_dropped.load(), 0u);
  ctx_->nat66 = nullptr;
}

TEST_F(WireGuardControl, AnIPv6PrefixMovedBetweenPeersInOneUpdatePointsAtTheNewOwner) {
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128"), prefix6("2001:db8:7::/48")};
  PeerConfig b = peer({host(RTE_IPV4(100, 64, 1, 2))});
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_EQ(route6("2001:db8:7::1"), route(RTE_IPV4(100, 64, 1, 1)));
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128")};
  b.allowed_ips6 = {prefix6("2001:db8:7::/48")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a, b}).ok());
  EXPECT_EQ(route6("2001:db8:7::1"), route(RTE_IPV4(100, 64, 1, 2)));
  EXPECT_EQ(route6("fd7a:115c:a1e0::1"), route(RTE_IPV4(100, 64, 1, 1)));
  // To a peer that is new in the same update, whose old owner leaves.
  PeerConfig c = peer({host(RTE_IPV4(100, 64, 1, 3))});
  c.allowed_ips6 = b.allowed_ips6;
  ASSERT_TRUE(wg_->set_source_peers("file", {a, c}).ok());
  EXPECT_EQ(route6("2001:db8:7::1"), route(RTE_IPV4(100, 64, 1, 3)));
  EXPECT_GE(route(RTE_IPV4(100, 64, 1, 3)), 0);
}

TEST_F(WireGuardControl, ARefusedUpdateLeavesThePublishedIPv6TableAsItWas) {
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a}).ok());
  const rte_lpm6* published = ctx_->allowed_ips6.load();
  ASSERT_NE(published, nullptr);
  // Another source claims the prefix: refused, nothing of it applies.
  PeerConfig thief = peer({host(RTE_IPV4(100, 64, 1, 9))});
  thief.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128"), prefix6("2001:db8:9::/48")};
  const Status clash = wg_->set_source_peers("admin", {thief});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.error().find("allowed IP fd7a:115c:a1e0::1/128 is given to two peers"),
            std::string::npos)
      << clash.error();
  EXPECT_EQ(ctx_->allowed_ips6.load(), published);
  EXPECT_EQ(route6("2001:db8:9::1"), -1);
  EXPECT_EQ(route(RTE_IPV4(100, 64, 1, 9)), -1);
  // More IPv6 prefixes than --max_peers=16 holds (16 * 4 + 64): refused whole as well.
  PeerConfig many = peer({host(RTE_IPV4(100, 64, 1, 10))});
  for (unsigned i = 0; i < 16 * 4 + 65; ++i) {
    Ipv6Prefix p = prefix6("2001:db8::/64");
    p.addr[6] = static_cast<uint8_t>(i >> 8);
    p.addr[7] = static_cast<uint8_t>(i);
    many.allowed_ips6.push_back(p);
  }
  const Status too_many = wg_->set_source_peers("admin", {many});
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().find("IPv6 allowed IPs"), std::string::npos) << too_many.error();
  EXPECT_EQ(ctx_->allowed_ips6.load(), published);
  EXPECT_EQ(route6("fd7a:115c:a1e0::1"), route(RTE_IPV4(100, 64, 1, 1)));
  // An update that leaves the IPv6 routes alone keeps the table too.
  ASSERT_TRUE(wg_->set_source_peers("admin", {peer({host(RTE_IPV4(100, 64, 1, 11))})}).ok());
  EXPECT_EQ(ctx_->allowed_ips6.load(), published);
}

TEST_F(WireGuardControl, NewPeersNeedingSlotsStillHeldForRemovedOnesAreRefusedUntilReleased) {
  std::vector<PeerConfig> first, second;
  for (unsigned i = 0; i < 16; ++i) {  // --max_peers=16
    first.push_back(peer({host(RTE_IPV4(100, 64, 4, i + 1))}));
    second.push_back(peer({host(RTE_IPV4(100, 64, 5, i + 1))}));
  }
  ASSERT_TRUE(wg_->set_source_peers("file", first).ok());
  // All new keys: each needs a slot, and the ones the old peers leave are free only after a
  // grace period. Refused whole, the running peers kept.
  const Status early = wg_->set_source_peers("file", second);
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.error().find("no free peer slot yet"), std::string::npos) << early.error();
  EXPECT_EQ(wg_->source_peers("file").size(), 16u);
  EXPECT_GE(route(RTE_IPV4(100, 64, 4, 1)), 0);
  // Half of them now: the old half's slots are held until the next tick releases them.
  ASSERT_TRUE(
      wg_->set_source_peers("file", std::vector<PeerConfig>(first.begin(), first.begin() + 8))
          .ok());
  wg_->tick(1'000'000'000);
  std::vector<PeerConfig> mixed(first.begin(), first.begin() + 8);
  mixed.insert(mixed.end(), second.begin(), second.begin() + 8);
  ASSERT_TRUE(wg_->set_source_peers("file", mixed).ok());
  EXPECT_GE(route(RTE_IPV4(100, 64, 5, 8)), 0);
}

// The published table against a naive longest-prefix match over the wanted routes, on random
// peer sets whose prefixes share leading bytes in every way (so tbl8 groups are shared and
// not), each set up to what --max_peers=16 allows.
TEST_F(WireGuardControl, PublishedIPv6TableMatchesANaiveLongestPrefixModel) {
  // NAT off: a re-added peer's IPv4 route, which names its slot here, is installed at once
  // instead of waiting for its NAT removal (there is no worker to take it).
  ctx_->nat = nullptr;
  std::mt19937 rng(6);
  const auto random_prefix = [&] {
    Ipv6Prefix p{{0x20, 0x01, 0x0d, static_cast<uint8_t>(0xb8 + rng() % 2)},
                 static_cast<uint8_t>(16 + rng() % 113)};
    for (unsigned b = 4; b < 16; ++b) p.addr[b] = static_cast<uint8_t>(rng() % 3 == 0 ? rng() : 0);
    for (unsigned b = 0; b < 16; ++b) {
      const unsigned keep = std::min(8u, p.len > b * 8 ? p.len - b * 8u : 0u);
      p.addr[b] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    }
    return p;
  };
  std::vector<PeerConfig> all;  // the same peers each round, so slots stay with them
  for (unsigned i = 0; i < 16; ++i) all.push_back(peer({host(RTE_IPV4(100, 64, 2, i + 1))}));
  for (int round = 0; round < 12; ++round) {
    std::vector<PeerConfig> peers;
    std::set<Ipv6Prefix> taken;
    const unsigned n_peers = 1 + rng() % 16, per_peer = 1 + rng() % 8;
    for (unsigned i = 0; i < n_peers; ++i) {
      PeerConfig pc = all[i];
      for (unsigned j = 0; j < per_peer; ++j)
        if (Ipv6Prefix p = random_prefix(); taken.insert(p).second) pc.allowed_ips6.push_back(p);
      peers.push_back(std::move(pc));
    }
    wg_->tick(uint64_t(round + 1) * 1'000'000'000);  // removed peers' slots free again
    const Status s = wg_->set_source_peers("file", peers);
    ASSERT_TRUE(s.ok()) << "round " << round << ": " << s.error();
    EXPECT_EQ(wg_->stats().allowed_ips6_routes.load(), taken.size());
    const rte_lpm6* table = ctx_->allowed_ips6.load();
    ASSERT_NE(table, nullptr);
    for (int probe = 0; probe < 2000; ++probe) {
      // Half the probes inside a wanted prefix, the rest near them.
      const PeerConfig& owner = peers[rng() % peers.size()];
      std::array<uint8_t, 16> addr{};
      if (!owner.allowed_ips6.empty())
        addr = owner.allowed_ips6[rng() % owner.allowed_ips6.size()].addr;
      for (unsigned b = static_cast<unsigned>(rng() % 17); b < 16; ++b)
        if (probe % 2 == 1 || rng() % 2) addr[b] = static_cast<uint8_t>(rng());
      int64_t want = -1;
      int best = -1;
      for (const PeerConfig& pc : peers)
        for (const Ipv6Prefix& p : pc.allowed_ips6)
          if (p.len > best && ipv6_prefix_match(addr.data(), p.addr.data(), p.len)) {
            best = p.len;
            want = route(pc.allowed_ips[0].addr);
          }
      uint32_t slot = 0;
      const int64_t got = rte_lpm6_lookup(table, addr.data(), &slot) == 0 ? int64_t{slot} : -1;
      ASSERT_EQ(got, want) << "round " << round << ", " << format_ipv6(addr.data());
    }
  }
}

TEST_F(WireGuardControl, AReplacedIPv6TableIsFreedOnlyAfterEveryWorkerHasLetItGo) {
  PeerConfig a = peer({host(RTE_IPV4(100, 64, 1, 1))});
  a.allowed_ips6 = {prefix6("fd7a:115c:a1e0::1/128")};
  ASSERT_TRUE(wg_->set_source_peers("file", {a}).ok());
  // A worker is mid-burst, perhaps reading the published table, when it is replaced.
  ASSERT_EQ(rte_rcu_qsbr_thread_register(ctx_->rcu, 0), 0);
  rte_rcu_qsbr_thread_online(ctx_->rcu, 0);
  const size_t allocations = heap_allocations();
  a.allowed_ips6.push_back(prefix6("fd7a:115c:a1e0::2/128"));
  ASSERT_TRUE(wg_->set_source_peers("file", {a}).ok());
  for (uint64_t t = 2; t < 5; ++t) wg_->tick(t * 1'000'000'000);
  const size_t with_both = heap_allocations();
  EXPECT_GT(with_both, allocations);  // the new table's memory, the old one's still held
  rte_rcu_qsbr_quiescent(ctx_->rcu, 0);
  wg_->tick(6'000'000'000);
  EXPECT_LT(heap_allocations(), with_both);  // the old table freed
  EXPECT_EQ(route6("fd7a:115c:a1e0::2"), route(RTE_IPV4(100, 64, 1, 1)));
  rte_rcu_qsbr_thread_offline(ctx_->rcu, 0);
  rte_rcu_qsbr_thread_unregister(ctx_->rcu, 0);
}

}  // namespace
}  // namespace exitgw
