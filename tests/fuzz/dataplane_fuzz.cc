// Arbitrary frames through the real worker stages (L2, ARP, IPv4, ICMP, UDP, WireGuard, exit
// policy, NAT, output) on net_null ports. Byte 0 picks the input: bit 0 the port (tunnel or
// internet), bit 1 whether the rest is sealed as a WireGuard transport message from peer 0 (so
// the fuzzer reaches the inner-packet stages: checks, cryptokey routing, policy, NAT), bit 2
// whether the rest is an IPv4 packet given an Ethernet header for our MAC, bit 3 whether the
// rest arrives on the exception port (the host's TUN: an IP packet, no Ethernet), and with it
// bit 4 whether it is wrapped as the DERP relay's datagram (UDP relay_host -> relay_gateway at
// the WireGuard port), so it reaches local delivery; with bit 2, bit 5 makes the Ethernet
// header say IPv6 (the ports have IPv6 addresses: header checks, the extension-header walk,
// ICMPv6 echo, neighbor discovery). The node's tailnet addresses (100.100.0.1 and
// fd7a:115c:a1e0::1) are set, so sealed inner packets addressed to them take the exception path,
// and the host's packets from them are sealed to peer 0. Peer 0 also has the IPv6 address
// fd7a:115c:a1e0:: and NPTv6 maps fd7a:115c:a1e0::/48 to 2001:db8:100::/48, so sealed inner IPv6
// and internet IPv6 for the pool reach the IPv6 exit chain both ways.
//
// Peer 0 also holds the reference handshake's session (tests/unit/vectors: our receiver index
// kResponderIndex, the initiator's sending key), so seeds sealed outside the gateway
// (tests/fuzz/corpus/gen_wg_seeds.py) decrypt, and their mutations exercise the AEAD
// tag, the replay window and the inner packet as they arrive.
#include <rte_ip.h>
#include <rte_lpm6.h>
#include <rte_udp.h>
#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_bed.h"
#include "tests/unit/vectors/wg_handshake_vectors.h"

namespace {

using Bed = exitgw::testing::DataplaneBed;
namespace vectors = exitgw::wg::vectors;

exitgw::Keypair* g_reference = nullptr;
constexpr uint32_t kOwnTailnet = RTE_IPV4(100, 100, 0, 1);
constexpr uint32_t kRelayHost = RTE_IPV4(169, 254, 77, 1);
constexpr uint32_t kRelayGateway = RTE_IPV4(169, 254, 77, 2);

Bed* bed() {
  static Bed* b = [] {
    exitgw::testing::BedOptions options;
    options.peers = 4;
    options.nat = true;
    options.exception_port = "net_null2";
    Bed* nb = exitgw::testing::make_fuzz_bed("dpfuzz", options);
    nb->ctx.tailnet_addrs[0].store(rte_cpu_to_be_32(kOwnTailnet));
    nb->ctx.relay_host = rte_cpu_to_be_32(kRelayHost);
    nb->ctx.relay_gateway = rte_cpu_to_be_32(kRelayGateway);
    exitgw::wg::SessionKeys keys;
    keys.recv_key = std::to_array(vectors::kInitiatorSendKey);
    keys.send_key = std::to_array(vectors::kInitiatorRecvKey);
    keys.local_index = vectors::kResponderIndex;
    keys.remote_index = vectors::kInitiatorIndex;
    g_reference = exitgw::publish_keypair(nb->ctx, keys, 0, 3600, 7200);
    if (g_reference == nullptr) std::abort();
    rte_lpm6_config cfg{};
    cfg.max_rules = 4;
    cfg.number_tbl8s = 32;
    rte_lpm6* lpm6 = rte_lpm6_create("dpfuzz_ip6", SOCKET_ID_ANY, &cfg);
    const uint8_t inside[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
    const uint8_t pool[16] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00};
    if (lpm6 == nullptr || rte_lpm6_add(lpm6, inside, 128, 0) != 0) std::abort();
    nb->ctx.allowed_ips6.store(lpm6);
    // The node's tailnet IPv6 address: sealed inner IPv6 to it and the host's IPv6 from it
    // take the exception path (corpus exception6_*).
    const uint8_t own6[1][16] = {
        {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
    nb->ctx.tailnet_addrs6.publish(own6, 1);
    // NPTv6 with a second mapping beside the pool's (--nptv6_map), so each packet is matched
    // against several.
    const uint8_t site_inside[16] = {0xfd, 0x00, 0x51, 0x73, 0x00, 0x01};
    const uint8_t site_outside[16] = {0x20, 0x01, 0x0d, 0xb8, 0x03, 0x00};
    exitgw::dp::Nptv6Table npt;
    if (!npt.add(exitgw::dp::Nptv6(inside, pool, 48)) ||
        !npt.add(exitgw::dp::Nptv6(site_inside, site_outside, 48)))
      std::abort();
    nb->ctx.nptv6 = npt;
    // The internet port's IPv6 router, resolved, so forwarded IPv6 reaches the output.
    const uint8_t router[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b};
    const uint8_t router_mac[6] = {0x02, 0, 0, 0, 0, 0x0b};
    std::memcpy(nb->ctx.ports[1].gateway6, router, 16);
    nb->neighbors->learn6(1, router, router_mac, 0);
    return nb;
  }();
  return b;
}

uint64_t g_counter = 0;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bed& b = *bed();
  // Every input starts with a fresh window, so a sealed seed is accepted each time it runs (the
  // worker runs in this thread, between bursts: nothing reads the window concurrently).
  g_reference->replay.reset();
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;
  if (size > 1500) size = 1500;
  const uint8_t port = mode & 1;
  // Bit 7: IPv6 no NPTv6 mapping holds passes untranslated (routed mode with --nptv6_map), as
  // the daemon sets it; the bed is otherwise in NAT mode, so both paths are fuzzed.
  b.ctx.nptv6_route_unmapped = (mode & 128) != 0;
  std::vector<uint8_t> frame;
  if (mode & 2) {
    // Ethernet + IPv4 + UDP to the gateway's WireGuard port + a transport message that
    // authenticates, carrying the fuzz input as the inner packet.
    const uint32_t padded = (static_cast<uint32_t>(size) + 15) & ~15u;
    frame.assign(14 + 20 + 8 + 16 + padded + 16, 0);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(frame.data());
    eth->dst_addr = b.ctx.ports[0].mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x10}};
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    auto* hdr = reinterpret_cast<exitgw::wg::MessageTransportHeader*>(frame.data() + 42);
    hdr->type = 4;
    hdr->receiver_index = b.keypairs[0]->local_index;
    hdr->counter = g_counter++;
    uint8_t* body = frame.data() + 58;
    if (size) std::memcpy(body, data, size);
    uint8_t nonce[12] = {};
    std::memcpy(nonce + 4, &hdr->counter, 8);
    unsigned long long clen = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(body, &clen, body, padded, nullptr, 0, nullptr, nonce,
                                              b.keypairs[0]->recv_key);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame.data() + 14);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(frame.size() - 14));
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->src_addr = rte_cpu_to_be_32(Bed::endpoint_addr(0));
    ip->dst_addr = rte_cpu_to_be_32(Bed::kTunnelIp);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    udp->src_port = rte_cpu_to_be_16(30000);
    udp->dst_port = rte_cpu_to_be_16(Bed::kWgPort);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(frame.size() - 34));
  } else if ((mode & 24) == 24) {
    // The DERP relay's datagram carrying the input as what a peer sent over DERP.
    frame.assign(20 + 8 + size, 0);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame.data());
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(frame.size()));
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_UDP;
    ip->src_addr = rte_cpu_to_be_32(kRelayHost);
    ip->dst_addr = rte_cpu_to_be_32(kRelayGateway);
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    udp->src_port = rte_cpu_to_be_16(41641);
    udp->dst_port = rte_cpu_to_be_16(Bed::kWgPort);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(frame.size() - 20));
    if (size) std::memcpy(udp + 1, data, size);
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  } else if (mode & 4) {
    frame.assign(14 + size, 0);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(frame.data());
    eth->dst_addr = b.ctx.ports[port].mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x11}};
    // Bit 32: IPv6 (the bed's ports have IPv6 addresses), else IPv4.
    eth->ether_type = (mode & 32) ? RTE_BE16(RTE_ETHER_TYPE_IPV6) : RTE_BE16(RTE_ETHER_TYPE_IPV4);
    if (size) std::memcpy(frame.data() + 14, data, size);
  } else {
    frame.assign(data, data + size);
  }
  if (frame.empty()) return 0;
  rte_mbuf* m = rte_pktmbuf_alloc(b.pool);
  if (m == nullptr) std::abort();  // a leak in the data path would exhaust the pool
  void* dst = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
  if (dst == nullptr) {
    rte_pktmbuf_free(m);
    return 0;
  }
  std::memcpy(dst, frame.data(), frame.size());
  const uint8_t in_port = (mode & 2) ? 0 : (mode & 8) ? b.ctx.exception_port : port;
  b.worker->process_burst(in_port, &m, 1);
  b.worker->flush();
  b.drain_control();
  return 0;
}
