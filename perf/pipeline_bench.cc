// The whole data path on one core through the real stage code: WireGuard traffic from many
// peers decrypted, checked and forwarded (outbound), and internet replies sealed toward their
// peers (inbound), against raw ipsec-mb ChaCha20-Poly1305 on the same core in the same run.
// Ports are net_null vdevs, so TX is real (descriptors, frees) and costs what a fast NIC does.
//
//   pipeline_bench [--peers N] [--quick] [--json FILE]
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_udp.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "dataplane/worker.h"
#include "tests/support/dataplane_bed.h"
#include "perf/raw_ipsec_mb.h"

using namespace exitgw;

namespace {

using Bed = exitgw::testing::DataplaneBed;
constexpr uint32_t kTunnelIp = Bed::kTunnelIp;
// A public address outside every built-in unsafe range, so the default policy allows it.
// Nothing leaves this process: the ports are net_null.
constexpr uint32_t kServer = RTE_IPV4(1, 0, 0, 1);
constexpr uint16_t kWgPort = Bed::kWgPort;

uint32_t peer_addr(uint32_t i) {
  return Bed::peer_addr(i);
}
uint32_t endpoint_addr(uint32_t i) {
  return Bed::endpoint_addr(i);
}

void fill_ipv4(rte_ipv4_hdr* ip, uint32_t src, uint32_t dst, uint16_t total, uint8_t proto) {
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(total);
  ip->packet_id = 0;
  ip->fragment_offset = 0;
  ip->time_to_live = 64;
  ip->next_proto_id = proto;
  ip->src_addr = rte_cpu_to_be_32(src);
  ip->dst_addr = rte_cpu_to_be_32(dst);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

// An IPv4/UDP packet of `total` bytes (>= 28) at p.
void build_inner(uint8_t* p, uint32_t src, uint32_t dst, uint16_t total, uint32_t seq) {
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  for (uint16_t b = 28; b < total; ++b) p[b] = static_cast<uint8_t>(seq + b);
  fill_ipv4(ip, src, dst, total, IPPROTO_UDP);
  udp->src_port = rte_cpu_to_be_16(40000 + seq % 1000);
  udp->dst_port = rte_cpu_to_be_16(443);
  udp->dgram_len = rte_cpu_to_be_16(total - 20);
  udp->dgram_cksum = 0;
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

struct Template {
  std::vector<uint8_t> frame;
  uint32_t inner_len;
};

struct Figure {
  std::string direction, size;
  double mpps, gbps, cycles_per_pkt, raw_mpps, raw_cycles_per_pkt, ratio;
  uint64_t delivered, offered;
};

struct Bench {
  Bed bed;
  dp::DataplaneContext& ctx = bed.ctx;
  std::vector<uint64_t> next_counter;
  uint32_t peers = 1000;
  double hz = 0;
};

std::vector<uint16_t> sizes_for(const std::string& name, size_t n) {
  std::vector<uint16_t> out(n);
  // Simple IMIX 7:4:1 of 64, 576 and 1420-byte inner packets.
  static const uint16_t imix[12] = {64, 576, 64, 64, 1420, 576, 64, 64, 576, 64, 576, 64};
  for (size_t i = 0; i < n; ++i) out[i] = name == "imix" ? imix[i % 12] : uint16_t(std::stoi(name));
  return out;
}

// Outbound: the frames a peer's wireguard-go would send, sealed with the gateway's receive key.
std::vector<Template> outbound_templates(Bench& b, const std::vector<uint16_t>& sizes) {
  std::vector<Template> t(sizes.size());
  const rte_ether_addr& gw_mac = b.ctx.port(dp::PortRole::kTunnel).mac;
  for (size_t j = 0; j < sizes.size(); ++j) {
    const uint32_t peer = static_cast<uint32_t>(j % b.peers);
    const uint32_t inner = sizes[j];
    const uint32_t padded = (inner + 15) & ~15u;
    const uint32_t wg_len = 16 + padded + 16;
    const uint32_t total = 14 + 20 + 8 + wg_len;
    t[j].frame.assign(total, 0);
    t[j].inner_len = inner;
    uint8_t* f = t[j].frame.data();
    auto* eth = reinterpret_cast<rte_ether_hdr*>(f);
    eth->dst_addr = gw_mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0xfe}};
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    auto* hdr = reinterpret_cast<wg::MessageTransportHeader*>(f + 42);
    hdr->type = 4;
    hdr->receiver_index = b.bed.keypairs[peer]->local_index;
    hdr->counter = b.next_counter[peer]++;
    uint8_t* body = f + 42 + 16;
    build_inner(body, peer_addr(peer), kServer, static_cast<uint16_t>(inner),
                static_cast<uint32_t>(j));
    uint8_t nonce[12] = {};
    std::memcpy(nonce + 4, &hdr->counter, 8);
    unsigned long long clen = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(body, &clen, body, padded, nullptr, 0, nullptr, nonce,
                                              b.bed.keypairs[peer]->recv_key);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f + 14);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    fill_ipv4(ip, endpoint_addr(peer), kTunnelIp, static_cast<uint16_t>(20 + 8 + wg_len),
              IPPROTO_UDP);
    udp->src_port = rte_cpu_to_be_16(static_cast<uint16_t>(30000 + peer % 30000));
    udp->dst_port = rte_cpu_to_be_16(kWgPort);
    udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(8 + wg_len));
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  }
  return t;
}

// Inbound: replies from the internet server to what the outbound pass sent: to the NAT
// mapping the worker made (pool address and port), or to the tailnet address when routed.
std::vector<Template> inbound_templates(Bench& b, const std::vector<uint16_t>& sizes) {
  std::vector<Template> t(sizes.size());
  const rte_ether_addr& gw_mac = b.ctx.port(dp::PortRole::kInternet).mac;
  dp::nat::NatWorker* nat = b.bed.worker->nat();
  for (size_t j = 0; j < sizes.size(); ++j) {
    const uint32_t peer = static_cast<uint32_t>(j % b.peers);
    t[j].inner_len = sizes[j];
    t[j].frame.assign(14 + sizes[j], 0);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(t[j].frame.data());
    eth->dst_addr = gw_mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0xfd}};
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    uint8_t* ip = t[j].frame.data() + 14;
    const uint16_t sport = static_cast<uint16_t>(40000 + j % 1000);
    uint32_t dst = peer_addr(peer);
    uint16_t dport = sport;
    if (nat) {
      auto m = nat->find_mapping(peer_addr(peer), sport, dp::nat::NatProto::kUdp);
      if (!m) {
        std::fprintf(stderr, "pipeline_bench: no NAT mapping for peer %u port %u\n", peer, sport);
        std::exit(1);
      }
      dst = m->public_address;
      dport = m->public_port;
    }
    build_inner(ip, kServer, dst, sizes[j], static_cast<uint32_t>(j));
    // A reply: from the server's port 443 to the flow's (translated) source port.
    auto* iph = reinterpret_cast<rte_ipv4_hdr*>(ip);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(iph + 1);
    udp->src_port = rte_cpu_to_be_16(443);
    udp->dst_port = rte_cpu_to_be_16(dport);
    udp->dgram_cksum = 0;
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(iph, udp);
  }
  return t;
}

uint64_t delivered(const dp::LcoreCounters& c, uint8_t port) {
  return c.port[port].tx_packets.get();
}

Figure run_direction(Bench& b, dp::Worker& w, const std::string& dir, const std::string& size,
                     size_t n_templates, unsigned rounds) {
  const auto sizes = sizes_for(size, n_templates);
  const bool out = dir == "outbound";
  const auto templates = out ? outbound_templates(b, sizes) : inbound_templates(b, sizes);
  const uint8_t in_port = b.ctx.port_index(out ? dp::PortRole::kTunnel : dp::PortRole::kInternet);
  const uint8_t out_port = b.ctx.port_index(out ? dp::PortRole::kInternet : dp::PortRole::kTunnel);
  dp::LcoreCounters& c = b.ctx.workers[0].counters;
  uint64_t cycles = 0, packets = 0, inner_bytes = 0, before = 0;
  rte_mbuf* burst[dp::kBurst];
  // Round 0 warms caches and faults in the pool's pages; it is not counted.
  for (unsigned r = 0; r <= rounds; ++r) {
    if (r == 1) {
      cycles = packets = inner_bytes = 0;
    }
    for (size_t j = 0; j + dp::kBurst <= templates.size(); j += dp::kBurst) {
      if (rte_pktmbuf_alloc_bulk(b.bed.pool, burst, dp::kBurst) != 0) {
        std::fprintf(stderr, "out of mbufs\n");
        std::exit(1);
      }
      for (unsigned k = 0; k < dp::kBurst; ++k) {
        const Template& t = templates[j + k];
        std::memcpy(rte_pktmbuf_append(burst[k], static_cast<uint16_t>(t.frame.size())),
                    t.frame.data(), t.frame.size());
        inner_bytes += t.inner_len;
      }
      const uint64_t t0 = rte_rdtsc_precise();
      if (r == 1 && j == 0) before = delivered(c, out_port);
      w.process_burst(in_port, burst, dp::kBurst);
      w.flush();
      cycles += rte_rdtsc_precise() - t0;
      packets += dp::kBurst;
    }
    // The same sealed templates go round again: forget the counters they used.
    if (out)
      for (Keypair* kp : b.bed.keypairs) kp->replay.reset();
  }
  Figure res;
  res.direction = dir;
  res.size = size;
  res.offered = packets;
  res.delivered = delivered(c, out_port) - before;
  res.cycles_per_pkt = double(cycles) / double(packets);
  res.mpps = b.hz / res.cycles_per_pkt / 1e6;
  res.gbps = double(inner_bytes) * 8 / (double(cycles) / b.hz) / 1e9;

  // Reference: raw ipsec-mb on buffers of the same padded lengths, same core, same run.
  exitgw::perf::RawChachaPoly raw;
  std::vector<std::vector<uint8_t>> bufs(dp::kBurst);
  alignas(16) uint8_t nonce[dp::kBurst][16] = {}, tag[dp::kBurst][16];
  const uint8_t* keys[dp::kBurst];
  uint8_t* data[dp::kBurst];
  uint32_t lens[dp::kBurst];
  uint64_t raw_cycles = 0, raw_packets = 0;
  for (unsigned r = 0; r < rounds; ++r) {
    for (size_t j = 0; j + dp::kBurst <= sizes.size(); j += dp::kBurst) {
      for (unsigned k = 0; k < dp::kBurst; ++k) {
        lens[k] = (sizes[j + k] + 15) & ~15u;
        bufs[k].resize(lens[k] + 16);
        data[k] = bufs[k].data();
        keys[k] = b.bed.keypairs[(j + k) % b.peers]->recv_key;
      }
      const uint64_t t0 = rte_rdtsc_precise();
      raw.run(keys, data, lens, nonce, tag, dp::kBurst, !out);
      raw_cycles += rte_rdtsc_precise() - t0;
      raw_packets += dp::kBurst;
    }
  }
  res.raw_cycles_per_pkt = double(raw_cycles) / double(raw_packets);
  res.raw_mpps = b.hz / res.raw_cycles_per_pkt / 1e6;
  res.ratio = res.mpps / res.raw_mpps;
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  bool quick = false;
  uint32_t peers = 1000;
  bool nat = true;
  std::string only_direction, only_size;
  unsigned rounds_flag = 0;
  bool huge = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick")
      quick = true;
    else if (a == "--no-nat")
      nat = false;
    else if (a == "--json" && i + 1 < argc)
      json_path = argv[++i];
    else if (a == "--huge")
      huge = true;
    else if (a == "--rounds" && i + 1 < argc)
      rounds_flag = static_cast<unsigned>(std::stoul(argv[++i]));
    else if (a == "--direction" && i + 1 < argc)
      only_direction = argv[++i];
    else if (a == "--size" && i + 1 < argc)
      only_size = argv[++i];
    else if (a == "--peers" && i + 1 < argc)
      peers = static_cast<uint32_t>(std::stoul(argv[++i]));
    else {
      std::fprintf(stderr,
                   "usage: pipeline_bench [--peers N] [--no-nat] [--quick] [--json FILE]\n"
                   "                      [--direction outbound|inbound] [--size 64|512|1420|imix] "
                   "[--rounds N]\n"
                   "                      [--huge]\n");
      return 2;
    }
  }
  const std::string prefix = "--file-prefix=pipebench" + std::to_string(getpid());
  // Default: no hugepages, so the bench runs anywhere. --huge: EAL memory (mbufs, keypairs,
  // peer blocks, hash tables) on hugepages as a deployment has it, so TLB misses do not
  // inflate the per-packet cost (needs 512 MiB of free 2 MiB pages).
  std::vector<std::string> eal_args = {
      "pipeline_bench",   "--no-huge", "-m", "1024", "--no-pci",           "--vdev=net_null0",
      "--vdev=net_null1", "-l",        "0",  prefix, "--log-level=*:error"};
  if (huge) {
    eal_args.erase(eal_args.begin() + 1);  // --no-huge
    eal_args[2] = "512";                   // -m
    eal_args.push_back("--in-memory");
  }
  std::vector<char*> eal;
  for (auto& s : eal_args) eal.push_back(s.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) {
    std::fprintf(stderr, "pipeline_bench: EAL init failed (run as root)\n");
    return 1;
  }
  if (sodium_init() < 0) return 1;
  Bench b;
  b.peers = peers;
  b.hz = double(rte_get_tsc_hz());
  if (exitgw::Status s = b.bed.init(peers, nat); !s) {
    std::fprintf(stderr, "pipeline_bench: %s\n", s.error().c_str());
    return 1;
  }
  b.next_counter.assign(peers, 0);
  dp::Worker& w = *b.bed.worker;

  const size_t n_templates = quick ? 4096 : 8192;
  const unsigned rounds = rounds_flag ? rounds_flag : quick ? 3 : 10;
  std::vector<Figure> results;
  for (const char* dir : {"outbound", "inbound"})
    for (const char* size : {"64", "512", "1420", "imix"}) {
      // --direction inbound with NAT: an unmeasured outbound pass first creates the mappings
      // the replies are addressed to.
      if (!only_size.empty() && only_size != size) continue;
      if (!only_direction.empty() && only_direction != dir && !(nat && dir[0] == 'o')) continue;
      if (!only_direction.empty() && only_direction != dir) {
        run_direction(b, w, dir, size, n_templates, 1);
        continue;
      }
      results.push_back(run_direction(b, w, dir, size, n_templates, rounds));
    }

  std::printf("pipeline_bench: one worker core, %u peers, %s, burst %u, TSC %.2f GHz%s\n", peers,
              nat ? "policy + NAT44" : "policy, routed (no NAT)", dp::kBurst, b.hz / 1e9,
              huge ? ", hugepages" : "");
  std::printf("%-9s %-5s %9s %9s %11s %10s %11s %7s %s\n", "direction", "size", "Mpps", "Gbps",
              "cycles/pkt", "raw Mpps", "raw cyc/pkt", "ratio", "delivered");
  for (const Figure& r : results)
    std::printf("%-9s %-5s %9.2f %9.2f %11.0f %10.2f %11.0f %7.2f %lu/%lu\n", r.direction.c_str(),
                r.size.c_str(), r.mpps, r.gbps, r.cycles_per_pkt, r.raw_mpps, r.raw_cycles_per_pkt,
                r.ratio, (unsigned long)r.delivered, (unsigned long)r.offered);
  if (!json_path.empty()) {
    std::ofstream j(json_path);
    j << "[";
    for (size_t i = 0; i < results.size(); ++i) {
      const Figure& r = results[i];
      j << (i ? "," : "") << "\n  {\"bench\":\"pipeline\",\"direction\":\"" << r.direction
        << "\",\"size\":\"" << r.size << "\",\"mpps\":" << r.mpps << ",\"gbps\":" << r.gbps
        << ",\"cycles_per_pkt\":" << r.cycles_per_pkt << ",\"raw_mpps\":" << r.raw_mpps
        << ",\"ratio_to_raw\":" << r.ratio << ",\"delivered\":" << r.delivered
        << ",\"offered\":" << r.offered << "}";
    }
    j << "\n]\n";
  }
  for (const Figure& r : results)
    if (r.delivered != r.offered) {
      std::fprintf(stderr, "pipeline_bench: %s %s delivered %lu of %lu\n", r.direction.c_str(),
                   r.size.c_str(), (unsigned long)r.delivered, (unsigned long)r.offered);
      return 1;
    }
  return 0;
}
