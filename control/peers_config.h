// The peers file (wg(8) syntax, [Peer] sections only, plus tailnet identity) and the gateway's
// private key file: parsed into plain structs and validated completely before anything uses them.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"
#include "control/net_parse.h"
#include "control/wg/crypto.h"

namespace exitgw {

// Limits that keep a damaged or hostile file from costing the control thread much.
inline constexpr size_t kPeersFileMaxBytes = 16 * 1024 * 1024;
inline constexpr size_t kPeersLineMaxBytes = 4096;

// One [Peer] section. Only what the file says; defaults are zero/empty/false.
// A peer's fields, the same in the peers file ([Peer] keys, wg-quick style) and in the admin
// API and etcd (JSON names); one table gives both names and which file keys may repeat.
enum class PeerField : uint8_t {
  kPublicKey,
  kPresharedKey,
  kAllowedIps,
  kEndpoint,
  kKeepalive,
  kUser,
  kTags,
  kDiscoKey,
  kCount
};
struct PeerFieldInfo {
  std::string_view file_key;  // in a [Peer] section (case-insensitive)
  std::string_view json_name;
  bool repeatable;  // list-valued keys may appear on several lines, as wg allows AllowedIPs
};
inline constexpr std::array<PeerFieldInfo, static_cast<size_t>(PeerField::kCount)> kPeerFields = {{
    {"PublicKey", "public_key", false},
    {"PresharedKey", "preshared_key", false},
    {"AllowedIPs", "allowed_ips", true},
    {"Endpoint", "endpoint", false},
    {"PersistentKeepalive", "persistent_keepalive", false},
    {"User", "user", false},
    {"Tags", "tags", true},
    {"DiscoKey", "disco_key", false},
}};

struct PeerConfig {
  wg::Key public_key{};
  wg::Key preshared_key{};  // all zero unless has_preshared_key
  bool has_preshared_key = false;
  // Canonical (no host bits), each at least /8, in file order, never shared with another peer.
  std::vector<Ipv4Prefix> allowed_ips;
  // The IPv6 ones, the same rules (each at least /16; check_allowed_ip). A peer has at least one
  // prefix of either family.
  std::vector<Ipv6Prefix> allowed_ips6;
  bool has_endpoint = false;
  bool endpoint_is_ipv6 = false;
  uint32_t endpoint_ip = 0;                // host order (IPv4)
  std::array<uint8_t, 16> endpoint_ip6{};  // network order (IPv6)
  uint16_t endpoint_port = 0;
  uint16_t persistent_keepalive = 0;  // seconds; 0 = disabled
  std::string user;                   // tailnet identity for policy; empty if not given
  std::vector<std::string> tags;      // each "tag:<name>", name in [a-z0-9-]
  // The peer's disco public key (Tailscale clients): pings from it are answered.
  bool has_disco_key = false;
  wg::Key disco_key{};
  int line = 0;  // line of the [Peer] header, for messages
};

// Whether two peers are configured the same; `line` is ignored because it only says where a
// peer was read from (a formatted file puts it elsewhere).
bool same_settings(const PeerConfig& a, const PeerConfig& b);
bool same_settings(const std::vector<PeerConfig>& a, const std::vector<PeerConfig>& b);

// The rules for single values of a peer, shared by every source of peers (this file, the admin
// API, etcd) so a value is accepted or refused the same way wherever it is written. Messages name
// the value as the peers file does (PublicKey, AllowedIPs, ...) and quote, escaped, what was given.
//
// A public key: standard base64 of 32 bytes, not all zero.
Result<wg::Key> parse_peer_public_key(std::string_view text);
// One AllowedIPs entry of either family.
using AllowedIp = std::variant<Ipv4Prefix, Ipv6Prefix>;
// One AllowedIPs entry: "a.b.c.d/len", an IPv6 "addr/len", or a bare address (a /32 or a /128),
// passing check_allowed_ip.
Result<AllowedIp> parse_allowed_ip(std::string_view text);
// Puts a parsed entry in the peer's list of its family (allowed_ips or allowed_ips6).
void add_allowed_ip(PeerConfig& peer, const AllowedIp& prefix);
// An IPv4 AllowedIPs prefix must be /8 or longer and canonical (no host bits).
Status check_allowed_ip(const Ipv4Prefix& prefix);
// An IPv6 one must be /16 or longer, canonical, and hold none of the addresses a peer's inner
// source can never be: multicast (ff00::/8), link-local (fe80::/10), unspecified (::) and
// loopback (::1).
Status check_allowed_ip(const Ipv6Prefix& prefix);
// "a.b.c.d/len"; RFC 5952 text for IPv6 ("fd7a:115c:a1e0::2/128").
std::string format_allowed_ip(const Ipv4Prefix& prefix);
std::string format_allowed_ip(const Ipv6Prefix& prefix);
struct PeerEndpoint {
  bool is_ipv6 = false;
  uint32_t ip = 0;  // host order (IPv4)
  std::array<uint8_t, 16> ip6{};
  uint16_t port = 0;
};
// "a.b.c.d:port" or "[v6]:port" (as WireGuard writes them), port 1..65535; host names are
// not resolved; an IPv6 endpoint is never link-local (no zone), multicast, ::, ::1 or
// IPv4-mapped (write the IPv4 address).
Result<PeerEndpoint> parse_peer_endpoint(std::string_view text);
// The peer's configured endpoint in that form (it must have one).
std::string peer_endpoint_text(const PeerConfig& peer);
// Sets the peer's endpoint fields from a parsed one.
void set_peer_endpoint(PeerConfig& peer, const PeerEndpoint& e);
// A disco public key (DiscoKey, "disco_key"): standard base64 of 32 bytes, not all zero.
Result<wg::Key> parse_disco_key(std::string_view text);
// Printable ASCII without spaces or commas, at most 256 bytes.
Status check_peer_user(std::string_view user);
// "tag:<name>", the name 1 to 63 characters of a-z, 0-9 and '-'.
Status check_peer_tag(std::string_view tag);

// Every rule for one peer that needs no other peer: a non-zero public key, at least one allowed
// prefix, each passing check_allowed_ip and none listed twice, an endpoint port from 1 to 65535,
// a valid user, valid tags none listed twice. Messages carry no location; the caller adds it.
Status validate_peer(const PeerConfig& peer);
// validate_peer on each, then the rules between peers: no two share a public key or an allowed
// prefix. parse_peers' result always passes; a source that changes one peer of a running set
// validates the whole candidate set with this before publishing it.
Status validate_peers(const std::vector<PeerConfig>& peers);

// Parses and validates a whole peers file; `origin` (usually the file name) starts every error
// message, as "origin:line: problem". An empty file is zero peers.
Result<std::vector<PeerConfig>> parse_peers(std::string_view text, std::string_view origin);

// The line an operator writes, alone on its line, in a peers file that is meant to hold no peers.
inline constexpr std::string_view kNoPeersMarker = "# exitgw: no peers";

// parse_peers for a file that replaces `running` peers already loaded from it. A file without
// any peer removes them only when it says so with a kNoPeersMarker line: an empty, blank or
// comment-only file is far more often one still being written (or truncated by mistake) than
// an order to cut every peer off, so it is refused and the running peers stay.
Result<std::vector<PeerConfig>> parse_peers_reload(std::string_view text, std::string_view origin,
                                                   size_t running);

// The canonical text of `peers`, which parse_peers reads back to the same settings. It holds
// preshared keys in the clear: write it only to owner-only files.
std::string format_peers(const std::vector<PeerConfig>& peers);

// Reads the gateway's private key: one base64 key as `wg genkey` writes it. Refuses files that
// group or others can access, anything but a regular file, and the all-zero key. The buffers
// the key passes through are zeroed; the caller owns (and should zero) the returned key.
Result<wg::Key> load_private_key(const std::string& path);

}  // namespace exitgw
