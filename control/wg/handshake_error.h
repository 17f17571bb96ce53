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

// A value or the reason it could not be produced. Like Result<T>, but the error is a code that
// can index a counter array instead of a free-form message.
template <typename T>
class [[nodiscard]] Outcome {
 public:
  Outcome(T value) : v_(std::move(value)) {}    // NOLINT(google-explicit-constructor)
  Outcome(HandshakeError error) : v_(error) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  HandshakeError error() const { return std::get<HandshakeError>(v_); }
  std::string_view error_name() const { return handshake_error_name(error()); }

  // For callers that only report: the message is the reason's name.
  Result<T> to_result() && {
    if (ok()) return std::move(*this).value();
    return make_error("handshake rejected: " + std::string(error_name()));
  }

 private:
  std::variant<T, HandshakeError> v_;
};

}  // namespace exitgw::wg
