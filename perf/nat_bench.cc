// NAT44 per-packet cost: session hit outbound and inbound, session creation and expiry, with
// 1k, 100k and 1M live sessions; cycles per packet (rdtsc around the loop) and table bytes
// per session of capacity (goal: 1M sessions in < 128 MiB), for NAT44 and for NAT66 (the same
// core over 16-byte addresses) side by side, and NAT66's session hit at 1M. Each hit iteration
// copies a 44-byte packet template first (translation rewrites it in place); that copy is included.
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/nat/nat_worker.h"

namespace {

using namespace exitgw::dp::nat;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint32_t kPacketLen = 44;             // IPv4 + UDP + 16 bytes
constexpr uint32_t kFlowsPerSubscriber = 2000;  // within 4 blocks of 512

void put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8, p[1] = v & 0xff;
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16), put16(p + 2, v & 0xffff);
}

struct Template {
  alignas(64) uint8_t b[64];
};

Template udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport) {
  Template t{};
  uint8_t* b = t.b;
  b[0] = 0x45;
  put16(b + 2, kPacketLen);
  b[8] = 64;
  b[9] = 17;
  put32(b + 12, src);
  put32(b + 16, dst);
  put16(b + 20, sport);
  put16(b + 22, dport);
  put16(b + 24, kPacketLen - 20);
  put16(b + 26, 0x1234);  // any nonzero checksum: the update path runs
  return t;
}

NatConfig config(uint32_t capacity) {
  NatConfig c;
  c.pool = {{0xc6336400, 27}};  // 32 addresses: 2M ports per protocol
  c.max_sessions = capacity;
  c.filtering = NatFiltering::kEndpointIndependent;
  return c;
}

// NAT66: 32 addresses of 2001:db8:100::/123, the same ports and limits.
NatConfig config6(uint32_t capacity) {
  NatConfig c = config(capacity);
  c.family = NatFamily::kIpv6;
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00};
  c.pool6 = {{Ipv6Address::from_bytes(b), 123}};
  return c;
}

uint32_t subscriber(uint32_t flow) {
  return 0x64400000 + flow / kFlowsPerSubscriber;
}
uint16_t sport(uint32_t flow) {
  return static_cast<uint16_t>(10000 + flow % kFlowsPerSubscriber);
}
constexpr uint32_t kRemote = 0xcb00710a;

// A worker holding `n` UDP sessions, one mapping each (the most memory per session).
struct Filled {
  Filled(uint32_t n, uint32_t capacity) : nat(config(capacity), 0) {
    NatDrop why;
    for (uint32_t f = 0; f < n; ++f) {
      Template t = udp(subscriber(f), sport(f), kRemote, 443);
      if (nat.out(reinterpret_cast<rte_ipv4_hdr*>(t.b), kPacketLen, 0, &why) !=
          NatVerdict::kForward)
        std::abort();
      pub_ip.push_back(uint32_t{t.b[12]} << 24 | t.b[13] << 16 | t.b[14] << 8 | t.b[15]);
      pub_port.push_back(static_cast<uint16_t>(t.b[20] << 8 | t.b[21]));
    }
  }
  NatWorker nat;
  std::vector<uint32_t> pub_ip;
  std::vector<uint16_t> pub_port;
};

void report(benchmark::State& state, uint64_t cycles, const NatWorker& nat) {
  const auto ops = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(ops);
  state.counters["cycles_per_pkt"] = ops ? static_cast<double>(cycles) / ops : 0;
  state.counters["bytes_per_session"] = static_cast<double>(nat.memory_bytes()) / nat.capacity();
  state.counters["table_MiB"] = static_cast<double>(nat.memory_bytes()) / (1 << 20);
}

// Random flows, so at 1M sessions most lookups miss the caches as they would in service.
std::vector<Template> templates(const Filled& f, uint32_t n, bool inbound) {
  std::mt19937 rng(3);
  std::vector<Template> v(std::min<uint32_t>(n, 1 << 16));
  for (auto& t : v) {
    const uint32_t i = rng() % n;
    t = inbound ? udp(kRemote, 443, f.pub_ip[i], f.pub_port[i])
                : udp(subscriber(i), sport(i), kRemote, 443);
  }
  return v;
}

void BM_OutHit(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Filled f(n, n);
  const auto tpl = templates(f, n, false);
  Template work;
  NatDrop why;
  size_t i = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    std::memcpy(work.b, tpl[i].b, kPacketLen);
    if (++i == tpl.size()) i = 0;
    benchmark::DoNotOptimize(
        f.nat.out(reinterpret_cast<rte_ipv4_hdr*>(work.b), kPacketLen, 1, &why));
  }
  report(state, __rdtsc() - start, f.nat);
}

void BM_InHit(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Filled f(n, n);
  const auto tpl = templates(f, n, true);
  Template work;
  NatDrop why;
  size_t i = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    std::memcpy(work.b, tpl[i].b, kPacketLen);
    if (++i == tpl.size()) i = 0;
    benchmark::DoNotOptimize(
        f.nat.in(reinterpret_cast<rte_ipv4_hdr*>(work.b), kPacketLen, 1, &why));
  }
  report(state, __rdtsc() - start, f.nat);
}

// First packet of a new flow from a new source port: mapping + port + session (+ a block every
// 512 flows) with `n` sessions already live.
constexpr uint32_t kCreates = 1 << 16;
void BM_SessionCreate(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Filled f(n, n + kCreates);
  NatDrop why;
  uint32_t flow = n;
  uint64_t cycles = 0;
  for (auto _ : state) {
    Template t = udp(subscriber(flow), sport(flow), kRemote, 443);
    ++flow;
    const uint64_t s = __rdtsc();
    benchmark::DoNotOptimize(f.nat.out(reinterpret_cast<rte_ipv4_hdr*>(t.b), kPacketLen, 1, &why));
    cycles += __rdtsc() - s;
  }
  report(state, cycles, f.nat);
}

// expire() with budget 256 after every session timed out: cycles per freed session (each
// takes its mapping, port and, every 512, a block with it).
void BM_Expire(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Filled f(n, n);
  uint64_t freed = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) freed += f.nat.expire(301 * kSec, 256);
  const uint64_t cycles = __rdtsc() - start;
  report(state, 0, f.nat);
  state.counters["cycles_per_pkt"] = freed ? static_cast<double>(cycles) / freed : 0;
  state.counters["freed"] = static_cast<double>(freed);
}

// NAT66 session hit outbound: 1M UDP sessions over IPv6 (a 64-byte IPv6 + UDP packet).
void BM_Out66Hit(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  Nat66Worker nat(config6(n), 0);
  constexpr uint32_t kLen6 = 40 + 8 + 16;
  auto make = [](uint32_t flow) {
    Template t{};
    uint8_t* b = t.b;
    b[0] = 0x60;
    put16(b + 4, kLen6 - 40);
    b[6] = 17;
    b[7] = 64;
    b[8] = 0xfd;
    put32(b + 20, subscriber(flow));
    b[24] = 0x20, b[25] = 0x01, b[26] = 0x0d, b[27] = 0xb8;
    put32(b + 36, kRemote);
    put16(b + 40, sport(flow));
    put16(b + 42, 443);
    put16(b + 44, kLen6 - 40);
    put16(b + 46, 0x1234);
    return t;
  };
  NatDrop why;
  for (uint32_t f = 0; f < n; ++f) {
    Template t = make(f);
    if (nat.out(reinterpret_cast<rte_ipv6_hdr*>(t.b), kLen6, 0, &why) != NatVerdict::kForward)
      std::abort();
  }
  std::mt19937 rng(3);
  std::vector<Template> tpl(std::min<uint32_t>(n, 1 << 16));
  for (auto& t : tpl) t = make(rng() % n);
  Template work;
  size_t i = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    std::memcpy(work.b, tpl[i].b, kLen6);
    if (++i == tpl.size()) i = 0;
    benchmark::DoNotOptimize(nat.out(reinterpret_cast<rte_ipv6_hdr*>(work.b), kLen6, 1, &why));
  }
  const auto ops = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(ops);
  state.counters["cycles_per_pkt"] = ops ? static_cast<double>(__rdtsc() - start) / ops : 0;
  state.counters["bytes_per_session"] = static_cast<double>(nat.memory_bytes()) / nat.capacity();
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1000, 100000, 1000000}) b->Arg(n);
  b->Unit(benchmark::kNanosecond);
}

BENCHMARK(BM_OutHit)->Apply(sizes);
BENCHMARK(BM_InHit)->Apply(sizes);
BENCHMARK(BM_Out66Hit)->Arg(1000000)->Unit(benchmark::kNanosecond);
BENCHMARK(BM_SessionCreate)->Apply(sizes)->Iterations(kCreates);
BENCHMARK(BM_Expire)->Arg(1000)->Iterations(4);
BENCHMARK(BM_Expire)->Arg(100000)->Iterations(100000 / 256 + 2);
BENCHMARK(BM_Expire)->Arg(1000000)->Iterations(1000000 / 256 + 2);

}  // namespace

int main(int argc, char** argv) {
  std::printf("%-7s %-10s %14s %18s %18s\n", "family", "capacity", "table bytes", "bytes/session",
              "sessions/MiB");
  for (uint32_t cap : {1000u, 100000u, 1000000u}) {
    NatWorker w4(config(cap), 0);
    Nat66Worker w6(config6(cap), 0);
    for (const auto& [name, bytes] :
         {std::pair{"NAT44", w4.memory_bytes()}, std::pair{"NAT66", w6.memory_bytes()}})
      std::printf("%-7s %-10u %14zu %18.1f %18.0f\n", name, cap, bytes,
                  static_cast<double>(bytes) / cap, cap * double(1 << 20) / bytes);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
