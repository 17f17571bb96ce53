// The control thread's handling of what workers punt to it. Each input is a UDP payload sent to
// the gateway's WireGuard port: the real worker takes it (and punts the handshake types, drops
// the rest), then the punt ring is emptied as the gateway's control loop does and each packet
// handed on by its punt reason: handshakes to WireGuard::handle_punt (type dispatch, sizes,
// mac1, cookie replies under load, rate limits, Noise, index and keypair tables, the response
// sent back). A new punt reason (disco) gets its case in dispatch_punted() and its seeds in
// tests/fuzz/corpus/control_punt_fuzz/.
//
// Byte 0 is flags: bit 0 puts WireGuard under load (it answers with cookie replies instead of
// spending a DH), bit 1 recomputes mac1 for the gateway's key so mutations reach the Noise
// checks behind it, bits 2-7 pick the source port. The rest is the UDP payload.
//
// The gateway's identity is the reference responder (tests/unit/vectors) and its one peer the
// reference initiator with the reference preshared key, so the seeds written by
// tests/fuzz/corpus/gen_wg_seeds.py complete handshakes. A completed handshake leaves state a
// replayed initiation must not meet (its timestamp, a keypair), so WireGuard then restarts.
#include <rte_ip.h>
#include <rte_udp.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "control/wg/cookie.h"
#include "control/wg/crypto.h"
#include "dataplane/packet_meta.h"
#include "tests/fuzz/fuzz_bed.h"
#include "tests/unit/vectors/wg_handshake_vectors.h"

namespace {

using Bed = exitgw::testing::DataplaneBed;
namespace wg = exitgw::wg;
namespace dp = exitgw::dp;
namespace vectors = exitgw::wg::vectors;

constexpr uint8_t kUnderLoad = 1;
constexpr uint8_t kRecomputeMac1 = 2;
constexpr size_t kMaxPayload = 1400;
constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint32_t kSourceIp = RTE_IPV4(203, 0, 113, 9);

struct World {
  Bed* bed = nullptr;
  wg::HashValue mac1_key{};
  uint64_t now_ns = 1000 * kSecond;
  std::string dir;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  if (!f.flush() || chmod(path.c_str(), 0600) != 0) {
    std::fprintf(stderr, "control_punt_fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

World& world() {
  static World* w = [] {
    auto* nw = new World;
    nw->dir = "/tmp/exitgw-puntfuzz-" + std::to_string(getpid());
    if (mkdir(nw->dir.c_str(), 0700) != 0 && errno != EEXIST) std::abort();
    exitgw::WireGuardOptions wopt;
    wopt.max_peers = 4;
    wopt.private_key_file = nw->dir + "/private.key";
    wopt.peers_file = nw->dir + "/peers.conf";
    write_file(wopt.private_key_file,
               wg::key_to_base64(std::to_array(vectors::kResponderStaticPrivate)) + "\n");
    write_file(
        wopt.peers_file,
        "[Peer]\nPublicKey = " + wg::key_to_base64(std::to_array(vectors::kInitiatorStaticPublic)) +
            "\nPresharedKey = " + wg::key_to_base64(std::to_array(vectors::kPresharedKey)) +
            "\nAllowedIPs = 100.64.0.1/32\n");
    exitgw::testing::BedOptions options;
    options.wireguard = wopt;
    nw->bed = exitgw::testing::make_fuzz_bed("puntfuzz", options);
    auto identity =
        wg::LocalIdentity::from_private_key(std::to_array(vectors::kResponderStaticPrivate));
    if (!identity) std::abort();
    nw->mac1_key = identity->mac1_key;
    std::atexit([] {
      std::remove((world().dir + "/private.key").c_str());
      std::remove((world().dir + "/peers.conf").c_str());
      rmdir(world().dir.c_str());
    });
    return nw;
  }();
  return *w;
}

// Ethernet + IPv4 + UDP to the gateway's WireGuard port on the tunnel port, around `payload`.
rte_mbuf* udp_to_gateway(Bed& b, const std::vector<uint8_t>& payload, uint16_t source_port) {
  rte_mbuf* m = rte_pktmbuf_alloc(b.pool);
  if (m == nullptr) std::abort();  // a leak on the way to control would exhaust the pool
  const size_t total =
      sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + payload.size();
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, uint16_t(total)));
  if (eth == nullptr) std::abort();
  std::memset(eth, 0, total);
  eth->dst_addr = b.ctx.ports[0].mac;
  eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x12}};
  eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(uint16_t(total - sizeof(rte_ether_hdr)));
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(kSourceIp);
  ip->dst_addr = rte_cpu_to_be_32(Bed::kTunnelIp);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  udp->src_port = rte_cpu_to_be_16(source_port);
  udp->dst_port = rte_cpu_to_be_16(Bed::kWgPort);
  udp->dgram_len = rte_cpu_to_be_16(uint16_t(sizeof(rte_udp_hdr) + payload.size()));
  if (!payload.empty()) std::memcpy(udp + 1, payload.data(), payload.size());
  return m;
}

// The control loop's share (control/gateway.cc): every punted packet, by its reason.
void dispatch_punted(Bed& b, uint64_t now_ns) {
  rte_mbuf* punted[dp::kBurst];
  unsigned n;
  while ((n = rte_ring_dequeue_burst(b.ctx.workers[0].punt, reinterpret_cast<void**>(punted),
                                     dp::kBurst, nullptr))) {
    for (unsigned i = 0; i < n; ++i) {
      switch (dp::meta(punted[i])->punt) {
        case dp::PuntReason::kHandshake:
          b.wireguard->handle_punt(punted[i], now_ns);
          break;
        default:
          rte_pktmbuf_free(punted[i]);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  Bed& b = *w.bed;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::vector<uint8_t> payload(data + 1, data + 1 + std::min(size - 1, kMaxPayload));
  if (flags & kRecomputeMac1) {
    wg::CookieState scratch;
    (void)wg::add_macs(std::span<uint8_t>(payload), w.mac1_key, scratch, 0);
  }
  // Past the previous input's second "under load" and the per-peer initiation interval.
  w.now_ns += 2 * kSecond;
  if (flags & kUnderLoad) b.wireguard->note_backlog(UINT_MAX, w.now_ns);
  rte_mbuf* m = udp_to_gateway(b, payload, uint16_t(40000 + (flags >> 2)));
  b.worker->process_burst(0, &m, 1);
  b.worker->flush();
  const uint64_t completed = b.wireguard->stats().handshakes_completed;
  dispatch_punted(b, w.now_ns);
  b.wireguard->tick(w.now_ns);
  b.drain_control();
  if (b.wireguard->stats().handshakes_completed != completed) {
    if (exitgw::Status s = b.restart_wireguard(); !s) {
      std::fprintf(stderr, "control_punt_fuzz: %s\n", s.error().c_str());
      std::abort();
    }
  }
  return 0;
}
