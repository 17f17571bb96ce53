// Disco frames: parsing, the NaCl box, and the ping responder.
#include "control/wg/disco.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

static_assert(crypto_box_BEFORENMBYTES == exitgw::disco::kKeyLen);
static_assert(crypto_box_NONCEBYTES == exitgw::disco::kNonceLen);
static_assert(crypto_box_MACBYTES == exitgw::disco::kBoxTagLen);

namespace exitgw::disco {

std::optional<Frame> parse_frame(std::span<const uint8_t> frame) {
  if (frame.size() < kHeaderLen + kBoxTagLen || !has_magic(frame.data(), frame.size()))
    return std::nullopt;
  Frame f;
  std::memcpy(f.sender.data(), frame.data() + kMagic.size(), kKeyLen);
  std::memcpy(f.nonce.data(), frame.data() + kMagic.size() + kKeyLen, kNonceLen);
  f.box = frame.subspan(kHeaderLen);
  return f;
}

Message parse_message(std::span<const uint8_t> plain) {
  Message m;
  if (plain.size() < kMessageHeaderLen) return m;  // kShortMessage
  m.type = plain[0];
  if (plain[1] != kVersion) {
    m.verdict = Verdict::kUnknownVersion;
    return m;
  }
  switch (static_cast<MessageType>(m.type)) {
    case MessageType::kPing:
      break;
    case MessageType::kPong:
      m.verdict = Verdict::kPongIgnored;
      return m;
    case MessageType::kCallMeMaybe:
      // Only ever meaningful over DERP, which the gateway does not speak.
      m.verdict = Verdict::kCallMeMaybeIgnored;
      return m;
    default:
      m.verdict = Verdict::kOtherTypeIgnored;
      return m;
  }
  std::span<const uint8_t> p = plain.subspan(kMessageHeaderLen);
  if (p.size() < kPingLen) return m;  // kShortMessage
  std::memcpy(m.ping.tx_id.data(), p.data(), kPingLen);
  p = p.subspan(kPingLen);
  if (p.size() >= wg::kKeyLen) {
    m.ping.has_node_key = true;
    std::memcpy(m.ping.node_key.data(), p.data(), wg::kKeyLen);
    p = p.subspan(wg::kKeyLen);
  }
  m.ping.padding = p.size();
  m.verdict = Verdict::kPongSent;
  return m;
}

std::array<uint8_t, kMessageHeaderLen + kPongLen> marshal_pong(const TxId& tx_id,
                                                               const wg::Endpoint& source) {
  std::array<uint8_t, kMessageHeaderLen + kPongLen> out{};
  out[0] = static_cast<uint8_t>(MessageType::kPong);
  out[1] = kVersion;
  uint8_t* d = out.data() + kMessageHeaderLen;
  std::memcpy(d, tx_id.data(), tx_id.size());
  d += tx_id.size();
  if (source.is_ipv6) {
    std::memcpy(d, source.address.data(), 16);
  } else {  // ::ffff:a.b.c.d, as netip.Addr.As16 writes an IPv4 address
    d[10] = d[11] = 0xff;
    std::memcpy(d + 12, source.address.data(), 4);
  }
  d[16] = static_cast<uint8_t>(source.port >> 8);
  d[17] = static_cast<uint8_t>(source.port);
  return out;
}

std::optional<Pong> parse_pong(std::span<const uint8_t> plain) {
  if (plain.size() < kMessageHeaderLen + kPongLen ||
      plain[0] != static_cast<uint8_t>(MessageType::kPong) || plain[1] != kVersion)
    return std::nullopt;
  const uint8_t* d = plain.data() + kMessageHeaderLen;
  Pong p;
  std::memcpy(p.tx_id.data(), d, p.tx_id.size());
  std::memcpy(p.address.data(), d + 12, p.address.size());
  p.port = static_cast<uint16_t>(d[28] << 8 | d[29]);
  return p;
}

Result<wg::Key> precompute(const wg::Key& our_private, const wg::Key& their_public) {
  wg::Key shared;
  if (crypto_box_beforenm(shared.data(), their_public.data(), our_private.data()) != 0)
    return make_error("the key is a low-order point (no shared secret)");
  return shared;
}

bool open_box(const wg::Key& shared, const Nonce& nonce, std::span<const uint8_t> box,
              std::vector<uint8_t>& plain) {
  if (box.size() < kBoxTagLen) return false;
  plain.resize(box.size() - kBoxTagLen);
  return crypto_box_open_easy_afternm(plain.data(), box.data(), box.size(), nonce.data(),
                                      shared.data()) == 0;
}

std::vector<uint8_t> seal_frame(const wg::Key& shared, const wg::Key& our_public,
                                const Nonce& nonce, std::span<const uint8_t> plain) {
  std::vector<uint8_t> out(kHeaderLen + kBoxTagLen + plain.size());
  std::memcpy(out.data(), kMagic.data(), kMagic.size());
  std::memcpy(out.data() + kMagic.size(), our_public.data(), kKeyLen);
  std::memcpy(out.data() + kMagic.size() + kKeyLen, nonce.data(), kNonceLen);
  crypto_box_easy_afternm(out.data() + kHeaderLen, plain.data(), plain.size(), nonce.data(),
                          shared.data());
  return out;
}

Result<Responder> Responder::create(const wg::Key& private_key) {
  if (Status s = wg::crypto_init(); !s) return make_error(s.error());
  if (std::all_of(private_key.begin(), private_key.end(), [](uint8_t b) { return b == 0; }))
    return make_error("the disco private key is all zero");
  Responder r;
  r.private_ = private_key;
  crypto_scalarmult_base(r.public_.data(), r.private_.data());
  return r;
}

Responder::~Responder() {
  wg::secure_zero(private_);
  for (auto& [key, entry] : peers_) wg::secure_zero(entry.shared);
}

std::vector<std::string> Responder::set_peers(const std::vector<DiscoPeer>& peers) {
  std::vector<std::string> notes;
  std::map<wg::Key, Entry> next;
  for (const DiscoPeer& p : peers) {
    Entry e;
    if (auto old = peers_.find(p.disco_key); old != peers_.end()) {
      e.shared = old->second.shared;
    } else {
      auto shared = precompute(private_, p.disco_key);
      if (!shared) {
        notes.push_back("disco key " + wg::key_to_base64(p.disco_key) + " of peer " +
                        wg::key_to_base64(p.node_key) + " ignored: " + shared.error());
        continue;
      }
      e.shared = *shared;
    }
    e.node_key = p.node_key;
    next[p.disco_key] = e;
  }
  for (auto& [key, entry] : peers_)
    if (!next.count(key)) wg::secure_zero(entry.shared);
  peers_ = std::move(next);
  return notes;
}

Responder::Outcome Responder::handle(std::span<const uint8_t> frame, const wg::Endpoint& source,
                                     uint64_t now_ns, const Nonce* nonce) {
  Outcome out;
  const auto f = parse_frame(frame);
  if (!f) return out;  // kShortFrame
  // Cheap checks first: an unknown key costs one map lookup, never a Diffie-Hellman.
  const auto peer = peers_.find(f->sender);
  if (peer == peers_.end()) {
    out.verdict = Verdict::kUnknownSender;
    return out;
  }
  if (!limiter_.allow(source, now_ns)) {
    out.verdict = Verdict::kRateLimited;
    return out;
  }
  if (!open_box(peer->second.shared, f->nonce, f->box, plain_)) {
    out.verdict = Verdict::kBadBox;
    return out;
  }
  const Message m = parse_message(plain_);
  out.verdict = m.verdict;
  if (m.verdict != Verdict::kPongSent) return out;
  // A ping that names a WireGuard key must name the peer that owns the disco key (tailscale
  // uses the pair the same way to tell nodes apart).
  if (m.ping.has_node_key && m.ping.node_key != peer->second.node_key) {
    out.verdict = Verdict::kNodeKeyMismatch;
    return out;
  }
  const auto pong = marshal_pong(m.ping.tx_id, source);
  Nonce fresh;
  if (nonce == nullptr) {
    wg::random_bytes(fresh.data(), fresh.size());
    nonce = &fresh;
  }
  out.reply = seal_frame(peer->second.shared, public_, *nonce, pong);
  return out;
}

}  // namespace exitgw::disco
