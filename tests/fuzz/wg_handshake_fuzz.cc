// Arbitrary bytes into everything a handshake packet from the network reaches on the control
// thread: type dispatch, size and mac checks, cookie replies, and both Noise message consumers.
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "control/wg/cookie.h"
#include "control/wg/noise.h"
#include "control/wg/ratelimit.h"
#include "tests/unit/vectors/wg_handshake_vectors.h"

namespace {

using namespace exitgw::wg;

template <size_t N>
std::array<uint8_t, N> array_of(const uint8_t (&raw)[N]) {
  std::array<uint8_t, N> out;
  std::memcpy(out.data(), raw, N);
  return out;
}

// Fixed keys from the reference vectors, so the seed corpus (the reference messages) is valid
// and mutations start from messages that pass every check.
struct World {
  LocalIdentity responder =
      *LocalIdentity::from_private_key(array_of(vectors::kResponderStaticPrivate));
  LocalIdentity initiator =
      *LocalIdentity::from_private_key(array_of(vectors::kInitiatorStaticPrivate));
  PeerCrypto initiator_peer =
      *PeerCrypto::create(responder, initiator.public_key, array_of(vectors::kPresharedKey));
  PeerCrypto responder_peer =
      *PeerCrypto::create(initiator, responder.public_key, array_of(vectors::kPresharedKey));
  CreatedInitiation in_flight;
  CookieChecker checker{responder.mac1_key, responder.cookie_key};
  RateLimiter limiter{64};
  uint64_t now_ns = 1'000'000'000'000;

  World() {
    const Key ephemeral = array_of(vectors::kInitiatorEphemeralPrivate);
    PeerCrypto scratch = responder_peer;
    in_flight = *create_initiation(
        initiator, scratch, vectors::kInitiatorIndex,
        tai64n_from_unix(vectors::kTimestampSeconds, vectors::kTimestampNanos), now_ns, &ephemeral);
  }
};

World& world() {
  static World w;
  return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = world();
  const Bytes msg(data, size);
  w.now_ns += 30'000'000;  // past the per-peer initiation flood interval
  const Endpoint source = Endpoint::ipv4({198, 51, 100, static_cast<uint8_t>(size)}, 51820);
  const auto type = message_type_of(msg);
  (void)receiver_index_of(msg);
  if (!type) return 0;
  switch (*type) {
    case MessageType::kInitiation:
    case MessageType::kResponse:
      if (size >= kMacsLen + 8) {
        const bool under_load = (size & 1) == 0;
        if (w.limiter.allow(source, w.now_ns) &&
            w.checker.check(msg, source, w.now_ns, under_load) ==
                CookieChecker::MacCheck::kValidMac1 &&
            under_load) {
          (void)w.checker.create_reply(msg, source, w.now_ns);
        }
      }
      // Almost every mutation breaks mac1, so each message is also tried with mac1 recomputed:
      // that lets mutations reach the DH, AEAD and replay checks behind it.
      for (int pass = 0; pass < 2; ++pass) {
        std::vector<uint8_t> copy(data, data + size);
        if (pass == 1) {
          if (size < kMacsLen) break;
          CookieState scratch;
          const HashValue& key =
              *type == MessageType::kInitiation ? w.responder.mac1_key : w.initiator.mac1_key;
          if (!add_macs(std::span<uint8_t>(copy), key, scratch, 0)) break;
        }
        const Bytes input(copy.data(), copy.size());
        if (*type == MessageType::kInitiation) {
          PeerCrypto peer = w.initiator_peer;  // fresh replay state so seeds pass every run
          auto consumed = consume_initiation(
              w.responder, input,
              [&](const Key& k) { return k == peer.remote_static ? &peer : nullptr; }, w.now_ns);
          if (consumed.ok()) {
            (void)create_response(*consumed->peer, consumed->handshake, 77, w.now_ns);
          }
        } else {
          PeerCrypto peer = w.responder_peer;
          Handshake handshake = w.in_flight.handshake;
          (void)consume_response(w.initiator, peer, handshake, input);
        }
      }
      break;
    case MessageType::kCookieReply: {
      PeerCrypto peer = w.responder_peer;
      std::memcpy(peer.cookie.last_mac1_sent.data(), w.in_flight.message.mac1, kMacLen);
      peer.cookie.has_sent_mac1 = true;
      (void)consume_cookie_reply(msg, peer.cookie_key, peer.cookie, w.now_ns);
      break;
    }
    case MessageType::kTransport:
      break;
  }
  return 0;
}
