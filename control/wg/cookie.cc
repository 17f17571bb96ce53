// mac1/mac2, cookie replies and the responder's rotating cookie secret (WireGuard section 5.4.7).
#include "control/wg/cookie.h"

#include <cstring>

namespace exitgw::wg {

bool check_mac1(Bytes msg, const HashValue& mac1_key) {
  if (msg.size() < kMacsLen) return false;
  Mac computed;
  const size_t mac1_offset = msg.size() - kMacsLen;
  if (!mac(computed, as_bytes(mac1_key), msg.first(mac1_offset))) return false;
  return equal_constant_time(as_bytes(computed), msg.subspan(mac1_offset, kMacLen));
}

bool add_macs(std::span<uint8_t> msg, const HashValue& mac1_key, CookieState& state,
              uint64_t now_ns) {
  if (msg.size() < kMacsLen) return false;
  const size_t mac1_offset = msg.size() - kMacsLen;
  const size_t mac2_offset = msg.size() - kMacLen;
  Mac mac1;
  if (!mac(mac1, as_bytes(mac1_key), Bytes(msg.first(mac1_offset)))) return false;
  std::memcpy(msg.data() + mac1_offset, mac1.data(), kMacLen);
  state.last_mac1_sent = mac1;
  state.has_sent_mac1 = true;
  const bool cookie_fresh = state.has_cookie && now_ns >= state.cookie_received_ns &&
                            now_ns - state.cookie_received_ns < kCookieValidNs;
  Mac mac2{};
  if (cookie_fresh && !mac(mac2, as_bytes(state.cookie), Bytes(msg.first(mac2_offset)))) {
    return false;
  }
  std::memcpy(msg.data() + mac2_offset, mac2.data(), kMacLen);
  return true;
}

Outcome<Ok> consume_cookie_reply(Bytes msg, const HashValue& cookie_key, CookieState& state,
                                 uint64_t now_ns) {
  if (msg.size() < sizeof(uint32_t) ||
      load_le32(msg.data()) != static_cast<uint32_t>(MessageType::kCookieReply)) {
    return HandshakeError::kBadType;
  }
  if (msg.size() != sizeof(MessageCookieReply)) return HandshakeError::kBadSize;
  // Only a reply to a message we sent can be authenticated: its AAD is our last mac1.
  if (!state.has_sent_mac1) return HandshakeError::kUnexpectedCookie;
  MessageCookieReply reply;
  std::memcpy(&reply, msg.data(), sizeof(reply));
  Mac cookie;
  if (!xaead_decrypt(cookie.data(), cookie_key, reply.nonce,
                     as_bytes(reply.encrypted_cookie, sizeof(reply.encrypted_cookie)),
                     as_bytes(state.last_mac1_sent))) {
    return HandshakeError::kCookieDecryptFailed;
  }
  state.cookie = cookie;
  state.cookie_received_ns = now_ns;
  state.has_cookie = true;
  // One reply per mac1: a replayed reply cannot refresh the cookie's age.
  state.has_sent_mac1 = false;
  return Ok{};
}

CookieChecker::CookieChecker(const HashValue& mac1_key, const HashValue& cookie_key)
    : mac1_key_(mac1_key), cookie_key_(cookie_key) {}

CookieChecker::~CookieChecker() {
  secure_zero(secret_);
}

bool CookieChecker::make_cookie(Mac& out, const Endpoint& source, uint64_t now_ns) {
  // A clock that went backwards also rotates the secret rather than extending its life.
  if (!has_secret_ || now_ns < secret_birth_ns_ ||
      now_ns - secret_birth_ns_ >= kCookieSecretMaxAgeNs) {
    random_bytes(secret_.data(), secret_.size());
    secret_birth_ns_ = now_ns;
    has_secret_ = true;
  }
  // cookie = MAC(secret, source address bytes || source port big-endian), as the kernel does.
  uint8_t input[16 + 2];
  const Bytes addr = source.address_bytes();
  std::memcpy(input, addr.data(), addr.size());
  input[addr.size()] = static_cast<uint8_t>(source.port >> 8);
  input[addr.size() + 1] = static_cast<uint8_t>(source.port);
  return mac(out, as_bytes(secret_), as_bytes(input, addr.size() + 2));
}

CookieChecker::MacCheck CookieChecker::check(Bytes msg, const Endpoint& source, uint64_t now_ns,
                                             bool check_mac2) {
  if (!check_mac1(msg, mac1_key_)) return MacCheck::kBadMac1;
  if (!check_mac2) return MacCheck::kValidMac1;
  Mac cookie;
  Mac computed;
  if (!make_cookie(cookie, source, now_ns) ||
      !mac(computed, as_bytes(cookie), msg.first(msg.size() - kMacLen))) {
    return MacCheck::kValidMac1;
  }
  return equal_constant_time(as_bytes(computed), msg.last(kMacLen)) ? MacCheck::kValidMac1And2
                                                                    : MacCheck::kValidMac1;
}

Outcome<MessageCookieReply> CookieChecker::create_reply(Bytes msg, const Endpoint& source,
                                                        uint64_t now_ns) {
  constexpr size_t kSenderIndexOffset = 4;
  if (msg.size() < kSenderIndexOffset + sizeof(uint32_t) + kMacsLen)
    return HandshakeError::kBadSize;
  const uint32_t sender_index = load_le32(msg.data() + kSenderIndexOffset);
  MessageCookieReply reply{};
  reply.type = to_le32(static_cast<uint32_t>(MessageType::kCookieReply));
  reply.receiver_index = to_le32(sender_index);
  random_bytes(reply.nonce, sizeof(reply.nonce));
  Mac cookie;
  if (!make_cookie(cookie, source, now_ns)) return HandshakeError::kCryptoFailure;
  xaead_encrypt(reply.encrypted_cookie, cookie_key_, reply.nonce, as_bytes(cookie),
                msg.subspan(msg.size() - kMacsLen, kMacLen));
  return reply;
}

}  // namespace exitgw::wg
