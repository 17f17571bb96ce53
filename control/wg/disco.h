// Disco on the control thread: Tailscale clients probe the gateway's UDP endpoints with
// disco pings (tailscale.com/disco) before they trust a direct path. Frames are opened with
// the gateway's disco private key (NaCl box: X25519 + XSalsa20-Poly1305, libsodium
// crypto_box_*_afternm with one precomputed key per peer), pings from the disco keys of
// current peers are answered with a pong carrying the transaction id and the observed source,
// and everything else is ignored with a counted reason.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/disco_wire.h"
#include "common/result.h"
#include "control/wg/crypto.h"
#include "control/wg/endpoint.h"
#include "control/wg/ratelimit.h"

namespace exitgw::disco {

using Nonce = std::array<uint8_t, kNonceLen>;
using TxId = std::array<uint8_t, 12>;

enum class MessageType : uint8_t { kPing = 0x01, kPong = 0x02, kCallMeMaybe = 0x03 };
inline constexpr uint8_t kVersion = 0;
inline constexpr size_t kMessageHeaderLen = 2;   // type, version
inline constexpr size_t kPingLen = 12;           // TxID; then an optional node key and padding
inline constexpr size_t kPongLen = 12 + 16 + 2;  // TxID, IPv6 (v4-mapped) address, port
inline constexpr size_t kPongFrameLen = kHeaderLen + kBoxTagLen + kMessageHeaderLen + kPongLen;

// Everything that can become of a frame, declared once: the enum and its metric labels.
// X(enum name, metric label)
#define EXITGW_DISCO_VERDICTS(X)                  \
  X(kPongSent, "pong_sent")                       \
  X(kDisabled, "disco_disabled")                  \
  X(kShortFrame, "short_frame")                   \
  X(kUnknownSender, "unknown_sender")             \
  X(kRateLimited, "rate_limited")                 \
  X(kBadBox, "bad_box")                           \
  X(kShortMessage, "short_message")               \
  X(kUnknownVersion, "unknown_version")           \
  X(kNodeKeyMismatch, "node_key_mismatch")        \
  X(kPongIgnored, "pong_ignored")                 \
  X(kCallMeMaybeIgnored, "call_me_maybe_ignored") \
  X(kOtherTypeIgnored, "other_type_ignored")      \
  X(kSendFailed, "send_failed")

enum class Verdict : uint8_t {
#define EXITGW_X(name, label) name,
  EXITGW_DISCO_VERDICTS(EXITGW_X)
#undef EXITGW_X
      kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(Verdict::kCount)> kVerdictNames =
    {
#define EXITGW_X(name, label) label,
        EXITGW_DISCO_VERDICTS(EXITGW_X)
#undef EXITGW_X
};

constexpr std::string_view verdict_name(Verdict r) {
  return kVerdictNames[static_cast<size_t>(r)];
}

// The clear parts of a frame; `box` is the sealed message (tag first), a view into the input.
struct Frame {
  wg::Key sender{};
  Nonce nonce{};
  std::span<const uint8_t> box;
};
// Magic, a sender key, a nonce and at least a box tag; nullopt otherwise.
std::optional<Frame> parse_frame(std::span<const uint8_t> frame);

struct Ping {
  TxId tx_id{};
  bool has_node_key = false;
  wg::Key node_key{};  // the sender's WireGuard public key, as it claims
  size_t padding = 0;
};
struct Pong {
  TxId tx_id{};
  std::array<uint8_t, 16> address{};  // IPv4-mapped for IPv4
  uint16_t port = 0;                  // host order
};

// A message read from a box's plaintext: its type, and the ping when it is one. `verdict` is
// kPongSent for a well-formed ping (what the responder then does), else why it is ignored.
struct Message {
  Verdict verdict = Verdict::kShortMessage;
  uint8_t type = 0;
  Ping ping;
};
// Pure: type, version 0, and for a ping its TxID (12), optional node key (32), padding. Like
// tailscale's parser it reads a ping's trailing bytes as padding; unlike it, it refuses a
// version other than 0 (counted), since a future version may mean something else.
Message parse_message(std::span<const uint8_t> plain);

// The plaintext of a pong: type, version, TxID, the observed source (an IPv4 one as an
// IPv4-mapped IPv6 address, as netip.Addr.As16 writes it) and its port, big-endian.
std::array<uint8_t, kMessageHeaderLen + kPongLen> marshal_pong(const TxId& tx_id,
                                                               const wg::Endpoint& source);
// Pure: reads a pong plaintext (tests and tools read the gateway's answers back with it).
std::optional<Pong> parse_pong(std::span<const uint8_t> plain);

// A precomputed box key (crypto_box_beforenm); fails for keys whose shared secret is all zero
// (low-order points), which libsodium refuses.
Result<wg::Key> precompute(const wg::Key& our_private, const wg::Key& their_public);
// Opens a box (tag first) with a precomputed key; false if the tag does not verify.
bool open_box(const wg::Key& shared, const Nonce& nonce, std::span<const uint8_t> box,
              std::vector<uint8_t>& plain);
// magic | our public key | nonce | box(plain).
std::vector<uint8_t> seal_frame(const wg::Key& shared, const wg::Key& our_public,
                                const Nonce& nonce, std::span<const uint8_t> plain);

// A peer as disco sees it: its disco key and the WireGuard key it must claim, if it claims one.
struct DiscoPeer {
  wg::Key disco_key{};
  wg::Key node_key{};
};

// Control thread only. Holds the gateway's disco key, one precomputed box key per current
// peer's disco key (computed when the key first appears, so an unknown sender never costs a
// Diffie-Hellman) and a per-source rate limiter like the handshake one.
class Responder {
 public:
  static Result<Responder> create(const wg::Key& private_key);
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&&) noexcept = default;
  ~Responder();

  // The current peers with a disco key. Keys that stay keep their precomputed box key; keys
  // that cannot form one (low-order points) are left out and named in the returned notes.
  std::vector<std::string> set_peers(const std::vector<DiscoPeer>& peers);
  size_t peer_count() const { return peers_.size(); }
  const wg::Key& public_key() const { return public_; }

  struct Outcome {
    Verdict verdict = Verdict::kShortFrame;
    std::vector<uint8_t> reply;  // the pong frame to send back to `source`, when kPongSent
  };
  // One frame from `source` (its observed address and port). `nonce` fixes the pong's nonce
  // (tests); by default it is random, as every box's must be.
  Outcome handle(std::span<const uint8_t> frame, const wg::Endpoint& source, uint64_t now_ns,
                 const Nonce* nonce = nullptr);

 private:
  Responder() = default;
  struct Entry {
    wg::Key shared{};
    wg::Key node_key{};
  };
  wg::Key private_{};
  wg::Key public_{};
  std::map<wg::Key, Entry> peers_;  // by disco public key
  wg::RateLimiter limiter_;
  std::vector<uint8_t> plain_;  // reused
};

}  // namespace exitgw::disco
