// Noise_IKpsk2 as WireGuard uses it: the initiation and response messages and the transport keys
// they derive, for both roles. Control thread only; no I/O, time comes from the caller.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

#include "common/result.h"
#include "common/wg_wire.h"
#include "control/wg/cookie.h"
#include "control/wg/crypto.h"
#include "control/wg/handshake_error.h"

namespace exitgw::wg {

inline constexpr std::string_view kConstruction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
inline constexpr std::string_view kIdentifier = "WireGuard v1 zx2c4 Jason@zx2c4.com";
inline constexpr std::string_view kLabelMac1 = "mac1----";
inline constexpr std::string_view kLabelCookie = "cookie--";
// wireguard-go's HandshakeInitationRate: one initiation per peer per 20 ms at most.
inline constexpr uint64_t kInitiationMinIntervalNs = 20'000'000;

// TAI64N: big-endian seconds since 1970 plus 2^62 + 10, then big-endian nanoseconds. Compared
// bytewise it orders like time, which is how initiation replay is detected.
using Tai64n = std::array<uint8_t, kTimestampLen>;
Tai64n tai64n_from_unix(int64_t seconds, uint32_t nanoseconds);
// Now, with nanoseconds rounded down to 2^24 ns (~16.8 ms) as wireguard-go does, so the
// timestamp does not leak a fine-grained clock to anyone who can decrypt it.
Tai64n tai64n_now();
inline bool tai64n_after(const Tai64n& a, const Tai64n& b) {
  return a > b;
}

// This gateway's static identity with the keys derived from it once.
struct LocalIdentity {
  Key private_key{};
  Key public_key{};
  HashValue mac1_key{};    // HASH(LABEL_MAC1 || public_key): checks mac1 of messages to us
  HashValue cookie_key{};  // HASH(LABEL_COOKIE || public_key): encrypts our cookie replies

  static Result<LocalIdentity> from_private_key(const Key& private_key);
  ~LocalIdentity() { secure_zero(private_key); }
};

// What the handshake needs to know about one peer. Owned by the control thread's peer table.
struct PeerCrypto {
  Key remote_static{};
  Key preshared_key{};      // all zero when the peer has none, as the protocol specifies
  Key static_static{};      // DH(our private, remote_static), computed once
  HashValue mac1_key{};     // HASH(LABEL_MAC1 || remote_static): mac1 of messages we send them
  HashValue cookie_key{};   // HASH(LABEL_COOKIE || remote_static): opens their cookie replies
  Tai64n last_timestamp{};  // greatest initiation timestamp accepted from them
  uint64_t last_initiation_ns = 0;
  bool has_initiation = false;
  CookieState cookie;  // mac2 for what we send them

  // Fails if remote_static is a low-order point (the static-static DH would be zero).
  static Result<PeerCrypto> create(const LocalIdentity& local, const Key& remote_static,
                                   const Key& preshared_key = Key{});
  ~PeerCrypto() {
    secure_zero(preshared_key);
    secure_zero(static_static);
  }
};

enum class HandshakeState : uint8_t {
  kEmpty,
  kInitiationCreated,   // initiator: waiting for the response
  kInitiationConsumed,  // responder: ready to create the response
};

// Handshake state between the two messages. Secrets are wiped on destruction and as soon as
// transport keys are derived.
struct Handshake {
  HandshakeState state = HandshakeState::kEmpty;
  HashValue hash{};
  HashValue chaining_key{};
  Key ephemeral_private{};
  Key remote_ephemeral{};
  uint32_t local_index = 0;
  uint32_t remote_index = 0;

  void clear();
  ~Handshake() { clear(); }
};

// Transport keys of one session. The initiator sends with T1 and receives with T2 of
// KDF2(C, empty); the responder the reverse.
struct SessionKeys {
  Key send_key{};
  Key recv_key{};
  uint32_t local_index = 0;
  uint32_t remote_index = 0;
  bool is_initiator = false;

  ~SessionKeys() {
    secure_zero(send_key);
    secure_zero(recv_key);
  }
};

// Finds a peer by static public key; nullptr if unknown.
using PeerLookup = std::function<PeerCrypto*(const Key& remote_static)>;

struct ConsumedInitiation {
  PeerCrypto* peer = nullptr;
  Handshake handshake;  // state kInitiationConsumed
};
struct CreatedResponse {
  MessageResponse message{};
  SessionKeys keys;
};
struct CreatedInitiation {
  MessageInitiation message{};
  Handshake handshake;  // state kInitiationCreated
};

// RESPONDER. Checks type, size and mac1, decrypts the initiator's static key and timestamp,
// rejects replays (timestamp not strictly newer than the peer's last) and floods, and on
// success records the timestamp in the peer. mac2/cookie policy is the caller's (CookieChecker).
Outcome<ConsumedInitiation> consume_initiation(const LocalIdentity& local, Bytes msg,
                                               const PeerLookup& lookup, uint64_t now_ns);

// RESPONDER. Builds the response (mac1/mac2 filled) and the session keys, then wipes handshake.
// fixed_ephemeral is for known-answer tests only; nullptr draws a fresh key.
Outcome<CreatedResponse> create_response(PeerCrypto& peer, Handshake& handshake,
                                         uint32_t local_index, uint64_t now_ns,
                                         const Key* fixed_ephemeral = nullptr);

// INITIATOR. Builds an initiation to peer with the given timestamp (normally tai64n_now()).
Outcome<CreatedInitiation> create_initiation(const LocalIdentity& local, PeerCrypto& peer,
                                             uint32_t local_index, const Tai64n& timestamp,
                                             uint64_t now_ns, const Key* fixed_ephemeral = nullptr);

// INITIATOR. Consumes the response to handshake (found by the caller through receiver_index),
// derives session keys and wipes handshake.
Outcome<SessionKeys> consume_response(const LocalIdentity& local, PeerCrypto& peer,
                                      Handshake& handshake, Bytes msg);

// The message type of a handshake packet, if its first four bytes are one (reserved bytes zero).
std::optional<MessageType> message_type_of(Bytes msg);
// receiver_index of a response or cookie reply (offset 8 and 4); 0 if msg is too short.
uint32_t receiver_index_of(Bytes msg);

}  // namespace exitgw::wg
