// Noise_IKpsk2 handshake: both roles complete and agree, the bytes match the independent Python
// reference, and each kind of bad message is rejected with its own reason.
#include "control/wg/noise.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/unit/vectors/wg_test_util.h"

namespace exitgw::wg {
namespace {

using testing::array_of;
using testing::bytes_of;
using testing::reference_timestamp;
using testing::ReferencePair;
using testing::view;

constexpr uint64_t kNow = 1'000'000'000'000;
constexpr uint64_t kSecond = 1'000'000'000;

// Builds the reference initiation exactly as Python did (fixed ephemeral, index, timestamp).
CreatedInitiation reference_initiation(ReferencePair& pair) {
  const Key ephemeral = array_of(vectors::kInitiatorEphemeralPrivate);
  auto init = create_initiation(pair.initiator, pair.responder_as_seen_by_initiator,
                                vectors::kInitiatorIndex, reference_timestamp(), kNow, &ephemeral);
  EXPECT_TRUE(init.ok()) << (init.ok() ? "" : init.error_name());
  return std::move(init).value();
}

// Rewrites mac1 after a deliberate corruption so the message reaches the check under test.
void refresh_mac1(std::vector<uint8_t>& msg, const HashValue& receiver_mac1_key) {
  CookieState scratch;
  ASSERT_TRUE(add_macs(std::span<uint8_t>(msg), receiver_mac1_key, scratch, 0));
}

TEST(WgNoise, InitiatorAndResponderDeriveMirroredKeys) {
  const LocalIdentity a = testing::identity_from(vectors::kInitiatorStaticPrivate);
  auto b_result = LocalIdentity::from_private_key(generate_private_key());
  ASSERT_TRUE(b_result.ok());
  const LocalIdentity& b = *b_result;
  const Key psk = generate_private_key();
  PeerCrypto b_at_a = testing::peer_of(a, b.public_key, psk);
  PeerCrypto a_at_b = testing::peer_of(b, a.public_key, psk);

  auto init = create_initiation(a, b_at_a, 7, tai64n_now(), kNow);
  ASSERT_TRUE(init.ok()) << init.error_name();
  auto consumed = consume_initiation(
      b, view(bytes_of(init->message)),
      [&](const Key& k) { return k == a.public_key ? &a_at_b : nullptr; }, kNow);
  ASSERT_TRUE(consumed.ok()) << consumed.error_name();
  EXPECT_EQ(consumed->peer, &a_at_b);
  EXPECT_EQ(consumed->handshake.remote_index, 7u);

  auto response = create_response(*consumed->peer, consumed->handshake, 9, kNow);
  ASSERT_TRUE(response.ok()) << response.error_name();
  auto keys = consume_response(a, b_at_a, init->handshake, view(bytes_of(response->message)));
  ASSERT_TRUE(keys.ok()) << keys.error_name();

  EXPECT_EQ(keys->send_key, response->keys.recv_key);
  EXPECT_EQ(keys->recv_key, response->keys.send_key);
  EXPECT_NE(keys->send_key, keys->recv_key);
  EXPECT_TRUE(keys->is_initiator);
  EXPECT_FALSE(response->keys.is_initiator);
  EXPECT_EQ(keys->local_index, 7u);
  EXPECT_EQ(keys->remote_index, 9u);
  EXPECT_EQ(response->keys.local_index, 9u);
  EXPECT_EQ(response->keys.remote_index, 7u);
}

TEST(WgNoise, InitiationMatchesPythonReferenceByteForByte) {
  ReferencePair pair;
  ASSERT_EQ(pair.initiator.public_key, array_of(vectors::kInitiatorStaticPublic));
  ASSERT_EQ(pair.responder.public_key, array_of(vectors::kResponderStaticPublic));
  const CreatedInitiation init = reference_initiation(pair);
  EXPECT_EQ(bytes_of(init.message),
            std::vector<uint8_t>(std::begin(vectors::kInitiation), std::end(vectors::kInitiation)));
}

TEST(WgNoise, ResponseAndTransportKeysMatchPythonReference) {
  ReferencePair pair;
  const std::vector<uint8_t> initiation(std::begin(vectors::kInitiation),
                                        std::end(vectors::kInitiation));
  auto consumed =
      consume_initiation(pair.responder, view(initiation), pair.responder_lookup(), kNow);
  ASSERT_TRUE(consumed.ok()) << consumed.error_name();
  const Key ephemeral = array_of(vectors::kResponderEphemeralPrivate);
  auto response = create_response(*consumed->peer, consumed->handshake, vectors::kResponderIndex,
                                  kNow, &ephemeral);
  ASSERT_TRUE(response.ok()) << response.error_name();
  EXPECT_EQ(bytes_of(response->message),
            std::vector<uint8_t>(std::begin(vectors::kResponse), std::end(vectors::kResponse)));
  EXPECT_EQ(response->keys.send_key, array_of(vectors::kInitiatorRecvKey));
  EXPECT_EQ(response->keys.recv_key, array_of(vectors::kInitiatorSendKey));

  // The initiator consumes Python's response and derives Python's keys.
  CreatedInitiation init = reference_initiation(pair);
  const std::vector<uint8_t> reference_response(std::begin(vectors::kResponse),
                                                std::end(vectors::kResponse));
  auto keys = consume_response(pair.initiator, pair.responder_as_seen_by_initiator, init.handshake,
                               view(reference_response));
  ASSERT_TRUE(keys.ok()) << keys.error_name();
  EXPECT_EQ(keys->send_key, array_of(vectors::kInitiatorSendKey));
  EXPECT_EQ(keys->recv_key, array_of(vectors::kInitiatorRecvKey));
  EXPECT_EQ(keys->remote_index, vectors::kResponderIndex);
}

TEST(WgNoise, HandshakeSecretsAreWipedOnceKeysAreDerived) {
  ReferencePair pair;
  CreatedInitiation init = reference_initiation(pair);
  auto consumed = consume_initiation(pair.responder, view(bytes_of(init.message)),
                                     pair.responder_lookup(), kNow);
  ASSERT_TRUE(consumed.ok());
  Handshake& responder_hs = consumed->handshake;
  auto response = create_response(*consumed->peer, responder_hs, 1, kNow);
  ASSERT_TRUE(response.ok());
  for (const Handshake* hs : {&responder_hs}) {
    EXPECT_EQ(hs->state, HandshakeState::kEmpty);
    EXPECT_TRUE(is_zero(as_bytes(hs->chaining_key)));
    EXPECT_TRUE(is_zero(as_bytes(hs->hash)));
    EXPECT_TRUE(is_zero(as_bytes(hs->ephemeral_private)));
  }
  ASSERT_TRUE(consume_response(pair.initiator, pair.responder_as_seen_by_initiator, init.handshake,
                               view(bytes_of(response->message)))
                  .ok());
  EXPECT_EQ(init.handshake.state, HandshakeState::kEmpty);
  EXPECT_TRUE(is_zero(as_bytes(init.handshake.chaining_key)));
  EXPECT_TRUE(is_zero(as_bytes(init.handshake.ephemeral_private)));
}

TEST(WgNoise, RejectsInitiationWithWrongMac1) {
  ReferencePair pair;
  std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  msg[116] ^= 1;  // first byte of mac1
  auto r = consume_initiation(pair.responder, view(msg), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadMac1);
}

TEST(WgNoise, RejectsReplayedAndOlderInitiationTimestamps) {
  ReferencePair pair;
  const std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  ASSERT_TRUE(consume_initiation(pair.responder, view(msg), pair.responder_lookup(), kNow).ok());
  auto replay =
      consume_initiation(pair.responder, view(msg), pair.responder_lookup(), kNow + kSecond);
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.error(), HandshakeError::kReplayedTimestamp);

  const Tai64n older = tai64n_from_unix(vectors::kTimestampSeconds - 1, 0);
  auto old_init =
      create_initiation(pair.initiator, pair.responder_as_seen_by_initiator, 1, older, kNow);
  ASSERT_TRUE(old_init.ok());
  auto r = consume_initiation(pair.responder, view(bytes_of(old_init->message)),
                              pair.responder_lookup(), kNow + 2 * kSecond);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kReplayedTimestamp);

  const Tai64n newer = tai64n_from_unix(vectors::kTimestampSeconds, vectors::kTimestampNanos + 1);
  auto new_init =
      create_initiation(pair.initiator, pair.responder_as_seen_by_initiator, 1, newer, kNow);
  ASSERT_TRUE(new_init.ok());
  EXPECT_TRUE(consume_initiation(pair.responder, view(bytes_of(new_init->message)),
                                 pair.responder_lookup(), kNow + 3 * kSecond)
                  .ok());
}

TEST(WgNoise, RejectsInitiationsFasterThanOnePer20Ms) {
  ReferencePair pair;
  auto first = create_initiation(pair.initiator, pair.responder_as_seen_by_initiator, 1,
                                 tai64n_from_unix(100, 0), kNow);
  auto second = create_initiation(pair.initiator, pair.responder_as_seen_by_initiator, 1,
                                  tai64n_from_unix(101, 0), kNow);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(consume_initiation(pair.responder, view(bytes_of(first->message)),
                                 pair.responder_lookup(), kNow)
                  .ok());
  auto r = consume_initiation(pair.responder, view(bytes_of(second->message)),
                              pair.responder_lookup(), kNow + kInitiationMinIntervalNs);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kInitiationFlood);
  EXPECT_TRUE(consume_initiation(pair.responder, view(bytes_of(second->message)),
                                 pair.responder_lookup(), kNow + kInitiationMinIntervalNs + 1)
                  .ok());
}

TEST(WgNoise, RejectsInitiationFromUnknownPeer) {
  ReferencePair pair;
  const std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  auto r = consume_initiation(
      pair.responder, view(msg), [](const Key&) -> PeerCrypto* { return nullptr; }, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kUnknownPeer);
}

TEST(WgNoise, RejectsInitiationWithTamperedEphemeral) {
  ReferencePair pair;
  std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  msg[8] ^= 0x10;  // unencrypted_ephemeral
  refresh_mac1(msg, pair.responder.mac1_key);
  auto r = consume_initiation(pair.responder, view(msg), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kStaticDecryptFailed);
}

TEST(WgNoise, RejectsInitiationWithTamperedTimestamp) {
  ReferencePair pair;
  std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  msg[88] ^= 1;  // encrypted_timestamp
  refresh_mac1(msg, pair.responder.mac1_key);
  auto r = consume_initiation(pair.responder, view(msg), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kTimestampDecryptFailed);
}

TEST(WgNoise, RejectsInitiationWithLowOrderEphemeral) {
  ReferencePair pair;
  std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  std::fill(msg.begin() + 8, msg.begin() + 40, 0);
  refresh_mac1(msg, pair.responder.mac1_key);
  auto r = consume_initiation(pair.responder, view(msg), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kZeroDh);
}

TEST(WgNoise, RejectsTruncatedOversizedAndMistypedMessages) {
  ReferencePair pair;
  std::vector<uint8_t> msg(std::begin(vectors::kInitiation), std::end(vectors::kInitiation));
  std::vector<uint8_t> truncated(msg.begin(), msg.end() - 1);
  auto r = consume_initiation(pair.responder, view(truncated), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadSize);
  std::vector<uint8_t> longer = msg;
  longer.push_back(0);
  r = consume_initiation(pair.responder, view(longer), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadSize);
  std::vector<uint8_t> reserved_set = msg;
  reserved_set[1] = 1;  // reserved bytes must be zero
  r = consume_initiation(pair.responder, view(reserved_set), pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadType);
  r = consume_initiation(pair.responder, Bytes{}, pair.responder_lookup(), kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadType);
}

TEST(WgNoise, InitiatorRejectsResponseMadeWithDifferentPsk) {
  ReferencePair pair;
  PeerCrypto wrong_psk_peer =
      testing::peer_of(pair.responder, pair.initiator.public_key, generate_private_key());
  CreatedInitiation init = reference_initiation(pair);
  auto consumed = consume_initiation(
      pair.responder, view(bytes_of(init.message)), [&](const Key&) { return &wrong_psk_peer; },
      kNow);
  ASSERT_TRUE(consumed.ok()) << consumed.error_name();
  auto response = create_response(wrong_psk_peer, consumed->handshake, 5, kNow);
  ASSERT_TRUE(response.ok());
  auto keys = consume_response(pair.initiator, pair.responder_as_seen_by_initiator, init.handshake,
                               view(bytes_of(response->message)));
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.error(), HandshakeError::kResponseDecryptFailed);
  // A forged response leaves the handshake waiting for the genuine one.
  EXPECT_EQ(init.handshake.state, HandshakeState::kInitiationCreated);
}

TEST(WgNoise, InitiatorRejectsResponseForAnotherIndexOrWithBadMac1) {
  ReferencePair pair;
  CreatedInitiation init = reference_initiation(pair);
  std::vector<uint8_t> msg(std::begin(vectors::kResponse), std::end(vectors::kResponse));
  std::vector<uint8_t> bad_mac = msg;
  bad_mac[60] ^= 1;
  auto r = consume_response(pair.initiator, pair.responder_as_seen_by_initiator, init.handshake,
                            view(bad_mac));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadMac1);
  init.handshake.local_index ^= 1;
  r = consume_response(pair.initiator, pair.responder_as_seen_by_initiator, init.handshake,
                       view(msg));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kUnexpectedResponse);
  Handshake empty;
  r = consume_response(pair.initiator, pair.responder_as_seen_by_initiator, empty, view(msg));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kUnexpectedResponse);
}

TEST(WgNoise, PeerWithLowOrderPublicKeyIsRefused) {
  const LocalIdentity local = testing::identity_from(vectors::kResponderStaticPrivate);
  auto peer = PeerCrypto::create(local, Key{});
  ASSERT_FALSE(peer.ok());
  EXPECT_NE(peer.error().find("low-order"), std::string::npos);
}

TEST(WgNoise, MessageHelpersReadTypeAndReceiverIndex) {
  const std::vector<uint8_t> response(std::begin(vectors::kResponse), std::end(vectors::kResponse));
  EXPECT_EQ(message_type_of(view(response)), MessageType::kResponse);
  EXPECT_EQ(receiver_index_of(view(response)), vectors::kInitiatorIndex);
  const std::vector<uint8_t> reply(std::begin(vectors::kCookieReply),
                                   std::end(vectors::kCookieReply));
  EXPECT_EQ(receiver_index_of(view(reply)), vectors::kInitiatorIndex);
  const std::vector<uint8_t> junk = {9, 0, 0, 0};
  EXPECT_FALSE(message_type_of(view(junk)).has_value());
}

TEST(WgTai64n, EncodesBigEndianSecondsWithTaiOffsetThenNanoseconds) {
  const Tai64n t = tai64n_from_unix(1, 0x01020304);
  const Tai64n expected = {0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(t, expected);
  EXPECT_TRUE(tai64n_after(tai64n_from_unix(2, 0), tai64n_from_unix(1, 999'999'999)));
  EXPECT_TRUE(tai64n_after(tai64n_from_unix(1, 2), tai64n_from_unix(1, 1)));
  EXPECT_FALSE(tai64n_after(t, t));
}

TEST(WgTai64n, NowIsWhitenedToCoarseNanoseconds) {
  const Tai64n now = tai64n_now();
  EXPECT_EQ(now[9], 0);
  EXPECT_EQ(now[10], 0);
  EXPECT_EQ(now[11], 0);
  EXPECT_TRUE(tai64n_after(now, tai64n_from_unix(1'700'000'000, 0)));
}

TEST(WgNoise, ErrorNamesAreUniqueAndCoverEveryReason) {
  std::set<std::string_view> names(kHandshakeErrorNames.begin(), kHandshakeErrorNames.end());
  EXPECT_EQ(names.size(), static_cast<size_t>(HandshakeError::kCount));
  EXPECT_FALSE(names.contains(""));
  EXPECT_EQ(handshake_error_name(HandshakeError::kReplayedTimestamp), "replayed_timestamp");
}

}  // namespace
}  // namespace exitgw::wg
