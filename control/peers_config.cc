// Parses and validates the peers file and loads the gateway's private key file.
#include "control/peers_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "common/ipv6_addr.h"
#include "common/log_escape.h"

namespace exitgw {

namespace {

using Field = PeerField;

constexpr uint8_t kShortestAllowedPrefix = 8;
// The IPv6 counterpart: shorter than any registry's allocation to one network, longer than the
// blocks the registries themselves hold (/12), so no peer is given a share of the internet.
constexpr uint8_t kShortestAllowedPrefix6 = 16;
constexpr size_t kMaxUserBytes = 256;
constexpr size_t kMaxTagNameBytes = 63;
constexpr std::string_view kTagPrefix = "tag:";

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Quotes text from the file for a message, escaped and cut short (common/log_escape.h), so a
// hostile file cannot forge log lines.
std::string quoted(std::string_view s) {
  return "'" + escape_for_log(s) + "'";
}

// Plain decimal digits (no sign, no spaces), at most `max`.
std::optional<uint32_t> parse_decimal(std::string_view s, uint32_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  if (v > max) return std::nullopt;
  return static_cast<uint32_t>(v);
}

std::string format_prefix(uint32_t addr, uint8_t len) {
  return format_ipv4(addr) + "/" + std::to_string(len);
}

uint64_t prefix_id(const Ipv4Prefix& p) {
  return uint64_t{p.addr} << 8 | p.len;
}

// The prefix with its host bits cleared.
Ipv6Prefix network_of(const Ipv6Prefix& p) {
  Ipv6Prefix n{{}, p.len};
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned bits = std::min(8u, p.len > i * 8 ? p.len - i * 8 : 0u);
    n.addr[i] = static_cast<uint8_t>(p.addr[i] & (bits == 0 ? 0 : 0xff << (8 - bits)));
  }
  return n;
}

// Calls fn on each comma-separated item, trimmed; stops at the first error.
template <typename Fn>
Status for_each_item(std::string_view list, Fn&& fn) {
  while (true) {
    const size_t comma = list.find(',');
    Status s = fn(trim(list.substr(0, comma)));
    if (!s) return s;
    if (comma == std::string_view::npos) return Ok{};
    list = list.substr(comma + 1);
  }
}

Result<uint16_t> parse_keepalive(std::string_view value) {
  if (iequals(value, "off")) return uint16_t{0};
  const auto seconds = parse_decimal(value, 65535);
  if (!seconds) {
    return make_error("PersistentKeepalive " + quoted(value) +
                      " is not 'off' or a number of seconds from 0 to 65535");
  }
  return static_cast<uint16_t>(*seconds);
}

// What the current [Peer] section has seen, beyond the PeerConfig itself. At namespace scope
// because clang cannot default-construct a nested class with member initializers inside its
// enclosing class (std::optional<Section>::emplace() would not compile).
struct Section {
  PeerConfig peer;
  std::array<int, static_cast<size_t>(Field::kCount)> first_line{};  // 0 = not seen yet
};

class PeersParser {
 public:
  explicit PeersParser(std::string_view origin) : origin_(origin) {}

  Result<std::vector<PeerConfig>> run(std::string_view text) {
    if (text.size() > kPeersFileMaxBytes) {
      return make_error(std::string(origin_) + ": " + std::to_string(text.size()) +
                        " bytes is over the 16 MiB limit for a peers file");
    }
    int line_no = 0;
    while (!text.empty()) {
      const size_t newline = text.find('\n');
      std::string_view line = text.substr(0, newline);
      text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() > kPeersLineMaxBytes) {
        return at(line_no, "line is " + std::to_string(line.size()) + " bytes, over the " +
                               std::to_string(kPeersLineMaxBytes) + "-byte limit");
      }
      if (line.find('\0') != std::string_view::npos) return at(line_no, "NUL byte in the file");
      Status s = parse_line(line, line_no);
      if (!s) return make_error(s.error());
    }
    Status s = finish_peer();
    if (!s) return make_error(s.error());
    // As in finish_peer: the claims above already refused any conflict, with its lines.
    Status valid = validate_peers(peers_);
    if (!valid) return make_error(std::string(origin_) + ": " + valid.error());
    return std::move(peers_);
  }

 private:
  // Where a value claimed by some peer first appeared, to name both places in a conflict.
  struct Claim {
    int peer_line;
    int line;
  };

  Error at(int line, const std::string& message) const {
    return make_error(std::string(origin_) + ":" + std::to_string(line) + ": " + message);
  }

  Status parse_line(std::string_view line, int line_no) {
    const size_t hash = line.find('#');
    line = trim(line.substr(0, hash));
    if (line.empty()) return Ok{};
    if (line.front() == '[') return parse_section(line, line_no);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos)
      return at(line_no, "expected 'Key = Value' or a [Peer] header, got " + quoted(line));
    const std::string_view key = trim(line.substr(0, eq));
    const std::string_view value = trim(line.substr(eq + 1));
    if (!section_) {
      // The value is not echoed: it may be a key someone pasted into the wrong place.
      return at(line_no, quoted(key) + " comes before any [Peer] section");
    }
    size_t index = 0;
    while (index < kPeerFields.size() && !iequals(key, kPeerFields[index].file_key)) ++index;
    if (index == kPeerFields.size()) {
      return at(line_no, "unknown key " + quoted(key) +
                             " in [Peer] (known: PublicKey, PresharedKey, AllowedIPs, Endpoint, "
                             "PersistentKeepalive, User, Tags, DiscoKey)");
    }
    const PeerFieldInfo& info = kPeerFields[index];
    int& first_line = section_->first_line[index];
    if (first_line != 0 && !info.repeatable) {
      return at(line_no, std::string(info.file_key) +
                             " appears twice in this [Peer] (first at line " +
                             std::to_string(first_line) + ")");
    }
    if (first_line == 0) first_line = line_no;
    if (value.empty()) return at(line_no, std::string(info.file_key) + " has no value");
    Status s = parse_value(static_cast<Field>(index), value, line_no);
    if (!s) return at(line_no, s.error());
    return Ok{};
  }

  Status parse_section(std::string_view line, int line_no) {
    if (line.back() != ']' || line.size() < 2)
      return at(line_no, "malformed section header " + quoted(line) + " (expected [Peer])");
    const std::string_view name = trim(line.substr(1, line.size() - 2));
    if (iequals(name, "Interface")) {
      return at(line_no,
                "[Interface] does not belong in a peers file: the gateway's own key comes from "
                "--private_key_file and its address and port from flags");
    }
    if (!iequals(name, "Peer")) {
      return at(line_no,
                "unknown section " + quoted(name) + "; a peers file holds only [Peer] sections");
    }
    Status s = finish_peer();
    if (!s) return s;
    section_.emplace();
    section_->peer.line = line_no;
    return Ok{};
  }

  Status parse_value(Field field, std::string_view value, int line_no) {
    PeerConfig& peer = section_->peer;
    switch (field) {
      case Field::kPublicKey: {
        auto key = parse_peer_public_key(value);
        if (!key) return make_error(key.error());
        const auto [it, fresh] = public_keys_.emplace(*key, Claim{peer.line, line_no});
        if (!fresh) {
          return make_error("PublicKey " + std::string(value) +
                            " is already used by the peer at line " +
                            std::to_string(it->second.peer_line) + " (PublicKey at line " +
                            std::to_string(it->second.line) + ")");
        }
        peer.public_key = *key;
        return Ok{};
      }
      case Field::kPresharedKey: {
        auto key = wg::key_from_base64(value);
        if (!key) return make_error("PresharedKey: " + key.error());
        peer.preshared_key = *key;
        peer.has_preshared_key = true;
        wg::secure_zero(*key);
        return Ok{};
      }
      case Field::kAllowedIps:
        return for_each_item(value, [&](std::string_view item) -> Status {
          auto prefix = parse_allowed_ip(item);
          if (!prefix) return make_error(prefix.error());
          // Both families' text is canonical, so it names a prefix once.
          const std::string text =
              std::visit([](const auto& p) { return format_allowed_ip(p); }, *prefix);
          const auto [it, fresh] = prefixes_.emplace(text, Claim{peer.line, line_no});
          if (!fresh && it->second.peer_line == peer.line) {
            return make_error("AllowedIPs " + text +
                              " is listed twice for this peer (first at line " +
                              std::to_string(it->second.line) + ")");
          }
          if (!fresh) {
            return make_error("AllowedIPs " + text + " is already allowed for the peer at line " +
                              std::to_string(it->second.peer_line) + " (AllowedIPs at line " +
                              std::to_string(it->second.line) +
                              "); a prefix may belong to one peer only");
          }
          add_allowed_ip(peer, *prefix);
          return Ok{};
        });
      case Field::kEndpoint: {
        auto endpoint = parse_peer_endpoint(value);
        if (!endpoint) return make_error(endpoint.error());
        set_peer_endpoint(peer, *endpoint);
        return Ok{};
      }
      case Field::kKeepalive: {
        auto seconds = parse_keepalive(value);
        if (!seconds) return make_error(seconds.error());
        peer.persistent_keepalive = *seconds;
        return Ok{};
      }
      case Field::kUser: {
        Status s = check_peer_user(value);
        if (!s) return s;
        peer.user = std::string(value);
        return Ok{};
      }
      case Field::kTags:
        return for_each_item(value, [&](std::string_view tag) -> Status {
          Status s = check_peer_tag(tag);
          if (!s) return s;
          for (const std::string& seen : peer.tags) {
            if (seen == tag) return make_error("Tags lists " + seen + " twice for this peer");
          }
          peer.tags.emplace_back(tag);
          return Ok{};
        });
      case Field::kDiscoKey: {
        auto key = parse_disco_key(value);
        if (!key) return make_error(key.error());
        peer.disco_key = *key;
        peer.has_disco_key = true;
        return Ok{};
      }
      case Field::kCount:
        break;
    }
    return make_error("internal: unhandled key");
  }

  // Checks what can only be checked once a section is complete, then keeps it.
  Status finish_peer() {
    if (!section_) return Ok{};
    const int line = section_->peer.line;
    if (section_->first_line[static_cast<size_t>(Field::kPublicKey)] == 0)
      return at(line, "[Peer] has no PublicKey");
    if (section_->peer.allowed_ips.empty() && section_->peer.allowed_ips6.empty()) {
      return at(line,
                "[Peer] has no AllowedIPs; without one the gateway would drop everything it "
                "sends");
    }
    // The line checks above found anything this would; it is here so the file and every other
    // source of peers are held to the one definition of a valid peer.
    Status valid = validate_peer(section_->peer);
    if (!valid) return at(line, valid.error());
    peers_.push_back(std::move(section_->peer));
    section_.reset();
    return Ok{};
  }

  std::string_view origin_;
  std::optional<Section> section_;
  std::vector<PeerConfig> peers_;
  std::map<wg::Key, Claim> public_keys_;
  std::map<std::string, Claim> prefixes_;  // by canonical text, either family
};

// Closes a file descriptor on every return path.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  int fd_;
};

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

}  // namespace

Result<wg::Key> parse_peer_public_key(std::string_view text) {
  auto key = wg::key_from_base64(text);
  if (!key) return make_error("PublicKey: " + key.error());
  if (wg::is_zero(wg::as_bytes(*key))) return make_error("PublicKey is all zeros");
  return key;
}

Result<wg::Key> parse_disco_key(std::string_view text) {
  auto key = wg::key_from_base64(text);
  if (!key) return make_error("DiscoKey: " + key.error());
  if (wg::is_zero(wg::as_bytes(*key))) return make_error("DiscoKey is all zeros");
  return key;
}

Status check_allowed_ip(const Ipv4Prefix& p) {
  const std::string what = "AllowedIPs " + quoted(format_prefix(p.addr, p.len));
  if (p.len > 32) return make_error(what + ": prefix length is larger than 32");
  if (p.len < kShortestAllowedPrefix) {
    return make_error(what + " is shorter than /8: an exit gateway must never route the internet " +
                      "to a peer, so each AllowedIPs prefix must be /8 or longer");
  }
  if ((p.addr & ~p.mask()) != 0) {
    return make_error(what + " has host bits set: write " +
                      format_prefix(p.addr & p.mask(), p.len) + " for the network, or " +
                      format_prefix(p.addr, 32) + " for the one address");
  }
  return Ok{};
}

Status check_allowed_ip(const Ipv6Prefix& p) {
  const std::string what = "AllowedIPs " + quoted(format_allowed_ip(p));
  if (p.len > 128) return make_error(what + ": prefix length is larger than 128");
  if (p.len < kShortestAllowedPrefix6) {
    return make_error(what +
                      " is shorter than /16: an exit gateway must never route the internet to a "
                      "peer, so each IPv6 AllowedIPs prefix must be /16 or longer");
  }
  if (const Ipv6Prefix network = network_of(p); network != p) {
    return make_error(what + " has host bits set: write " + format_allowed_ip(network) +
                      " for the network, or " + format_allowed_ip(Ipv6Prefix{p.addr, 128}) +
                      " for the one address");
  }
  // Addresses no peer's packets can come from (RFC 4291): a prefix holding them is a mistake.
  // The prefix is canonical here, so it holds :: exactly when its address is ::, and ::1 when
  // its address is :: or ::1.
  const auto refuse = [&](std::string_view why) {
    return make_error(what + " " + std::string(why) +
                      ", which can never be the source of a peer's packets");
  };
  if (ipv6_multicast(p.addr.data())) return refuse("is multicast (ff00::/8)");
  if (ipv6_link_local(p.addr.data())) return refuse("is link-local (fe80::/10)");
  if (ipv6_unspecified(p.addr.data())) return refuse("holds the unspecified address ::");
  if (ipv6_loopback(p.addr.data())) return refuse("holds the loopback address ::1");
  return Ok{};
}

std::string format_allowed_ip(const Ipv4Prefix& p) {
  return format_prefix(p.addr, p.len);
}

std::string format_allowed_ip(const Ipv6Prefix& p) {
  return format_ipv6(p.addr.data()) + "/" + std::to_string(p.len);
}

void add_allowed_ip(PeerConfig& peer, const AllowedIp& prefix) {
  if (const auto* v4 = std::get_if<Ipv4Prefix>(&prefix))
    peer.allowed_ips.push_back(*v4);
  else
    peer.allowed_ips6.push_back(std::get<Ipv6Prefix>(prefix));
}

namespace {

// One family's "addr/len", the address read by parse_addr (a bare one is the host prefix), then
// held to check_allowed_ip. `what` names the item for messages.
template <typename Prefix, unsigned kMaxLen, typename ParseAddr>
Result<AllowedIp> parse_allowed_prefix(std::string_view item, const std::string& what,
                                       ParseAddr parse_addr) {
  const size_t slash = item.find('/');
  auto addr = parse_addr(item.substr(0, slash));
  if (!addr) return make_error(what + ": " + addr.error());
  Prefix p{*addr, kMaxLen};
  if (slash != std::string_view::npos) {
    const std::string_view len_text = item.substr(slash + 1);
    const auto len = parse_decimal(len_text, 255);
    if (!len) return make_error(what + ": prefix length " + quoted(len_text) + " is not a number");
    if (*len > kMaxLen) {
      return make_error(what + ": prefix length " + std::to_string(*len) + " is larger than " +
                        std::to_string(kMaxLen));
    }
    p.len = static_cast<uint8_t>(*len);
  }
  Status s = check_allowed_ip(p);
  if (!s) return make_error(s.error());
  return AllowedIp{p};
}

}  // namespace

Result<AllowedIp> parse_allowed_ip(std::string_view item) {
  const std::string what = "AllowedIPs " + quoted(item);
  if (item.empty()) return make_error("AllowedIPs has an empty entry (a stray ',' or no value)");
  // Only IPv6 text has a ':' before the length.
  if (item.substr(0, item.find('/')).find(':') != std::string_view::npos)
    return parse_allowed_prefix<Ipv6Prefix, 128>(item, what, parse_ipv6);
  return parse_allowed_prefix<Ipv4Prefix, 32>(item, what, parse_ipv4);
}

Result<PeerEndpoint> parse_peer_endpoint(std::string_view value) {
  const std::string what = "Endpoint " + quoted(value);
  PeerEndpoint e;
  std::string_view port_text;
  if (!value.empty() && value.front() == '[') {
    const size_t close = value.find("]:");
    if (close == std::string_view::npos) return make_error(what + " is not [IPv6]:PORT");
    const std::string_view addr = value.substr(1, close - 1);
    if (addr.find('%') != std::string_view::npos)
      return make_error(what + ": a zone (link-local address) cannot be an endpoint");
    auto ip6 = parse_ipv6(addr);
    if (!ip6) return make_error(what + ": " + ip6.error());
    if (ipv6_unspecified_or_loopback(ip6->data()) || ipv6_multicast(ip6->data()) ||
        ipv6_link_local(ip6->data()))
      return make_error(what +
                        ": not a unicast address a peer can have (::, ::1, multicast "
                        "or link-local)");
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip6->data(), kMapped, 12) == 0)
      return make_error(what + ": an IPv4-mapped address; write the IPv4 address");
    e.is_ipv6 = true;
    e.ip6 = *ip6;
    port_text = value.substr(close + 2);
  } else {
    const size_t colon = value.rfind(':');
    if (colon == std::string_view::npos)
      return make_error(what + " is not IPv4:PORT or [IPv6]:PORT");
    auto ip = parse_ipv4(value.substr(0, colon));
    if (!ip) return make_error(what + ": " + ip.error() + " (host names are not resolved)");
    e.ip = *ip;
    port_text = value.substr(colon + 1);
  }
  const auto port = parse_decimal(port_text, 65535);
  if (!port || *port == 0)
    return make_error(what + ": port " + quoted(port_text) + " is not a number from 1 to 65535");
  e.port = static_cast<uint16_t>(*port);
  return e;
}

std::string peer_endpoint_text(const PeerConfig& peer) {
  const std::string port = std::to_string(peer.endpoint_port);
  if (peer.endpoint_is_ipv6) return "[" + format_ipv6(peer.endpoint_ip6.data()) + "]:" + port;
  return format_ipv4(peer.endpoint_ip) + ":" + port;
}

void set_peer_endpoint(PeerConfig& peer, const PeerEndpoint& e) {
  peer.has_endpoint = true;
  peer.endpoint_is_ipv6 = e.is_ipv6;
  peer.endpoint_ip = e.is_ipv6 ? 0 : e.ip;
  peer.endpoint_ip6 = e.is_ipv6 ? e.ip6 : std::array<uint8_t, 16>{};
  peer.endpoint_port = e.port;
}

Status check_peer_user(std::string_view value) {
  if (value.size() > kMaxUserBytes)
    return make_error("User is longer than " + std::to_string(kMaxUserBytes) + " bytes");
  for (char c : value) {
    if (c <= 0x20 || c >= 0x7f || c == ',') {
      return make_error("User " + quoted(value) +
                        " must be printable ASCII without spaces or commas, like "
                        "alice@example.com");
    }
  }
  return Ok{};
}

Status check_peer_tag(std::string_view tag) {
  const std::string_view name =
      tag.starts_with(kTagPrefix) ? tag.substr(kTagPrefix.size()) : std::string_view{};
  bool ok = !name.empty() && name.size() <= kMaxTagNameBytes;
  for (char c : name) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    return make_error("Tags " + quoted(tag) + ": a tag is tag:<name>, the name 1 to " +
                      std::to_string(kMaxTagNameBytes) + " characters of a-z, 0-9 and '-'");
  }
  return Ok{};
}

Status validate_peer(const PeerConfig& peer) {
  if (wg::is_zero(wg::as_bytes(peer.public_key))) return make_error("PublicKey is all zeros");
  if (peer.allowed_ips.empty() && peer.allowed_ips6.empty()) {
    return make_error(
        "the peer has no AllowedIPs; without one the gateway would drop everything "
        "it sends");
  }
  std::set<uint64_t> prefixes;
  for (const Ipv4Prefix& prefix : peer.allowed_ips) {
    Status s = check_allowed_ip(prefix);
    if (!s) return s;
    if (!prefixes.insert(prefix_id(prefix)).second) {
      return make_error("AllowedIPs " + format_prefix(prefix.addr, prefix.len) +
                        " is listed twice for this peer");
    }
  }
  std::set<Ipv6Prefix> prefixes6;
  for (const Ipv6Prefix& prefix : peer.allowed_ips6) {
    Status s = check_allowed_ip(prefix);
    if (!s) return s;
    if (!prefixes6.insert(prefix).second) {
      return make_error("AllowedIPs " + format_allowed_ip(prefix) +
                        " is listed twice for this peer");
    }
  }
  if (peer.has_endpoint && peer.endpoint_port == 0)
    return make_error("Endpoint port 0 is not a number from 1 to 65535");
  Status user = check_peer_user(peer.user);
  if (!user) return user;
  for (size_t i = 0; i < peer.tags.size(); ++i) {
    Status s = check_peer_tag(peer.tags[i]);
    if (!s) return s;
    for (size_t j = 0; j < i; ++j) {
      if (peer.tags[j] == peer.tags[i])
        return make_error("Tags lists " + peer.tags[i] + " twice for this peer");
    }
  }
  return Ok{};
}

namespace {

// How a peer is named in a message about two peers: its key, and its line if it has one.
std::string peer_name(const PeerConfig& peer) {
  std::string name = "the peer " + wg::key_to_base64(peer.public_key);
  if (peer.line != 0) name += " (line " + std::to_string(peer.line) + ")";
  return name;
}

}  // namespace

Status validate_peers(const std::vector<PeerConfig>& peers) {
  std::set<wg::Key> keys;
  std::map<uint64_t, const PeerConfig*> prefixes;
  std::map<Ipv6Prefix, const PeerConfig*> prefixes6;
  const auto clash = [](const std::string& prefix, const PeerConfig& first,
                        const PeerConfig& second) {
    return make_error("AllowedIPs " + prefix + " is allowed for both " + peer_name(first) +
                      " and " + peer_name(second) + "; a prefix may belong to one peer only");
  };
  for (const PeerConfig& peer : peers) {
    Status s = validate_peer(peer);
    if (!s) return make_error(peer_name(peer) + ": " + s.error());
    if (!keys.insert(peer.public_key).second)
      return make_error("PublicKey " + wg::key_to_base64(peer.public_key) + " is used twice");
    for (const Ipv4Prefix& prefix : peer.allowed_ips) {
      const auto [at, fresh] = prefixes.emplace(prefix_id(prefix), &peer);
      if (!fresh) return clash(format_allowed_ip(prefix), *at->second, peer);
    }
    for (const Ipv6Prefix& prefix : peer.allowed_ips6) {
      const auto [at, fresh] = prefixes6.emplace(prefix, &peer);
      if (!fresh) return clash(format_allowed_ip(prefix), *at->second, peer);
    }
  }
  return Ok{};
}

bool same_settings(const PeerConfig& a, const PeerConfig& b) {
  if (a.allowed_ips.size() != b.allowed_ips.size()) return false;
  for (size_t i = 0; i < a.allowed_ips.size(); ++i) {
    if (a.allowed_ips[i].addr != b.allowed_ips[i].addr ||
        a.allowed_ips[i].len != b.allowed_ips[i].len) {
      return false;
    }
  }
  return a.allowed_ips6 == b.allowed_ips6 && a.public_key == b.public_key &&
         a.has_preshared_key == b.has_preshared_key && a.preshared_key == b.preshared_key &&
         a.has_endpoint == b.has_endpoint && a.endpoint_is_ipv6 == b.endpoint_is_ipv6 &&
         a.endpoint_ip == b.endpoint_ip && a.endpoint_ip6 == b.endpoint_ip6 &&
         a.endpoint_port == b.endpoint_port && a.persistent_keepalive == b.persistent_keepalive &&
         a.user == b.user && a.tags == b.tags && a.has_disco_key == b.has_disco_key &&
         a.disco_key == b.disco_key;
}

bool same_settings(const std::vector<PeerConfig>& a, const std::vector<PeerConfig>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!same_settings(a[i], b[i])) return false;
  }
  return true;
}

Result<std::vector<PeerConfig>> parse_peers(std::string_view text, std::string_view origin) {
  return PeersParser(origin).run(text);
}

Result<std::vector<PeerConfig>> parse_peers_reload(std::string_view text, std::string_view origin,
                                                   size_t running) {
  auto peers = parse_peers(text, origin);
  if (!peers || !peers->empty() || running == 0) return peers;
  for (std::string_view rest = text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    if (trim(rest.substr(0, nl)) == kNoPeersMarker) return peers;
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  }
  return make_error(std::string(origin) + ": holds no peer (" + std::to_string(text.size()) +
                    " bytes) while " + std::to_string(running) +
                    " run from it: refused, running peers kept. To remove every peer, write a "
                    "file whose only content is the line '" +
                    std::string(kNoPeersMarker) + "'");
}

std::string format_peers(const std::vector<PeerConfig>& peers) {
  std::string out;
  for (const PeerConfig& peer : peers) {
    if (!out.empty()) out += "\n";
    out += "[Peer]\nPublicKey = " + wg::key_to_base64(peer.public_key) + "\n";
    if (peer.has_preshared_key)
      out += "PresharedKey = " + wg::key_to_base64(peer.preshared_key) + "\n";
    if (!peer.allowed_ips.empty() || !peer.allowed_ips6.empty()) {
      std::string list;
      for (const Ipv4Prefix& p : peer.allowed_ips)
        list += (list.empty() ? "" : ", ") + format_allowed_ip(p);
      for (const Ipv6Prefix& p : peer.allowed_ips6)
        list += (list.empty() ? "" : ", ") + format_allowed_ip(p);
      out += "AllowedIPs = " + list + "\n";
    }
    if (peer.has_endpoint) out += "Endpoint = " + peer_endpoint_text(peer) + "\n";
    if (peer.persistent_keepalive != 0) {
      out += "PersistentKeepalive = " + std::to_string(peer.persistent_keepalive) + "\n";
    }
    if (!peer.user.empty()) out += "User = " + peer.user + "\n";
    if (!peer.tags.empty()) {
      out += "Tags = ";
      for (size_t i = 0; i < peer.tags.size(); ++i) out += (i > 0 ? ", " : "") + peer.tags[i];
      out += "\n";
    }
    if (peer.has_disco_key) out += "DiscoKey = " + wg::key_to_base64(peer.disco_key) + "\n";
  }
  return out;
}

Result<wg::Key> load_private_key(const std::string& path) {
  const std::string what = "private key file " + path;
  // O_NONBLOCK so a FIFO planted at the path cannot hang start-up before the type check.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return make_error(what + ": " + errno_text(errno));
  FdCloser closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return make_error(what + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) return make_error(what + " is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(what + " has mode " + mode +
                      ", so group or others may read it; a private key must be owner-only: "
                      "chmod 600 " +
                      path);
  }
  // A key is 44 characters; room for a trailing newline, and enough to tell "too long".
  char buffer[128];
  size_t size = 0;
  while (size < sizeof(buffer)) {
    const ssize_t n = ::read(fd, buffer + size, sizeof(buffer) - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      wg::secure_zero(buffer, sizeof(buffer));
      return make_error(what + ": " + errno_text(err));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  if (size == sizeof(buffer)) {
    wg::secure_zero(buffer, sizeof(buffer));
    return make_error(what + " is too long to hold one key (expected the output of `wg genkey`)");
  }
  Result<wg::Key> key = wg::key_from_base64(trim(std::string_view(buffer, size)));
  wg::secure_zero(buffer, sizeof(buffer));
  if (!key) {
    // key_from_base64 never echoes the text, so this cannot leak the key into a log.
    return make_error(what +
                      " does not hold a WireGuard private key (the output of `wg "
                      "genkey`): " +
                      key.error());
  }
  if (wg::is_zero(wg::as_bytes(*key))) return make_error(what + " holds the all-zero key");
  // Best effort: moving a std::array copies it, so the compiler may leave a stack copy behind.
  return key;
}

}  // namespace exitgw
