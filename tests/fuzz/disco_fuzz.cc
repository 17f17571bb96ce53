// Arbitrary bytes into the disco responder as a whole frame from a peer, and the same bytes
// sealed from the peer's disco key as a box's plaintext, so mutations reach the message parser
// behind the box as well as the frame checks in front of it.
#include <array>
#include <cstdint>
#include <cstdlib>
#include <span>

#include <sodium.h>

#include "control/wg/disco.h"

namespace {

using namespace exitgw;

// The keys of tests/unit/vectors/disco_vectors.json, so the seeds (the Go frames) open.
wg::Key from_hex(const char* hex) {
  wg::Key k{};
  sodium_hex2bin(k.data(), k.size(), hex, 64, nullptr, nullptr, nullptr);
  return k;
}

struct World {
  wg::Key gateway = from_hex("abcc8a9c9c0989fd2b32f521c9235c58ca76ec74e33a8aba91d6ca403ec3f020");
  wg::Key peer = from_hex("00eda3f7a29e28e2abff418cb677d888340a03bcb09c856dc6f7b62d08592037");
  wg::Key peer_public{}, gateway_public{};
  wg::Key node_key = from_hex("8c23d631f429375de762dad55e78e3e9ab29e471f309166f6a9fb32af60e6cc4");
  disco::Responder responder = std::move(*disco::Responder::create(gateway));
  wg::Key to_gateway{};

  World() {
    crypto_scalarmult_base(peer_public.data(), peer.data());
    gateway_public = responder.public_key();
    responder.set_peers({disco::DiscoPeer{peer_public, node_key}});
    to_gateway = *disco::precompute(peer, gateway_public);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  static uint64_t now = 1'000'000'000;
  now += 1'000'000'000;  // past the rate limit: every input is judged on its bytes
  const std::span<const uint8_t> in(data, size);
  const wg::Endpoint src = wg::Endpoint::ipv4({198, 51, 100, 7}, 41641);
  auto out = w.responder.handle(in, src, now);
  if ((out.verdict == disco::Verdict::kPongSent) != !out.reply.empty()) std::abort();

  const disco::Message m = disco::parse_message(in);
  disco::Nonce nonce{};
  auto sealed = w.responder.handle(disco::seal_frame(w.to_gateway, w.peer_public, nonce, in), src,
                                   now + 500'000'000);
  // Behind a good box the verdict is the parser's, except a ping naming another node key.
  if (sealed.verdict != m.verdict && !(m.verdict == disco::Verdict::kPongSent &&
                                       sealed.verdict == disco::Verdict::kNodeKeyMismatch))
    std::abort();
  if (sealed.verdict == disco::Verdict::kPongSent) {
    std::vector<uint8_t> plain;
    const auto f = disco::parse_frame(sealed.reply);
    if (!f || !disco::open_box(w.to_gateway, f->nonce, f->box, plain)) std::abort();
    const auto pong = disco::parse_pong(plain);
    if (!pong || pong->tx_id != m.ping.tx_id || pong->port != 41641) std::abort();
  }
  return 0;
}
