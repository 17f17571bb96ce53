// Flow accounting: worker cycles per packet it costs (the outbound hook, note_source +
// account_out, over bursts of 32 with 1k and 100k live flows, against the same loop with
// accounting off; the IPv6 hook, note_source6 + account_out6, beside it), the table alone for the
// inbound direction, and records per second the exporter takes from the control thread to JSON
// lines and to a local UDP collector.
//
// The packets are mbuf headers laid out as DPDK lays them (struct, private area, data) in
// plain memory: the hooks read only headers and metadata, so no EAL is needed. Each burst
// first copies 32 packets' 64-byte headers from random flows (the "off" loop does only this);
// "on" minus "off" is what accounting adds.
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <x86intrin.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>
#include <type_traits>
#include <vector>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "control/export/exporter.h"
#include "common/dataplane_context.h"
#include "dataplane/flow/flow_stage.h"
#include "dataplane/packet_meta.h"

namespace {

using namespace exitgw;
using namespace exitgw::dp;

constexpr uint32_t kHeaderBytes = 64;

struct FakePacket {
  rte_mbuf m;
  PacketMeta meta;  // the private area follows the mbuf struct, as in a pktmbuf pool
  alignas(64) uint8_t data[kHeaderBytes];
};
static_assert(offsetof(FakePacket, meta) == sizeof(rte_mbuf));

struct Header {
  alignas(64) uint8_t b[kHeaderBytes];
};

Header udp_header(uint32_t flow) {
  Header h{};
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(h.b);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = rte_cpu_to_be_16(1200);
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(RTE_IPV4(100, 64, 0, 0) + flow / 1000);
  ip->dst_addr = rte_cpu_to_be_32(RTE_IPV4(1, 0, 0, 1));
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(static_cast<uint16_t>(10000 + flow % 1000));
  udp->dst_port = rte_cpu_to_be_16(443);
  return h;
}

// The same flows over IPv6: the subscriber fd7a:115c:a1e0::/48 + flow / 1000, to 2001:db8::1.
Header udp_header6(uint32_t flow) {
  Header h{};
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(h.b);
  ip->vtc_flow = rte_cpu_to_be_32(6u << 28);
  ip->payload_len = rte_cpu_to_be_16(1160);
  ip->proto = IPPROTO_UDP;
  ip->hop_limits = 64;
  const uint8_t src[16] = {0xfd,
                           0x7a,
                           0x11,
                           0x5c,
                           0xa1,
                           0xe0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           0,
                           static_cast<uint8_t>(flow / 1000 >> 8),
                           static_cast<uint8_t>(flow / 1000)};
  const uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  std::memcpy(ip->src_addr, src, 16);
  std::memcpy(ip->dst_addr, dst, 16);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(static_cast<uint16_t>(10000 + flow % 1000));
  udp->dst_port = rte_cpu_to_be_16(443);
  return h;
}

struct Traffic {
  explicit Traffic(uint32_t flows, Header (*make)(uint32_t) = udp_header) {
    std::mt19937 rng(7);
    headers.resize(1 << 18);  // 100k flows: ~92k distinct per pass
    peer.resize(headers.size());
    for (size_t i = 0; i < headers.size(); ++i) {
      const uint32_t f = rng() % flows;
      headers[i] = make(f);
      peer[i] = f / 1000;
    }
    pkts = std::make_unique<FakePacket[]>(kBurst);
    for (unsigned i = 0; i < kBurst; ++i) {
      FakePacket& p = pkts[i];
      std::memset(&p.m, 0, sizeof(p.m));
      p.m.buf_addr = p.data;
      p.m.data_off = 0;
      p.m.data_len = kHeaderBytes;
      p.m.pkt_len = kHeaderBytes;
      burst[i] = &p.m;
    }
  }
  // The next burst's headers and peers: what the stages before the hook leave behind.
  void next() noexcept {
    for (unsigned i = 0; i < kBurst; ++i) {
      std::memcpy(pkts[i].data, headers[at].b, kHeaderBytes);
      pkts[i].meta.peer_slot = peer[at];
      at = (at + 1) & (headers.size() - 1);
    }
  }
  std::vector<Header> headers;
  std::vector<uint32_t> peer;
  std::unique_ptr<FakePacket[]> pkts;
  rte_mbuf* burst[kBurst];
  size_t at = 0;
};

flow::FlowConfig bench_config(uint32_t flows) {
  // Timeouts far beyond the run: every packet after the first of its flow is a hit.
  return flow::FlowConfig::with_timeouts(flows, 1e6, 1e6, 1'000'000'000, 0);
}

void report(benchmark::State& state, uint64_t cycles) {
  const auto packets = static_cast<int64_t>(state.iterations()) * kBurst;
  state.SetItemsProcessed(packets);
  state.counters["cycles_per_pkt"] = packets ? double(cycles) / double(packets) : 0;
}

void BM_OutboundAccountingOff(benchmark::State& state) {
  Traffic t(static_cast<uint32_t>(state.range(0)));
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    t.next();
    benchmark::DoNotOptimize(t.burst);
    benchmark::ClobberMemory();
  }
  report(state, __rdtsc() - start);
}

void BM_OutboundAccountingOn(benchmark::State& state) {
  const auto flows = static_cast<uint32_t>(state.range(0));
  Traffic t(flows);
  flow::FlowTable table(bench_config(flows));
  uint64_t now = 1;
  for (size_t i = 0; i < t.headers.size() / kBurst; ++i) {  // every flow seen once: hits only
    t.next();
    flow::note_source(t.burst, kBurst);
    flow::account_out(table, t.burst, kBurst, ++now);
  }
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    t.next();
    flow::note_source(t.burst, kBurst);
    flow::account_out(table, t.burst, kBurst, ++now);
    benchmark::ClobberMemory();
  }
  report(state, __rdtsc() - start);
  state.counters["flows"] = double(table.active());
  state.counters["untracked"] = double(table.counters().untracked.get());
  if (table.counters().untracked.get() != 0) state.SkipWithError("table too small");
}

// IPv6: note_source6 + account_out6 (the translation between them left out, as NAT is above).
void BM_OutboundAccountingOn6(benchmark::State& state) {
  const auto flows = static_cast<uint32_t>(state.range(0));
  Traffic t(flows, udp_header6);
  flow::FlowTable6 table(bench_config(flows));
  flow::Sources6 sources;
  uint64_t now = 1;
  const auto hook = [&] {
    flow::note_source6(t.burst, kBurst, sources);
    flow::account_out6(table, sources, t.burst, kBurst, ++now);
  };
  for (size_t i = 0; i < t.headers.size() / kBurst; ++i) {  // every flow seen once: hits only
    t.next();
    hook();
  }
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    t.next();
    hook();
    benchmark::ClobberMemory();
  }
  report(state, __rdtsc() - start);
  state.counters["flows"] = double(table.active());
  if (table.counters().untracked.get() != 0) state.SkipWithError("table too small");
}

// The inbound hook is this staged table call per burst plus one rte_lpm_lookup_bulk and the
// peer's keypair and endpoint checks (the lookups wg_seal makes anyway), which need the EAL and
// are left out here.
void set_addresses(flow::FlowKey& k, uint32_t f) {
  k.src_address = f / 1000;
  k.dst_address = 0x01000001;
}
void set_addresses(flow::FlowKey6& k, uint32_t f) {
  const Header h = udp_header6(f);
  std::memcpy(k.src_address, reinterpret_cast<const rte_ipv6_hdr*>(h.b)->src_addr, 16);
  std::memcpy(k.dst_address, reinterpret_cast<const rte_ipv6_hdr*>(h.b)->dst_addr, 16);
}

template <class Table>
void BM_InboundTableAccount(benchmark::State& state) {
  using Key = std::remove_cvref_t<decltype(Table::Export::key)>;
  const auto flows = static_cast<uint32_t>(state.range(0));
  Table table(bench_config(flows));
  std::vector<Key> keys(1 << 16);
  std::mt19937 rng(9);
  for (auto& k : keys) {
    const uint32_t f = rng() % flows;
    k = Key{};
    set_addresses(k, f);
    k.src_port = static_cast<uint16_t>(f % 1000);
    k.dst_port = 443;
    k.protocol = IPPROTO_UDP;
    k.peer_slot = f / 1000;
    table.account(k, flow::FlowDirection::kIn, 1200, 0, 1);
  }
  uint16_t bytes[kBurst];
  uint8_t flags[kBurst] = {};
  for (auto& b : bytes) b = 1200;
  uint32_t entries[kBurst];
  size_t at = 0;
  uint64_t now = 2;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    table.account_burst(&keys[at], bytes, flags, kBurst, flow::FlowDirection::kIn, ++now, entries);
    benchmark::DoNotOptimize(entries);
    at = (at + kBurst) & (keys.size() - 1);
  }
  report(state, __rdtsc() - start);
}

// The sweep's cost per loop on a full table with nothing due: what an idle or busy worker pays.
void BM_SweepNothingDue(benchmark::State& state) {
  const auto flows = static_cast<uint32_t>(state.range(0));
  flow::FlowTable table(bench_config(flows));
  flow::FlowKey k{};
  for (uint32_t f = 0; f < flows; ++f) {
    k.src_address = f;
    table.account(k, flow::FlowDirection::kOut, 100, 0, 1);
  }
  uint64_t now = 2;
  const uint64_t start = __rdtsc();
  for (auto _ : state) benchmark::DoNotOptimize(table.sweep(now += 1000, 64));
  const auto loops = static_cast<int64_t>(state.iterations());
  state.counters["cycles_per_loop"] = loops ? double(__rdtsc() - start) / double(loops) : 0;
}

exporter::FlowRecord record(uint32_t i) {
  exporter::FlowRecord r;
  r.start_ms = 1700000000000 + i;
  r.end_ms = r.start_ms + 10;
  r.src_address = RTE_IPV4(100, 64, 0, 11);
  r.dst_address = RTE_IPV4(198, 51, 100, 10);
  r.src_port = static_cast<uint16_t>(40000 + i % 20000);
  r.dst_port = 443;
  r.post_nat_address = RTE_IPV4(203, 0, 113, 1);
  r.post_nat_port = static_cast<uint16_t>(1024 + i % 60000);
  r.protocol = 6;
  r.tcp_flags = 0x1b;
  r.tx_packets = 10;
  r.tx_bytes = 1000;
  r.rx_packets = 20;
  r.rx_bytes = 30000;
  r.peer_id = 7;
  return r;
}

// Records per second from submit_flow() to written/sent (wait_settled), in batches.
void export_batches(benchmark::State& state, exporter::Exporter& e) {
  constexpr uint32_t kBatch = 50000;
  uint64_t submitted = 0, refused = 0;
  for (auto _ : state) {
    for (uint32_t i = 0; i < kBatch; ++i) {
      if (!e.submit_flow(record(i))) {
        ++refused;
        std::this_thread::yield();  // the queue is full: let the I/O thread catch up
        --i;
        continue;
      }
      ++submitted;
    }
    if (!e.wait_settled(std::chrono::seconds(60))) state.SkipWithError("exporter did not settle");
  }
  state.SetItemsProcessed(static_cast<int64_t>(submitted));
  state.counters["records_per_s"] =
      benchmark::Counter(double(submitted), benchmark::Counter::kIsRate);
  state.counters["queue_full_retries"] = double(refused);
}

std::filesystem::path scratch_dir(const char* tag) {
  auto d = std::filesystem::temp_directory_path() /
           (std::string("exitgw-flow-bench-") + tag + "-" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d;
}

void BM_ExportJsonLines(benchmark::State& state) {
  const auto dir = scratch_dir("json");
  exporter::ExporterOptions opt;
  opt.json_path = (dir / "flows.json").string();
  opt.node_id = "bench";
  {
    auto e = exporter::Exporter::create(opt);
    if (!e) {
      state.SkipWithError(e.error().c_str());
      return;
    }
    export_batches(state, **e);
  }
  std::filesystem::remove_all(dir);
}

void BM_ExportIpfixUdp(benchmark::State& state) {
  const auto dir = scratch_dir("udp");
  // A local collector that reads and discards, so no ICMP unreachable comes back.
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int big = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    state.SkipWithError("cannot bind a local UDP socket");
    close(fd);
    return;
  }
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> datagrams{0};
  std::thread reader([&] {
    char buf[65536];
    while (!stop.load())
      if (recv(fd, buf, sizeof(buf), 0) > 0) datagrams.fetch_add(1);
  });
  exporter::ExporterOptions opt;
  opt.collector = "udp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  opt.spool_dir = (dir / "spool").string();
  opt.spool_fsync = false;
  opt.node_id = "bench";
  opt.max_messages_per_second = 1000000;
  {
    auto e = exporter::Exporter::create(opt);
    if (!e) {
      state.SkipWithError(e.error().c_str());
    } else {
      export_batches(state, **e);
      state.counters["spooled"] = double((*e)->counters().spooled.load());
    }
  }
  stop.store(true);
  reader.join();
  close(fd);
  state.counters["datagrams"] = double(datagrams.load());
  std::filesystem::remove_all(dir);
}

BENCHMARK(BM_OutboundAccountingOff)->Arg(1000)->Arg(100000);
BENCHMARK(BM_OutboundAccountingOn)->Arg(1000)->Arg(100000);
BENCHMARK(BM_OutboundAccountingOn6)->Arg(1000)->Arg(100000);
BENCHMARK(BM_InboundTableAccount<flow::FlowTable>)->Arg(1000)->Arg(100000);
BENCHMARK(BM_InboundTableAccount<flow::FlowTable6>)->Arg(1000)->Arg(100000);
BENCHMARK(BM_SweepNothingDue)->Arg(100000);
BENCHMARK(BM_ExportJsonLines)->Iterations(4)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ExportIpfixUdp)->Iterations(4)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
