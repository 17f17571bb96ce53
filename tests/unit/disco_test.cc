// Disco: frames and pongs byte for byte against vectors written by Tailscale's own Go code
// (tests/support/discogen), and every way the responder ignores a frame, each counted apart.
#include "control/wg/disco.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <sodium.h>

namespace exitgw::disco {
namespace {

using nlohmann::json;

std::vector<uint8_t> unhex(const std::string& s) {
  std::vector<uint8_t> out(s.size() / 2);
  size_t n = 0;
  EXPECT_EQ(sodium_hex2bin(out.data(), out.size(), s.data(), s.size(), nullptr, &n, nullptr), 0);
  out.resize(n);
  return out;
}

template <size_t N>
std::array<uint8_t, N> unhex_array(const std::string& s) {
  const auto v = unhex(s);
  std::array<uint8_t, N> a{};
  EXPECT_EQ(v.size(), N);
  std::copy_n(v.begin(), std::min(N, v.size()), a.begin());
  return a;
}

json load_vectors() {
  std::ifstream in(std::string(EXITGW_SOURCE_DIR) + "/tests/unit/vectors/disco_vectors.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

const json& vectors() {
  static const json v = load_vectors();
  return v;
}
wg::Key private_of(const std::string& role) {
  return unhex_array<32>(vectors()["keys"][role].get<std::string>());
}
wg::Key public_of(const std::string& role) {
  return unhex_array<32>(vectors()["public"][role].get<std::string>());
}
const json& case_named(const std::string& name) {
  for (const json& c : vectors()["cases"])
    if (c["name"] == name) return c;
  ADD_FAILURE() << "no vector " << name;
  static const json none;
  return none;
}
wg::Key peer_node_key() {
  return unhex_array<32>(case_named("ping_with_node_key")["node_key"].get<std::string>());
}

// The observed source the vector pongs report: 198.51.100.7:41641, or the case's own "src"
// ("[2001:db8::7]:41641" for the IPv6 one).
const wg::Endpoint kSource = wg::Endpoint::ipv4({198, 51, 100, 7}, 41641);

wg::Endpoint source_of(const json& c) {
  if (!c.contains("src") || c["src"].get<std::string>().front() != '[') return kSource;
  std::array<uint8_t, 16> a{0x20, 0x01, 0x0d, 0xb8};  // 2001:db8::7
  a[15] = 7;
  EXPECT_EQ(c["src"].get<std::string>(), "[2001:db8::7]:41641");
  return wg::Endpoint::ipv6(a, 41641);
}
constexpr uint64_t kNow = 1'000'000'000'000;

Responder gateway_with_peer() {
  auto r = Responder::create(private_of("gateway"));
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error());
  r->set_peers({DiscoPeer{public_of("peer"), peer_node_key()}});
  return std::move(*r);
}

TEST(Disco, PublicKeyMatchesGos) {
  auto r = Responder::create(private_of("gateway"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->public_key(), public_of("gateway"));
}

TEST(Disco, EveryGoVectorGetsItsExpectedVerdict) {
  ASSERT_GE(vectors()["cases"].size(), 6u);
  for (const json& c : vectors()["cases"]) {
    Responder r = gateway_with_peer();
    const auto frame = unhex(c["frame"]);
    const auto out = r.handle(frame, source_of(c), kNow);
    EXPECT_EQ(verdict_name(out.verdict), c["expect"].get<std::string>()) << c["name"];
    EXPECT_EQ(out.reply.empty(), out.verdict != Verdict::kPongSent) << c["name"];
  }
}

TEST(Disco, PongIsByteForByteWhatGoSealsAtTheSameNonce) {
  int pongs = 0;
  for (const json& c : vectors()["cases"]) {
    if (c["expect"] != "pong_sent") continue;
    ++pongs;
    Responder r = gateway_with_peer();
    const Nonce nonce = unhex_array<kNonceLen>(c["pong_nonce"]);
    const auto out = r.handle(unhex(c["frame"]), source_of(c), kNow, &nonce);
    ASSERT_EQ(out.verdict, Verdict::kPongSent) << c["name"];
    EXPECT_EQ(out.reply, unhex(c["pong_frame"])) << c["name"];
    EXPECT_EQ(out.reply.size(), kPongFrameLen);
  }
  EXPECT_EQ(pongs, 4);
}

TEST(Disco, GoPingParsesToItsTxIdNodeKeyAndPadding) {
  auto shared = precompute(private_of("gateway"), public_of("peer"));
  ASSERT_TRUE(shared.ok());
  for (const char* name : {"ping_with_node_key", "ping_without_node_key", "ping_with_padding"}) {
    const json& c = case_named(name);
    const auto bytes = unhex(c["frame"]);
    const auto f = parse_frame(bytes);
    ASSERT_TRUE(f) << name;
    EXPECT_EQ(f->sender, public_of("peer"));
    std::vector<uint8_t> plain;
    ASSERT_TRUE(open_box(*shared, f->nonce, f->box, plain)) << name;
    const Message m = parse_message(plain);
    ASSERT_EQ(m.verdict, Verdict::kPongSent) << name;
    EXPECT_EQ(m.ping.tx_id, unhex_array<12>(c["tx_id"])) << name;
    EXPECT_EQ(m.ping.has_node_key, c.contains("node_key")) << name;
    if (m.ping.has_node_key) {
      EXPECT_EQ(m.ping.node_key, peer_node_key());
    }
    EXPECT_EQ(m.ping.padding, c.value("padding", 0)) << name;
  }
}

TEST(Disco, GoPongOpensAndReadsBackTheObservedSource) {
  const json& c = case_named("ping_with_node_key");
  auto shared = precompute(private_of("peer"), public_of("gateway"));
  ASSERT_TRUE(shared.ok());
  const auto bytes = unhex(c["pong_frame"]);
  const auto f = parse_frame(bytes);
  ASSERT_TRUE(f);
  std::vector<uint8_t> plain;
  ASSERT_TRUE(open_box(*shared, f->nonce, f->box, plain));
  const auto pong = parse_pong(plain);
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->tx_id, unhex_array<12>(c["tx_id"]));
  const std::array<uint8_t, 16> mapped = {0, 0, 0,    0,    0,   0,  0,   0,
                                          0, 0, 0xff, 0xff, 198, 51, 100, 7};
  EXPECT_EQ(pong->address, mapped);
  EXPECT_EQ(pong->port, 41641);
}

TEST(Disco, RandomNoncePongOpensForThePeer) {
  Responder r = gateway_with_peer();
  const auto out = r.handle(unhex(case_named("ping_with_node_key")["frame"]), kSource, kNow);
  ASSERT_EQ(out.verdict, Verdict::kPongSent);
  const auto f = parse_frame(out.reply);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->sender, public_of("gateway"));
  std::vector<uint8_t> plain;
  ASSERT_TRUE(
      open_box(*precompute(private_of("peer"), public_of("gateway")), f->nonce, f->box, plain));
  ASSERT_TRUE(parse_pong(plain));
  // Two pongs never share a nonce.
  const auto again = r.handle(unhex(case_named("ping_with_node_key")["frame"]), kSource, kNow);
  ASSERT_EQ(again.verdict, Verdict::kPongSent);
  EXPECT_NE(parse_frame(again.reply)->nonce, f->nonce);
}

TEST(Disco, TamperedBoxIsCountedAsBadBox) {
  Responder r = gateway_with_peer();
  auto frame = unhex(case_named("ping_with_node_key")["frame"]);
  frame.back() ^= 1;
  EXPECT_EQ(r.handle(frame, kSource, kNow).verdict, Verdict::kBadBox);
  frame = unhex(case_named("ping_with_node_key")["frame"]);
  frame[kHeaderLen - 1] ^= 1;  // the nonce
  EXPECT_EQ(r.handle(frame, kSource, kNow).verdict, Verdict::kBadBox);
}

TEST(Disco, ShortFramesAreCountedAsShort) {
  Responder r = gateway_with_peer();
  const auto frame = unhex(case_named("ping_with_node_key")["frame"]);
  for (size_t len : {size_t{0}, size_t{5}, size_t{6}, kHeaderLen, kHeaderLen + kBoxTagLen - 1}) {
    EXPECT_EQ(r.handle(std::span(frame).first(len), kSource, kNow).verdict, Verdict::kShortFrame)
        << len;
  }
  // The magic alone decides nothing: a WireGuard-looking frame of the right size is short too.
  std::vector<uint8_t> not_disco(frame.size(), 1);
  EXPECT_EQ(r.handle(not_disco, kSource, kNow).verdict, Verdict::kShortFrame);
}

TEST(Disco, PeerRemovedMeansUnknownSender) {
  Responder r = gateway_with_peer();
  const auto frame = unhex(case_named("ping_with_node_key")["frame"]);
  ASSERT_EQ(r.handle(frame, kSource, kNow).verdict, Verdict::kPongSent);
  r.set_peers({});
  EXPECT_EQ(r.handle(frame, kSource, kNow).verdict, Verdict::kUnknownSender);
  EXPECT_EQ(r.peer_count(), 0u);
}

TEST(Disco, PingNamingAnotherNodeKeyIsRefused) {
  auto r = Responder::create(private_of("gateway"));
  ASSERT_TRUE(r.ok());
  wg::Key other = peer_node_key();
  other[0] ^= 1;
  r->set_peers({DiscoPeer{public_of("peer"), other}});
  EXPECT_EQ(r->handle(unhex(case_named("ping_with_node_key")["frame"]), kSource, kNow).verdict,
            Verdict::kNodeKeyMismatch);
  // An old client that names no node key is answered.
  EXPECT_EQ(r->handle(unhex(case_named("ping_without_node_key")["frame"]), kSource, kNow).verdict,
            Verdict::kPongSent);
}

// A peer reaching the gateway over IPv6 is answered there: the pong reports its IPv6 source
// itself (not IPv4-mapped), as Go's own pong for that source reads.
TEST(Disco, PingFromAnIpv6SourceIsAnsweredWithItsIpv6Address) {
  const json& c = case_named("ping_from_ipv6_source");
  Responder r = gateway_with_peer();
  const auto out = r.handle(unhex(c["frame"]), source_of(c), kNow);
  ASSERT_EQ(out.verdict, Verdict::kPongSent);
  const auto f = parse_frame(out.reply);
  ASSERT_TRUE(f);
  std::vector<uint8_t> plain;
  ASSERT_TRUE(
      open_box(*precompute(private_of("peer"), public_of("gateway")), f->nonce, f->box, plain));
  const auto pong = parse_pong(plain);
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->address, source_of(c).address);
  EXPECT_EQ(pong->port, 41641);
}

TEST(Disco, RateLimitedPerSourceLikeHandshakes) {
  Responder r = gateway_with_peer();
  const auto frame = unhex(case_named("ping_with_node_key")["frame"]);
  for (uint64_t i = 0; i < wg::RateLimiter::kPacketsBurst; ++i)
    EXPECT_EQ(r.handle(frame, kSource, kNow).verdict, Verdict::kPongSent) << i;
  EXPECT_EQ(r.handle(frame, kSource, kNow).verdict, Verdict::kRateLimited);
  // Another source has its own budget; the first refills with time.
  EXPECT_EQ(r.handle(frame, wg::Endpoint::ipv4({198, 51, 100, 8}, 41641), kNow).verdict,
            Verdict::kPongSent);
  EXPECT_EQ(r.handle(frame, kSource, kNow + 100'000'000).verdict, Verdict::kPongSent);
}

// Messages sealed here with libsodium from the peer's key: what Go's API cannot produce.
std::vector<uint8_t> seal_from_peer(std::vector<uint8_t> plain) {
  auto shared = precompute(private_of("peer"), public_of("gateway"));
  Nonce nonce{};
  nonce[0] = 7;
  return seal_frame(*shared, public_of("peer"), nonce, plain);
}

TEST(Disco, UnknownVersionShortPingAndOtherTypesAreIgnoredByReason) {
  Responder r = gateway_with_peer();
  std::vector<uint8_t> ping_v1 = {0x01, 0x01};
  ping_v1.resize(2 + 12);
  EXPECT_EQ(r.handle(seal_from_peer(ping_v1), kSource, kNow).verdict, Verdict::kUnknownVersion);
  EXPECT_EQ(r.handle(seal_from_peer({0x01, 0x00, 1, 2, 3}), kSource, kNow + 1'000'000'000).verdict,
            Verdict::kShortMessage);
  EXPECT_EQ(r.handle(seal_from_peer({0x01}), kSource, kNow + 2'000'000'000).verdict,
            Verdict::kShortMessage);
  for (uint8_t type : {0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x00, 0xff}) {
    EXPECT_EQ(r.handle(seal_from_peer({type, 0x00, 0, 0}), kSource,
                       kNow + 3'000'000'000 + type * 100'000'000ull)
                  .verdict,
              Verdict::kOtherTypeIgnored)
        << int(type);
  }
}

TEST(Disco, ParseMessageCountsPaddingAfterTheNodeKey) {
  std::vector<uint8_t> plain = {0x01, 0x00};
  plain.resize(2 + 12 + 31);  // not enough for a node key: all of it is padding
  Message m = parse_message(plain);
  ASSERT_EQ(m.verdict, Verdict::kPongSent);
  EXPECT_FALSE(m.ping.has_node_key);
  EXPECT_EQ(m.ping.padding, 31u);
  plain.resize(2 + 12 + 32 + 5);
  m = parse_message(plain);
  EXPECT_TRUE(m.ping.has_node_key);
  EXPECT_EQ(m.ping.padding, 5u);
}

TEST(Disco, MarshalPongLaysOutMappedAddressAndPortBigEndian) {
  const TxId tx = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  const auto p = marshal_pong(tx, wg::Endpoint::ipv4({0xc6, 0x33, 0x64, 0x07}, 0xa269));
  EXPECT_EQ(p[0], 0x02);
  EXPECT_EQ(p[1], 0x00);
  EXPECT_EQ(p[2], 1);
  EXPECT_EQ(p[13], 12);
  EXPECT_EQ(p[24], 0xff);
  EXPECT_EQ(p[25], 0xff);
  EXPECT_EQ(p[26], 0xc6);
  EXPECT_EQ(p[29], 0x07);
  EXPECT_EQ(p[30], 0xa2);
  EXPECT_EQ(p[31], 0x69);
}

TEST(Disco, LowOrderPeerKeyIsLeftOutWithANote) {
  Responder r = gateway_with_peer();
  const auto notes = r.set_peers(
      {DiscoPeer{wg::Key{}, peer_node_key()}, DiscoPeer{public_of("peer"), peer_node_key()}});
  EXPECT_EQ(notes.size(), 1u);
  EXPECT_EQ(r.peer_count(), 1u);
}

TEST(Disco, AllZeroPrivateKeyIsRefused) {
  EXPECT_FALSE(Responder::create(wg::Key{}).ok());
}

}  // namespace
}  // namespace exitgw::disco
