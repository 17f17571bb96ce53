// Shared helpers for the wg_* handshake tests: keys and peers built from the Python vectors.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "control/wg/noise.h"
#include "tests/unit/vectors/wg_handshake_vectors.h"

namespace exitgw::wg::testing {

template <size_t N>
std::array<uint8_t, N> array_of(const uint8_t (&raw)[N]) {
  std::array<uint8_t, N> out;
  std::copy_n(raw, N, out.begin());
  return out;
}

template <typename T>
std::vector<uint8_t> bytes_of(const T& msg) {
  std::vector<uint8_t> out(sizeof(T));
  std::memcpy(out.data(), &msg, sizeof(T));
  return out;
}

inline Bytes view(const std::vector<uint8_t>& v) {
  return {v.data(), v.size()};
}

inline LocalIdentity identity_from(const uint8_t (&private_key)[32]) {
  auto id = LocalIdentity::from_private_key(array_of(private_key));
  EXPECT_TRUE(id.ok()) << (id.ok() ? "" : id.error());
  return std::move(id).value();
}

inline PeerCrypto peer_of(const LocalIdentity& local, const Key& remote, const Key& psk = Key{}) {
  auto peer = PeerCrypto::create(local, remote, psk);
  EXPECT_TRUE(peer.ok()) << (peer.ok() ? "" : peer.error());
  return std::move(peer).value();
}

// The two sides of the Python reference handshake, each with the other configured as a peer.
struct ReferencePair {
  LocalIdentity initiator = identity_from(vectors::kInitiatorStaticPrivate);
  LocalIdentity responder = identity_from(vectors::kResponderStaticPrivate);
  PeerCrypto responder_as_seen_by_initiator =
      peer_of(initiator, responder.public_key, array_of(vectors::kPresharedKey));
  PeerCrypto initiator_as_seen_by_responder =
      peer_of(responder, initiator.public_key, array_of(vectors::kPresharedKey));

  PeerLookup responder_lookup() {
    return [this](const Key& k) -> PeerCrypto* {
      return k == initiator_as_seen_by_responder.remote_static ? &initiator_as_seen_by_responder
                                                               : nullptr;
    };
  }
};

inline Tai64n reference_timestamp() {
  return tai64n_from_unix(vectors::kTimestampSeconds, vectors::kTimestampNanos);
}

}  // namespace exitgw::wg::testing
