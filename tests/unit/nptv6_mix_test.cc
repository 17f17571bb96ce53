// NPTv6 mappings beside stateful NAT66 (--nptv6_map with --nat6_mode=stateful) through the
// real worker graph (DataplaneBed with a NAT66 pool, ring ports read back): one burst with a
// mapped source and an unmapped one leaves with the NPTv6 prefix (checksum untouched) and with
// the pool address and a NAT port; the replies and an ICMPv6 error come back to the right
// inner addresses; what neither translation holds is dropped under its reason.
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ip.h>
#include <rte_lpm6.h>
#include <rte_udp.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/nptv6.h"
#include "control/net_parse.h"
#include "control/wg/crypto.h"
#include "dataplane/checksum.h"
#include "tests/support/dataplane_bed.h"
#include "tests/support/eal_environment.h"
#include "tests/support/ipv6_exit_packets.h"

namespace exitgw {
namespace {

EXITGW_EAL_ENVIRONMENT("nptv6_mix_test", 512);

using Bed = testing::DataplaneBed;
using dp::DropReason;
using Bytes = std::vector<uint8_t>;

constexpr uint8_t kTunnel = 0, kInternet = 1;
// Peer 12 is a tailnet client (its /128 shares the stateful pool); peer 13 a site whose routed
// /48 has an NPTv6 mapping of its own.
constexpr uint32_t kClient = 12, kSite = 13;
constexpr const char* kClient6 = "fd7a:115c:a1e0::c";
constexpr const char* kSiteHost = "fd00:5173:1:7::20";
constexpr const char* kSiteInside = "fd00:5173:1::";    // /48
constexpr const char* kSiteOutside = "2001:db8:300::";  // /48
constexpr const char* kPool6 = "2001:db8:100::1";       // the stateful pool, one address
constexpr const char* kRemote6 = "2a00:1450:4001::5";
constexpr uint8_t kRouter[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0e};
constexpr rte_ether_addr kRouterMac{{0x02, 0, 0, 0, 0, 0x0e}};

using testing::addr6;
using testing::ip6_packet;
using testing::l4_checksum_ok;

// RFC 6296 section 3.2 done independently of common/nptv6.h: prefix bits swapped, word 3 takes
// the one's-complement difference of the two /48 prefixes' sums (0xFFFF written as 0).
std::string nptv6_reference(const char* inside_addr, const char* inside, const char* outside) {
  auto a = addr6(inside_addr);
  const auto in = addr6(inside), out = addr6(outside);
  uint32_t sum = 0;
  for (int w = 0; w < 3; ++w) {
    sum += (in[2 * w] << 8 | in[2 * w + 1]) + (0xffff - (out[2 * w] << 8 | out[2 * w + 1]));
  }
  sum += a[6] << 8 | a[7];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  if (sum == 0xffff) sum = 0;
  std::memcpy(a.data(), out.data(), 6);
  a[6] = static_cast<uint8_t>(sum >> 8);
  a[7] = static_cast<uint8_t>(sum);
  return format_ipv6(a.data());
}

// UDP over IPv6 from `src`:`sport` to `dst`:`dport`, hop limit 64.
Bytes udp6(const char* src, const char* dst, uint16_t sport, uint16_t dport, const Bytes& payload) {
  return ip6_packet(src, dst, payload, 64, -1, sport, dport);
}

std::string src_of(const Bytes& ip6) {
  return format_ipv6(reinterpret_cast<const rte_ipv6_hdr*>(ip6.data())->src_addr);
}
std::string dst_of(const Bytes& ip6) {
  return format_ipv6(reinterpret_cast<const rte_ipv6_hdr*>(ip6.data())->dst_addr);
}
uint16_t sport_of(const Bytes& ip6) {
  return static_cast<uint16_t>(ip6[sizeof(rte_ipv6_hdr)] << 8 | ip6[sizeof(rte_ipv6_hdr) + 1]);
}

class Nptv6BesideNat66 : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::array<std::string, 2> names;
    for (unsigned p = 0; p < 2; ++p) {
      const std::string n = "mix_port" + std::to_string(p);
      rx_[p] =
          rte_ring_create((n + "_rx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
      for (unsigned q = 0; q < 2; ++q)
        tx_[p][q] = rte_ring_create((n + "_tx" + std::to_string(q)).c_str(), 1024, SOCKET_ID_ANY,
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
      const int id = rte_eth_from_rings(n.c_str(), &rx_[p], 1, tx_[p], 2, rte_socket_id());
      ASSERT_GE(id, 0);
      char name[RTE_ETH_NAME_MAX_LEN];
      ASSERT_EQ(rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), name), 0);
      names[p] = name;
    }
    bed_ = new Bed;
    testing::BedOptions o;
    o.peers = 16;
    o.nat = true;
    o.nat_pool6 = {{dp::nat::Ipv6Address::from_array(addr6(kPool6)), 128}};
    o.ports = {names[kTunnel], names[kInternet]};
    const Status s = bed_->init(o);
    ASSERT_TRUE(s.ok()) << s.error();
    rte_lpm6_config cfg{};
    cfg.max_rules = 16;
    cfg.number_tbl8s = 64;
    rte_lpm6* lpm6 = rte_lpm6_create("mix_allowed6", SOCKET_ID_ANY, &cfg);
    ASSERT_NE(lpm6, nullptr);
    ASSERT_EQ(rte_lpm6_add(lpm6, addr6(kClient6).data(), 128, kClient), 0);
    ASSERT_EQ(rte_lpm6_add(lpm6, addr6(kSiteInside).data(), 48, kSite), 0);
    ctx().allowed_ips6.store(lpm6);
    std::memcpy(ctx().ports[kInternet].gateway6, kRouter, 16);
    bed_->neighbors->learn6(kInternet, kRouter, kRouterMac.addr_bytes, 0);
  }

  void SetUp() override {
    ASSERT_NE(bed_, nullptr);
    // --nptv6_map=fd00:5173:1::/48=2001:db8:300::/48 beside the stateful pool.
    dp::Nptv6Table t;
    t.add(dp::Nptv6(addr6(kSiteInside).data(), addr6(kSiteOutside).data(), 48));
    ctx().nptv6 = t;
    drain();
  }
  void TearDown() override { drain(); }

  static dp::DataplaneContext& ctx() { return bed_->ctx; }

  static std::vector<Bytes> sent(uint8_t port) {
    std::vector<Bytes> out;
    rte_mbuf* m;
    while (rte_ring_dequeue(tx_[port][0], reinterpret_cast<void**>(&m)) == 0) {
      const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
      out.emplace_back(d + sizeof(rte_ether_hdr), d + rte_pktmbuf_data_len(m));  // IP on
      rte_pktmbuf_free(m);
    }
    return out;
  }
  static void drain() {
    for (uint8_t p = 0; p < 2; ++p) {
      sent(p);
      rte_mbuf* m;
      while (rte_ring_dequeue(tx_[p][1], reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
    }
    bed_->drain_control();
  }
  static uint64_t drops(DropReason r) {
    uint64_t n = 0;
    for (unsigned p = 0; p < ctx().n_ports; ++p)
      n += ctx().workers[0].counters.drops[p][static_cast<size_t>(r)].get();
    return n;
  }

  static rte_mbuf* mbuf(Bytes frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(bed_->pool);
    EXPECT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(),
                frame.size());
    return m;
  }
  static Bytes ether(uint8_t port, uint16_t type, const Bytes& ip) {
    Bytes f(sizeof(rte_ether_hdr), 0);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(f.data());
    eth->dst_addr = ctx().ports[port].mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x01}};
    eth->ether_type = rte_cpu_to_be_16(type);
    f.insert(f.end(), ip.begin(), ip.end());
    return f;
  }

  // Peer `peer`'s inner IPv6 packet as a WireGuard transport message from its endpoint.
  Bytes sealed(uint32_t peer, const Bytes& inner) {
    const Bytes msg =
        testing::transport_message(*bed_->keypairs[peer], next_counter_[peer]++, inner);
    Bytes ip(sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + msg.size(), 0);
    auto* v4 = reinterpret_cast<rte_ipv4_hdr*>(ip.data());
    auto* udp = reinterpret_cast<rte_udp_hdr*>(v4 + 1);
    v4->version_ihl = RTE_IPV4_VHL_DEF;
    v4->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(ip.size()));
    v4->time_to_live = 64;
    v4->next_proto_id = IPPROTO_UDP;
    v4->src_addr = rte_cpu_to_be_32(Bed::endpoint_addr(peer));
    v4->dst_addr = rte_cpu_to_be_32(Bed::kTunnelIp);
    udp->src_port = rte_cpu_to_be_16(static_cast<uint16_t>(30000 + peer));
    udp->dst_port = rte_cpu_to_be_16(Bed::kWgPort);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(ip.size() - sizeof(rte_ipv4_hdr)));
    std::memcpy(udp + 1, msg.data(), msg.size());
    v4->hdr_checksum = rte_ipv4_cksum(v4);
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(v4, udp);
    return ether(kTunnel, RTE_ETHER_TYPE_IPV4, ip);
  }
  static Bytes from_internet(const Bytes& ip6) {
    return ether(kInternet, RTE_ETHER_TYPE_IPV6, ip6);
  }

  // The inner packets sealed to each peer on the tunnel port, by peer.
  static std::map<uint32_t, std::vector<Bytes>> opened() {
    std::map<uint32_t, std::vector<Bytes>> out;
    for (const Bytes& ip : sent(kTunnel)) {
      const size_t off = sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
      const auto* hdr = reinterpret_cast<const wg::MessageTransportHeader*>(ip.data() + off);
      for (uint32_t peer : {kClient, kSite})
        if (hdr->receiver_index == bed_->keypairs[peer]->remote_index)
          out[peer].push_back(
              testing::open_transport6(*bed_->keypairs[peer], ip.data() + off, ip.size() - off));
    }
    return out;
  }

  static void run(uint8_t port, std::vector<rte_mbuf*> pkts) {
    bed_->worker->process_burst(port, pkts.data(), static_cast<uint16_t>(pkts.size()));
    bed_->worker->flush();
  }

  static inline Bed* bed_ = nullptr;
  static inline rte_ring* rx_[2] = {};
  static inline rte_ring* tx_[2][2] = {};
  static inline std::map<uint32_t, uint64_t> next_counter_;
};

TEST_F(Nptv6BesideNat66, MixedBurstLeavesByNptv6AndByNat66AndEachReplyComesBack) {
  const std::string site_outside = nptv6_reference(kSiteHost, kSiteInside, kSiteOutside);
  const Bytes site = udp6(kSiteHost, kRemote6, 41000, 443, Bytes(100, 's'));
  const Bytes client = udp6(kClient6, kRemote6, 42000, 443, Bytes(80, 'c'));
  run(kTunnel, {mbuf(sealed(kSite, site)), mbuf(sealed(kClient, client))});
  const auto out = sent(kInternet);
  ASSERT_EQ(out.size(), 2u);
  const Bytes* npt = nullptr;
  const Bytes* nat = nullptr;
  for (const Bytes& p : out) (src_of(p) == site_outside ? npt : nat) = &p;
  ASSERT_NE(npt, nullptr) << "the site's packet left with its NPTv6 address " << site_outside;
  ASSERT_NE(nat, nullptr);
  // NPTv6: only the source address differs (and the hop limit); the checksum is unchanged.
  Bytes want = site;
  want[7] = 63;
  std::memcpy(want.data() + 8, addr6(site_outside.c_str()).data(), 16);
  EXPECT_EQ(*npt, want);
  EXPECT_EQ(Bytes(npt->begin() + 46, npt->begin() + 48),
            Bytes(site.begin() + 46, site.begin() + 48))
      << "checksum-neutral: the UDP checksum field is untouched";
  EXPECT_TRUE(l4_checksum_ok(npt->data()));
  // NAT66: the pool address and a NAT port.
  EXPECT_EQ(src_of(*nat), kPool6);
  EXPECT_EQ(dst_of(*nat), kRemote6);
  const uint16_t nat_port = sport_of(*nat);
  EXPECT_GE(nat_port, 1024);
  EXPECT_TRUE(l4_checksum_ok(nat->data()));

  // The replies, in one burst, reach each peer with its inner address and port back.
  run(kInternet,
      {mbuf(from_internet(udp6(kRemote6, site_outside.c_str(), 443, 41000, Bytes(30, 'r')))),
       mbuf(from_internet(udp6(kRemote6, kPool6, 443, nat_port, Bytes(31, 'r'))))});
  auto got = opened();
  ASSERT_EQ(got[kSite].size(), 1u);
  ASSERT_EQ(got[kClient].size(), 1u);
  Bytes site_reply = udp6(kRemote6, kSiteHost, 443, 41000, Bytes(30, 'r'));
  site_reply[7] = 63;
  EXPECT_EQ(got[kSite][0], site_reply);
  Bytes client_reply = udp6(kRemote6, kClient6, 443, 42000, Bytes(31, 'r'));
  client_reply[7] = 63;
  EXPECT_EQ(got[kClient][0], client_reply);
}

TEST_F(Nptv6BesideNat66, PacketTooBigToAMappedAddressReachesTheSiteQuotingItsOwnAddress) {
  const std::string site_outside = nptv6_reference(kSiteHost, kSiteInside, kSiteOutside);
  const Bytes quoted = udp6(site_outside.c_str(), kRemote6, 41000, 443, Bytes(1200, 'q'));
  Bytes ptb = ip6_packet("2a00:1450:4001::1", site_outside.c_str(), quoted, 64, 2);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(ptb.data());
  uint8_t* icmp = ptb.data() + sizeof(rte_ipv6_hdr);
  icmp[6] = 0x05;  // MTU 1280
  icmp[2] = icmp[3] = 0;
  const uint16_t c = dp::icmp6_checksum(ip, icmp, rte_be_to_cpu_16(ip->payload_len));
  std::memcpy(icmp + 2, &c, 2);
  run(kInternet, {mbuf(from_internet(ptb))});
  auto got = opened();
  ASSERT_EQ(got[kSite].size(), 1u) << "too large: " << drops(DropReason::kWgTooLarge);
  EXPECT_TRUE(got[kClient].empty());
  const Bytes& p = got[kSite][0];
  EXPECT_EQ(dst_of(p), kSiteHost);
  const auto* in = reinterpret_cast<const rte_ipv6_hdr*>(p.data() + sizeof(rte_ipv6_hdr) + 8);
  EXPECT_EQ(format_ipv6(in->src_addr), kSiteHost) << "the quoted source is the site's again";
  EXPECT_TRUE(l4_checksum_ok(p.data())) << "and the ICMPv6 checksum still holds";
}

// Destination Unreachable (type 1, code 3) from `from` quoting `quoted`, checksummed.
Bytes unreachable6(const char* from, const char* to, const Bytes& quoted) {
  Bytes e = ip6_packet(from, to, quoted, 64, 1);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(e.data());
  uint8_t* icmp = e.data() + sizeof(rte_ipv6_hdr);
  icmp[1] = 3;
  icmp[2] = icmp[3] = 0;
  const uint16_t c = dp::icmp6_checksum(ip, icmp, rte_be_to_cpu_16(ip->payload_len));
  std::memcpy(icmp + 2, &c, 2);
  return e;
}

// A router of the site (in one mapping's inside) reports a packet to a host behind another
// mapping: the quoted destination takes that other mapping's outside address, so the sender
// recognises its own packet, and no inside address reaches the internet.
TEST_F(Nptv6BesideNat66, AnErrorQuotingAHostOfAnotherMappingTakesThatMappingsAddress) {
  constexpr const char* kInside2 = "fd00:5173:2::";
  constexpr const char* kOutside2 = "2001:db8:301::";
  constexpr const char* kHost2 = "fd00:5173:2:9::9";
  dp::Nptv6Table t = ctx().nptv6;
  t.add(dp::Nptv6(addr6(kInside2).data(), addr6(kOutside2).data(), 48));
  ctx().nptv6 = t;
  const Bytes quoted = udp6(kRemote6, kHost2, 443, 41000, Bytes(40, 'q'));
  run(kTunnel, {mbuf(sealed(kSite, unreachable6(kSiteHost, kRemote6, quoted)))});
  const auto out = sent(kInternet);
  ASSERT_EQ(out.size(), 1u) << "dropped as quoted_not_mapped: "
                            << drops(DropReason::kNptv6QuotedNotMapped);
  EXPECT_EQ(src_of(out[0]), nptv6_reference(kSiteHost, kSiteInside, kSiteOutside));
  const auto* in = reinterpret_cast<const rte_ipv6_hdr*>(out[0].data() + sizeof(rte_ipv6_hdr) + 8);
  EXPECT_EQ(format_ipv6(in->dst_addr), nptv6_reference(kHost2, kInside2, kOutside2));
  EXPECT_TRUE(l4_checksum_ok(out[0].data())) << "checksum-neutral, both addresses";
}

// ...and one quoting an address no mapping holds (here a tailnet client's) is dropped and
// counted: it would show the internet that address.
TEST_F(Nptv6BesideNat66, AnErrorQuotingAnAddressNoMappingHoldsIsDroppedAndCounted) {
  const uint64_t before = drops(DropReason::kNptv6QuotedNotMapped);
  const Bytes quoted = udp6(kRemote6, kClient6, 443, 41000, Bytes(40, 'q'));
  run(kTunnel, {mbuf(sealed(kSite, unreachable6(kSiteHost, kRemote6, quoted)))});
  EXPECT_TRUE(sent(kInternet).empty());
  EXPECT_EQ(drops(DropReason::kNptv6QuotedNotMapped) - before, 1u);
}

TEST_F(Nptv6BesideNat66, WithoutTheMappingTheSiteSharesThePoolAndItsOutsideIsNotForUs) {
  ctx().nptv6 = dp::Nptv6Table();
  run(kTunnel, {mbuf(sealed(kSite, udp6(kSiteHost, kRemote6, 41001, 443, Bytes(10, 's'))))});
  const auto out = sent(kInternet);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(src_of(out[0]), kPool6);
  const uint64_t before = drops(DropReason::kNat66NotInPool);
  const std::string site_outside = nptv6_reference(kSiteHost, kSiteInside, kSiteOutside);
  run(kInternet,
      {mbuf(from_internet(udp6(kRemote6, site_outside.c_str(), 443, 41001, Bytes(8, 'r'))))});
  EXPECT_EQ(drops(DropReason::kNat66NotInPool) - before, 1u);
  EXPECT_TRUE(opened().empty());
}

TEST_F(Nptv6BesideNat66, InternetPacketForNeitherTheOutsidesNorThePoolDroppedNat66NotInPool) {
  const uint64_t before = drops(DropReason::kNat66NotInPool);
  run(kInternet,
      {mbuf(from_internet(udp6(kRemote6, "2001:db8:301::20", 443, 41000, Bytes(8, 'r')))),
       mbuf(from_internet(udp6(kRemote6, "2001:db8:100::2", 443, 41000, Bytes(8, 'r'))))});
  EXPECT_EQ(drops(DropReason::kNat66NotInPool) - before, 2u);
  EXPECT_TRUE(opened().empty());
}

}  // namespace
}  // namespace exitgw
