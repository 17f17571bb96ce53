// WireGuard message formats and protocol constants (https://www.wireguard.com/protocol/).
#pragma once

#include <cstddef>
#include <cstdint>

namespace exitgw::wg {

inline constexpr size_t kKeyLen = 32;
inline constexpr size_t kTagLen = 16;
inline constexpr size_t kMacLen = 16;
inline constexpr size_t kCookieLen = 16;
inline constexpr size_t kTimestampLen = 12;
inline constexpr size_t kCookieNonceLen = 24;

enum class MessageType : uint8_t {
  kInitiation = 1,
  kResponse = 2,
  kCookieReply = 3,
  kTransport = 4,
};

// All multi-byte integers on the wire are little-endian.
struct __attribute__((packed)) MessageInitiation {
  uint32_t type;  // 1, then three reserved zero bytes
  uint32_t sender_index;
  uint8_t unencrypted_ephemeral[kKeyLen];
  uint8_t encrypted_static[kKeyLen + kTagLen];
  uint8_t encrypted_timestamp[kTimestampLen + kTagLen];
  uint8_t mac1[kMacLen];
  uint8_t mac2[kMacLen];
};
static_assert(sizeof(MessageInitiation) == 148);

struct __attribute__((packed)) MessageResponse {
  uint32_t type;  // 2
  uint32_t sender_index;
  uint32_t receiver_index;
  uint8_t unencrypted_ephemeral[kKeyLen];
  uint8_t encrypted_nothing[kTagLen];
  uint8_t mac1[kMacLen];
  uint8_t mac2[kMacLen];
};
static_assert(sizeof(MessageResponse) == 92);

struct __attribute__((packed)) MessageCookieReply {
  uint32_t type;  // 3
  uint32_t receiver_index;
  uint8_t nonce[kCookieNonceLen];
  uint8_t encrypted_cookie[kCookieLen + kTagLen];
};
static_assert(sizeof(MessageCookieReply) == 64);

struct __attribute__((packed)) MessageTransportHeader {
  uint32_t type;  // 4
  uint32_t receiver_index;
  uint64_t counter;
  // followed by the encrypted, padded inner packet and a 16-byte tag
};
static_assert(sizeof(MessageTransportHeader) == 16);

inline constexpr size_t kTransportOverhead = sizeof(MessageTransportHeader) + kTagLen;  // 32
inline constexpr size_t kPaddingMultiple = 16;

// Timers and limits from the protocol (seconds unless noted).
inline constexpr uint64_t kRekeyAfterMessages = 1ull << 60;
inline constexpr uint64_t kRejectAfterMessages = UINT64_MAX - (1ull << 13);
inline constexpr unsigned kRekeyAfterTime = 120;
inline constexpr unsigned kRejectAfterTime = 180;
inline constexpr unsigned kRekeyAttemptTime = 90;
inline constexpr unsigned kRekeyTimeout = 5;
inline constexpr unsigned kKeepaliveTimeout = 10;
inline constexpr unsigned kCookieRefreshTime = 120;

}  // namespace exitgw::wg
