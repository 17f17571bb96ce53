// Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s message processing, following the WireGuard whitepaper
// section 5.4 step by step so each line can be checked against it.
#include "control/wg/noise.h"

#include <chrono>
#include <cstring>
#include <tuple>

namespace exitgw::wg {
namespace {

// Secrets that live only inside one function call, wiped whatever path returns.
template <typename... Ts>
class Wiper {
 public:
  explicit Wiper(Ts&... values) : values_(values...) {}
  ~Wiper() {
    std::apply([](auto&... v) { (secure_zero(v.data(), v.size()), ...); }, values_);
  }

 private:
  std::tuple<Ts&...> values_;
};

// C = HASH(CONSTRUCTION) and H = HASH(HASH(C || IDENTIFIER) || responder static public).
bool initial_state(HashValue& chaining_key, HashValue& hash_out, const Key& responder_public) {
  return hash(chaining_key, {as_bytes(kConstruction)}) &&
         hash(hash_out, {as_bytes(chaining_key), as_bytes(kIdentifier)}) &&
         hash(hash_out, {as_bytes(hash_out), as_bytes(responder_public)});
}

bool mix_hash(HashValue& h, Bytes data) {
  return hash(h, {as_bytes(h), data});
}

bool derive_keys(SessionKeys& keys, const HashValue& chaining_key, bool is_initiator) {
  HashValue t1;
  HashValue t2;
  Wiper wipe(t1, t2);
  if (!kdf2(t1, t2, chaining_key, {})) return false;
  keys.send_key = is_initiator ? t1 : t2;
  keys.recv_key = is_initiator ? t2 : t1;
  keys.is_initiator = is_initiator;
  return true;
}

bool has_type(Bytes msg, MessageType type) {
  return msg.size() >= sizeof(uint32_t) && load_le32(msg.data()) == static_cast<uint32_t>(type);
}

}  // namespace

Tai64n tai64n_from_unix(int64_t seconds, uint32_t nanoseconds) {
  constexpr uint64_t kTai64Base = (uint64_t{1} << 62) + 10;
  const uint64_t secs = kTai64Base + static_cast<uint64_t>(seconds);
  Tai64n out;
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(secs >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<uint8_t>(nanoseconds >> (24 - 8 * i));
  return out;
}

Tai64n tai64n_now() {
  constexpr uint32_t kWhitenerMask = (1u << 24) - 1;
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs);
  return tai64n_from_unix(secs.count(), static_cast<uint32_t>(nanos.count()) & ~kWhitenerMask);
}

Result<LocalIdentity> LocalIdentity::from_private_key(const Key& private_key) {
  if (Status s = crypto_init(); !s) return make_error(s.error());
  LocalIdentity id;
  id.private_key = private_key;
  clamp_private_key(id.private_key);
  id.public_key = public_key_of(id.private_key);
  if (is_zero(as_bytes(id.public_key))) return make_error("private key gives a zero public key");
  if (!hash(id.mac1_key, {as_bytes(kLabelMac1), as_bytes(id.public_key)}) ||
      !hash(id.cookie_key, {as_bytes(kLabelCookie), as_bytes(id.public_key)})) {
    return make_error("BLAKE2s failed while deriving the identity's mac1 and cookie keys");
  }
  return id;
}

Result<PeerCrypto> PeerCrypto::create(const LocalIdentity& local, const Key& remote_static,
                                      const Key& preshared_key) {
  PeerCrypto peer;
  peer.remote_static = remote_static;
  peer.preshared_key = preshared_key;
  if (!dh(peer.static_static, local.private_key, remote_static)) {
    return make_error("peer public key " + key_to_base64(remote_static) +
                      " is a low-order point (DH with it is zero)");
  }
  if (!hash(peer.mac1_key, {as_bytes(kLabelMac1), as_bytes(remote_static)}) ||
      !hash(peer.cookie_key, {as_bytes(kLabelCookie), as_bytes(remote_static)})) {
    return make_error("BLAKE2s failed while deriving the peer's mac1 and cookie keys");
  }
  return peer;
}

void Handshake::clear() {
  secure_zero(hash);
  secure_zero(chaining_key);
  secure_zero(ephemeral_private);
  secure_zero(remote_ephemeral);
  local_index = 0;
  remote_index = 0;
  state = HandshakeState::kEmpty;
}

std::optional<MessageType> message_type_of(Bytes msg) {
  if (msg.size() < sizeof(uint32_t)) return std::nullopt;
  const uint32_t type = load_le32(msg.data());
  if (type < static_cast<uint32_t>(MessageType::kInitiation) ||
      type > static_cast<uint32_t>(MessageType::kTransport)) {
    return std::nullopt;
  }
  return static_cast<MessageType>(type);
}

uint32_t receiver_index_of(Bytes msg) {
  const auto type = message_type_of(msg);
  const size_t offset = type == MessageType::kResponse ? 8 : 4;
  if (!type || *type == MessageType::kInitiation || msg.size() < offset + 4) return 0;
  return load_le32(msg.data() + offset);
}

Outcome<CreatedInitiation> create_initiation(const LocalIdentity& local, PeerCrypto& peer,
                                             uint32_t local_index, const Tai64n& timestamp,
                                             uint64_t now_ns, const Key* fixed_ephemeral) {
  CreatedInitiation out;
  Handshake& hs = out.handshake;
  MessageInitiation& msg = out.message;
  HashValue key;
  Key shared;
  Wiper wipe(key, shared);

  if (!initial_state(hs.chaining_key, hs.hash, peer.remote_static)) {
    return HandshakeError::kCryptoFailure;
  }
  hs.ephemeral_private = fixed_ephemeral != nullptr ? *fixed_ephemeral : generate_private_key();
  msg.type = to_le32(static_cast<uint32_t>(MessageType::kInitiation));
  msg.sender_index = to_le32(local_index);
  const Key ephemeral_public = public_key_of(hs.ephemeral_private);
  std::memcpy(msg.unencrypted_ephemeral, ephemeral_public.data(), kKeyLen);
  if (!mix_hash(hs.hash, as_bytes(ephemeral_public)) ||
      !kdf1(hs.chaining_key, hs.chaining_key, as_bytes(ephemeral_public))) {
    return HandshakeError::kCryptoFailure;
  }
  // es
  if (!dh(shared, hs.ephemeral_private, peer.remote_static)) return HandshakeError::kZeroDh;
  if (!kdf2(hs.chaining_key, key, hs.chaining_key, as_bytes(shared))) {
    return HandshakeError::kCryptoFailure;
  }
  aead_encrypt(msg.encrypted_static, key, 0, as_bytes(local.public_key), as_bytes(hs.hash));
  if (!mix_hash(hs.hash, as_bytes(msg.encrypted_static, sizeof(msg.encrypted_static)))) {
    return HandshakeError::kCryptoFailure;
  }
  // ss
  if (is_zero(as_bytes(peer.static_static))) return HandshakeError::kInvalidPeerKey;
  if (!kdf2(hs.chaining_key, key, hs.chaining_key, as_bytes(peer.static_static))) {
    return HandshakeError::kCryptoFailure;
  }
  aead_encrypt(msg.encrypted_timestamp, key, 0, as_bytes(timestamp), as_bytes(hs.hash));
  if (!mix_hash(hs.hash, as_bytes(msg.encrypted_timestamp, sizeof(msg.encrypted_timestamp))) ||
      !add_macs(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&msg), sizeof(msg)), peer.mac1_key,
                peer.cookie, now_ns)) {
    return HandshakeError::kCryptoFailure;
  }
  hs.local_index = local_index;
  hs.state = HandshakeState::kInitiationCreated;
  return out;
}

Outcome<ConsumedInitiation> consume_initiation(const LocalIdentity& local, Bytes msg,
                                               const PeerLookup& lookup, uint64_t now_ns) {
  if (!has_type(msg, MessageType::kInitiation)) return HandshakeError::kBadType;
  if (msg.size() != sizeof(MessageInitiation)) return HandshakeError::kBadSize;
  if (!check_mac1(msg, local.mac1_key)) return HandshakeError::kBadMac1;
  MessageInitiation in;
  std::memcpy(&in, msg.data(), sizeof(in));

  HashValue chaining_key;
  HashValue h;
  HashValue key;
  Key shared;
  Key remote_static;
  Tai64n timestamp;
  Wiper wipe(chaining_key, h, key, shared, remote_static, timestamp);
  Key remote_ephemeral;
  std::memcpy(remote_ephemeral.data(), in.unencrypted_ephemeral, kKeyLen);

  if (!initial_state(chaining_key, h, local.public_key) ||
      !mix_hash(h, as_bytes(remote_ephemeral)) ||
      !kdf1(chaining_key, chaining_key, as_bytes(remote_ephemeral))) {
    return HandshakeError::kCryptoFailure;
  }
  // es
  if (!dh(shared, local.private_key, remote_ephemeral)) return HandshakeError::kZeroDh;
  if (!kdf2(chaining_key, key, chaining_key, as_bytes(shared))) {
    return HandshakeError::kCryptoFailure;
  }
  if (!aead_decrypt(remote_static.data(), key, 0,
                    as_bytes(in.encrypted_static, sizeof(in.encrypted_static)), as_bytes(h))) {
    return HandshakeError::kStaticDecryptFailed;
  }
  if (!mix_hash(h, as_bytes(in.encrypted_static, sizeof(in.encrypted_static)))) {
    return HandshakeError::kCryptoFailure;
  }
  PeerCrypto* peer = lookup ? lookup(remote_static) : nullptr;
  if (peer == nullptr) return HandshakeError::kUnknownPeer;
  // ss
  if (is_zero(as_bytes(peer->static_static))) return HandshakeError::kInvalidPeerKey;
  if (!kdf2(chaining_key, key, chaining_key, as_bytes(peer->static_static))) {
    return HandshakeError::kCryptoFailure;
  }
  if (!aead_decrypt(timestamp.data(), key, 0,
                    as_bytes(in.encrypted_timestamp, sizeof(in.encrypted_timestamp)),
                    as_bytes(h))) {
    return HandshakeError::kTimestampDecryptFailed;
  }
  if (!mix_hash(h, as_bytes(in.encrypted_timestamp, sizeof(in.encrypted_timestamp)))) {
    return HandshakeError::kCryptoFailure;
  }
  // A captured initiation replayed later must not reset the peer's session, so the timestamp
  // must move strictly forward; the flood check bounds work per peer across source addresses.
  if (!tai64n_after(timestamp, peer->last_timestamp)) return HandshakeError::kReplayedTimestamp;
  if (peer->has_initiation && now_ns >= peer->last_initiation_ns &&
      now_ns - peer->last_initiation_ns <= kInitiationMinIntervalNs) {
    return HandshakeError::kInitiationFlood;
  }
  peer->last_timestamp = timestamp;
  peer->last_initiation_ns = now_ns;
  peer->has_initiation = true;

  ConsumedInitiation out;
  out.peer = peer;
  out.handshake.hash = h;
  out.handshake.chaining_key = chaining_key;
  out.handshake.remote_ephemeral = remote_ephemeral;
  out.handshake.remote_index = from_le32(in.sender_index);
  out.handshake.state = HandshakeState::kInitiationConsumed;
  return out;
}

Outcome<CreatedResponse> create_response(PeerCrypto& peer, Handshake& hs, uint32_t local_index,
                                         uint64_t now_ns, const Key* fixed_ephemeral) {
  if (hs.state != HandshakeState::kInitiationConsumed) return HandshakeError::kUnexpectedResponse;
  CreatedResponse out;
  MessageResponse& msg = out.message;
  HashValue tau;
  HashValue key;
  Key shared;
  Wiper wipe(tau, key, shared);

  hs.ephemeral_private = fixed_ephemeral != nullptr ? *fixed_ephemeral : generate_private_key();
  msg.type = to_le32(static_cast<uint32_t>(MessageType::kResponse));
  msg.sender_index = to_le32(local_index);
  msg.receiver_index = to_le32(hs.remote_index);
  const Key ephemeral_public = public_key_of(hs.ephemeral_private);
  std::memcpy(msg.unencrypted_ephemeral, ephemeral_public.data(), kKeyLen);
  if (!mix_hash(hs.hash, as_bytes(ephemeral_public)) ||
      !kdf1(hs.chaining_key, hs.chaining_key, as_bytes(ephemeral_public))) {
    hs.clear();
    return HandshakeError::kCryptoFailure;
  }
  // ee, then se
  if (!dh(shared, hs.ephemeral_private, hs.remote_ephemeral)) {
    hs.clear();
    return HandshakeError::kZeroDh;
  }
  bool ok = kdf1(hs.chaining_key, hs.chaining_key, as_bytes(shared));
  if (ok && !dh(shared, hs.ephemeral_private, peer.remote_static)) {
    hs.clear();
    return HandshakeError::kZeroDh;
  }
  // psk
  ok = ok && kdf1(hs.chaining_key, hs.chaining_key, as_bytes(shared)) &&
       kdf3(hs.chaining_key, tau, key, hs.chaining_key, as_bytes(peer.preshared_key)) &&
       mix_hash(hs.hash, as_bytes(tau));
  if (ok) {
    aead_encrypt(msg.encrypted_nothing, key, 0, {}, as_bytes(hs.hash));
    ok = mix_hash(hs.hash, as_bytes(msg.encrypted_nothing, sizeof(msg.encrypted_nothing))) &&
         add_macs(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&msg), sizeof(msg)), peer.mac1_key,
                  peer.cookie, now_ns) &&
         derive_keys(out.keys, hs.chaining_key, /*is_initiator=*/false);
  }
  out.keys.local_index = local_index;
  out.keys.remote_index = hs.remote_index;
  hs.clear();
  if (!ok) return HandshakeError::kCryptoFailure;
  return out;
}

Outcome<SessionKeys> consume_response(const LocalIdentity& local, PeerCrypto& peer, Handshake& hs,
                                      Bytes msg) {
  if (!has_type(msg, MessageType::kResponse)) return HandshakeError::kBadType;
  if (msg.size() != sizeof(MessageResponse)) return HandshakeError::kBadSize;
  if (!check_mac1(msg, local.mac1_key)) return HandshakeError::kBadMac1;
  MessageResponse in;
  std::memcpy(&in, msg.data(), sizeof(in));
  if (hs.state != HandshakeState::kInitiationCreated ||
      from_le32(in.receiver_index) != hs.local_index) {
    return HandshakeError::kUnexpectedResponse;
  }

  // Work on copies: a forged response must not disturb the handshake still waiting for the
  // genuine one.
  HashValue chaining_key = hs.chaining_key;
  HashValue h = hs.hash;
  HashValue tau;
  HashValue key;
  Key shared;
  Key remote_ephemeral;
  Wiper wipe(chaining_key, h, tau, key, shared);
  std::memcpy(remote_ephemeral.data(), in.unencrypted_ephemeral, kKeyLen);

  if (!mix_hash(h, as_bytes(remote_ephemeral)) ||
      !kdf1(chaining_key, chaining_key, as_bytes(remote_ephemeral))) {
    return HandshakeError::kCryptoFailure;
  }
  // ee, then se
  if (!dh(shared, hs.ephemeral_private, remote_ephemeral)) return HandshakeError::kZeroDh;
  if (!kdf1(chaining_key, chaining_key, as_bytes(shared))) return HandshakeError::kCryptoFailure;
  if (!dh(shared, local.private_key, remote_ephemeral)) return HandshakeError::kZeroDh;
  // psk
  if (!kdf1(chaining_key, chaining_key, as_bytes(shared)) ||
      !kdf3(chaining_key, tau, key, chaining_key, as_bytes(peer.preshared_key)) ||
      !mix_hash(h, as_bytes(tau))) {
    return HandshakeError::kCryptoFailure;
  }
  uint8_t nothing[1];
  if (!aead_decrypt(nothing, key, 0, as_bytes(in.encrypted_nothing, sizeof(in.encrypted_nothing)),
                    as_bytes(h))) {
    return HandshakeError::kResponseDecryptFailed;
  }
  SessionKeys keys;
  if (!derive_keys(keys, chaining_key, /*is_initiator=*/true)) {
    return HandshakeError::kCryptoFailure;
  }
  keys.local_index = hs.local_index;
  keys.remote_index = from_le32(in.sender_index);
  hs.clear();
  return keys;
}

}  // namespace exitgw::wg
