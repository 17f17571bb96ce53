// The whole data path on one core through the real stage code: WireGuard traffic from many
// peers decrypted, checked and forwarded (outbound), and internet replies sealed toward their
// peers (inbound), against raw ipsec-mb ChaCha20-Poly1305 on the same core in the same run;
// inner IPv4 and inner IPv6 (--family ipv4|ipv6|both, default both: the IPv6 exit chain, with
// NPTv6 in the NAT runs, or with --nat6 stateful stateful NAT66 to a pool as the daemon's
// --nat6_mode=stateful --nat_pool6 takes it, beside the IPv4 one with NAT44).
// Ports are net_null vdevs, so TX is real (descriptors, frees) and costs what a fast NIC does.
// Every row must deliver every packet it offers (the drops, warm-up included, are printed and
// fail the run) and, through NAT44 or NAT66, have its NAT translate every one of them against
// sessions the warm-up established (a measured round that creates a session fails the run).
//
//   pipeline_bench [--peers N] [--quick] [--family ipv4|ipv6|both] [--nat6 nptv6|stateful]
//                  [--json FILE]
//   pipeline_bench --scaling [--quick] [--huge] [--json FILE]
//
// --scaling sweeps three axes, each point in a fresh child process (its own EAL, so tables are
// sized for that point and its memory is its own): peers (10 .. 100,000, the traffic spread
// over all of them in random order), live NAT sessions (1k .. 1M, installed through the NAT
// code, then hit at random) and policy rules (10 .. 10,000 compiled allow rules). Each point
// reports both directions at 64-byte payloads (where per-packet lookups weigh most) with
// throughput, the ratio to raw ipsec-mb in the same process, and the memory that axis costs,
// measured (DPDK heap and RSS deltas, the NAT tables' own size), not estimated.
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_udp.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/ipv4_header.h"
#include "control/net_parse.h"
#include "control/policy/compile.h"
#include "control/policy/policy.h"
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
// The same for IPv6: global unicast (2000::/3), in no special range.
constexpr uint8_t kServer6[16] = {0x2a, 0x00, 0x14, 0x50, 0x40, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
// Peer i's IPv6 address: the tailnet's prefix with i in the last 32 bits; NPTv6 (NAT runs)
// maps fd7a:115c:a1e0::/48 to 2001:db8:100::/48.
constexpr uint8_t kInside6[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0};
constexpr uint8_t kPool6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00};
// --nat6 stateful: the NAT66 pool, as --nat_pool6 would give it with --nat6_mode=stateful: 16
// addresses, the shape of the bed's NAT44 pool (a /28), inside NPTv6's outside prefix.
constexpr const char* kNat66Pool = "2001:db8:100::/124";
constexpr uint8_t kRouter6[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
constexpr uint16_t kWgPort = Bed::kWgPort;

uint32_t peer_addr(uint32_t i) {
  return Bed::peer_addr(i);
}
uint32_t endpoint_addr(uint32_t i) {
  return Bed::endpoint_addr(i);
}

void fill_ipv4(rte_ipv4_hdr* ip, uint32_t src, uint32_t dst, uint16_t total, uint8_t proto) {
  exitgw::fill_ipv4_header(ip, rte_cpu_to_be_32(src), rte_cpu_to_be_32(dst), total, proto);
}

// An IPv4/UDP packet of `total` bytes (>= 28) at p, from port `sport` to port 443.
void build_inner(uint8_t* p, uint32_t src, uint32_t dst, uint16_t total, uint32_t seq,
                 uint16_t sport) {
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  for (uint16_t b = 28; b < total; ++b) p[b] = static_cast<uint8_t>(seq + b);
  fill_ipv4(ip, src, dst, total, IPPROTO_UDP);
  udp->src_port = rte_cpu_to_be_16(sport);
  udp->dst_port = rte_cpu_to_be_16(443);
  udp->dgram_len = rte_cpu_to_be_16(total - 20);
  udp->dgram_cksum = 0;
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
}

std::array<uint8_t, 16> peer_addr6(uint32_t i) {
  std::array<uint8_t, 16> a{};
  std::memcpy(a.data(), kInside6, 16);
  const uint32_t be = rte_cpu_to_be_32(i + 1);
  std::memcpy(a.data() + 12, &be, 4);
  return a;
}

// An IPv6/UDP packet of `total` bytes (>= 48) at p, from port `sport` to port 443.
void build_inner6(uint8_t* p, const uint8_t* src, const uint8_t* dst, uint16_t total, uint32_t seq,
                  uint16_t sport) {
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(p);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  for (uint16_t b = 48; b < total; ++b) p[b] = static_cast<uint8_t>(seq + b);
  ip->vtc_flow = RTE_BE32(6u << 28);
  ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(total - 40));
  ip->proto = IPPROTO_UDP;
  ip->hop_limits = 64;
  std::memcpy(ip->src_addr, src, 16);
  std::memcpy(ip->dst_addr, dst, 16);
  udp->src_port = rte_cpu_to_be_16(sport);
  udp->dst_port = rte_cpu_to_be_16(443);
  udp->dgram_len = rte_cpu_to_be_16(total - 40);
  udp->dgram_cksum = 0;
  udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip, udp);
}

// One packet's flow: which peer sends it, from which inner port, to which server (port 443).
struct Flow {
  uint32_t peer;
  uint16_t sport;
  uint32_t remote;
};

// The standard figures' traffic: packet j from peer j % peers, port 40000 + j % 1000.
std::vector<Flow> round_robin_flows(uint32_t peers, size_t n) {
  std::vector<Flow> f(n);
  for (size_t j = 0; j < n; ++j)
    f[j] = Flow{static_cast<uint32_t>(j % peers), static_cast<uint16_t>(40000 + j % 1000), kServer};
  return f;
}

struct Template {
  std::vector<uint8_t> frame;
  uint32_t inner_len;
};

struct Figure {
  std::string direction, size, family = "ipv4";
  // What translated the row's packets: nat44, nat66 (stateful), nptv6 or routed (none).
  std::string translation;
  double mpps, gbps, cycles_per_pkt, raw_mpps, raw_cycles_per_pkt, ratio;
  uint64_t delivered, offered;
  // Packets the worker dropped in the row, warm-up round included (any fails the run).
  uint64_t dropped = 0;
  // NAT44 and NAT66 rows, in the measured rounds: packets the NAT translated (must equal
  // offered) and sessions it created (must be 0: the warm-up established them all).
  uint64_t translated = 0, sessions_created = 0;
  // Cycles per packet of the median and of the fastest round (pipeline and raw): on a shared
  // machine a round in which the core was taken away stands out; the fastest round is the
  // one least disturbed.
  double median_cycles_per_pkt, raw_median_cycles_per_pkt, best_cycles_per_pkt,
      raw_best_cycles_per_pkt;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Bench {
  Bed bed;
  dp::DataplaneContext& ctx = bed.ctx;
  std::vector<uint64_t> next_counter;
  uint32_t peers = 1000;
  double hz = 0;
};

// Every packet the worker has dropped so far, all ports and reasons.
uint64_t total_drops(const dp::DataplaneContext& ctx) {
  const dp::LcoreCounters& c = ctx.workers[0].counters;
  uint64_t n = 0;
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    for (size_t r = 0; r < static_cast<size_t>(dp::DropReason::kCount); ++r)
      n += c.drops[p][r].get();
  return n;
}

// The NAT that translates the family's packets (null: NPTv6 or routed), and its name.
const dp::nat::NatCounters* nat_counters(Bench& b, bool v6) {
  dp::Worker& w = *b.bed.worker;
  if (v6) return w.nat66() ? &w.nat66()->counters() : nullptr;
  return w.nat() ? &w.nat()->counters() : nullptr;
}
std::string translation_of(Bench& b, bool v6) {
  dp::Worker& w = *b.bed.worker;
  if (v6) return w.nat66() ? "nat66" : b.ctx.nptv6.on() ? "nptv6" : "routed";
  return w.nat() ? "nat44" : "routed";
}

// Why packets went missing: every non-zero drop counter of the worker, by reason.
void print_drops(const dp::DataplaneContext& ctx) {
  const dp::LcoreCounters& c = ctx.workers[0].counters;
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    for (size_t r = 0; r < static_cast<size_t>(dp::DropReason::kCount); ++r)
      if (const uint64_t n = c.drops[p][r].get())
        std::fprintf(stderr, "pipeline_bench:   port %u dropped %lu: %s\n", p, (unsigned long)n,
                     std::string(dp::drop_reason_name(static_cast<dp::DropReason>(r))).c_str());
}

std::vector<uint16_t> sizes_for(const std::string& name, size_t n) {
  std::vector<uint16_t> out(n);
  // Simple IMIX 7:4:1 of 64, 576 and 1420-byte inner packets.
  static const uint16_t imix[12] = {64, 576, 64, 64, 1420, 576, 64, 64, 576, 64, 576, 64};
  for (size_t i = 0; i < n; ++i) out[i] = name == "imix" ? imix[i % 12] : uint16_t(std::stoi(name));
  return out;
}

// Outbound: the frames a peer's wireguard-go would send, sealed with the gateway's receive key.
std::vector<Template> outbound_templates(Bench& b, const std::vector<Flow>& flows,
                                         const std::vector<uint16_t>& sizes, bool v6) {
  std::vector<Template> t(sizes.size());
  const rte_ether_addr& gw_mac = b.ctx.port(dp::PortRole::kTunnel).mac;
  for (size_t j = 0; j < sizes.size(); ++j) {
    const uint32_t peer = flows[j].peer;
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
    if (v6)
      build_inner6(body, peer_addr6(peer).data(), kServer6, static_cast<uint16_t>(inner),
                   static_cast<uint32_t>(j), flows[j].sport);
    else
      build_inner(body, peer_addr(peer), flows[j].remote, static_cast<uint16_t>(inner),
                  static_cast<uint32_t>(j), flows[j].sport);
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
std::vector<Template> inbound_templates(Bench& b, const std::vector<Flow>& flows,
                                        const std::vector<uint16_t>& sizes, bool v6) {
  std::vector<Template> t(sizes.size());
  const rte_ether_addr& gw_mac = b.ctx.port(dp::PortRole::kInternet).mac;
  dp::nat::NatWorker* nat = b.bed.worker->nat();
  dp::nat::Nat66Worker* nat66 = b.bed.worker->nat66();
  for (size_t j = 0; j < sizes.size(); ++j) {
    const uint32_t peer = flows[j].peer;
    t[j].inner_len = sizes[j];
    t[j].frame.assign(14 + sizes[j], 0);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(t[j].frame.data());
    eth->dst_addr = gw_mac;
    eth->src_addr = rte_ether_addr{{0x02, 0, 0, 0, 0, 0xfd}};
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    uint8_t* ip = t[j].frame.data() + 14;
    const uint16_t sport = flows[j].sport;
    if (v6) {
      // The reply to the peer's address and port as they left: stateful NAT66's mapping (pool
      // address and port), NPTv6's pool address, or its own (routed).
      std::array<uint8_t, 16> dst6 = peer_addr6(peer);
      uint16_t dport6 = sport;
      if (nat66) {
        auto m = nat66->find_mapping(dp::nat::Ipv6Address::from_array(dst6), sport,
                                     dp::nat::NatProto::kUdp);
        if (!m) {
          std::fprintf(stderr, "pipeline_bench: no NAT66 mapping for peer %u port %u\n", peer,
                       sport);
          print_drops(b.ctx);
          std::exit(1);
        }
        dst6 = m->public_address.bytes();
        dport6 = m->public_port;
      } else if (b.ctx.nptv6.on()) {
        b.ctx.nptv6.to_outside(dst6.data());
      }
      eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
      build_inner6(ip, kServer6, dst6.data(), sizes[j], static_cast<uint32_t>(j), 443);
      auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(ip);
      auto* udp = reinterpret_cast<rte_udp_hdr*>(ip6 + 1);
      udp->src_port = rte_cpu_to_be_16(443);
      udp->dst_port = rte_cpu_to_be_16(dport6);
      udp->dgram_cksum = 0;
      udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip6, udp);
      continue;
    }
    uint32_t dst = peer_addr(peer);
    uint16_t dport = sport;
    if (nat) {
      auto m = nat->find_mapping(peer_addr(peer), sport, dp::nat::NatProto::kUdp);
      if (!m) {
        std::fprintf(stderr, "pipeline_bench: no NAT mapping for peer %u port %u\n", peer, sport);
        print_drops(b.ctx);
        std::exit(1);
      }
      dst = m->public_address;
      dport = m->public_port;
    }
    build_inner(ip, flows[j].remote, dst, sizes[j], static_cast<uint32_t>(j), 443);
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
                     const std::vector<Flow>& flows, unsigned rounds, bool v6 = false) {
  const auto sizes = sizes_for(size, flows.size());
  const bool out = dir == "outbound";
  const auto templates =
      out ? outbound_templates(b, flows, sizes, v6) : inbound_templates(b, flows, sizes, v6);
  const uint8_t in_port = b.ctx.port_index(out ? dp::PortRole::kTunnel : dp::PortRole::kInternet);
  const uint8_t out_port = b.ctx.port_index(out ? dp::PortRole::kInternet : dp::PortRole::kTunnel);
  dp::LcoreCounters& c = b.ctx.workers[0].counters;
  const dp::nat::NatCounters* nc = nat_counters(b, v6);
  const uint64_t drops_before = total_drops(b.ctx);
  uint64_t translated_before = 0, created_before = 0;
  uint64_t cycles = 0, packets = 0, inner_bytes = 0, before = 0, round_cycles = 0;
  std::vector<double> round_cpp;
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
      if (r == 1 && j == 0) {  // the measured rounds start (read outside the timed span)
        before = delivered(c, out_port);
        if (nc) {
          translated_before = (out ? nc->translated_out : nc->translated_in).get();
          created_before = nc->sessions_created.get();
        }
      }
      const uint64_t t0 = rte_rdtsc_precise();
      w.process_burst(in_port, burst, dp::kBurst);
      w.flush();
      const uint64_t spent = rte_rdtsc_precise() - t0;
      cycles += spent;
      round_cycles += spent;
      packets += dp::kBurst;
    }
    if (r >= 1)
      round_cpp.push_back(double(round_cycles) /
                          double(templates.size() / dp::kBurst * dp::kBurst));
    round_cycles = 0;
    // The same sealed templates go round again: forget the counters they used.
    if (out)
      for (Keypair* kp : b.bed.keypairs) kp->replay.reset();
  }
  Figure res;
  res.direction = dir;
  res.size = size;
  res.family = v6 ? "ipv6" : "ipv4";
  res.translation = translation_of(b, v6);
  res.offered = packets;
  res.delivered = delivered(c, out_port) - before;
  res.dropped = total_drops(b.ctx) - drops_before;
  if (nc) {
    res.translated = (out ? nc->translated_out : nc->translated_in).get() - translated_before;
    res.sessions_created = nc->sessions_created.get() - created_before;
  }
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
  std::vector<double> raw_round_cpp;
  for (unsigned r = 0; r < rounds; ++r) {
    uint64_t raw_round = 0;
    for (size_t j = 0; j + dp::kBurst <= sizes.size(); j += dp::kBurst) {
      for (unsigned k = 0; k < dp::kBurst; ++k) {
        lens[k] = (sizes[j + k] + 15) & ~15u;
        bufs[k].resize(lens[k] + 16);
        data[k] = bufs[k].data();
        keys[k] = b.bed.keypairs[flows[j + k].peer]->recv_key;
      }
      const uint64_t t0 = rte_rdtsc_precise();
      raw.run(keys, data, lens, nonce, tag, dp::kBurst, !out);
      const uint64_t spent = rte_rdtsc_precise() - t0;
      raw_cycles += spent;
      raw_round += spent;
      raw_packets += dp::kBurst;
    }
    raw_round_cpp.push_back(double(raw_round) / double(sizes.size() / dp::kBurst * dp::kBurst));
  }
  res.raw_cycles_per_pkt = double(raw_cycles) / double(raw_packets);
  res.raw_mpps = b.hz / res.raw_cycles_per_pkt / 1e6;
  res.ratio = res.mpps / res.raw_mpps;
  res.median_cycles_per_pkt = median(round_cpp);
  res.raw_median_cycles_per_pkt = median(raw_round_cpp);
  res.best_cycles_per_pkt = *std::min_element(round_cpp.begin(), round_cpp.end());
  res.raw_best_cycles_per_pkt = *std::min_element(raw_round_cpp.begin(), raw_round_cpp.end());
  return res;
}

// ---- --scaling ----------------------------------------------------------------------------

struct ScaleRow {
  std::string axis;
  uint32_t point = 0;
  Figure fig;
  uint64_t memory_bytes = 0, rss_bytes = 0;
  uint64_t detail = 0;    // peers: peers; nat: live sessions; acl: compiled allow rules
  std::string breakdown;  // JSON object: the parts memory_bytes adds up
};

std::string dotted(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

// A policy whose grants compile to `fillers` allow rules that the traffic never matches
// (random prefixes /16../32 in 11.0.0.0-99.255.255.255, clear of every built-in safety range,
// one TCP or UDP port each) ahead of the members' autogroup:internet grant that admits it. The
// classifier still walks a trie built from all of them for every packet.
std::string scaling_policy(uint32_t fillers) {
  std::mt19937 rng(fillers + 1);
  std::ostringstream o;
  o << "{\n  \"grants\": [\n";
  for (uint32_t i = 0; i < fillers; ++i) {
    const uint32_t len = 16 + rng() % 17;
    const uint32_t mask = len == 32 ? ~0u : ~(~0u >> len);
    const uint32_t addr = (((11 + rng() % 89) << 24) | (rng() & 0xffffff)) & mask;
    o << "    {\"src\": [\"autogroup:member\"], \"dst\": [\"" << dotted(addr) << "/" << len
      << "\"], \"ip\": [\"" << (rng() % 2 ? "tcp" : "udp") << ":" << 1 + rng() % 10000 << "\"]},\n";
  }
  o << "    {\"src\": [\"autogroup:member\"], \"dst\": [\"autogroup:internet\"], \"ip\": "
       "[\"*\"]},\n"
    << "  ],\n}\n";
  return o.str();
}

// Allow rules `text` compiles to for the bed's peers (one user, so one class), through the
// same parser and compiler the gateway runs.
Result<uint32_t> allow_rules(const std::string& text) {
  auto parsed = policy::parse_policy(text, "(scaling policy)");
  if (!parsed) return make_error(parsed.error());
  const std::vector<policy::PolicyPeer> peers{
      policy::PolicyPeer{0, "bench@example.com", {}, {Ipv4Prefix{peer_addr(0), 32}}}};
  policy::NodeIdentity node;
  node.exit_advertised = true;
  policy::Approvals approvals;
  approvals.exit_node = true;
  auto compiled = policy::compile_policy(*parsed, peers, node, approvals);
  if (!compiled) return make_error(compiled.error());
  uint32_t n = 0;
  for (const policy::CompiledRule& r : compiled->rules) n += r.action == policy::RuleAction::kAllow;
  return n;
}

// NAT axis, session k: peer k % peers, inner port 40000 + q % 100 toward server 1.0.0.1 + q / 100
// (q = k / peers): 100 mappings a peer, each with sessions to several servers (port 443).
Flow session_flow(uint32_t k, uint32_t peers) {
  const uint32_t q = k / peers;
  return Flow{k % peers, static_cast<uint16_t>(40000 + q % 100), kServer + q / 100};
}

// Creates `sessions` live sessions through the worker's own NatWorker (out_burst, the call the
// NAT stage makes), on plain inner packets: the same state the pipeline would leave.
Status install_sessions(Bench& b, uint32_t sessions, uint32_t peers) {
  dp::nat::NatWorker* nat = b.bed.worker->nat();
  constexpr uint16_t kLen = 28;
  alignas(64) uint8_t buf[dp::kBurst][64];
  rte_ipv4_hdr* ips[dp::kBurst];
  uint32_t lens[dp::kBurst];
  dp::nat::NatVerdict verdicts[dp::kBurst];
  dp::nat::NatDrop why[dp::kBurst];
  for (uint32_t k = 0; k < sessions; k += dp::kBurst) {
    const uint16_t n = static_cast<uint16_t>(std::min<uint32_t>(dp::kBurst, sessions - k));
    for (uint16_t i = 0; i < n; ++i) {
      const Flow f = session_flow(k + i, peers);
      build_inner(buf[i], peer_addr(f.peer), f.remote, kLen, k + i, f.sport);
      ips[i] = reinterpret_cast<rte_ipv4_hdr*>(buf[i]);
      lens[i] = kLen;
    }
    nat->out_burst(ips, lens, n, rte_rdtsc(), verdicts, why);
    for (uint16_t i = 0; i < n; ++i)
      if (verdicts[i] != dp::nat::NatVerdict::kForward)
        return make_error("NAT refused session " + std::to_string(k + i) + " (drop reason " +
                          std::to_string(static_cast<int>(why[i])) + ")");
  }
  if (nat->sessions() != sessions)
    return make_error("NAT holds " + std::to_string(nat->sessions()) + " sessions, wanted " +
                      std::to_string(sessions));
  return Ok{};
}

// One point of one axis, in this process (EAL already initialised).
int scaling_point(const std::string& axis, uint32_t point, bool quick, const std::string& size,
                  const std::string& json_path) {
  exitgw::testing::BedOptions opt;
  opt.nat = true;
  opt.peers = 1000;  // the NAT and policy axes: the standard figures' peer count
  uint32_t sessions = 0;
  uint64_t allows = 0;
  if (axis == "peers") {
    opt.peers = point;
    // One port block (512 ports) per subscriber at least, from its paired address (chosen by
    // hash, so addresses fill unevenly): about 48 subscribers per address keeps the fullest
    // one under its 126 blocks. 1,000 peers fit the default /28.
    if (point > 1000) {
      const uint32_t addresses = rte_align32pow2(std::max<uint32_t>(16, point / 48));
      opt.nat_pool = dp::nat::Ipv4Prefix{RTE_IPV4(185, 0, 0, 0),
                                         static_cast<uint8_t>(32 - rte_bsf32(addresses))};
    }
  } else if (axis == "nat") {
    sessions = point;
    opt.nat_max_sessions = std::max<uint32_t>(rte_align32pow2(point), 1u << 12);
  } else if (axis == "acl") {
    auto base = allow_rules(scaling_policy(0));
    if (!base) {
      std::fprintf(stderr, "pipeline_bench: scaling policy: %s\n", base.error().c_str());
      return 1;
    }
    opt.policy_text = scaling_policy(point > *base ? point - *base : 0);
    auto n = allow_rules(opt.policy_text);
    if (!n) {
      std::fprintf(stderr, "pipeline_bench: scaling policy: %s\n", n.error().c_str());
      return 1;
    }
    allows = *n;
  } else {
    std::fprintf(stderr, "pipeline_bench: unknown scaling axis %s\n", axis.c_str());
    return 2;
  }

  Bench b;
  b.peers = opt.peers;
  b.hz = double(rte_get_tsc_hz());
  if (exitgw::Status s = b.bed.init(opt); !s) {
    std::fprintf(stderr, "pipeline_bench: %s %u: %s\n", axis.c_str(), point, s.error().c_str());
    return 1;
  }
  b.next_counter.assign(opt.peers, 0);
  dp::Worker& w = *b.bed.worker;

  const size_t min_templates = quick ? 4096 : 8192;
  std::vector<Flow> flows;
  std::mt19937 rng(point);
  uint64_t memory = 0, rss = 0, detail = 0;
  std::string breakdown = "{}";
  if (axis == "peers") {
    // Every peer sends, in a random order, so each packet's keypair, PeerRuntime, LPM entry and
    // NAT subscriber is one the previous packets did not just warm.
    const size_t n =
        std::max(min_templates, (size_t{point} + dp::kBurst - 1) / dp::kBurst * dp::kBurst);
    std::vector<uint32_t> order(point);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    flows.resize(n);
    for (size_t j = 0; j < n; ++j)
      flows[j] = Flow{order[j % point], static_cast<uint16_t>(40000 + (j / point) % 1000), kServer};
    memory = b.bed.peer_memory.heap_bytes + b.bed.policy_memory.heap_bytes;
    rss = b.bed.peer_memory.rss_bytes + b.bed.policy_memory.rss_bytes;
    detail = point;
    breakdown = "{\"peer_tables\":" + std::to_string(b.bed.peer_table_memory.heap_bytes) +
                ",\"keypairs_and_routes\":" +
                std::to_string(b.bed.peer_memory.heap_bytes - b.bed.peer_table_memory.heap_bytes) +
                ",\"policy\":" + std::to_string(b.bed.policy_memory.heap_bytes) + "}";
  } else if (axis == "nat") {
    const exitgw::testing::MemoryUse before = exitgw::testing::memory_now();
    if (exitgw::Status s = install_sessions(b, sessions, opt.peers); !s) {
      std::fprintf(stderr, "pipeline_bench: nat %u: %s\n", point, s.error().c_str());
      return 1;
    }
    // The tables are allocated whole for their capacity (memory_bytes() adds them up); RSS
    // growth is what the worker's construction (the NAT free lists touch every record) and the
    // live sessions made resident.
    memory = w.nat()->memory_bytes();
    rss = b.bed.worker_memory.rss_bytes + exitgw::testing::memory_since(before).rss_bytes;
    detail = w.nat()->sessions();
    breakdown = "{\"capacity\":" + std::to_string(w.nat()->capacity()) +
                ",\"bytes_per_live_session\":" + std::to_string(memory / sessions) + "}";
    // Packets hit installed sessions at random (no packet creates one).
    const size_t n = quick ? 16384 : 65536;
    flows.resize(n);
    for (size_t j = 0; j < n; ++j) flows[j] = session_flow(rng() % sessions, opt.peers);
  } else {
    flows = round_robin_flows(opt.peers, min_templates);
    memory = b.bed.policy_memory.heap_bytes;
    rss = b.bed.policy_memory.rss_bytes;
    detail = allows;
  }

  const unsigned rounds = quick ? 3 : 9;
  std::vector<ScaleRow> rows;
  for (const char* dir : {"outbound", "inbound"}) {
    Figure f = run_direction(b, w, dir, size, flows, rounds);
    // Scaling compares points measured at different moments on a machine other sessions load
    // unevenly: each point's figures are its fastest round's, pipeline and raw alike (each
    // round goes through every template once, so it still sees every peer and session).
    f.gbps *= f.cycles_per_pkt / f.best_cycles_per_pkt;
    f.cycles_per_pkt = f.best_cycles_per_pkt;
    f.mpps = b.hz / f.cycles_per_pkt / 1e6;
    f.raw_cycles_per_pkt = f.raw_best_cycles_per_pkt;
    f.raw_mpps = b.hz / f.raw_cycles_per_pkt / 1e6;
    f.ratio = f.mpps / f.raw_mpps;
    rows.push_back(ScaleRow{axis, point, f, memory, rss, detail, breakdown});
  }
  if (axis == "nat" && w.nat()->sessions() != sessions) {
    std::fprintf(stderr, "pipeline_bench: nat %u: the traffic changed the session count to %u\n",
                 point, w.nat()->sessions());
    return 1;
  }
  std::ofstream j(json_path);
  for (const ScaleRow& r : rows) {
    std::printf("%-5s %8u %-9s %7.2f %7.2f %8.0f %8.2f %6.2f %10.1f %9.1f %9lu\n", r.axis.c_str(),
                r.point, r.fig.direction.c_str(), r.fig.mpps, r.fig.gbps, r.fig.cycles_per_pkt,
                r.fig.raw_mpps, r.fig.ratio, double(r.memory_bytes) / (1 << 20),
                double(r.rss_bytes) / (1 << 20), (unsigned long)r.detail);
    const Figure& f = r.fig;
    j << "{\"axis\":\"" << r.axis << "\",\"point\":" << r.point << ",\"direction\":\""
      << f.direction << "\",\"size\":\"" << f.size << "\",\"mpps\":" << f.mpps
      << ",\"gbps\":" << f.gbps << ",\"cycles_per_pkt\":" << f.cycles_per_pkt
      << ",\"raw_mpps\":" << f.raw_mpps << ",\"raw_cycles_per_pkt\":" << f.raw_cycles_per_pkt
      << ",\"ratio_to_raw\":" << f.ratio << ",\"median_cycles_per_pkt\":" << f.median_cycles_per_pkt
      << ",\"raw_median_cycles_per_pkt\":" << f.raw_median_cycles_per_pkt
      << ",\"memory_bytes\":" << r.memory_bytes << ",\"rss_bytes\":" << r.rss_bytes
      << ",\"detail\":" << r.detail << ",\"memory_breakdown\":" << r.breakdown
      << ",\"delivered\":" << f.delivered << ",\"offered\":" << f.offered << "}\n";
    if (f.delivered != f.offered) {
      std::fprintf(stderr, "pipeline_bench: %s %u %s delivered %lu of %lu\n", axis.c_str(), point,
                   f.direction.c_str(), (unsigned long)f.delivered, (unsigned long)f.offered);
      print_drops(b.ctx);
      return 1;
    }
  }
  return 0;
}

// The sweep: each point in a child (this binary with --scale AXIS:POINT), one at a time.
int scaling_sweep(bool quick, bool huge, const std::string& size, const std::string& mem,
                  const std::string& json_path) {
  struct Axis {
    const char* name;
    std::vector<uint32_t> points;
  };
  const std::vector<Axis> axes =
      quick
          ? std::vector<Axis>{{"peers", {10, 10000}}, {"nat", {1000, 100000}}, {"acl", {10, 1000}}}
          : std::vector<Axis>{{"peers", {10, 100, 1000, 10000, 100000}},
                              {"nat", {1000, 10000, 100000, 1000000}},
                              {"acl", {10, 1000, 10000}}};
  std::printf("pipeline_bench --scaling: one worker core, %s-byte payloads, policy + NAT44%s\n",
              size.c_str(), huge ? ", hugepages" : "");
  std::printf(
      "memory: peers = keypair hash + allowed-IPs LPM + PeerRuntime + keypairs + policy "
      "(DPDK heap); nat = NAT tables; acl = compiled policy. rss = resident growth\n");
  std::printf("%-5s %8s %-9s %7s %7s %8s %8s %6s %10s %9s %9s\n", "axis", "point", "direction",
              "Mpps", "Gbps", "cyc/pkt", "raw Mpps", "ratio", "memory MiB", "rss MiB", "detail");
  std::fflush(stdout);
  std::vector<std::string> lines;
  int failed = 0;
  for (const Axis& a : axes)
    for (uint32_t p : a.points) {
      const std::string point = std::string(a.name) + ":" + std::to_string(p);
      const std::string out =
          "/tmp/pipeline-scaling-" + std::to_string(getpid()) + "-" + a.name + std::to_string(p);
      std::vector<std::string> args = {"pipeline_bench", "--scale", point, "--json", out,
                                       "--size",         size};
      if (quick) args.push_back("--quick");
      if (huge) args.push_back("--huge");
      if (!mem.empty()) args.insert(args.end(), {"--mem", mem});
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      std::fprintf(stderr, "pipeline_bench: scaling %s\n", point.c_str());
      const pid_t pid = fork();
      if (pid == 0) {
        execv("/proc/self/exe", argv.data());
        _exit(127);
      }
      int status = 0;
      if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
          WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "pipeline_bench: scaling point %s failed\n", point.c_str());
        ++failed;
      }
      // The child's EAL runtime directory (its file prefix is pipebench<its pid>): a sweep
      // starts a dozen processes and leaves none behind.
      if (pid > 0) {
        std::error_code ec;
        std::filesystem::remove_all("/var/run/dpdk/pipebench" + std::to_string(pid), ec);
      }
      std::ifstream in(out);
      for (std::string line; std::getline(in, line);)
        if (!line.empty() && line[0] == '{') lines.push_back(line);
      std::remove(out.c_str());
    }

  if (!json_path.empty()) {
    std::ofstream j(json_path);
    j << "[";
    for (size_t i = 0; i < lines.size(); ++i) j << (i ? ",\n  " : "\n  ") << lines[i];
    j << "\n]\n";
  }
  return failed ? 1 : 0;
}

// The IPv6 exit for the bed's peers: each peer's /128 in an rte_lpm6 (as control publishes
// it), NPTv6 in NAT runs without stateful NAT66 (the bed made that), and the internet port's
// IPv6 router resolved.
bool setup_ipv6(Bench& b) {
  rte_lpm6_config cfg{};
  cfg.max_rules = b.peers + 16;
  cfg.number_tbl8s = b.peers + 64;
  rte_lpm6* lpm6 = rte_lpm6_create("pipebench_ip6", SOCKET_ID_ANY, &cfg);
  if (lpm6 == nullptr) return false;
  for (uint32_t i = 0; i < b.peers; ++i)
    if (rte_lpm6_add(lpm6, peer_addr6(i).data(), 128, i) != 0) return false;
  b.ctx.allowed_ips6.store(lpm6);
  if (b.ctx.nat && !b.ctx.nat66) b.ctx.nptv6 = dp::Nptv6(kInside6, kPool6, 48);
  dp::PortInfo& internet = b.ctx.ports[b.ctx.port_index(dp::PortRole::kInternet)];
  std::memcpy(internet.gateway6, kRouter6, 16);
  const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x02};
  b.bed.neighbors->learn6(b.ctx.port_index(dp::PortRole::kInternet), kRouter6, mac, 0);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  bool quick = false;
  uint32_t peers = 1000;
  bool nat = true;
  std::string only_direction, only_size, family = "both", nat6 = "nptv6";
  unsigned rounds_flag = 0;
  bool huge = false, scaling = false, aead_checksum = false;
  std::string scale, mem;
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
    else if (a == "--udp-checksum-aead")
      aead_checksum = true;  // as --wg_udp_checksum=aead: no outer UDP checksum in software
    else if (a == "--scaling")
      scaling = true;
    else if (a == "--scale" && i + 1 < argc)
      scale = argv[++i];
    else if (a == "--mem" && i + 1 < argc)
      mem = argv[++i];
    else if (a == "--rounds" && i + 1 < argc)
      rounds_flag = static_cast<unsigned>(std::stoul(argv[++i]));
    else if (a == "--direction" && i + 1 < argc)
      only_direction = argv[++i];
    else if (a == "--size" && i + 1 < argc)
      only_size = argv[++i];
    else if (a == "--family" && i + 1 < argc)
      family = argv[++i];
    else if (a == "--nat6" && i + 1 < argc)
      nat6 = argv[++i];
    else if (a == "--peers" && i + 1 < argc)
      peers = static_cast<uint32_t>(std::stoul(argv[++i]));
    else {
      std::fprintf(stderr,
                   "usage: pipeline_bench [--peers N] [--no-nat] [--quick] [--json FILE]\n"
                   "                      [--family ipv4|ipv6|both] [--nat6 nptv6|stateful]\n"
                   "                      [--direction outbound|inbound] "
                   "[--size 64|512|1420|imix[,...]] [--rounds N]\n"
                   "                      [--huge] [--mem MB] [--udp-checksum-aead]\n"
                   "       pipeline_bench --scaling [--quick] [--huge] [--size S] [--mem MB] "
                   "[--json FILE]\n");
      return 2;
    }
  }
  if (scaling)
    return scaling_sweep(quick, huge, only_size.empty() ? "64" : only_size, mem, json_path);
  const std::string prefix = "--file-prefix=pipebench" + std::to_string(getpid());
  // Default: no hugepages, so the bench runs anywhere. --huge: EAL memory (mbufs, keypairs,
  // peer blocks, hash tables) on hugepages as a deployment has it, so TLB misses do not
  // inflate the per-packet cost (needs 512 MiB of free 2 MiB pages).
  std::vector<std::string> eal_args = {
      "pipeline_bench",      "--no-huge",        "-m", "1024", "--no-pci",
      "--vdev=net_null0",    "--vdev=net_null1", "-l", "0",    prefix,
      "--log-level=*:error", "--no-shconf"};
  if (huge) {
    eal_args.erase(eal_args.begin() + 1);  // --no-huge
    eal_args[2] = "512";                   // -m
    eal_args.back() = "--in-memory";       // no runtime files (--no-huge takes --no-shconf)
  }
  // A scaling point's tables grow with it (100,000 peers: 450 MiB of peer tables and
  // keypairs).
  if (!scale.empty()) eal_args[huge ? 2 : 3] = huge ? "1000" : "2048";
  if (!mem.empty()) eal_args[huge ? 2 : 3] = mem;
  std::vector<char*> eal;
  for (auto& s : eal_args) eal.push_back(s.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) {
    std::fprintf(stderr, "pipeline_bench: EAL init failed (run as root)\n");
    return 1;
  }
  if (sodium_init() < 0) return 1;
  if (!scale.empty()) {
    const size_t colon = scale.find(':');
    if (colon == std::string::npos) {
      std::fprintf(stderr, "pipeline_bench: --scale AXIS:POINT\n");
      return 2;
    }
    const int rc = scaling_point(scale.substr(0, colon),
                                 static_cast<uint32_t>(std::stoul(scale.substr(colon + 1))), quick,
                                 only_size.empty() ? "64" : only_size, json_path);
    rte_eal_cleanup();
    return rc;
  }
  if (nat6 != "nptv6" && nat6 != "stateful") {
    std::fprintf(stderr, "pipeline_bench: --nat6 nptv6 or stateful\n");
    return 2;
  }
  if (nat6 == "stateful" && !nat) {
    std::fprintf(stderr, "pipeline_bench: --nat6 stateful is a NAT run (drop --no-nat)\n");
    return 2;
  }
  Bench b;
  b.peers = peers;
  b.hz = double(rte_get_tsc_hz());
  exitgw::testing::BedOptions bed_options;
  bed_options.peers = peers;
  bed_options.nat = nat;
  if (nat6 == "stateful") {
    // Through the daemon's parser, as --nat_pool6 is read with --nat6_mode=stateful.
    auto pool6 = parse_ipv6_prefix(kNat66Pool);
    if (!pool6) {
      std::fprintf(stderr, "pipeline_bench: %s\n", pool6.error().c_str());
      return 1;
    }
    bed_options.nat_pool6 = {{dp::nat::Ipv6Address::from_array(pool6->addr), pool6->len}};
  }
  if (exitgw::Status s = b.bed.init(bed_options); !s) {
    std::fprintf(stderr, "pipeline_bench: %s\n", s.error().c_str());
    return 1;
  }
  b.bed.ctx.wg_udp_checksum_aead = aead_checksum;
  b.next_counter.assign(peers, 0);
  dp::Worker& w = *b.bed.worker;

  const size_t n_templates = quick ? 4096 : 8192;
  const std::vector<Flow> flows = round_robin_flows(peers, n_templates);
  const unsigned rounds = rounds_flag ? rounds_flag : quick ? 3 : 10;
  if (family != "ipv4" && family != "ipv6" && family != "both") {
    std::fprintf(stderr, "pipeline_bench: --family ipv4, ipv6 or both\n");
    return 2;
  }
  if (family != "ipv4" && !setup_ipv6(b)) {
    std::fprintf(stderr, "pipeline_bench: cannot set up the IPv6 exit\n");
    return 1;
  }
  std::vector<Figure> results;
  for (const bool v6 : {false, true}) {
    if ((v6 && family == "ipv4") || (!v6 && family == "ipv6")) continue;
    for (const char* dir : {"outbound", "inbound"})
      for (const char* size : {"64", "512", "1420", "imix"}) {
        // --direction inbound with NAT: an unmeasured outbound pass first creates the mappings
        // the replies are addressed to.
        if (!only_size.empty() &&
            ("," + only_size + ",").find(std::string(",") + size + ",") == std::string::npos)
          continue;
        if (!only_direction.empty() && only_direction != dir && !(nat && dir[0] == 'o')) continue;
        if (!only_direction.empty() && only_direction != dir) {
          run_direction(b, w, dir, size, flows, 1, v6);
          continue;
        }
        results.push_back(run_direction(b, w, dir, size, flows, rounds, v6));
      }
  }

  const std::string ipv6_nat = family == "ipv4" ? ""
                               : nat6 == "stateful"
                                   ? std::string(", IPv6: stateful NAT66 to ") + kNat66Pool
                               : nat ? ", IPv6: NPTv6 fd7a:115c:a1e0::/48 -> 2001:db8:100::/48"
                                     : "";
  std::printf("pipeline_bench: one worker core, %u peers, %s%s, burst %u, TSC %.2f GHz%s\n", peers,
              nat ? "policy + NAT44" : "policy, routed (no NAT)", ipv6_nat.c_str(), dp::kBurst,
              b.hz / 1e9, huge ? ", hugepages" : "");
  // translated: packets the row's NAT (NAT44 or NAT66) translated in the measured rounds;
  // "-" where NPTv6 or nothing translates (no sessions to count).
  std::printf("%-6s %-6s %-9s %-5s %9s %9s %11s %10s %11s %7s %-13s %7s %s\n", "family", "xlat",
              "direction", "size", "Mpps", "Gbps", "cycles/pkt", "raw Mpps", "raw cyc/pkt", "ratio",
              "delivered", "dropped", "translated");
  for (const Figure& r : results) {
    const std::string offered_of = std::to_string(r.delivered) + "/" + std::to_string(r.offered);
    const bool counted = r.translation == "nat44" || r.translation == "nat66";
    std::printf("%-6s %-6s %-9s %-5s %9.2f %9.2f %11.0f %10.2f %11.0f %7.2f %-13s %7lu %s\n",
                r.family.c_str(), r.translation.c_str(), r.direction.c_str(), r.size.c_str(),
                r.mpps, r.gbps, r.cycles_per_pkt, r.raw_mpps, r.raw_cycles_per_pkt, r.ratio,
                offered_of.c_str(), (unsigned long)r.dropped,
                counted ? std::to_string(r.translated).c_str() : "-");
  }
  if (!json_path.empty()) {
    std::ofstream j(json_path);
    j << "[";
    for (size_t i = 0; i < results.size(); ++i) {
      const Figure& r = results[i];
      j << (i ? "," : "") << "\n  {\"bench\":\"pipeline\",\"family\":\"" << r.family
        << "\",\"translation\":\"" << r.translation << "\",\"direction\":\"" << r.direction
        << "\",\"size\":\"" << r.size << "\",\"mpps\":" << r.mpps << ",\"gbps\":" << r.gbps
        << ",\"cycles_per_pkt\":" << r.cycles_per_pkt << ",\"raw_mpps\":" << r.raw_mpps
        << ",\"ratio_to_raw\":" << r.ratio << ",\"delivered\":" << r.delivered
        << ",\"offered\":" << r.offered << ",\"dropped\":" << r.dropped
        << ",\"translated\":" << r.translated << ",\"sessions_created\":" << r.sessions_created
        << "}";
    }
    j << "\n]\n";
  }
  int failed = 0;
  for (const Figure& r : results) {
    const char* what = nullptr;
    if (r.delivered != r.offered || r.dropped != 0)
      what = "packets lost";
    else if ((r.translation == "nat44" || r.translation == "nat66") &&
             (r.translated != r.offered || r.sessions_created != 0))
      what = "not every packet translated on an established session";
    if (what == nullptr) continue;
    std::fprintf(stderr,
                 "pipeline_bench: %s %s %s %s: %s: delivered %lu of %lu, dropped %lu, translated "
                 "%lu, sessions created while measured %lu\n",
                 r.family.c_str(), r.translation.c_str(), r.direction.c_str(), r.size.c_str(), what,
                 (unsigned long)r.delivered, (unsigned long)r.offered, (unsigned long)r.dropped,
                 (unsigned long)r.translated, (unsigned long)r.sessions_created);
    ++failed;
  }
  if (failed) print_drops(b.ctx);
  return failed ? 1 : 0;
}
