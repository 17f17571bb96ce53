// mac1/mac2 and cookie replies: a responder under load hands out a cookie, the initiator's next
// message carries a valid mac2, and cookies are bound to source, time and the mac1 they answer.
#include "control/wg/cookie.h"

#include <gtest/gtest.h>

#include "tests/unit/vectors/wg_test_util.h"

namespace exitgw::wg {
namespace {

using testing::array_of;
using testing::bytes_of;
using testing::ReferencePair;
using testing::view;

constexpr uint64_t kSecond = 1'000'000'000;
constexpr uint64_t kStart = 5000 * kSecond;

const Endpoint kSource = Endpoint::ipv4({192, 0, 2, 7}, 40000);

std::vector<uint8_t> new_initiation(ReferencePair& pair, uint64_t now_ns, uint32_t secs = 100) {
  auto init = create_initiation(pair.initiator, pair.responder_as_seen_by_initiator, 42,
                                tai64n_from_unix(secs, 0), now_ns);
  EXPECT_TRUE(init.ok());
  return bytes_of(init->message);
}

// Responder under load answers with a cookie reply; the initiator stores the cookie.
void hand_out_cookie(ReferencePair& pair, CookieChecker& checker, const std::vector<uint8_t>& msg,
                     uint64_t now_ns) {
  auto reply = checker.create_reply(view(msg), kSource, now_ns);
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->receiver_index, to_le32(42));
  auto consumed =
      consume_cookie_reply(view(bytes_of(*reply)), pair.responder_as_seen_by_initiator.cookie_key,
                           pair.responder_as_seen_by_initiator.cookie, now_ns);
  ASSERT_TRUE(consumed.ok()) << consumed.error_name();
}

TEST(WgCookie, Mac1IsCheckedAlwaysAndMac2OnlyUnderLoad) {
  ReferencePair pair;
  CookieChecker checker(pair.responder.mac1_key, pair.responder.cookie_key);
  std::vector<uint8_t> msg = new_initiation(pair, kStart);
  EXPECT_EQ(checker.check(view(msg), kSource, kStart, false), CookieChecker::MacCheck::kValidMac1);
  EXPECT_EQ(checker.check(view(msg), kSource, kStart, true), CookieChecker::MacCheck::kValidMac1);
  msg[120] ^= 1;
  EXPECT_EQ(checker.check(view(msg), kSource, kStart, false), CookieChecker::MacCheck::kBadMac1);
}

TEST(WgCookie, CookieReplyRoundTripMakesNextInitiationPassMac2) {
  ReferencePair pair;
  CookieChecker checker(pair.responder.mac1_key, pair.responder.cookie_key);
  const std::vector<uint8_t> first = new_initiation(pair, kStart);
  hand_out_cookie(pair, checker, first, kStart);
  EXPECT_TRUE(pair.responder_as_seen_by_initiator.cookie.has_cookie);

  const std::vector<uint8_t> second = new_initiation(pair, kStart + kSecond, 101);
  EXPECT_EQ(checker.check(view(second), kSource, kStart + kSecond, true),
            CookieChecker::MacCheck::kValidMac1And2);
  // The cookie is bound to the source address and port.
  const Endpoint other_port = Endpoint::ipv4({192, 0, 2, 7}, 40001);
  EXPECT_EQ(checker.check(view(second), other_port, kStart + kSecond, true),
            CookieChecker::MacCheck::kValidMac1);
  const Endpoint v6 = Endpoint::ipv6({0x20, 0x01, 0x0d, 0xb8}, 40000);
  EXPECT_EQ(checker.check(view(second), v6, kStart + kSecond, true),
            CookieChecker::MacCheck::kValidMac1);
}

TEST(WgCookie, InitiatorStopsUsingCookieAfterItsLifetime) {
  ReferencePair pair;
  CookieChecker checker(pair.responder.mac1_key, pair.responder.cookie_key);
  hand_out_cookie(pair, checker, new_initiation(pair, kStart), kStart);
  const std::vector<uint8_t> fresh = new_initiation(pair, kStart + kCookieValidNs - 1, 101);
  EXPECT_FALSE(is_zero(view(fresh).last(kMacLen)));
  const std::vector<uint8_t> stale = new_initiation(pair, kStart + kCookieValidNs, 102);
  EXPECT_TRUE(is_zero(view(stale).last(kMacLen)));
  EXPECT_LE(kCookieValidNs, 120 * kSecond);
}

TEST(WgCookie, ResponderSecretRotationInvalidatesOldCookies) {
  ReferencePair pair;
  CookieChecker checker(pair.responder.mac1_key, pair.responder.cookie_key);
  hand_out_cookie(pair, checker, new_initiation(pair, kStart), kStart);
  const uint64_t later = kStart + 110 * kSecond;  // still fresh on the initiator side
  const std::vector<uint8_t> msg = new_initiation(pair, later, 101);
  EXPECT_EQ(checker.check(view(msg), kSource, kStart + 119 * kSecond, true),
            CookieChecker::MacCheck::kValidMac1And2);
  EXPECT_EQ(checker.check(view(msg), kSource, kStart + 120 * kSecond, true),
            CookieChecker::MacCheck::kValidMac1);
}

TEST(WgCookie, CookieReplyIsBoundToTheMac1ItAnswersAndUsableOnce) {
  ReferencePair pair;
  CookieChecker checker(pair.responder.mac1_key, pair.responder.cookie_key);
  PeerCrypto& peer = pair.responder_as_seen_by_initiator;
  const std::vector<uint8_t> first = new_initiation(pair, kStart);
  auto reply = checker.create_reply(view(first), kSource, kStart);
  ASSERT_TRUE(reply.ok());
  const std::vector<uint8_t> reply_bytes = bytes_of(*reply);

  // The initiator has since sent another message: its mac1 no longer matches the reply's AAD.
  new_initiation(pair, kStart, 101);
  auto r = consume_cookie_reply(view(reply_bytes), peer.cookie_key, peer.cookie, kStart);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kCookieDecryptFailed);

  const std::vector<uint8_t> third = new_initiation(pair, kStart, 102);
  auto reply3 = checker.create_reply(view(third), kSource, kStart);
  ASSERT_TRUE(reply3.ok());
  ASSERT_TRUE(
      consume_cookie_reply(view(bytes_of(*reply3)), peer.cookie_key, peer.cookie, kStart).ok());
  r = consume_cookie_reply(view(bytes_of(*reply3)), peer.cookie_key, peer.cookie, kStart);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kUnexpectedCookie);
}

TEST(WgCookie, CookieReplyWithWrongKeyOrShapeIsRejected) {
  ReferencePair pair;
  CookieChecker checker(pair.responder.mac1_key, pair.responder.cookie_key);
  PeerCrypto& peer = pair.responder_as_seen_by_initiator;
  const std::vector<uint8_t> msg = new_initiation(pair, kStart);
  auto reply = checker.create_reply(view(msg), kSource, kStart);
  ASSERT_TRUE(reply.ok());
  std::vector<uint8_t> bytes = bytes_of(*reply);
  auto r = consume_cookie_reply(view(bytes), pair.responder.mac1_key, peer.cookie, kStart);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kCookieDecryptFailed);
  std::vector<uint8_t> truncated(bytes.begin(), bytes.end() - 1);
  r = consume_cookie_reply(view(truncated), peer.cookie_key, peer.cookie, kStart);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadSize);
  bytes[0] = 2;
  r = consume_cookie_reply(view(bytes), peer.cookie_key, peer.cookie, kStart);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), HandshakeError::kBadType);
}

// Python made a cookie reply to the reference initiation and the same initiation re-sent with
// mac2; ours must open the former and produce the latter byte for byte.
TEST(WgCookie, CookieReplyAndMac2MatchPythonReference) {
  ReferencePair pair;
  PeerCrypto& peer = pair.responder_as_seen_by_initiator;
  const Key ephemeral = array_of(vectors::kInitiatorEphemeralPrivate);
  auto init = create_initiation(pair.initiator, peer, vectors::kInitiatorIndex,
                                testing::reference_timestamp(), kStart, &ephemeral);
  ASSERT_TRUE(init.ok());
  const std::vector<uint8_t> reply(std::begin(vectors::kCookieReply),
                                   std::end(vectors::kCookieReply));
  auto consumed = consume_cookie_reply(view(reply), peer.cookie_key, peer.cookie, kStart);
  ASSERT_TRUE(consumed.ok()) << consumed.error_name();
  EXPECT_EQ(peer.cookie.cookie, array_of(vectors::kCookie));
  auto again = create_initiation(pair.initiator, peer, vectors::kInitiatorIndex,
                                 testing::reference_timestamp(), kStart + kSecond, &ephemeral);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(bytes_of(again->message), std::vector<uint8_t>(std::begin(vectors::kInitiationWithMac2),
                                                           std::end(vectors::kInitiationWithMac2)));
}

TEST(WgCookie, Mac1OfShortMessageFails) {
  const std::vector<uint8_t> tiny(31, 0);
  EXPECT_FALSE(check_mac1(view(tiny), HashValue{}));
}

}  // namespace
}  // namespace exitgw::wg
