// Why a handshake message was rejected: one enum value per reason so control counts each one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/result.h"

namespace exitgw::wg {

enum class HandshakeError : uint8_t {
  kBadType,                 // first 4 bytes are not the expected little-endian message type
  kBadSize,                 // length differs from the message's fixed size
  kBadMac1,                 // mac1 does not match our public key: not meant for us, or corrupt
  kBadMac2,                 // under load and mac2 missing or not made with our current cookie
  kZeroDh,                  // a DH produced all zeros (low-order point)
  kStaticDecryptFailed,     // initiation's encrypted static key failed authentication
  kUnknownPeer,             // initiator's static key is not a configured peer
  kInvalidPeerKey,          // peer's static key gives a zero static-static DH
  kTimestampDecryptFailed,  // initiation's encrypted timestamp failed authentication
  kReplayedTimestamp,       // timestamp not strictly newer than the last accepted one
  kInitiationFlood,         // initiations from this peer arrive faster than one per 20 ms
  kUnexpectedResponse,      // response does not match an initiation we have in flight
  kResponseDecryptFailed,   // response's empty payload failed authentication (e.g. wrong PSK)
  kUnexpectedCookie,        // cookie reply while no mac1 of ours is outstanding
  kCookieDecryptFailed,     // cookie reply failed authentication
  kCryptoFailure,           // OpenSSL failed internally (allocation); nothing was accepted
  kCount,
};

inline constexpr std::array<std::string_view, static_cast<size_t>(HandshakeError::kCount)>
    kHandshakeErrorNames = {
        "bad_type",
        "bad_size",
        "bad_mac1",
        "bad_mac2",
        "zero_dh",
        "static_decrypt_failed",
        "unknown_peer",
        "invalid_peer_key",
        "timestamp_decrypt_failed",
        "replayed_timestamp",
        "initiation_flood",
        "unexpected_response",
        "response_decrypt_failed",
        "unexpected_cookie",
        "cookie_decrypt_failed",
        "crypto_failure",
};

constexpr std::string_view handshake_error_name(HandshakeError e) {
  return static_cast<size_t>(e) < kHandshakeErrorNames.size()
             ? kHandshakeErrorNames[static_cast<size_t>(e)]
             : std::string_view("unknown");
}

// For Result<T, HandshakeError>::error_name().
constexpr std::string_view reason_name(HandshakeError e) {
  return handshake_error_name(e);
}

// A value or the handshake's reason it could not be produced (indexes a counter array).
template <typename T>
using Outcome = Result<T, HandshakeError>;

}  // namespace exitgw::wg
