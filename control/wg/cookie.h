// WireGuard's DoS defence: mac1/mac2 on handshake messages, the responder's cookie checker and
// cookie replies, and the initiator's store of the latest cookie it received.
#pragma once

#include <cstdint>
#include <span>

#include "common/wg_wire.h"
#include "control/wg/crypto.h"
#include "control/wg/endpoint.h"
#include "control/wg/handshake_error.h"

namespace exitgw::wg {

inline constexpr uint64_t kNanosPerSecond = 1'000'000'000;
inline constexpr uint64_t kCookieSecretMaxAgeNs = uint64_t{kCookieRefreshTime} * kNanosPerSecond;
// A received cookie is used for 5 s less than the responder keeps its secret, so we do not send
// mac2 made with a secret the responder has just replaced (the Linux kernel does the same).
inline constexpr uint64_t kCookieSecretLatencyNs = 5 * kNanosPerSecond;
inline constexpr uint64_t kCookieValidNs = kCookieSecretMaxAgeNs - kCookieSecretLatencyNs;

// Per-peer cookie state on our sending side: the last mac1 we sent (the AAD a cookie reply must
// authenticate) and the latest cookie the peer gave us (keys mac2). Owned by the control thread.
struct CookieState {
  Mac cookie{};
  uint64_t cookie_received_ns = 0;
  bool has_cookie = false;
  Mac last_mac1_sent{};
  bool has_sent_mac1 = false;
};

// Every handshake message ends with mac1 then mac2; these offsets are from its end.
inline constexpr size_t kMacsLen = 2 * kMacLen;

// True if msg's mac1 equals MAC(mac1_key, msg[0 : len - 32]). mac1_key is HASH(LABEL_MAC1 ||
// receiver's static public key).
bool check_mac1(Bytes msg, const HashValue& mac1_key);

// Fills mac1 (with the receiver's mac1 key) and mac2 (with a fresh cookie from the receiver, else
// zeros) of a message we are about to send, and remembers mac1 for a cookie reply.
[[nodiscard]] bool add_macs(std::span<uint8_t> msg, const HashValue& mac1_key, CookieState& state,
                            uint64_t now_ns);

// Initiator side: decrypts a cookie reply with cookie_key = HASH(LABEL_COOKIE || the responder's
// public key) and stores the cookie. The caller has matched receiver_index to the peer.
Outcome<Ok> consume_cookie_reply(Bytes msg, const HashValue& cookie_key, CookieState& state,
                                 uint64_t now_ns);

// Responder side: validates macs of incoming handshake messages and makes cookie replies. The
// secret is regenerated lazily every two minutes; time comes from the caller. Control thread only.
class CookieChecker {
 public:
  // Keys precomputed from our static public key (LocalIdentity::mac1_key and ::cookie_key).
  CookieChecker(const HashValue& mac1_key, const HashValue& cookie_key);
  ~CookieChecker();
  CookieChecker(const CookieChecker&) = delete;
  CookieChecker& operator=(const CookieChecker&) = delete;

  enum class MacCheck : uint8_t {
    kBadMac1,        // drop
    kValidMac1,      // fine when not under load; under load answer with a cookie reply
    kValidMac1And2,  // mac2 made with the cookie we would give this source: process
  };
  // check_mac2 = false skips the cookie computation when we are not under load.
  MacCheck check(Bytes msg, const Endpoint& source, uint64_t now_ns, bool check_mac2);

  // A cookie reply to msg (an initiation or response from source; both carry their sender index
  // at offset 4): the cookie encrypted with XAEAD under our cookie key, AAD = msg's mac1.
  Outcome<MessageCookieReply> create_reply(Bytes msg, const Endpoint& source, uint64_t now_ns);

 private:
  [[nodiscard]] bool make_cookie(Mac& out, const Endpoint& source, uint64_t now_ns);

  HashValue mac1_key_;
  Key cookie_key_;
  Key secret_{};
  uint64_t secret_birth_ns_ = 0;
  bool has_secret_ = false;
};

}  // namespace exitgw::wg
