// Drops only a fault reaches, through the real worker stages (DataplaneBed: NAT, policy, the
// WireGuard tables) on ring ports the test reads back: a peer without an endpoint, a send
// counter at REJECT_AFTER_MESSAGES, a keypair past REJECT_AFTER_TIME, no headroom for the tunnel
// header, a full hand-off ring, a full TX ring, and a next hop that never answers ARP. Each
// asserts its reason counter rose by exactly the packets it dropped and that none of them left.
// The same bed carries the IPv6 exit chain's tests (Ipv6Exit: inner IPv6 through NPTv6 and
// back, ICMPv6 errors both ways, and its drops).
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_lpm6.h>
#include <rte_udp.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "common/nptv6.h"
#include "control/net_parse.h"
#include "control/wg/crypto.h"
#include "dataplane/checksum.h"
#include "dataplane/graph.h"
#include "tests/support/dataplane_bed.h"
#include "tests/support/eal_environment.h"
#include "tests/support/ipv6_exit_packets.h"

namespace exitgw {
namespace {

EXITGW_EAL_ENVIRONMENT("worker_drops_test", 512);

using Bed = testing::DataplaneBed;
using dp::DropReason;
using Bytes = std::vector<uint8_t>;

constexpr uint8_t kTunnel = 0, kInternet = 1, kException = 2;
constexpr unsigned kPorts = 3;
// The gateway's own tailnet address (outside the bed's peers, 100.64.0.0 + i) and the
// exception path's burst, kept small so the test reaches the rate limit.
constexpr uint32_t kOwnTailnet = RTE_IPV4(100, 100, 0, 1);
constexpr unsigned kExceptionBurst = 8;
// The DERP relay's two ends on the exception port (--relay_net 169.254.77.0/30).
constexpr uint32_t kRelayHost = RTE_IPV4(169, 254, 77, 1);
constexpr uint32_t kRelayGateway = RTE_IPV4(169, 254, 77, 2);
constexpr uint32_t kRemote = RTE_IPV4(93, 184, 216, 34);
constexpr uint16_t kRemotePort = 7000;
// The internet port's worker TX ring holds this many frames; the tunnel's are larger.
constexpr unsigned kInternetTxRing = 16;

// Each port: one RX ring (unused: the test feeds bursts itself) and TX rings for the worker
// (queue 0) and control (queue 1), which hold every frame the gateway sent.
struct RingPort {
  rte_ring* rx = nullptr;
  rte_ring* tx[2] = {};
};

Bytes udp4(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b(sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + payload.size(), 0);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(b.data());
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(b.size()));
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(src);
  ip->dst_addr = rte_cpu_to_be_32(dst);
  udp->src_port = rte_cpu_to_be_16(sport);
  udp->dst_port = rte_cpu_to_be_16(dport);
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(b.size() - sizeof(rte_ipv4_hdr)));
  std::memcpy(udp + 1, payload.data(), payload.size());
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  return b;
}

class WorkerDrops : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (bed_ != nullptr) return;  // one bed for this suite and those derived from it
    std::array<std::string, kPorts> names;
    for (unsigned p = 0; p < kPorts; ++p) {
      const std::string n = "drops_port" + std::to_string(p);
      ports_[p].rx =
          rte_ring_create((n + "_rx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      for (unsigned q = 0; q < 2; ++q) {
        const unsigned size = (p == kInternet && q == 0) ? kInternetTxRing : 1024;
        ports_[p].tx[q] =
            rte_ring_create((n + "_tx" + std::to_string(q)).c_str(), size, SOCKET_ID_ANY,
                            RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
      }
      const int id =
          rte_eth_from_rings(n.c_str(), &ports_[p].rx, 1, ports_[p].tx, 2, rte_socket_id());
      ASSERT_GE(id, 0);
      char name[RTE_ETH_NAME_MAX_LEN];
      ASSERT_EQ(rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), name), 0);
      names[p] = name;
    }
    bed_ = new Bed;
    bed_->ctx.exception_rate_per_sec = 1;
    bed_->ctx.exception_burst = kExceptionBurst;
    bed_->ctx.relay_host = rte_cpu_to_be_32(kRelayHost);
    bed_->ctx.relay_gateway = rte_cpu_to_be_32(kRelayGateway);
    testing::BedOptions o;
    o.peers = 16;
    o.nat = true;
    o.ports = {names[kTunnel], names[kInternet]};
    o.exception_port = names[kException];
    const Status s = bed_->init(o);
    ASSERT_TRUE(s.ok()) << s.error();
  }

  void SetUp() override {
    ASSERT_NE(bed_, nullptr);
    ASSERT_NE(bed_->worker, nullptr);
    drain_all();
  }
  void TearDown() override { drain_all(); }

  static dp::DataplaneContext& ctx() { return bed_->ctx; }

  // Every frame the gateway sent on (port, queue) since the last call, and control's rings.
  std::vector<Bytes> sent(uint8_t port, unsigned queue = 0) {
    std::vector<Bytes> out;
    rte_mbuf* m;
    while (rte_ring_dequeue(ports_[port].tx[queue], reinterpret_cast<void**>(&m)) == 0) {
      const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
      out.emplace_back(d, d + rte_pktmbuf_data_len(m));
      rte_pktmbuf_free(m);
    }
    return out;
  }
  void drain_all() {
    for (uint8_t p = 0; p < kPorts; ++p)
      for (unsigned q = 0; q < 2; ++q) sent(p, q);
    bed_->drain_control();
  }

  // Drops under `r`: every port, the worker's row and control's.
  static uint64_t drops(DropReason r) {
    uint64_t n = 0;
    for (unsigned p = 0; p < ctx().n_ports; ++p) {
      n += ctx().workers[0].counters.drops[p][static_cast<size_t>(r)].get();
      n += ctx().control_counters.drops[p][static_cast<size_t>(r)].get();
    }
    return n;
  }

  // Every reason with drops, for failure messages.
  static std::string nonzero_drops() {
    std::string out;
    for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); ++r)
      if (const uint64_t n = drops(static_cast<DropReason>(r)))
        out += std::string(dp::kDropReasonNames[r]) + "=" + std::to_string(n) + " ";
    return out;
  }

  static rte_mbuf* mbuf(const Bytes& frame, uint16_t headroom = RTE_PKTMBUF_HEADROOM) {
    rte_mbuf* m = rte_pktmbuf_alloc(bed_->pool);
    EXPECT_NE(m, nullptr);
    m->data_off = headroom;
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    return m;
  }

  static Bytes ether(uint8_t port, const Bytes& ip) {
    Bytes f(sizeof(rte_ether_hdr), 0);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(f.data());
    eth->dst_addr = ctx().ports[port].mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x01}};
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    f.insert(f.end(), ip.begin(), ip.end());
    return f;
  }

  // Peer `peer`'s inner packet, sealed with `kp`'s receive key as a transport message from the
  // peer's endpoint, framed for the tunnel port.
  Bytes sealed(uint32_t peer, const Bytes& inner, Keypair* kp = nullptr) {
    if (kp == nullptr) kp = bed_->keypairs[peer];
    const Bytes msg = testing::transport_message(*kp, next_counter_[kp]++, inner);
    return ether(kTunnel, udp4(Bed::endpoint_addr(peer), Bed::kTunnelIp,
                               static_cast<uint16_t>(30000 + peer), Bed::kWgPort, msg));
  }
  Bytes from_peer(uint32_t peer, uint16_t sport, Keypair* kp = nullptr) {
    return sealed(peer, udp4(Bed::peer_addr(peer), kRemote, sport, kRemotePort, Bytes(20, 'o')),
                  kp);
  }

  static void run(uint8_t port, std::vector<rte_mbuf*> pkts) {
    bed_->worker->process_burst(port, pkts.data(), static_cast<uint16_t>(pkts.size()));
    bed_->worker->flush();
  }

  // Sends one packet from `peer` and returns the public endpoint NAT gave it (network order).
  std::pair<uint32_t, uint16_t> mapping(uint32_t peer, uint16_t sport = 40000) {
    run(kTunnel, {mbuf(from_peer(peer, sport))});
    const auto out = sent(kInternet);
    EXPECT_EQ(out.size(), 1u) << "the peer's packet did not leave";
    if (out.size() != 1) return {0, 0};
    // The frame's IPv4 header sits at offset 14 of the byte vector: copied, not cast, to read.
    rte_ipv4_hdr ip;
    rte_udp_hdr udp;
    std::memcpy(&ip, out[0].data() + sizeof(rte_ether_hdr), sizeof(ip));
    std::memcpy(&udp, out[0].data() + sizeof(rte_ether_hdr) + sizeof(ip), sizeof(udp));
    return {uint32_t{ip.src_addr}, uint16_t{udp.src_port}};
  }
  // The remote's reply to that public endpoint, framed for the internet port.
  static Bytes reply(std::pair<uint32_t, uint16_t> pub) {
    return ether(kInternet, udp4(kRemote, rte_be_to_cpu_32(pub.first), kRemotePort,
                                 rte_be_to_cpu_16(pub.second), Bytes(24, 'r')));
  }

  // Runs `burst` on the tunnel port: 3 * kExceptionBurst packets for the node's own address,
  // then `exit` others for the internet. The exception rate lets at most its burst through to
  // the host and counts the rest; the others leave.
  void expect_flood_rate_limited(std::vector<rte_mbuf*> burst, size_t exit) {
    const uint64_t limited_before = drops(DropReason::kExceptionRateLimited);
    const uint64_t to_host_before = ctx().workers[0].counters.exception_to_host.get();
    run(kTunnel, std::move(burst));
    const uint64_t to_host = ctx().workers[0].counters.exception_to_host.get() - to_host_before;
    const uint64_t limited = drops(DropReason::kExceptionRateLimited) - limited_before;
    EXPECT_LE(to_host, kExceptionBurst);  // 1 token per second after the burst
    EXPECT_EQ(to_host + limited, 3u * kExceptionBurst);
    EXPECT_EQ(sent(kException).size(), to_host);
    EXPECT_EQ(sent(kInternet).size(), exit);
  }

  static std::vector<dp::Event> events() {
    std::vector<dp::Event> out;
    dp::Event e;
    while (rte_ring_dequeue_elem(ctx().workers[0].events, &e, sizeof(e)) == 0) out.push_back(e);
    return out;
  }
  static bool handshake_wanted(const std::vector<dp::Event>& ev, uint32_t slot) {
    for (const dp::Event& e : ev)
      if (e.type == dp::EventType::kHandshakeWanted && e.value == slot) return true;
    return false;
  }

  static inline Bed* bed_ = nullptr;
  static inline RingPort ports_[kPorts];
  std::map<const Keypair*, uint64_t> next_counter_;
};

TEST_F(WorkerDrops, ReplyForPeerWithoutEndpointDroppedWgNoEndpoint) {
  const uint32_t peer = 1;
  const auto pub = mapping(peer);
  const uint64_t endpoint = ctx().peers[peer].endpoint.load();
  ctx().peers[peer].endpoint.store(0);
  const uint64_t before = drops(DropReason::kWgNoEndpoint);
  run(kInternet, {mbuf(reply(pub)), mbuf(reply(pub))});
  EXPECT_EQ(drops(DropReason::kWgNoEndpoint) - before, 2u);
  EXPECT_TRUE(sent(kTunnel).empty());
  // With its endpoint back the same reply is sealed and sent.
  ctx().peers[peer].endpoint.store(endpoint);
  run(kInternet, {mbuf(reply(pub))});
  EXPECT_EQ(sent(kTunnel).size(), 1u);
  EXPECT_EQ(drops(DropReason::kWgNoEndpoint) - before, 2u);
}

TEST_F(WorkerDrops, SendCounterAtRejectAfterMessagesDroppedWgCounterExhausted) {
  const uint32_t peer = 2;
  const auto pub = mapping(peer);
  // One counter value left: the first reply takes it, the second finds none.
  bed_->keypairs[peer]->send_counter.store(wg::kRejectAfterMessages - 1);
  events();
  const uint64_t before = drops(DropReason::kWgCounterExhausted);
  run(kInternet, {mbuf(reply(pub)), mbuf(reply(pub))});
  EXPECT_EQ(drops(DropReason::kWgCounterExhausted) - before, 1u);
  const auto out = sent(kTunnel);
  ASSERT_EQ(out.size(), 1u);
  const auto* hdr = reinterpret_cast<const wg::MessageTransportHeader*>(
      out[0].data() + sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr));
  EXPECT_EQ(hdr->counter, wg::kRejectAfterMessages - 1);
  EXPECT_TRUE(handshake_wanted(events(), peer)) << "no new session asked for";
}

TEST_F(WorkerDrops, KeypairPastRejectAfterTimeRefusedBothWays) {
  const uint32_t peer = 3;
  const auto pub = mapping(peer);
  // A second session for the peer that lives one second (REJECT_AFTER_TIME = 1 s).
  wg::SessionKeys keys;
  for (size_t i = 0; i < keys.send_key.size(); ++i) {
    keys.send_key[i] = uint8_t(i * 3 + 1);
    keys.recv_key[i] = uint8_t(i * 5 + 2);
  }
  keys.local_index = 0x7000;
  keys.remote_index = 0x7001;
  Keypair* kp = publish_keypair(ctx(), keys, peer, 0, 1);
  ASSERT_NE(kp, nullptr);
  Keypair* const steady = ctx().peers[peer].send_keypair.load();
  ctx().peers[peer].send_keypair.store(kp);
  // Within its life it works both ways.
  run(kTunnel, {mbuf(from_peer(peer, 40000, kp))});
  EXPECT_EQ(sent(kInternet).size(), 1u);
  run(kInternet, {mbuf(reply(pub))});
  EXPECT_EQ(sent(kTunnel).size(), 1u);

  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  events();
  const uint64_t expired = drops(DropReason::kWgKeypairExpired);
  const uint64_t no_keypair = drops(DropReason::kWgNoKeypair);
  run(kTunnel, {mbuf(from_peer(peer, 40000, kp)), mbuf(from_peer(peer, 40000, kp))});
  EXPECT_EQ(drops(DropReason::kWgKeypairExpired) - expired, 2u);
  EXPECT_TRUE(sent(kInternet).empty());
  run(kInternet, {mbuf(reply(pub))});
  EXPECT_EQ(drops(DropReason::kWgNoKeypair) - no_keypair, 1u);
  EXPECT_TRUE(sent(kTunnel).empty());
  EXPECT_TRUE(handshake_wanted(events(), peer)) << "no new session asked for";

  ctx().peers[peer].send_keypair.store(steady);
  rte_hash_del_key(ctx().keypairs, &kp->local_index);
  rte_rcu_qsbr_synchronize(ctx().rcu, RTE_QSBR_THRID_INVALID);
  rte_free(kp);
}

TEST_F(WorkerDrops, ReplyBeforeTheKeypairIsPublishedWaitsForControlThenSealed) {
  // A responder's keypair is confirmed by the peer's first data packet on one worker; the
  // reply can reach another worker before control has published that keypair. The first
  // such packet goes to control (which hands it back once the keypair is there); the rest,
  // with the handshake now wanted, are dropped as wg_no_keypair.
  const uint32_t peer = 8;
  const auto pub = mapping(peer);
  events();
  Keypair* const steady = ctx().peers[peer].send_keypair.load();
  ctx().peers[peer].send_keypair.store(nullptr);
  const uint64_t before = drops(DropReason::kWgNoKeypair);
  run(kInternet, {mbuf(reply(pub)), mbuf(reply(pub))});
  EXPECT_EQ(drops(DropReason::kWgNoKeypair) - before, 1u);
  EXPECT_TRUE(sent(kTunnel).empty());
  EXPECT_TRUE(handshake_wanted(events(), peer)) << "no new session asked for";
  rte_mbuf* punted = nullptr;
  ASSERT_EQ(rte_ring_dequeue(ctx().workers[0].punt, reinterpret_cast<void**>(&punted)), 0)
      << "the first reply was not given to control";
  ASSERT_EQ(rte_ring_count(ctx().workers[0].punt), 0u);
  EXPECT_EQ(dp::meta(punted)->punt, dp::PuntReason::kNeedKeypair);
  EXPECT_EQ(dp::meta(punted)->peer_slot, peer);

  // Control hands it back once the keypair is published: sealed with it, sent once.
  ctx().peers[peer].send_keypair.store(steady);
  dp::meta(punted)->flags |= dp::kMetaSeal;
  dp::receive_handoff(*bed_->worker, &punted, 1);
  bed_->worker->flush();
  const auto out = sent(kTunnel);
  ASSERT_EQ(out.size(), 1u);
  const auto* hdr = reinterpret_cast<const wg::MessageTransportHeader*>(
      out[0].data() + sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr));
  EXPECT_EQ(hdr->receiver_index, steady->remote_index);
  EXPECT_EQ(drops(DropReason::kWgNoKeypair) - before, 1u);
  ctx().peers[peer].handshake_wanted.store(0);
}

TEST_F(WorkerDrops, PacketWithoutHeadroomForTheTunnelHeaderDroppedNoMbuf) {
  const uint32_t peer = 4;
  const auto pub = mapping(peer);
  const uint64_t before = drops(DropReason::kNoMbuf);
  // Received with no headroom: the outer IPv4/UDP/WireGuard headers (44 bytes) do not fit in
  // front of it once its Ethernet header (14) is stripped.
  run(kInternet, {mbuf(reply(pub), 0)});
  EXPECT_EQ(drops(DropReason::kNoMbuf) - before, 1u);
  EXPECT_TRUE(sent(kTunnel).empty());
  run(kInternet, {mbuf(reply(pub))});
  EXPECT_EQ(sent(kTunnel).size(), 1u);
  EXPECT_EQ(drops(DropReason::kNoMbuf) - before, 1u);
}

TEST_F(WorkerDrops, PeerOwnedByAnotherWorkerWithFullHandoffRingDroppedHandoffRingFull) {
  const uint32_t peer = 5;
  rte_ring* ring = rte_ring_create("drops_handoff", 4, SOCKET_ID_ANY, RING_F_SC_DEQ);
  ASSERT_NE(ring, nullptr);
  static int filler[3];
  for (int& f : filler) ASSERT_EQ(rte_ring_enqueue(ring, &f), 0);  // capacity 3: full
  // A second worker owns the peer's NAT state and its hand-off ring is full.
  ctx().n_workers = 2;
  ctx().workers[1].handoff = ring;
  ctx().peers[peer].nat_owner.store(1);
  const uint64_t before = drops(DropReason::kHandoffRingFull);
  run(kTunnel, {mbuf(from_peer(peer, 40000)), mbuf(from_peer(peer, 40001))});
  EXPECT_EQ(drops(DropReason::kHandoffRingFull) - before, 2u);
  EXPECT_TRUE(sent(kInternet).empty());
  EXPECT_EQ(rte_ring_count(ring), 3u);
  // With room, the same packet is handed off, not dropped.
  void* f = nullptr;
  ASSERT_EQ(rte_ring_dequeue(ring, &f), 0);
  run(kTunnel, {mbuf(from_peer(peer, 40002))});
  EXPECT_EQ(drops(DropReason::kHandoffRingFull) - before, 2u);
  ASSERT_EQ(rte_ring_count(ring), 3u);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(rte_ring_dequeue(ring, &f), 0);
    if (i == 2) rte_pktmbuf_free(static_cast<rte_mbuf*>(f));
  }
  ctx().n_workers = 1;
  ctx().workers[1].handoff = nullptr;
  ctx().peers[peer].nat_owner.store(PeerRuntime::kNoOwner);
  rte_ring_free(ring);
}

TEST_F(WorkerDrops, BurstBeyondTheTxRingDroppedTxQueueFull) {
  const uint32_t peer = 6;
  const unsigned room = rte_ring_free_count(ports_[kInternet].tx[0]);
  ASSERT_EQ(room, kInternetTxRing);
  const unsigned n = room + 5;
  std::vector<rte_mbuf*> burst;
  for (unsigned i = 0; i < n; ++i)
    burst.push_back(mbuf(from_peer(peer, static_cast<uint16_t>(41000 + i))));
  const uint64_t before = drops(DropReason::kTxQueueFull);
  const uint64_t tx_before = ctx().workers[0].counters.port[kInternet].tx_packets.get();
  run(kTunnel, burst);
  EXPECT_EQ(drops(DropReason::kTxQueueFull) - before, 5u);
  EXPECT_EQ(ctx().workers[0].counters.port[kInternet].tx_packets.get() - tx_before, room);
  EXPECT_EQ(sent(kInternet).size(), room);
}

TEST_F(WorkerDrops, NextHopThatNeverAnswersArpDroppedNeighborUnresolved) {
  const uint32_t peer = 7;
  const auto pub = mapping(peer);
  // The peer roamed to an endpoint on the tunnel's own link that nobody answers ARP for.
  constexpr uint32_t kSilent = RTE_IPV4(10, 77, 0, 50);
  ctx().peers[peer].endpoint.store(
      pack_endpoint(rte_cpu_to_be_32(kSilent), rte_cpu_to_be_16(40000)));
  run(kInternet, {mbuf(reply(pub))});
  EXPECT_TRUE(sent(kTunnel).empty());
  rte_mbuf* punted = nullptr;
  ASSERT_EQ(rte_ring_dequeue(ctx().workers[0].punt, reinterpret_cast<void**>(&punted)), 0)
      << "the sealed reply was not punted for resolution";
  ASSERT_EQ(rte_ring_count(ctx().workers[0].punt), 0u);

  // Control: one ARP request per try (NeighborOptions: 3 tries 1 s apart), then the drop.
  const uint64_t before = drops(DropReason::kNeighborUnresolved);
  const uint64_t table_before = bed_->neighbors->unresolved_drops();
  uint64_t now_ms = 1'000'000;
  bed_->neighbors->resolve(punted, now_ms);
  for (int i = 0; i < 3; ++i) {
    now_ms += 1000;
    bed_->neighbors->tick(now_ms);
  }
  EXPECT_EQ(drops(DropReason::kNeighborUnresolved) - before, 1u);
  EXPECT_EQ(bed_->neighbors->unresolved_drops() - table_before, 1u);
  // What went out on the tunnel: ARP requests for the endpoint, never the packet.
  const auto control_sent = sent(kTunnel, 1);
  EXPECT_EQ(control_sent.size(), 3u);
  for (const Bytes& f : control_sent) {
    const auto* eth = reinterpret_cast<const rte_ether_hdr*>(f.data());
    EXPECT_EQ(eth->ether_type, RTE_BE16(RTE_ETHER_TYPE_ARP));
  }
  EXPECT_TRUE(sent(kTunnel).empty());
  ctx().peers[peer].endpoint.store(
      pack_endpoint(rte_cpu_to_be_32(Bed::endpoint_addr(peer)), rte_cpu_to_be_16(30007)));
}

// ---- the exception path (dataplane/exception.cc) ----

Bytes with_proto(Bytes ip, uint8_t proto) {
  auto* h = reinterpret_cast<rte_ipv4_hdr*>(ip.data());
  h->next_proto_id = proto;
  h->hdr_checksum = 0;
  h->hdr_checksum = rte_ipv4_cksum(h);
  return ip;
}

TEST_F(WorkerDrops, PacketForTheOwnTailnetAddressGoesToTheHostAndTsmpIsConsumed) {
  ctx().tailnet_addrs[0].store(rte_cpu_to_be_32(kOwnTailnet));
  const uint32_t peer = 9;
  const Bytes dns = udp4(Bed::peer_addr(peer), kOwnTailnet, 41000, 5380, Bytes(30, 'q'));
  const Bytes tsmp = with_proto(udp4(Bed::peer_addr(peer), kOwnTailnet, 1, 2, Bytes(8, 't')), 99);
  const uint64_t tsmp_before = ctx().workers[0].counters.tsmp_consumed.get();
  run(kTunnel, {mbuf(sealed(peer, dns)), mbuf(sealed(peer, tsmp)), mbuf(from_peer(peer, 40000))});
  // The host gets the inner packet as it was sent (a TUN: no Ethernet header, TTL untouched).
  const auto host = sent(kException);
  ASSERT_EQ(host.size(), 1u);
  EXPECT_EQ(host[0], dns);
  EXPECT_EQ(ctx().workers[0].counters.tsmp_consumed.get() - tsmp_before, 1u);
  EXPECT_EQ(sent(kInternet).size(), 1u);  // the exit traffic beside it is untouched
  ctx().tailnet_addrs[0].store(0);
}

TEST_F(WorkerDrops, HostPacketIsSealedToThePeerThatOwnsItsDestination) {
  ctx().tailnet_addrs[0].store(rte_cpu_to_be_32(kOwnTailnet));
  const uint32_t peer = 10;
  const uint64_t from_before = ctx().workers[0].counters.exception_from_host.get();
  run(kException, {mbuf(udp4(kOwnTailnet, Bed::peer_addr(peer), 5380, 41000, Bytes(40, 'a')))});
  const auto out = sent(kTunnel);
  ASSERT_EQ(out.size(), 1u);
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(out[0].data() + sizeof(rte_ether_hdr));
  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
  EXPECT_EQ(rte_be_to_cpu_32(ip->dst_addr), Bed::endpoint_addr(peer));
  EXPECT_EQ(rte_be_to_cpu_16(udp->src_port), Bed::kWgPort);
  const auto* hdr = reinterpret_cast<const wg::MessageTransportHeader*>(udp + 1);
  EXPECT_EQ(hdr->type, static_cast<uint32_t>(wg::MessageType::kTransport));
  EXPECT_EQ(hdr->receiver_index, bed_->keypairs[peer]->remote_index);
  EXPECT_EQ(ctx().workers[0].counters.exception_from_host.get() - from_before, 1u);
  ctx().tailnet_addrs[0].store(0);
}

TEST_F(WorkerDrops, BadHostPacketsDroppedEachUnderItsReason) {
  ctx().tailnet_addrs[0].store(rte_cpu_to_be_32(kOwnTailnet));
  const uint32_t peer = 11;
  const Bytes good = udp4(kOwnTailnet, Bed::peer_addr(peer), 5380, 41000, Bytes(40, 'a'));
  Bytes v5 = good;  // neither IPv4 nor IPv6
  v5[0] = 0x55;
  Bytes truncated = good;
  truncated.resize(12);
  Bytes short_total = good;  // total length beyond what arrived
  short_total[3] = static_cast<uint8_t>(short_total[3] + 8);
  const Bytes spoofed = udp4(Bed::peer_addr(6), Bed::peer_addr(peer), 1, 2, Bytes(10, 's'));
  const Bytes big =
      udp4(kOwnTailnet, Bed::peer_addr(peer), 5380, 41000, Bytes(ctx().tunnel_mtu, 'b'));
  const Bytes nobody = udp4(kOwnTailnet, RTE_IPV4(100, 99, 0, 1), 5380, 41000, Bytes(10, 'n'));
  const std::pair<Bytes, DropReason> cases[] = {
      {v5, DropReason::kExceptionNotIpv4},
      {truncated, DropReason::kExceptionMalformed},
      {short_total, DropReason::kExceptionMalformed},
      {spoofed, DropReason::kExceptionBadSource},
      {big, DropReason::kExceptionTooLarge},
      {nobody, DropReason::kWgNoPeerForDestination},
  };
  for (const auto& [packet, reason] : cases) {
    const uint64_t before = drops(reason);
    run(kException, {mbuf(packet)});
    EXPECT_EQ(drops(reason) - before, 1u) << dp::drop_reason_name(reason);
    EXPECT_TRUE(sent(kTunnel).empty()) << dp::drop_reason_name(reason);
  }
  ctx().tailnet_addrs[0].store(0);
}

TEST_F(WorkerDrops, FloodAtTheOwnTailnetAddressIsRateLimitedAndExitTrafficGoesOn) {
  ctx().tailnet_addrs[0].store(rte_cpu_to_be_32(kOwnTailnet));
  const uint32_t peer = 12;
  std::vector<rte_mbuf*> burst;
  for (unsigned i = 0; i < 3 * kExceptionBurst; ++i)
    burst.push_back(mbuf(sealed(peer, udp4(Bed::peer_addr(peer), kOwnTailnet,
                                           static_cast<uint16_t>(42000 + i), 80, Bytes(8, 'f')))));
  burst.push_back(mbuf(from_peer(peer, 40000)));
  expect_flood_rate_limited(burst, 1);
  ctx().tailnet_addrs[0].store(0);
}

TEST_F(WorkerDrops, PacketForTheOwnTailnetAddressWithoutAnExceptionPortDroppedPortOff) {
  ctx().tailnet_addrs[0].store(rte_cpu_to_be_32(kOwnTailnet));
  ctx().exception_port = dp::kNoPort;
  const uint64_t before = drops(DropReason::kExceptionPortOff);
  run(kTunnel, {mbuf(sealed(13, udp4(Bed::peer_addr(13), kOwnTailnet, 1, 53, Bytes(8, 'x'))))});
  EXPECT_EQ(drops(DropReason::kExceptionPortOff) - before, 1u);
  ctx().exception_port = kException;
  ctx().tailnet_addrs[0].store(0);
}

// The WireGuard message inside a frame `sealed` built, as the connector's relay socket sends
// it: UDP from relay_host:port to the gateway's relay address, on the TUN (no Ethernet).
Bytes relayed(const Bytes& frame, uint16_t sport, uint16_t dport = Bed::kWgPort) {
  const size_t off = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
  return udp4(kRelayHost, kRelayGateway, sport, dport, Bytes(frame.begin() + off, frame.end()));
}

TEST_F(WorkerDrops, PeerBehindTheDerpRelayIsForwardedAndAnsweredThroughTheTun) {
  const uint32_t peer = 14;
  const uint64_t endpoint = ctx().peers[peer].endpoint.load();
  const uint64_t from = ctx().workers[0].counters.relay_from_peers.get();
  const uint64_t to = ctx().workers[0].counters.relay_to_peers.get();
  // The peer's packet, relayed: it leaves for the internet, and the peer's endpoint is now
  // the relay socket (roaming).
  run(kException, {mbuf(relayed(from_peer(peer, 40000), 41641))});
  const auto out = sent(kInternet);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(ctx().peers[peer].endpoint.load(),
            pack_endpoint(rte_cpu_to_be_32(kRelayHost), rte_cpu_to_be_16(41641)));
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(out[0].data() + sizeof(rte_ether_hdr));
  const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
  // The reply is sealed to the relay socket and written to the TUN as a bare IPv4 datagram.
  run(kInternet, {mbuf(reply({ip->src_addr, udp->src_port}))});
  EXPECT_TRUE(sent(kTunnel).empty());
  const auto back = sent(kException);
  ASSERT_EQ(back.size(), 1u);
  const auto* rip = reinterpret_cast<const rte_ipv4_hdr*>(back[0].data());
  const auto* rudp = reinterpret_cast<const rte_udp_hdr*>(rip + 1);
  EXPECT_EQ(rip->src_addr, rte_cpu_to_be_32(kRelayGateway));
  EXPECT_EQ(rip->dst_addr, rte_cpu_to_be_32(kRelayHost));
  EXPECT_EQ(rte_raw_cksum(rip, sizeof(*rip)), 0xffff);
  EXPECT_EQ(rte_be_to_cpu_16(rudp->src_port), Bed::kWgPort);
  EXPECT_EQ(rte_be_to_cpu_16(rudp->dst_port), 41641);
  EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(rip, rudp), 0);
  EXPECT_EQ(reinterpret_cast<const wg::MessageTransportHeader*>(rudp + 1)->receiver_index,
            bed_->keypairs[peer]->remote_index);
  EXPECT_EQ(ctx().workers[0].counters.relay_from_peers.get() - from, 1u);
  EXPECT_EQ(ctx().workers[0].counters.relay_to_peers.get() - to, 1u);
  ctx().peers[peer].endpoint.store(endpoint);
}

TEST_F(WorkerDrops, RelayDatagramNotForTheWireGuardPortDroppedBadRelay) {
  const uint64_t before = drops(DropReason::kExceptionBadRelay);
  Bytes icmp = relayed(from_peer(15, 40000), 41641);
  icmp = with_proto(icmp, IPPROTO_ICMP);
  Bytes spoofed = relayed(from_peer(15, 40000), 41641);
  reinterpret_cast<rte_ipv4_hdr*>(spoofed.data())->src_addr = rte_cpu_to_be_32(kOwnTailnet);
  run(kException, {mbuf(relayed(from_peer(15, 40000), 41641, 53)), mbuf(icmp), mbuf(spoofed)});
  EXPECT_EQ(drops(DropReason::kExceptionBadRelay) - before, 3u);
  EXPECT_TRUE(sent(kInternet).empty());
}

// IPv6 neighbor resolution (control/neighbor.cc) against the worker's ND validation: the
// wanted gateway is solicited until it answers, the answer learned, then refreshed by unicast.
TEST_F(WorkerDrops,
       Ipv6GatewaySolicitedUntilItAnswersRefreshedByUnicastAskedByMulticastWhenSilent) {
  const uint8_t router[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b};
  const rte_ether_addr router_mac{{0x02, 0, 0, 0, 0, 0x0b}};
  const auto solicitation_to = [&](const Bytes& f, const uint8_t* dst_mac) {
    if (f.size() != 14 + 40 + 32) return false;
    const auto* ip = reinterpret_cast<const rte_ipv6_hdr*>(f.data() + 14);
    const uint8_t* ns = f.data() + 54;
    return std::memcmp(f.data(), dst_mac, 6) == 0 && ip->hop_limits == 255 && ip->proto == 58 &&
           ns[0] == 135 && std::memcmp(ns + 8, router, 16) == 0 &&
           std::memcmp(ip->src_addr, ctx().ports[kInternet].addrs6[0], 16) == 0 &&
           dp::checksum_fold(dp::checksum_add(ns, 32, dp::pseudo_header_sum6(ip, 58, 32))) ==
               0xffff;
  };
  const uint8_t group_mac[6] = {0x33, 0x33, 0xff, 0, 0, 0x0b};
  NeighborTable& nt = *bed_->neighbors;
  uint64_t now = 5'000'000;
  const uint64_t sent_before = nt.solicitations_sent();
  const size_t size_before = nt.size6();
  nt.want6(kInternet, router, now);
  auto out = sent(kInternet, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(solicitation_to(out[0], group_mac));
  nt.tick(now + 500);
  EXPECT_TRUE(sent(kInternet, 1).empty()) << "asked again before retry_ms";
  now += 1000;
  nt.tick(now);
  out = sent(kInternet, 1);
  ASSERT_EQ(out.size(), 1u) << "a silent gateway is asked again";
  EXPECT_EQ(nt.lookup6(kInternet, router), nullptr);

  // The router answers (solicited, to our link-local address, with its MAC as option).
  Bytes na(14 + 40 + 32, 0);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(na.data());
  eth->dst_addr = ctx().ports[kInternet].mac;
  eth->src_addr = router_mac;
  eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(na.data() + 14);
  ip->vtc_flow = RTE_BE32(6u << 28);
  ip->payload_len = RTE_BE16(32);
  ip->proto = 58;
  ip->hop_limits = 255;
  std::memcpy(ip->src_addr, router, 16);
  std::memcpy(ip->dst_addr, ctx().ports[kInternet].addrs6[0], 16);
  uint8_t* icmp = na.data() + 54;
  icmp[0] = 136;
  icmp[4] = 0x60;  // solicited, override
  std::memcpy(icmp + 8, router, 16);
  icmp[24] = 2;
  icmp[25] = 1;
  std::memcpy(icmp + 26, router_mac.addr_bytes, 6);
  const uint16_t c = dp::icmp6_checksum(ip, icmp, 32);
  std::memcpy(icmp + 2, &c, 2);
  const uint64_t learned = ctx().workers[0].counters.nd_learned.get();
  run(kInternet, {mbuf(na)});
  EXPECT_EQ(ctx().workers[0].counters.nd_learned.get() - learned, 1u);
  for (const dp::Event& e : events())
    if (e.type == dp::EventType::kNeighborSeen6) nt.learn6(e.port, e.ip6, e.mac, now);
  const rte_ether_addr* mac = nt.lookup6(kInternet, router);
  ASSERT_NE(mac, nullptr);
  EXPECT_TRUE(rte_is_same_ether_addr(mac, &router_mac));
  now += 1000;
  nt.tick(now);
  EXPECT_TRUE(sent(kInternet, 1).empty()) << "a resolved gateway is not asked again";
  // Past reachable_s: refreshed by unicast to the MAC it has, still usable meanwhile.
  now += 300 * 1000;
  nt.tick(now);
  out = sent(kInternet, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(solicitation_to(out[0], router_mac.addr_bytes));
  EXPECT_NE(nt.lookup6(kInternet, router), nullptr);
  EXPECT_EQ(nt.solicitations_sent() - sent_before, 3u);
  // Refreshes unanswered: two more by unicast (3 in all), then the gateway is unresolved and
  // asked for by multicast again (it may have a new MAC).
  for (int i = 0; i < 2; ++i) {
    now += 1000;
    nt.tick(now);
    out = sent(kInternet, 1);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(solicitation_to(out[0], router_mac.addr_bytes)) << i;
    EXPECT_NE(nt.lookup6(kInternet, router), nullptr) << "usable while refreshed";
  }
  now += 1000;
  nt.tick(now);
  out = sent(kInternet, 1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(solicitation_to(out[0], group_mac));
  EXPECT_EQ(nt.lookup6(kInternet, router), nullptr);
  EXPECT_EQ(nt.size6(), size_before + 1) << "a wanted gateway is kept";
}

TEST_F(WorkerDrops, LearnedIpv6NeighborIsForgottenAfterUnansweredRefreshes) {
  const uint8_t host[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c};
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x0c};
  const uint8_t elsewhere[16] = {0x20, 0x01, 0x0d, 0xb8, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  NeighborTable& nt = *bed_->neighbors;
  uint64_t now = 7'000'000;
  const size_t size_before = nt.size6();
  nt.learn6(kInternet, host, mac, now);
  nt.learn6(kInternet, elsewhere, mac, now);  // off the port's link: not a neighbor
  nt.learn6(kInternet, ctx().ports[kInternet].addrs6[0], mac, now);  // our own address
  ASSERT_EQ(nt.size6(), size_before + 1);
  ASSERT_NE(nt.lookup6(kInternet, host), nullptr);
  // Solicitations for `host` (other neighbors' of earlier tests may go out too), by unicast.
  const auto asked = [&] {
    unsigned n = 0;
    for (const Bytes& f : sent(kInternet, 1))
      if (f.size() == 14 + 40 + 32 && f[54] == 135 && std::memcmp(f.data() + 62, host, 16) == 0) {
        EXPECT_EQ(std::memcmp(f.data(), mac, 6), 0) << "a refresh goes to the MAC it has";
        ++n;
      }
    return n;
  };
  now += 300 * 1000;
  for (int i = 0; i < 3; ++i, now += 1000) {
    nt.tick(now);
    EXPECT_EQ(asked(), 1u) << "refresh " << i;
    EXPECT_NE(nt.lookup6(kInternet, host), nullptr) << "usable while refreshed";
  }
  nt.tick(now);
  EXPECT_EQ(asked(), 0u) << "a learned neighbor is not asked for by multicast";
  EXPECT_EQ(nt.lookup6(kInternet, host), nullptr);
  EXPECT_EQ(nt.size6(), size_before);
}

// ---- the IPv6 exit chain (dataplane/graph.cc outbound6, inbound6) ----

using testing::addr6;
using testing::ip6_packet;
using testing::l4_checksum_ok;

class Ipv6Exit : public WorkerDrops {
 protected:
  static constexpr uint32_t kPeer = 12;  // fd7a:115c:a1e0::c, its IPv6 allowed IP
  static constexpr const char* kPeer6 = "fd7a:115c:a1e0::c";
  static constexpr const char* kPeer6Outside = "2001:db8:100:81fe::c";  // NPTv6 of it
  static constexpr const char* kRemote6 = "2a00:1450:4001::5";
  // A router of its own (not the WorkerDrops neighbor tests' fe80::b), so the order the
  // suites run in does not matter.
  static constexpr uint8_t kRouter[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0e};
  static constexpr rte_ether_addr kRouterMac{{0x02, 0, 0, 0, 0, 0x0e}};

  void SetUp() override {
    WorkerDrops::SetUp();
    rte_lpm6_config cfg{};
    cfg.max_rules = 16;
    cfg.number_tbl8s = 64;
    lpm6_ = rte_lpm6_create("ipv6_exit_test", SOCKET_ID_ANY, &cfg);
    ASSERT_NE(lpm6_, nullptr);
    ASSERT_EQ(rte_lpm6_add(lpm6_, addr6(kPeer6).data(), 128, kPeer), 0);
    // A peer whose IPv6 prefix is global: fine for cryptokey routing, outside NPTv6's prefix.
    ASSERT_EQ(rte_lpm6_add(lpm6_, addr6("2a01::").data(), 64, kPeer + 1), 0);
    ctx().allowed_ips6.store(lpm6_);
    // NPTv6 fd7a:115c:a1e0::/48 <-> 2001:db8:100::/48: word 3 of ::c gains the adjustment.
    ctx().nptv6 = dp::Nptv6(addr6("fd7a:115c:a1e0::").data(), addr6("2001:db8:100::").data(), 48);
    std::memcpy(ctx().ports[kInternet].gateway6, kRouter, 16);
    bed_->neighbors->learn6(kInternet, kRouter, kRouterMac.addr_bytes, 0);
    // Counters above what the WorkerDrops tests sent these peers (their replay windows).
    counter_base_ += 1u << 16;
    for (uint32_t p = kPeer; p < kPeer + 3; ++p) next_counter_[bed_->keypairs[p]] = counter_base_;
  }
  void TearDown() override {
    ctx().allowed_ips6.store(nullptr);
    ctx().nptv6 = dp::Nptv6();
    std::memset(ctx().ports[kInternet].gateway6, 0, 16);
    rte_lpm6_free(lpm6_);
    WorkerDrops::TearDown();
  }

  // What the gateway sealed to `peer` on the tunnel port, opened: the inner packets.
  std::vector<Bytes> opened(uint32_t peer) {
    std::vector<Bytes> out;
    for (const Bytes& f : sent(kTunnel)) {
      const size_t off = sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
      out.push_back(
          testing::open_transport6(*bed_->keypairs[peer], f.data() + off, f.size() - off));
    }
    return out;
  }
  static Bytes from_internet(const Bytes& ip6) {
    Bytes f = ether(kInternet, ip6);
    reinterpret_cast<rte_ether_hdr*>(f.data())->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
    return f;
  }

  rte_lpm6* lpm6_ = nullptr;
  static inline uint64_t counter_base_ = 1u << 20;
};

TEST_F(Ipv6Exit, PeersIpv6LeavesTranslatedByNptv6ThroughTheRouterAndTheReplyComesBack) {
  const Bytes inner = ip6_packet(kPeer6, kRemote6, Bytes(100, 'u'));
  run(kTunnel, {mbuf(sealed(kPeer, inner))});
  auto out = sent(kInternet);
  ASSERT_EQ(out.size(), 1u) << nonzero_drops();
  const auto* eth = reinterpret_cast<const rte_ether_hdr*>(out[0].data());
  EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &kRouterMac));
  EXPECT_EQ(eth->ether_type, RTE_BE16(RTE_ETHER_TYPE_IPV6));
  const uint8_t* ip = out[0].data() + sizeof(rte_ether_hdr);
  Bytes expected = inner;
  expected[7] = 63;  // hop limit
  std::memcpy(expected.data() + 8, addr6(kPeer6Outside).data(), 16);
  EXPECT_EQ(Bytes(ip, ip + out[0].size() - sizeof(rte_ether_hdr)), expected);
  EXPECT_TRUE(l4_checksum_ok(ip)) << "NPTv6 is checksum-neutral: the UDP checksum still holds";

  // The reply to the pool address reaches the peer with its own address back.
  run(kInternet, {mbuf(from_internet(ip6_packet(kRemote6, kPeer6Outside, Bytes(64, 'r'), 50)))});
  const auto got = opened(kPeer);
  ASSERT_EQ(got.size(), 1u);
  Bytes want = ip6_packet(kRemote6, kPeer6, Bytes(64, 'r'), 49);
  EXPECT_EQ(got[0], want);
  EXPECT_TRUE(l4_checksum_ok(got[0].data()));
}

TEST_F(Ipv6Exit, PacketTooBigFromTheInternetReachesThePeerQuotingItsOwnAddress) {
  // A router on the path quotes the packet as it left the gateway (source: the pool address).
  Bytes quoted = ip6_packet(kPeer6Outside, kRemote6, Bytes(1200, 'q'), 60);
  Bytes mtu = {0, 0, 0x05, 0x00};  // written into the 4-byte field below
  Bytes ptb = ip6_packet("2a00:1450:4001::1", kPeer6Outside, quoted, 60, 2);
  ptb[sizeof(rte_ipv6_hdr) + 2] = ptb[sizeof(rte_ipv6_hdr) + 3] = 0;
  std::memcpy(ptb.data() + sizeof(rte_ipv6_hdr) + 4, mtu.data(), 4);
  {
    auto* ip = reinterpret_cast<rte_ipv6_hdr*>(ptb.data());
    const uint16_t c = dp::icmp6_checksum(ip, ptb.data() + sizeof(rte_ipv6_hdr),
                                          rte_be_to_cpu_16(ip->payload_len));
    std::memcpy(ptb.data() + sizeof(rte_ipv6_hdr) + 2, &c, 2);
  }
  run(kInternet, {mbuf(from_internet(ptb))});
  const auto got = opened(kPeer);
  ASSERT_EQ(got.size(), 1u) << "too large " << drops(DropReason::kWgTooLarge);
  const auto* ip = reinterpret_cast<const rte_ipv6_hdr*>(got[0].data());
  EXPECT_EQ(format_ipv6(ip->dst_addr), kPeer6);
  const uint8_t* icmp = got[0].data() + sizeof(rte_ipv6_hdr);
  EXPECT_EQ(icmp[0], 2);
  EXPECT_EQ(Bytes(icmp + 4, icmp + 8), mtu);
  const auto* in = reinterpret_cast<const rte_ipv6_hdr*>(icmp + 8);
  EXPECT_EQ(format_ipv6(in->src_addr), kPeer6) << "the quoted source is the peer's again";
  EXPECT_TRUE(l4_checksum_ok(got[0].data())) << "and the ICMPv6 checksum still holds";
}

TEST_F(Ipv6Exit, PeersIcmpv6ErrorLeavesWithTheQuotedDestinationTranslatedToo) {
  // The peer reports a packet the remote sent to its pool address (port unreachable): the
  // quote names the peer's own address, which the remote never used; it leaves as the pool's.
  const Bytes quoted = ip6_packet(kRemote6, kPeer6, Bytes(40, 'd'), 50);
  const Bytes unreachable = ip6_packet(kPeer6, kRemote6, quoted, 64, 1);
  run(kTunnel, {mbuf(sealed(kPeer, unreachable))});
  const auto out = sent(kInternet);
  ASSERT_EQ(out.size(), 1u) << nonzero_drops();
  const uint8_t* ip = out[0].data() + sizeof(rte_ether_hdr);
  const auto* hdr = reinterpret_cast<const rte_ipv6_hdr*>(ip);
  EXPECT_EQ(format_ipv6(hdr->src_addr), kPeer6Outside);
  const auto* in = reinterpret_cast<const rte_ipv6_hdr*>(ip + sizeof(rte_ipv6_hdr) + 8);
  EXPECT_EQ(format_ipv6(in->dst_addr), kPeer6Outside);
  EXPECT_EQ(format_ipv6(in->src_addr), kRemote6);
  EXPECT_TRUE(l4_checksum_ok(ip)) << "still checksum-neutral";
}

TEST_F(Ipv6Exit, HopLimitOneAnsweredWithTimeExceededThroughTheTunnel) {
  const Bytes inner = ip6_packet(kPeer6, kRemote6, Bytes(30, 't'), 1);
  const uint64_t before = drops(DropReason::kIpv6HopLimitExceeded);
  run(kTunnel, {mbuf(sealed(kPeer, inner))});
  EXPECT_TRUE(sent(kInternet).empty());
  EXPECT_EQ(drops(DropReason::kIpv6HopLimitExceeded) - before, 1u);
  const auto got = opened(kPeer);
  ASSERT_EQ(got.size(), 1u);
  const auto* ip = reinterpret_cast<const rte_ipv6_hdr*>(got[0].data());
  EXPECT_EQ(std::memcmp(ip->src_addr, ctx().ports[kInternet].addrs6[1], 16), 0);
  EXPECT_EQ(format_ipv6(ip->dst_addr), kPeer6);
  EXPECT_EQ(ip->hop_limits, 64) << "made here: not decremented when sealed";
  const uint8_t* icmp = got[0].data() + sizeof(rte_ipv6_hdr);
  EXPECT_EQ(icmp[0], 3);
  EXPECT_EQ(icmp[1], 0);
  EXPECT_EQ(Bytes(icmp + 8, got[0].data() + got[0].size()), inner) << "quotes it as sent";
  EXPECT_TRUE(l4_checksum_ok(got[0].data()));
}

TEST_F(Ipv6Exit, InnerIpv6RefusalsEachUnderTheirReason) {
  const auto dropped = [&](const Bytes& inner, uint32_t peer, DropReason r) {
    const uint64_t before = drops(r);
    run(kTunnel, {mbuf(sealed(peer, inner))});
    EXPECT_TRUE(sent(kInternet).empty()) << dp::kDropReasonNames[static_cast<size_t>(r)];
    EXPECT_EQ(drops(r) - before, 1u) << dp::kDropReasonNames[static_cast<size_t>(r)];
  };
  // Another peer's address, and an address no peer has.
  dropped(ip6_packet(kPeer6, kRemote6, Bytes(8, 'x')), kPeer + 2, DropReason::kWgBadSource);
  dropped(ip6_packet("fd7a:115c:a1e0::99", kRemote6, Bytes(8, 'x')), kPeer,
          DropReason::kWgBadSource);
  // Its own, but outside NPTv6's inside prefix: it would leave untranslated.
  dropped(ip6_packet("2a01::7", kRemote6, Bytes(8, 'x')), kPeer + 1,
          DropReason::kNptv6SourceNotInside);
  // Nine extension headers; a payload length beyond what was sealed.
  Bytes chain = ip6_packet(kPeer6, kRemote6, Bytes(8, 'x'));
  {
    Bytes ext;
    for (int i = 0; i < 9; ++i)
      ext.insert(ext.end(), {uint8_t(i == 8 ? IPPROTO_UDP : 60), 0, 1, 4, 0, 0, 0, 0});
    auto* ip = reinterpret_cast<rte_ipv6_hdr*>(chain.data());
    ip->proto = 60;
    ip->payload_len =
        rte_cpu_to_be_16(static_cast<uint16_t>(rte_be_to_cpu_16(ip->payload_len) + ext.size()));
    chain.insert(chain.begin() + sizeof(rte_ipv6_hdr), ext.begin(), ext.end());
  }
  dropped(chain, kPeer, DropReason::kIpv6ExtChainTooLong);
  Bytes long_payload = ip6_packet(kPeer6, kRemote6, Bytes(8, 'x'));
  long_payload[5] = 200;
  dropped(long_payload, kPeer, DropReason::kWgInnerMalformed);
  // NAT mode without an IPv6 pool: nothing leaves untranslated.
  ctx().nptv6 = dp::Nptv6();
  dropped(ip6_packet(kPeer6, kRemote6, Bytes(8, 'x')), kPeer, DropReason::kIpv6NoPool6);
  // From the internet in NAT mode without an IPv6 pool: nothing reaches a peer (its address
  // never left), the peer's own address included.
  {
    const uint64_t before = drops(DropReason::kIpv6NoPool6);
    run(kInternet, {mbuf(from_internet(ip6_packet(kRemote6, kPeer6, Bytes(8, 'r'))))});
    EXPECT_EQ(drops(DropReason::kIpv6NoPool6) - before, 1u);
    EXPECT_TRUE(sent(kTunnel).empty());
  }
  // From the internet: not in the pool (no error about it either, even when too big).
  const uint64_t before = drops(DropReason::kNptv6NotInPool);
  ctx().nptv6 = dp::Nptv6(addr6("fd7a:115c:a1e0::").data(), addr6("2001:db8:100::").data(), 48);
  run(kInternet, {mbuf(from_internet(ip6_packet(kRemote6, "2001:db8:101::c", Bytes(8, 'r')))),
                  mbuf(from_internet(ip6_packet(kRemote6, "2001:db8:101::c", Bytes(1500, 'r'))))});
  EXPECT_EQ(drops(DropReason::kNptv6NotInPool) - before, 2u);
  EXPECT_TRUE(sent(kTunnel).empty());
  EXPECT_TRUE(sent(kInternet).empty()) << "an error about a packet not for the pool";
}

// ---- the exception path for the node's tailnet IPv6 address (dataplane/exception.cc) ----

class Ipv6Exception : public Ipv6Exit {
 protected:
  static constexpr const char* kOwn6 = "fd7a:115c:a1e0::1";

  void SetUp() override {
    Ipv6Exit::SetUp();
    uint8_t own[1][16];
    std::memcpy(own[0], addr6(kOwn6).data(), 16);
    ctx().tailnet_addrs6.publish(own, 1);
  }
  void TearDown() override {
    ctx().tailnet_addrs6.publish(nullptr, 0);
    Ipv6Exit::TearDown();
  }
};

TEST_F(Ipv6Exception, PacketForTheOwnTailnetIpv6AddressGoesToTheHostAndTsmpIsConsumed) {
  const Bytes dns = ip6_packet(kPeer6, kOwn6, Bytes(30, 'q'));
  Bytes tsmp = ip6_packet(kPeer6, kOwn6, Bytes(8, 't'));
  reinterpret_cast<rte_ipv6_hdr*>(tsmp.data())->proto = 99;
  const Bytes ping = ip6_packet(kPeer6, kOwn6, Bytes(16, 'p'), 64, 128);
  // Two tokens of the worker's exception rate (1 a second here), which the IPv4 flood test,
  // run before this suite, may have left empty.
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  const uint64_t tsmp_before = ctx().workers[0].counters.tsmp_consumed.get();
  const uint64_t to_host_before = ctx().workers[0].counters.exception_to_host.get();
  run(kTunnel, {mbuf(sealed(kPeer, dns)), mbuf(sealed(kPeer, tsmp)), mbuf(sealed(kPeer, ping)),
                mbuf(sealed(kPeer, ip6_packet(kPeer6, kRemote6, Bytes(20, 'o'))))});
  // The host gets the inner packets as they were sent (a TUN: no Ethernet, hop limit as sent).
  const auto host = sent(kException);
  ASSERT_EQ(host.size(), 2u) << nonzero_drops();
  EXPECT_EQ(host[0], dns);
  EXPECT_EQ(host[1], ping);
  EXPECT_EQ(ctx().workers[0].counters.tsmp_consumed.get() - tsmp_before, 1u);
  EXPECT_EQ(ctx().workers[0].counters.exception_to_host.get() - to_host_before, 2u);
  EXPECT_EQ(sent(kInternet).size(), 1u) << "the exit traffic beside it leaves as before";
}

TEST_F(Ipv6Exception, FloodAtTheOwnTailnetIpv6AddressIsRateLimitedAndWithoutAPortDroppedPortOff) {
  std::vector<rte_mbuf*> burst;
  for (unsigned i = 0; i < 3 * kExceptionBurst; ++i)
    burst.push_back(mbuf(sealed(kPeer, ip6_packet(kPeer6, kOwn6, Bytes(8 + i, 'f')))));
  expect_flood_rate_limited(burst, 0);  // none of them leaves through the exit

  ctx().exception_port = dp::kNoPort;
  const uint64_t off_before = drops(DropReason::kExceptionPortOff);
  run(kTunnel, {mbuf(sealed(kPeer, ip6_packet(kPeer6, kOwn6, Bytes(8, 'x'))))});
  ctx().exception_port = kException;
  EXPECT_EQ(drops(DropReason::kExceptionPortOff) - off_before, 1u);
  EXPECT_TRUE(sent(kInternet).empty());
}

TEST_F(Ipv6Exception, HostIpv6PacketIsSealedToThePeerThatOwnsItsDestination) {
  const Bytes reply = ip6_packet(kOwn6, kPeer6, Bytes(40, 'a'), 64, 129);
  Bytes framed = reply;
  framed.insert(framed.end(), 6, 0xee);  // bytes past the payload length: trimmed, not sealed
  const uint64_t from_before = ctx().workers[0].counters.exception_from_host.get();
  run(kException, {mbuf(framed)});
  const auto got = opened(kPeer);
  ASSERT_EQ(got.size(), 1u) << nonzero_drops();
  EXPECT_EQ(got[0], reply) << "the host's own packet: its hop limit is not decremented";
  EXPECT_EQ(ctx().workers[0].counters.exception_from_host.get() - from_before, 1u);
}

TEST_F(Ipv6Exception, BadHostIpv6PacketsDroppedEachUnderItsReason) {
  const Bytes good = ip6_packet(kOwn6, kPeer6, Bytes(40, 'a'));
  Bytes truncated = good;  // an IPv4 header's worth, not an IPv6 one's
  truncated.resize(32);
  Bytes long_payload = good;  // payload length beyond what arrived
  long_payload[5] = static_cast<uint8_t>(long_payload[5] + 8);
  const Bytes spoofed = ip6_packet(kPeer6, "2a01::7", Bytes(10, 's'));
  const Bytes link_local = ip6_packet("fe80::1", kPeer6, Bytes(10, 's'));  // the kernel's own
  const Bytes big = ip6_packet(kOwn6, kPeer6, Bytes(ctx().tunnel_mtu, 'b'));
  const Bytes nobody = ip6_packet(kOwn6, "fd7a:115c:a1e0::99", Bytes(10, 'n'));
  const std::pair<Bytes, DropReason> cases[] = {
      {truncated, DropReason::kExceptionMalformed}, {long_payload, DropReason::kExceptionMalformed},
      {spoofed, DropReason::kExceptionBadSource},   {link_local, DropReason::kExceptionBadSource},
      {big, DropReason::kExceptionTooLarge},        {nobody, DropReason::kWgNoPeerForDestination},
  };
  for (const auto& [packet, reason] : cases) {
    const uint64_t before = drops(reason);
    run(kException, {mbuf(packet)});
    EXPECT_EQ(drops(reason) - before, 1u) << dp::drop_reason_name(reason);
    EXPECT_TRUE(sent(kTunnel).empty()) << dp::drop_reason_name(reason);
  }
  // Before the connector reported the node's IPv6 address no source is the node's.
  ctx().tailnet_addrs6.publish(nullptr, 0);
  const uint64_t before = drops(DropReason::kExceptionBadSource);
  run(kException, {mbuf(good)});
  EXPECT_EQ(drops(DropReason::kExceptionBadSource) - before, 1u);
  EXPECT_TRUE(sent(kTunnel).empty());
}

}  // namespace
}  // namespace exitgw
