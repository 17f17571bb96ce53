// The SIMD Internet checksum against DPDK's reference on random buffers of every length and
// alignment, and the UDP helpers against rte_ipv4_udptcp_cksum.
#include "dataplane/checksum.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace exitgw::dp {
namespace {

TEST(Checksum, EqualsRteRawCksumForEveryLengthAndAlignment) {
  std::mt19937 rng(1);
  std::vector<uint8_t> buf(4096 + 16);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t off = 0; off < 8; ++off)
    for (size_t len = 0; len <= 2100; ++len)
      ASSERT_EQ(checksum(buf.data() + off, len), rte_raw_cksum(buf.data() + off, len))
          << "offset " << off << " length " << len;
}

TEST(Checksum, AllOnesBufferFoldsWithoutLosingCarries) {
  std::vector<uint8_t> buf(65000, 0xff);
  EXPECT_EQ(checksum(buf.data(), buf.size()), rte_raw_cksum(buf.data(), buf.size()));
}

TEST(Checksum, UdpChecksumMatchesDpdkAndVerifies) {
  std::mt19937 rng(2);
  for (int round = 0; round < 500; ++round) {
    const uint16_t payload = static_cast<uint16_t>(rng() % 1473);
    std::vector<uint8_t> pkt(sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + payload);
    for (auto& b : pkt) b = static_cast<uint8_t>(rng());
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(pkt.data());
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->next_proto_id = IPPROTO_UDP;
    ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(pkt.size()));
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload));
    udp->dgram_cksum = 0;
    const uint16_t ours = udp_checksum(ip, udp);
    EXPECT_EQ(ours, rte_ipv4_udptcp_cksum(ip, udp));
    udp->dgram_cksum = ours;
    EXPECT_TRUE(udp_checksum_ok(ip, udp));
    // Any single-bit error is caught (the length field stays: callers check it first).
    const size_t udp_at = sizeof(rte_ipv4_hdr);
    size_t at;
    do {
      at = udp_at + rng() % (sizeof(rte_udp_hdr) + payload);
    } while (at == udp_at + 4 || at == udp_at + 5);
    pkt[at] ^= 0x10;
    EXPECT_FALSE(udp_checksum_ok(ip, udp));
  }
}

TEST(Checksum, ZeroUdpChecksumMeansNotComputed) {
  std::vector<uint8_t> pkt(sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + 10, 0x5a);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(pkt.data());
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->dgram_len = rte_cpu_to_be_16(18);
  udp->dgram_cksum = 0;
  EXPECT_TRUE(udp_checksum_ok(ip, udp));
}

}  // namespace
}  // namespace exitgw::dp
