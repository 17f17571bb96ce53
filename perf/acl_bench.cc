// Exit-policy classifier cost: cycles per packet for rte_acl_classify over bursts of 32 with
// 10, 1000 and 10000 rules, and the control-thread build time of the context.
// Rules are random (classes, prefixes /8../32, single ports and ranges, some protocol-wide)
// behind the 15 built-in safety denies, as compile_policy lays them out.
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <rte_eal.h>

#include "control/policy/acl_classifier.h"

namespace {

using namespace exitgw::policy;

constexpr uint32_t kClasses = 64;

std::vector<CompiledRule> make_rules(size_t count) {
  std::mt19937 rng(static_cast<uint32_t>(count));
  std::vector<CompiledRule> rules;
  uint32_t counter = 1;
  for (const BuiltinRange& b : kBuiltinDenyRanges) {
    CompiledRule r;
    r.any_class = true;
    r.dst = b.prefix;
    r.rule_index = counter++;
    rules.push_back(r);
  }
  while (rules.size() < count + std::size(kBuiltinDenyRanges)) {
    CompiledRule r;
    r.class_id = 1 + rng() % kClasses;
    r.dst.len = static_cast<uint8_t>(8 + rng() % 25);
    r.dst.addr = rng() & r.dst.mask();
    const uint32_t kind = rng() % 10;
    if (kind < 6) {
      r.proto = rng() % 2 ? kProtoTcp : kProtoUdp;
      r.port_lo = r.port_hi = static_cast<uint16_t>(1 + rng() % 10000);
    } else if (kind < 8) {
      r.proto = kProtoTcp;
      r.port_lo = static_cast<uint16_t>(1024 + rng() % 30000);
      r.port_hi = static_cast<uint16_t>(r.port_lo + rng() % 2000);
    } else {
      r.proto = kind == 8 ? kProtoIcmp : kProtoAny;
    }
    r.action = RuleAction::kAllow;
    r.rule_index = counter++;
    rules.push_back(r);
  }
  return rules;
}

const AclClassifier& classifier_for(size_t count) {
  // Heap-allocated and never destroyed: the classifiers' memory belongs to EAL, which main()
  // shuts down before static destructors would run.
  static auto& cache = *new std::map<size_t, AclClassifier>;
  auto it = cache.find(count);
  if (it == cache.end()) {
    auto built = AclClassifier::build(make_rules(count));
    if (!built) {
      std::fprintf(stderr, "build failed: %s\n", built.error().c_str());
      std::exit(1);
    }
    it = cache.emplace(count, std::move(built.value())).first;
  }
  return it->second;
}

void BM_ClassifyBurst32(benchmark::State& state) {
  const size_t count = static_cast<size_t>(state.range(0));
  const AclClassifier& acl = classifier_for(count);
  const auto rules = make_rules(count);
  constexpr size_t kKeys = 8192;
  std::vector<AclKeyV4> keys(kKeys);
  std::mt19937 rng(99);
  for (auto& k : keys) {
    // Half the packets aim at a rule's prefix, half anywhere (mostly default deny).
    const CompiledRule& r = rules[rng() % rules.size()];
    const uint32_t dst = rng() % 2 ? (r.dst.addr | (rng() & ~r.dst.mask())) : rng();
    fill_acl_key_v4(k, 1 + rng() % kClasses, rng() % 2 ? kProtoTcp : kProtoUdp,
                    rte_cpu_to_be_32(dst), rte_cpu_to_be_16(static_cast<uint16_t>(r.port_lo)));
  }
  std::vector<const uint8_t*> data(kKeys);
  for (size_t i = 0; i < kKeys; ++i) data[i] = reinterpret_cast<const uint8_t*>(&keys[i]);
  uint32_t results[32];
  size_t offset = 0;
  uint64_t packets = 0;
  const uint64_t start = __rdtsc();
  for (auto _ : state) {
    acl.classify(data.data() + offset, results, 32);
    benchmark::DoNotOptimize(results);
    offset = (offset + 32) % kKeys;
    packets += 32;
  }
  const uint64_t cycles = __rdtsc() - start;
  state.SetItemsProcessed(static_cast<int64_t>(packets));
  state.counters["cycles_per_pkt"] = benchmark::Counter(packets ? double(cycles) / packets : 0);
}
BENCHMARK(BM_ClassifyBurst32)->Arg(10)->Arg(1000)->Arg(10000);

void BM_Build(benchmark::State& state) {
  const auto rules = make_rules(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    auto built = AclClassifier::build(rules);
    if (!built) state.SkipWithError(built.error().c_str());
    benchmark::DoNotOptimize(built);
  }
  state.counters["rules"] = static_cast<double>(rules.size());
}
BENCHMARK(BM_Build)->Arg(10)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  const std::string prefix = "--file-prefix=aclbench" + std::to_string(getpid());
  std::vector<std::string> args{"acl_bench",   "--no-huge", "--no-pci",          "-m", "512",
                                "--no-shconf", prefix,      "--log-level=error", "-l", "0"};
  std::vector<char*> eal_argv;
  for (auto& a : args) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "rte_eal_init failed\n");
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  rte_eal_cleanup();
  return 0;
}
