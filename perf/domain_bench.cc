// Domain policy cost per packet: the pre-filter on traffic it does not inspect (other ports,
// and TLS application data on 443), DNS query name and TLS SNI extraction plus one Hyperscan
// scan against 10, 1000 and 100000 rules (half the names hit a rule), HTTP Host likewise, the
// extractors alone, and the time to compile a list into a database. Cycles per packet by
// rdtsc around bursts of 32 through classify_burst().
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dataplane/domain/domain_burst.h"

namespace {

using namespace exitgw::dp::domain;
using Bytes = std::vector<uint8_t>;

constexpr uint16_t kBurst = 32;
constexpr int kNames = 4096;

void put16(Bytes& b, size_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}

std::string random_label(std::mt19937& rng) {
  std::string s;
  const int n = 4 + int(rng() % 9);
  for (int i = 0; i < n; ++i) s.push_back(char('a' + rng() % 26));
  return s;
}

const char* const kTlds[] = {"com", "net", "org", "io", "de", "co.uk", "info", "xyz"};

// A feed-like list: nearly all exact and suffix domains, a handful of regexes.
struct Workload {
  DomainList list;
  std::vector<std::string> names;  // half of them hit a rule
};

Workload make_workload(size_t rules) {
  std::mt19937 rng{uint32_t(rules)};
  Workload w;
  w.list.origin = "bench";
  const size_t regexes = std::min<size_t>(10, std::max<size_t>(1, rules / 1000));
  std::vector<std::string> domains;
  for (size_t i = 0; i < rules; ++i) {
    DomainRule r;
    r.line = uint32_t(i + 1);
    r.action = i % 4 == 0 ? Action::kLog : Action::kBlock;
    if (i < regexes) {
      r.kind = MatchKind::kRegex;
      r.pattern = "^" + random_label(rng) + "[0-9]*\\.";
    } else {
      r.kind = i % 2 ? MatchKind::kExact : MatchKind::kSuffix;
      r.pattern = random_label(rng) + "." + kTlds[rng() % 8];
      domains.push_back((r.kind == MatchKind::kSuffix ? "www." : "") + r.pattern);
    }
    w.list.rules.push_back(std::move(r));
  }
  for (int i = 0; i < kNames; ++i) {
    if (i % 2 == 0 && !domains.empty()) {
      w.names.push_back(domains[rng() % domains.size()]);
    } else {
      w.names.push_back(random_label(rng) + "." + random_label(rng) + "." + kTlds[rng() % 8]);
    }
  }
  return w;
}

struct Policy {
  Workload workload;
  std::unique_ptr<DomainDatabase> db;
  std::unique_ptr<DomainScratch> scratch;
};

Policy& policy(size_t rules) {
  static std::map<size_t, std::unique_ptr<Policy>> cache;
  auto& p = cache[rules];
  if (!p) {
    p = std::make_unique<Policy>();
    p->workload = make_workload(rules);
    auto db = compile(p->workload.list);
    if (!db.ok()) {
      std::fprintf(stderr, "%s\n", db.error().c_str());
      std::abort();
    }
    p->db = std::make_unique<DomainDatabase>(std::move(db).value());
    p->scratch = std::make_unique<DomainScratch>(DomainScratch::create(*p->db).value());
  }
  return *p;
}

Bytes ipv4(uint8_t proto, uint16_t dport, const Bytes& payload) {
  Bytes l4;
  put16(l4, 40000);
  put16(l4, dport);
  if (proto == 17) {
    put16(l4, 8 + payload.size());
    put16(l4, 0);
  } else {
    for (int i = 0; i < 8; ++i) l4.push_back(0);
    l4.push_back(0x50);
    l4.push_back(0x18);
    put16(l4, 65535);
    put16(l4, 0);
    put16(l4, 0);
  }
  l4.insert(l4.end(), payload.begin(), payload.end());
  Bytes b = {0x45, 0};
  put16(b, 20 + l4.size());
  put16(b, 1);
  put16(b, 0x4000);
  b.push_back(64);
  b.push_back(proto);
  put16(b, 0);
  for (uint8_t x : {100, 64, 0, 2, 93, 184, 216, 34}) b.push_back(x);
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

Bytes dns_query(const std::string& name) {
  Bytes b = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(uint8_t(dot - start));
    b.insert(b.end(), name.begin() + long(start), name.begin() + long(dot));
    start = dot + 1;
  }
  b.push_back(0);
  put16(b, 1);
  put16(b, 1);
  for (uint8_t x : {0, 0, 0x29, 0x10, 0, 0, 0, 0, 0, 0, 0}) b.push_back(x);  // EDNS OPT
  return b;
}

void ext(Bytes& b, uint16_t type, const Bytes& body) {
  put16(b, type);
  put16(b, body.size());
  b.insert(b.end(), body.begin(), body.end());
}

// A browser-like ClientHello (~520 bytes): 16 suites, session id, SNI after GREASE,
// supported_groups, ec_point_formats, then key_share, ALPN, signature algorithms, padding.
Bytes client_hello(const std::string& host) {
  Bytes body = {3, 3};
  body.resize(body.size() + 32, 0x42);
  body.push_back(32);
  body.resize(body.size() + 32, 0x17);
  put16(body, 32);
  for (int i = 0; i < 16; ++i) put16(body, 0x1301 + i);
  body.push_back(1);
  body.push_back(0);
  Bytes e;
  ext(e, 0x0a0a, {});
  ext(e, 10, {0, 8, 0x0a, 0x0a, 0, 0x1d, 0, 0x17, 0, 0x18});
  ext(e, 11, {1, 0});
  Bytes s;
  put16(s, host.size() + 3);
  s.push_back(0);
  put16(s, host.size());
  s.insert(s.end(), host.begin(), host.end());
  ext(e, 0, s);
  ext(e, 51, Bytes(38, 0x33));
  ext(e, 16, {0, 12, 2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'});
  ext(e, 13, Bytes(20, 0x04));
  ext(e, 21, Bytes(200, 0));
  put16(body, e.size());
  body.insert(body.end(), e.begin(), e.end());
  Bytes rec = {22, 3, 1};
  put16(rec, body.size() + 4);
  rec.push_back(1);
  rec.push_back(0);
  put16(rec, body.size());
  rec.insert(rec.end(), body.begin(), body.end());
  return rec;
}

Bytes http_request(const std::string& host) {
  const std::string s = "GET /index.html HTTP/1.1\r\nHost: " + host +
                        "\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\n"
                        "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";
  return Bytes(s.begin(), s.end());
}

struct Packets {
  std::vector<Bytes> bytes;
  std::vector<const uint8_t*> ptrs;
  std::vector<uint32_t> lens;
  void add(Bytes b) { bytes.push_back(std::move(b)); }
  void finish() {
    for (auto& b : bytes) {
      ptrs.push_back(b.data());
      lens.push_back(uint32_t(b.size()));
    }
  }
};

void run_bursts(benchmark::State& state, const Policy& pol, const Packets& pk) {
  DomainResult results[kBurst];
  DomainName names[kBurst];
  auto& scratch = *pol.scratch;
  const size_t n = pk.ptrs.size();
  size_t at = 0;
  uint64_t packets = 0, cycles = 0, hits = 0;
  for (auto _ : state) {
    const uint64_t start = __rdtsc();
    classify_burst(*pol.db, scratch, pk.ptrs.data() + at, pk.lens.data() + at, kBurst, results,
                   names);
    cycles += __rdtsc() - start;
    for (const auto& r : results) hits += r.action != Action::kNone;
    benchmark::DoNotOptimize(results);
    packets += kBurst;
    at = (at + kBurst) % n;
  }
  state.counters["cycles_per_pkt"] = packets ? double(cycles) / double(packets) : 0;
  state.counters["hit_ratio"] = packets ? double(hits) / double(packets) : 0;
  state.SetItemsProcessed(int64_t(packets));
}

void BM_PrefilterOtherTraffic(benchmark::State& state) {
  const Policy& pol = policy(1000);
  Packets pk;
  const Bytes payload(1200, 0xab);
  for (int i = 0; i < kNames; ++i) {
    switch (i % 4) {
      case 0:
        pk.add(ipv4(17, 443, payload));
        break;  // QUIC
      case 1:
        pk.add(ipv4(6, 8443, payload));
        break;
      case 2:
        pk.add(ipv4(17, 4500, payload));
        break;
      default:
        pk.add(ipv4(6, 22, payload));
    }
  }
  pk.finish();
  run_bursts(state, pol, pk);
}
BENCHMARK(BM_PrefilterOtherTraffic);

// Mid-flow HTTPS: port 443, so the TLS extractor runs and refuses at the first byte.
void BM_PrefilterTlsApplicationData(benchmark::State& state) {
  const Policy& pol = policy(1000);
  Packets pk;
  Bytes rec = {23, 3, 3, 0x04, 0xb0};
  rec.resize(1200, 0x5c);
  for (int i = 0; i < kNames; ++i) pk.add(ipv4(6, 443, rec));
  pk.finish();
  run_bursts(state, pol, pk);
}
BENCHMARK(BM_PrefilterTlsApplicationData);

void BM_DnsExtractMatch(benchmark::State& state) {
  const Policy& pol = policy(size_t(state.range(0)));
  Packets pk;
  for (const auto& name : pol.workload.names) pk.add(ipv4(17, 53, dns_query(name)));
  pk.finish();
  run_bursts(state, pol, pk);
}
BENCHMARK(BM_DnsExtractMatch)->Arg(10)->Arg(1000)->Arg(100000);

void BM_SniExtractMatch(benchmark::State& state) {
  const Policy& pol = policy(size_t(state.range(0)));
  Packets pk;
  for (const auto& name : pol.workload.names) pk.add(ipv4(6, 443, client_hello(name)));
  pk.finish();
  run_bursts(state, pol, pk);
}
BENCHMARK(BM_SniExtractMatch)->Arg(10)->Arg(1000)->Arg(100000);

void BM_HttpExtractMatch(benchmark::State& state) {
  const Policy& pol = policy(size_t(state.range(0)));
  Packets pk;
  for (const auto& name : pol.workload.names) pk.add(ipv4(6, 80, http_request(name)));
  pk.finish();
  run_bursts(state, pol, pk);
}
BENCHMARK(BM_HttpExtractMatch)->Arg(1000);

// The extractors alone (no scan), to split a figure above into parsing and matching.
template <NameStatus (*Extract)(const uint8_t*, size_t, char*, size_t, size_t*)>
void extract_only(benchmark::State& state, Bytes (*build)(const std::string&)) {
  const Policy& pol = policy(10);
  std::vector<Bytes> payloads;
  for (int i = 0; i < 256; ++i) payloads.push_back(build(pol.workload.names[size_t(i)]));
  char out[kNameCapacity];
  size_t n = 0, at = 0;
  uint64_t cycles = 0, count = 0;
  for (auto _ : state) {
    const uint64_t start = __rdtsc();
    for (int i = 0; i < kBurst; ++i) {
      const Bytes& p = payloads[at++ & 255];
      benchmark::DoNotOptimize(Extract(p.data(), p.size(), out, sizeof out, &n));
    }
    cycles += __rdtsc() - start;
    count += kBurst;
  }
  state.counters["cycles_per_pkt"] = count ? double(cycles) / double(count) : 0;
}
void BM_DnsExtractOnly(benchmark::State& s) {
  extract_only<dns_query_name>(s, dns_query);
}
void BM_SniExtractOnly(benchmark::State& s) {
  extract_only<tls_client_hello_sni>(s, client_hello);
}
void BM_HttpExtractOnly(benchmark::State& s) {
  extract_only<http_host>(s, http_request);
}
BENCHMARK(BM_DnsExtractOnly);
BENCHMARK(BM_SniExtractOnly);
BENCHMARK(BM_HttpExtractOnly);

void BM_Compile(benchmark::State& state) {
  const Workload w = make_workload(size_t(state.range(0)));
  size_t bytes = 0, scratch = 0;
  if (!compile(make_workload(10).list).ok()) std::abort();  // first-use setup, not timed
  for (auto _ : state) {
    auto db = compile(w.list);
    if (!db.ok()) {
      state.SkipWithError(db.error().c_str());
      return;
    }
    bytes = db->database_bytes();
    scratch = db->scratch_bytes();
  }
  state.counters["db_bytes"] = double(bytes);
  state.counters["scratch_bytes"] = double(scratch);
}
BENCHMARK(BM_Compile)
    ->Arg(10)
    ->Arg(1000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
