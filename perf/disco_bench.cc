// Disco pongs per second on the control core: what the control thread spends on one punted
// disco frame (disco::Responder::handle, as WireGuard::handle_disco_punt calls it). Three cases:
// a ping from a known peer (cached box key: open, parse, build the pong, seal it with a fresh
// random nonce); a frame from an unknown disco key (one map lookup, no Diffie-Hellman); and the
// first ping from a peer that has just joined (set_peers' crypto_box_beforenm, then the ping).
// Not included: the worker's punt ring, the mbuf and the TX of the pong (send_udp).
#include <benchmark/benchmark.h>
#include <x86intrin.h>

#include <string>

#include "control/wg/disco.h"

namespace {

using namespace exitgw;
using disco::DiscoPeer;
using disco::Responder;

void set_rate(benchmark::State& state, uint64_t cycles) {
  state.SetItemsProcessed(state.iterations());
  state.counters["cycles_per_op"] = double(cycles) / double(state.iterations());
}

// A client's side of disco: its keys, the box key it shares with the gateway, and a ping as
// tailscale sends it (type, version, TxID, its node key; 46 bytes in the box).
struct Client {
  wg::Key disco_private = wg::generate_private_key();
  wg::Key disco_public = wg::public_key_of(disco_private);
  wg::Key node_key = wg::public_key_of(wg::generate_private_key());

  std::vector<uint8_t> ping(const wg::Key& gateway_public) const {
    const wg::Key shared = disco::precompute(disco_private, gateway_public).value();
    std::vector<uint8_t> plain = {static_cast<uint8_t>(disco::MessageType::kPing), disco::kVersion};
    disco::TxId tx_id;
    wg::random_bytes(tx_id.data(), tx_id.size());
    plain.insert(plain.end(), tx_id.begin(), tx_id.end());
    plain.insert(plain.end(), node_key.begin(), node_key.end());
    disco::Nonce nonce;
    wg::random_bytes(nonce.data(), nonce.size());
    return disco::seal_frame(shared, disco_public, nonce, plain);
  }
  DiscoPeer peer() const { return {disco_public, node_key}; }
};

// A responder whose peer set is `others` other peers plus `known` (when given).
Responder gateway_with(size_t others, const Client* known) {
  Responder r = Responder::create(wg::generate_private_key()).value();
  std::vector<DiscoPeer> peers;
  for (size_t i = 0; i < others; ++i) peers.push_back(Client().peer());
  if (known != nullptr) peers.push_back(known->peer());
  r.set_peers(peers);
  return r;
}

const wg::Endpoint kSource = wg::Endpoint::ipv4({198, 51, 100, 7}, 41641);
// Pings 50 ms apart from one source stay inside the per-source limit (20/s, burst 5).
constexpr uint64_t kSpacingNs = 50'000'000;

// Times `gateway` handling the same frame from kSource again and again, the clock advancing by
// `step_ns` each time; every outcome must be `expected`.
void time_handle(benchmark::State& state, Responder& gateway, const std::vector<uint8_t>& frame,
                 uint64_t step_ns, disco::Verdict expected) {
  uint64_t now_ns = 1'000'000'000, cycles = 0;
  for (auto _ : state) {
    now_ns += step_ns;
    const uint64_t t0 = __rdtsc();
    auto out = gateway.handle(frame, kSource, now_ns);
    cycles += __rdtsc() - t0;
    if (out.verdict != expected) {
      state.SkipWithError(("got " + std::string(disco::verdict_name(out.verdict)) + ", not " +
                           std::string(disco::verdict_name(expected)))
                              .c_str());
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  set_rate(state, cycles);
}

// A ping from a current peer: the common case, answered with a pong. Arg: other peers.
void BM_PingToPong(benchmark::State& state) {
  const Client client;
  Responder gateway = gateway_with(size_t(state.range(0)), &client);
  time_handle(state, gateway, client.ping(gateway.public_key()), kSpacingNs,
              disco::Verdict::kPongSent);
}

// A frame from a disco key no current peer has: ignored after one lookup, before the rate
// limiter and without any Diffie-Hellman. Arg: current peers.
void BM_UnknownSender(benchmark::State& state) {
  const Client stranger;
  Responder gateway = gateway_with(size_t(state.range(0)), nullptr);
  time_handle(state, gateway, stranger.ping(gateway.public_key()), 1,
              disco::Verdict::kUnknownSender);
}

// A peer joins (set_peers: its box key is precomputed, crypto_box_beforenm) and its first ping
// is answered. The peer set holds one other peer, so the set rebuild itself is small.
void BM_FirstPingFromNewPeer(benchmark::State& state) {
  const Client other;
  Responder gateway = gateway_with(0, &other);
  uint64_t now_ns = 1'000'000'000, cycles = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const Client joining;
    const std::vector<uint8_t> frame = joining.ping(gateway.public_key());
    const std::vector<DiscoPeer> peers = {other.peer(), joining.peer()};
    now_ns += kSpacingNs;
    state.ResumeTiming();
    const uint64_t t0 = __rdtsc();
    auto notes = gateway.set_peers(peers);
    auto out = gateway.handle(frame, kSource, now_ns);
    cycles += __rdtsc() - t0;
    if (!notes.empty() || out.verdict != disco::Verdict::kPongSent) {
      state.SkipWithError("the new peer's first ping was not answered");
      break;
    }
    benchmark::DoNotOptimize(out);
  }
  set_rate(state, cycles);
}

BENCHMARK(BM_PingToPong)->Arg(0)->Arg(10'000);
BENCHMARK(BM_UnknownSender)->Arg(1)->Arg(10'000);
BENCHMARK(BM_FirstPingFromNewPeer);

}  // namespace

BENCHMARK_MAIN();
