// Handshakes per second on the control core: what a responder spends on one initiation
// (MAC1 check, four X25519, BLAKE2s, AEADs, the response), the cookie path under load, and
// the MAC1 rejection a garbage flood costs.
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <cstring>

#include "control/wg/cookie.h"
#include "control/wg/noise.h"

namespace {

using namespace exitgw::wg;

struct Pair {
  LocalIdentity gateway = LocalIdentity::from_private_key(generate_private_key()).value();
  LocalIdentity client = LocalIdentity::from_private_key(generate_private_key()).value();
  PeerCrypto client_view = PeerCrypto::create(client, gateway.public_key).value();
  PeerCrypto gateway_view = PeerCrypto::create(gateway, client.public_key).value();
};

void set_rate(benchmark::State& state, uint64_t cycles) {
  state.SetItemsProcessed(state.iterations());
  state.counters["cycles_per_op"] = double(cycles) / double(state.iterations());
}

// Responder: consume an initiation and build the response (what each handshake costs us).
void BM_ResponderHandshake(benchmark::State& state) {
  Pair p;
  uint64_t now_ns = 1'000'000'000, cycles = 0;
  uint32_t index = 1;
  for (auto _ : state) {
    state.PauseTiming();
    // Fresh timestamps and spacing beyond the 20 ms flood limit make every initiation valid.
    now_ns += 50'000'000;
    auto init = create_initiation(
        p.client, p.client_view, index++,
        tai64n_from_unix(int64_t(now_ns / 1'000'000'000), uint32_t(now_ns % 1'000'000'000)),
        now_ns);
    const auto* bytes = reinterpret_cast<const uint8_t*>(&init->message);
    state.ResumeTiming();
    const uint64_t t0 = __rdtsc();
    auto consumed = consume_initiation(
        p.gateway, Bytes(bytes, sizeof(init->message)), [&](const Key&) { return &p.gateway_view; },
        now_ns);
    auto response = create_response(p.gateway_view, consumed->handshake, index++, now_ns);
    cycles += __rdtsc() - t0;
    benchmark::DoNotOptimize(response);
  }
  set_rate(state, cycles);
}

// A flood of forged initiations: MAC1 fails, nothing else is computed.
void BM_RejectBadMac1(benchmark::State& state) {
  Pair p;
  MessageInitiation junk;
  std::memset(&junk, 0x5a, sizeof(junk));
  junk.type = 1;
  uint64_t cycles = 0;
  for (auto _ : state) {
    const uint64_t t0 = __rdtsc();
    benchmark::DoNotOptimize(check_mac1(
        Bytes(reinterpret_cast<const uint8_t*>(&junk), sizeof(junk)), p.gateway.mac1_key));
    cycles += __rdtsc() - t0;
  }
  set_rate(state, cycles);
}

// Under load: a valid-MAC1 initiation without MAC2 is answered with a cookie reply.
void BM_CookieReplyUnderLoad(benchmark::State& state) {
  Pair p;
  CookieChecker checker(p.gateway.mac1_key, p.gateway.cookie_key);
  auto init = create_initiation(p.client, p.client_view, 7, tai64n_now(), 1'000'000'000);
  const Bytes msg(reinterpret_cast<const uint8_t*>(&init->message), sizeof(init->message));
  const Endpoint src = Endpoint::ipv4({10, 77, 0, 11}, 51820);
  uint64_t cycles = 0;
  for (auto _ : state) {
    const uint64_t t0 = __rdtsc();
    auto check = checker.check(msg, src, 2'000'000'000, true);
    auto reply = checker.create_reply(msg, src, 2'000'000'000);
    cycles += __rdtsc() - t0;
    benchmark::DoNotOptimize(check);
    benchmark::DoNotOptimize(reply);
  }
  set_rate(state, cycles);
}

BENCHMARK(BM_ResponderHandshake);
BENCHMARK(BM_RejectBadMac1);
BENCHMARK(BM_CookieReplyUnderLoad);

}  // namespace

BENCHMARK_MAIN();
