// The flow accounting stages on real mbufs: an outbound packet is parsed once, before NAT, and
// its flow keeps the pre-NAT source with the post-NAT one beside it; inbound packets wg_seal is
// about to drop (no peer, no usable keypair, no endpoint) are not counted. The same for IPv6
// (through an extension header, with NPTv6 as the translation).
#include "dataplane/flow/flow_stage.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "common/nptv6.h"
#include "common/wg_state.h"
#include "common/dataplane_context.h"
#include "dataplane/packet_meta.h"
#include "tests/support/eal_environment.h"

namespace exitgw::dp::flow {
namespace {

EXITGW_EAL_ENVIRONMENT("flow_stage_test", 128);

rte_mempool* pool() {
  static rte_mempool* p = rte_pktmbuf_pool_create("flow_stage_test", 255, 0, sizeof(PacketMeta),
                                                  RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  return p;
}

constexpr uint8_t kSyn = 0x02, kAck = 0x10;

uint32_t be32(uint32_t host) {
  return rte_cpu_to_be_32(host);
}
uint16_t be16(uint16_t host) {
  return rte_cpu_to_be_16(host);
}

// A TCP, UDP or ICMP/ICMPv6 echo request (`echo_type`) header at l4.
void transport(uint8_t* l4, uint8_t proto, uint16_t port_a, uint16_t port_b, uint8_t tcp_flags,
               uint8_t echo_type) {
  if (proto == IPPROTO_TCP) {
    auto* tcp = reinterpret_cast<rte_tcp_hdr*>(l4);
    tcp->src_port = be16(port_a);
    tcp->dst_port = be16(port_b);
    tcp->tcp_flags = tcp_flags;
  } else if (proto == IPPROTO_UDP) {
    auto* udp = reinterpret_cast<rte_udp_hdr*>(l4);
    udp->src_port = be16(port_a);
    udp->dst_port = be16(port_b);
  } else {
    l4[0] = echo_type;
    const uint16_t id = be16(port_a);
    memcpy(l4 + 4, &id, 2);
  }
}

// An IPv4 packet with a TCP, UDP or ICMP echo header; `port_a` is the source port (ICMP: the
// identifier), `port_b` the destination port.
rte_mbuf* packet(uint8_t proto, uint32_t src, uint32_t dst, uint16_t port_a, uint16_t port_b,
                 uint16_t total = 100, uint8_t tcp_flags = 0) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  EXPECT_NE(m, nullptr);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(rte_pktmbuf_append(m, total));
  memset(ip, 0, total);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = be16(total);
  ip->time_to_live = 64;
  ip->next_proto_id = proto;
  ip->src_addr = be32(src);
  ip->dst_addr = be32(dst);
  transport(reinterpret_cast<uint8_t*>(ip + 1), proto, port_a, port_b, tcp_flags, 8);
  *meta(m) = PacketMeta{};
  return m;
}

// What the NAT does to an outbound packet: a new source address and port (identifier).
void translate(rte_mbuf* m, uint32_t address, uint16_t port) {
  auto* ip = rte_pktmbuf_mtod(m, rte_ipv4_hdr*);
  ip->src_addr = be32(address);
  auto* l4 = reinterpret_cast<uint8_t*>(ip + 1);
  const uint16_t p = be16(port);
  memcpy(l4 + (ip->next_proto_id == IPPROTO_ICMP ? 4 : 0), &p, 2);
}

FlowConfig config() {
  FlowConfig c;
  c.max_flows = 64;
  c.ring_capacity = 64;
  c.idle_ticks = c.active_ticks = 1'000'000;
  c.sweep_period_ticks = 1;
  return c;
}

std::vector<FlowExport> flush(FlowTable& t) {
  t.expire_all(t.max_flows());
  std::vector<FlowExport> out;
  FlowExport e;
  while (t.ring().pop(&e)) out.push_back(e);
  return out;
}

const FlowExport* find(const std::vector<FlowExport>& r, uint8_t proto) {
  for (const FlowExport& e : r)
    if (e.key.protocol == proto) return &e;
  return nullptr;
}

constexpr uint32_t kSubscriber = RTE_IPV4(100, 64, 0, 11), kServer = RTE_IPV4(198, 51, 100, 10),
                   kPublic = RTE_IPV4(203, 0, 113, 1);

TEST(FlowStage, OutboundKeepsThePreNatSourceFromOneParseAndTheTranslatedOneBeside) {
  ASSERT_NE(pool(), nullptr);
  FlowTable t(config());
  rte_mbuf* pkts[4] = {
      packet(IPPROTO_TCP, kSubscriber, kServer, 40000, 443, 60, kSyn),
      packet(IPPROTO_TCP, kSubscriber, kServer, 40000, 443, 52, kAck),
      packet(IPPROTO_UDP, kSubscriber, kServer, 50000, 53, 80),
      packet(IPPROTO_ICMP, kSubscriber, kServer, 0x1234, 0, 84),
  };
  for (rte_mbuf* m : pkts) meta(m)->peer_slot = 5;
  note_source(pkts, 4);
  translate(pkts[0], kPublic, 1024);
  translate(pkts[1], kPublic, 1024);
  translate(pkts[2], kPublic, 2048);
  translate(pkts[3], kPublic, 3072);
  account_out(t, pkts, 4, 1000);
  EXPECT_EQ(t.counters().packets_counted.get(), 4u);
  const auto r = flush(t);
  ASSERT_EQ(r.size(), 3u);

  const FlowExport* tcp = find(r, IPPROTO_TCP);
  ASSERT_NE(tcp, nullptr);
  EXPECT_EQ(tcp->key.src_address, be32(kSubscriber));
  EXPECT_EQ(tcp->key.src_port, be16(40000));
  EXPECT_EQ(tcp->key.dst_address, be32(kServer));
  EXPECT_EQ(tcp->key.dst_port, be16(443));
  EXPECT_EQ(tcp->key.peer_slot, 5u);
  EXPECT_EQ(tcp->post_nat_address, be32(kPublic));
  EXPECT_EQ(tcp->post_nat_port, be16(1024));
  EXPECT_EQ(tcp->tx_packets, 2u);
  EXPECT_EQ(tcp->tx_bytes, 112u);
  EXPECT_EQ(tcp->tcp_flags, kSyn | kAck);

  const FlowExport* udp = find(r, IPPROTO_UDP);
  ASSERT_NE(udp, nullptr);
  EXPECT_EQ(udp->key.src_port, be16(50000));
  EXPECT_EQ(udp->key.dst_port, be16(53));
  EXPECT_EQ(udp->post_nat_port, be16(2048));
  EXPECT_EQ(udp->tx_bytes, 80u);

  // ICMP queries: the identifier is the subscriber's port, the far side has none.
  const FlowExport* icmp = find(r, IPPROTO_ICMP);
  ASSERT_NE(icmp, nullptr);
  EXPECT_EQ(icmp->key.src_port, be16(0x1234));
  EXPECT_EQ(icmp->key.dst_port, 0);
  EXPECT_EQ(icmp->post_nat_port, be16(3072));
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
}

// Peers 1..4 own 100.64.0.1 .. 100.64.0.4; only peer 1 can be sealed for.
TEST(FlowStage, InboundCountsOnlyPacketsWgSealWillSeal) {
  ASSERT_NE(pool(), nullptr);
  rte_lpm_config lc{};
  lc.max_rules = 16;
  lc.number_tbl8s = 16;
  rte_lpm* lpm = rte_lpm_create("flow_stage_lpm", SOCKET_ID_ANY, &lc);
  ASSERT_NE(lpm, nullptr);
  for (uint32_t slot = 1; slot <= 4; ++slot)
    ASSERT_EQ(rte_lpm_add(lpm, RTE_IPV4(100, 64, 0, slot), 32, slot), 0);
  std::unique_ptr<PeerRuntime[]> peers(new PeerRuntime[5]);
  auto usable = std::make_unique<Keypair>();
  usable->reject_after_tsc = 5000;
  auto expired = std::make_unique<Keypair>();
  expired->reject_after_tsc = 500;
  const uint64_t endpoint = pack_endpoint(be32(RTE_IPV4(192, 0, 2, 1)), be16(51820));
  peers[1].send_keypair.store(usable.get());
  peers[1].endpoint.store(endpoint);
  peers[2].endpoint.store(endpoint);          // no keypair
  peers[3].send_keypair.store(usable.get());  // no endpoint
  peers[4].send_keypair.store(expired.get());
  peers[4].endpoint.store(endpoint);
  DataplaneContext ctx;
  ctx.allowed_ips = lpm;
  ctx.peers = peers.get();
  ctx.max_peers = 5;

  FlowTable t(config());
  rte_mbuf* pkts[5];
  for (uint32_t i = 0; i < 5; ++i)  // replies from the server; the last for no peer at all
    pkts[i] = packet(IPPROTO_UDP, kServer, RTE_IPV4(100, 64, 0, i + 1), 443, 40000, 200);
  account_in(t, nullptr, ctx, pkts, 5, 1000);
  EXPECT_EQ(t.counters().packets_counted.get(), 1u);
  const auto r = flush(t);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].key.peer_slot, 1u);
  EXPECT_EQ(r[0].key.src_address, be32(RTE_IPV4(100, 64, 0, 1)));
  EXPECT_EQ(r[0].key.src_port, be16(40000));
  EXPECT_EQ(r[0].key.dst_address, be32(kServer));
  EXPECT_EQ(r[0].key.dst_port, be16(443));
  EXPECT_EQ(r[0].rx_packets, 1u);
  EXPECT_EQ(r[0].rx_bytes, 200u);
  EXPECT_EQ(r[0].tx_packets, 0u);
  // Routed mode: a flow that starts inbound has its own address as the public side.
  EXPECT_EQ(r[0].post_nat_address, be32(RTE_IPV4(100, 64, 0, 1)));

  // Once the peer has a keypair and an endpoint, its packets count.
  peers[2].send_keypair.store(usable.get());
  account_in(t, nullptr, ctx, pkts + 1, 1, 1001);
  EXPECT_EQ(t.counters().packets_counted.get(), 2u);
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
  rte_lpm_free(lpm);
}

// IPv6 packets: TCP, UDP or ICMPv6 echo, optionally behind a Destination Options header.
constexpr uint8_t kClient6[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0,
                                  0,    0,    0,    0,    0,    0,    0, 0x11};
constexpr uint8_t kServer6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
constexpr uint8_t kPool6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

rte_mbuf* packet6(uint8_t proto, const uint8_t* src, const uint8_t* dst, uint16_t port_a,
                  uint16_t port_b, uint16_t payload = 60, uint8_t tcp_flags = 0,
                  bool dest_options = false) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool());
  EXPECT_NE(m, nullptr);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(rte_pktmbuf_append(m, 40 + payload));
  memset(ip, 0, 40 + payload);
  ip->vtc_flow = be32(6u << 28);
  ip->payload_len = be16(payload);
  ip->proto = dest_options ? 60 : proto;
  ip->hop_limits = 64;
  memcpy(ip->src_addr, src, 16);
  memcpy(ip->dst_addr, dst, 16);
  auto* l4 = reinterpret_cast<uint8_t*>(ip + 1);
  if (dest_options) {  // 8 bytes: next header, length 0, a PadN option
    l4[0] = proto;
    l4[2] = 1;
    l4[3] = 4;
    l4 += 8;
  }
  transport(l4, proto, port_a, port_b, tcp_flags, 128);
  *meta(m) = PacketMeta{};
  return m;
}

std::vector<FlowExport6> flush(FlowTable6& t) {
  t.expire_all(t.max_flows());
  std::vector<FlowExport6> out;
  FlowExport6 e;
  while (t.ring().pop(&e)) out.push_back(e);
  return out;
}

const FlowExport6* find(const std::vector<FlowExport6>& r, uint8_t proto) {
  for (const FlowExport6& e : r)
    if (e.key.protocol == proto) return &e;
  return nullptr;
}

bool same16(const uint8_t* a, const uint8_t* b) {
  return memcmp(a, b, 16) == 0;
}

// The graph's outbound6 order: note_source6, the translation (NPTv6 here, which drops what it
// cannot translate), account_out6 on the survivors.
TEST(FlowStage6, OutboundKeepsThePreTranslationSourceAndTheTranslatedOneBeside) {
  ASSERT_NE(pool(), nullptr);
  FlowTable6 t(config());
  const Nptv6 npt(kClient6, kPool6, 48);
  uint8_t outside[16];
  memcpy(outside, kClient6, 16);
  ASSERT_EQ(npt.to_outside(outside), Nptv6::Result::kTranslated);
  rte_mbuf* pkts[5] = {
      packet6(IPPROTO_TCP, kClient6, kServer6, 40000, 443, 40, kSyn, /*dest_options=*/true),
      packet6(IPPROTO_UDP, kServer6, kServer6, 1, 2, 20),  // not the peers' prefix: dropped
      packet6(IPPROTO_TCP, kClient6, kServer6, 40000, 443, 32, kAck, /*dest_options=*/true),
      packet6(IPPROTO_UDP, kClient6, kServer6, 50000, 53, 60),
      packet6(58, kClient6, kServer6, 0x1234, 0, 64),
  };
  for (rte_mbuf* m : pkts) meta(m)->peer_slot = 5;
  Sources6 sources;
  note_source6(pkts, 5, sources);
  rte_mbuf* survivors[5];
  uint16_t n = 0;
  for (rte_mbuf* m : pkts) {
    auto* ip = rte_pktmbuf_mtod(m, rte_ipv6_hdr*);
    if (npt.to_outside(ip->src_addr) == Nptv6::Result::kTranslated) survivors[n++] = m;
  }
  ASSERT_EQ(n, 4);
  account_out6(t, sources, survivors, n, 1000);
  EXPECT_EQ(t.counters().packets_counted.get(), 4u);
  const auto r = flush(t);
  ASSERT_EQ(r.size(), 3u);

  const FlowExport6* tcp = find(r, IPPROTO_TCP);
  ASSERT_NE(tcp, nullptr);
  EXPECT_TRUE(same16(tcp->key.src_address, kClient6));
  EXPECT_TRUE(same16(tcp->key.dst_address, kServer6));
  EXPECT_EQ(tcp->key.src_port, be16(40000));
  EXPECT_EQ(tcp->key.dst_port, be16(443));
  EXPECT_EQ(tcp->key.peer_slot, 5u);
  EXPECT_TRUE(same16(tcp->post_nat_address, outside));
  EXPECT_EQ(tcp->post_nat_port, be16(40000));  // NPTv6 leaves ports alone
  EXPECT_EQ(tcp->tx_packets, 2u);
  EXPECT_EQ(tcp->tx_bytes, 80u + 72);  // IPv6 header + payload
  EXPECT_EQ(tcp->tcp_flags, kSyn | kAck);

  const FlowExport6* udp = find(r, IPPROTO_UDP);
  ASSERT_NE(udp, nullptr);
  EXPECT_TRUE(same16(udp->key.src_address, kClient6));  // the dropped one left no trace
  EXPECT_EQ(udp->key.src_port, be16(50000));
  EXPECT_EQ(udp->key.dst_port, be16(53));
  EXPECT_EQ(udp->tx_bytes, 100u);

  const FlowExport6* echo = find(r, 58);
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->key.src_port, be16(0x1234));
  EXPECT_EQ(echo->key.dst_port, 0);
  EXPECT_EQ(echo->tx_bytes, 104u);
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
}

// Peers 1..3 own fd7a:115c:a1e0::1 .. ::3; peer 2 has no keypair; ::9 has no peer.
TEST(FlowStage6, InboundCountsOnlyPacketsWgSealWillSealWithTheNptv6PoolAddress) {
  ASSERT_NE(pool(), nullptr);
  rte_lpm6_config lc{};
  lc.max_rules = 16;
  lc.number_tbl8s = 1 << 8;
  rte_lpm6* lpm = rte_lpm6_create("flow_stage_lpm6", SOCKET_ID_ANY, &lc);
  ASSERT_NE(lpm, nullptr);
  const auto client = [](uint8_t last) {
    std::array<uint8_t, 16> a;
    memcpy(a.data(), kClient6, 16);
    a[15] = last;
    return a;
  };
  for (uint8_t slot = 1; slot <= 3; ++slot) {
    auto a = client(slot);
    ASSERT_EQ(rte_lpm6_add(lpm, a.data(), 128, slot), 0);
  }
  std::unique_ptr<PeerRuntime[]> peers(new PeerRuntime[4]);
  auto usable = std::make_unique<Keypair>();
  usable->reject_after_tsc = 5000;
  const uint64_t endpoint = pack_endpoint(be32(RTE_IPV4(192, 0, 2, 1)), be16(51820));
  for (int p : {1, 2, 3}) peers[p].endpoint.store(endpoint);
  peers[1].send_keypair.store(usable.get());
  peers[3].send_keypair.store(usable.get());
  DataplaneContext ctx;
  ctx.allowed_ips6.store(lpm);
  ctx.peers = peers.get();
  ctx.max_peers = 4;
  ctx.nptv6 = Nptv6(kClient6, kPool6, 48);

  FlowTable6 t(config());
  const std::array<uint8_t, 16> dst[4] = {client(1), client(2), client(3), client(9)};
  rte_mbuf* pkts[4];
  for (int i = 0; i < 4; ++i)
    pkts[i] = packet6(IPPROTO_UDP, kServer6, dst[i].data(), 443, 40000 + i, 100);
  account_in6(t, nullptr, ctx, pkts, 4, 1000);
  EXPECT_EQ(t.counters().packets_counted.get(), 2u);
  const auto r = flush(t);
  ASSERT_EQ(r.size(), 2u);
  for (const FlowExport6& e : r) {
    ASSERT_TRUE(e.key.peer_slot == 1 || e.key.peer_slot == 3) << e.key.peer_slot;
    const auto& sub = dst[e.key.peer_slot - 1];
    EXPECT_TRUE(same16(e.key.src_address, sub.data()));
    EXPECT_TRUE(same16(e.key.dst_address, kServer6));
    EXPECT_EQ(e.key.src_port, be16(uint16_t(40000 + e.key.peer_slot - 1)));
    EXPECT_EQ(e.key.dst_port, be16(443));
    EXPECT_EQ(e.rx_packets, 1u);
    EXPECT_EQ(e.rx_bytes, 140u);
    EXPECT_EQ(e.tx_packets, 0u);
    // Began inbound: the public side is the subscriber's NPTv6 address.
    uint8_t outside[16];
    memcpy(outside, sub.data(), 16);
    ASSERT_EQ(ctx.nptv6.to_outside(outside), Nptv6::Result::kTranslated);
    EXPECT_TRUE(same16(e.post_nat_address, outside));
    EXPECT_EQ(e.post_nat_port, be16(uint16_t(40000 + e.key.peer_slot - 1)));
  }
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
  ctx.allowed_ips6.store(nullptr);
  rte_lpm6_free(lpm);
}

}  // namespace
}  // namespace exitgw::dp::flow
