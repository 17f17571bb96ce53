// What the worker-level IPv6 exit tests build and read: inner IPv6 packets with their
// checksums, the L4 checksum check, and the WireGuard transport message a peer seals one into
// (and the inner packet back out of the gateway's). Shared by worker_drops_test (NPTv6 alone)
// and nptv6_mix_test (NPTv6 beside NAT66).
#pragma once

#include <gtest/gtest.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <array>
#include <cstring>
#include <vector>

#include "common/wg_state.h"
#include "common/wg_wire.h"
#include "control/net_parse.h"
#include "control/wg/crypto.h"
#include "dataplane/checksum.h"

namespace exitgw::testing {

inline std::array<uint8_t, 16> addr6(const char* text) {
  auto a = parse_ipv6(text);
  EXPECT_TRUE(a.ok()) << text;
  return a.ok() ? *a : std::array<uint8_t, 16>{};
}

// A UDP datagram over IPv6 with its checksum, or ICMPv6 (`icmp_type` set) with `payload`
// after the 4-byte field.
inline std::vector<uint8_t> ip6_packet(const char* src, const char* dst,
                                       const std::vector<uint8_t>& payload, uint8_t hop_limit = 64,
                                       int icmp_type = -1, uint16_t sport = 40000,
                                       uint16_t dport = 443) {
  const bool icmp = icmp_type >= 0;
  const size_t l4 = (icmp ? 8 : sizeof(rte_udp_hdr)) + payload.size();
  std::vector<uint8_t> b(sizeof(rte_ipv6_hdr) + l4, 0);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(b.data());
  ip->vtc_flow = RTE_BE32(6u << 28);
  ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4));
  ip->proto = icmp ? 58 : IPPROTO_UDP;
  ip->hop_limits = hop_limit;
  std::memcpy(ip->src_addr, addr6(src).data(), 16);
  std::memcpy(ip->dst_addr, addr6(dst).data(), 16);
  uint8_t* l4p = b.data() + sizeof(rte_ipv6_hdr);
  if (icmp) {
    l4p[0] = static_cast<uint8_t>(icmp_type);
    std::memcpy(l4p + 8, payload.data(), payload.size());
    const uint16_t c = dp::icmp6_checksum(ip, l4p, static_cast<uint32_t>(l4));
    std::memcpy(l4p + 2, &c, 2);
  } else {
    auto* udp = reinterpret_cast<rte_udp_hdr*>(l4p);
    udp->src_port = rte_cpu_to_be_16(sport);
    udp->dst_port = rte_cpu_to_be_16(dport);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4));
    std::memcpy(udp + 1, payload.data(), payload.size());
    udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip, udp);
  }
  return b;
}

// Whether the L4 checksum of an IPv6 packet (UDP or ICMPv6 right after the fixed header)
// verifies.
inline bool l4_checksum_ok(const uint8_t* ip6) {
  const auto* ip = reinterpret_cast<const rte_ipv6_hdr*>(ip6);
  const uint32_t len = rte_be_to_cpu_16(ip->payload_len);
  return dp::checksum_fold(dp::checksum_add(ip6 + sizeof(rte_ipv6_hdr), len,
                                            dp::pseudo_header_sum6(ip, ip->proto, len))) == 0xffff;
}

// The transport message (type 4) a peer holding `kp` sends `inner` in, as nonce `counter`,
// padded to 16 bytes as WireGuard pads.
inline std::vector<uint8_t> transport_message(const Keypair& kp, uint64_t counter,
                                              const std::vector<uint8_t>& inner) {
  const size_t padded = (inner.size() + 15) & ~size_t{15};
  std::vector<uint8_t> msg(sizeof(wg::MessageTransportHeader) + padded + wg::kTagLen, 0);
  auto* hdr = reinterpret_cast<wg::MessageTransportHeader*>(msg.data());
  hdr->type = static_cast<uint32_t>(wg::MessageType::kTransport);
  hdr->receiver_index = kp.local_index;
  hdr->counter = counter;
  std::vector<uint8_t> plain(padded, 0);
  std::memcpy(plain.data(), inner.data(), inner.size());
  wg::Key key;
  std::memcpy(key.data(), kp.recv_key, key.size());
  wg::aead_encrypt(msg.data() + sizeof(*hdr), key, counter, plain, {});
  return msg;
}

// The inner IPv6 packet of a transport message of `len` bytes the gateway sealed with `kp`,
// padding cut off.
inline std::vector<uint8_t> open_transport6(const Keypair& kp, const uint8_t* msg, size_t len) {
  const auto* hdr = reinterpret_cast<const wg::MessageTransportHeader*>(msg);
  const size_t cipher = len - sizeof(*hdr);
  std::vector<uint8_t> plain(cipher - wg::kTagLen);
  wg::Key key;
  std::memcpy(key.data(), kp.send_key, key.size());
  EXPECT_TRUE(wg::aead_decrypt(plain.data(), key, hdr->counter, {msg + sizeof(*hdr), cipher}, {}));
  const auto* ip = reinterpret_cast<const rte_ipv6_hdr*>(plain.data());
  plain.resize(sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(ip->payload_len));
  return plain;
}

}  // namespace exitgw::testing
