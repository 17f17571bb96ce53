// The flow accounting stages on real mbufs: an outbound packet is parsed once, before NAT, and
// its flow keeps the pre-NAT source with the post-NAT one beside it; inbound packets wg_seal is
// about to drop (no peer, no usable keypair, no endpoint) are not counted.
#include "dataplane/flow/flow_stage.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

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
  auto* l4 = reinterpret_cast<uint8_t*>(ip + 1);
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
    l4[0] = 8;  // echo request
    const uint16_t id = be16(port_a);
    memcpy(l4 + 4, &id, 2);
  }
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

}  // namespace
}  // namespace exitgw::dp::flow
