// The admin API's JSON without a server: bounded parsing, peer bodies held to the peers file's
// rules (same messages), URL keys, one-flag bodies, and validate_peer(s) on built peers.
#include "control/admin/peer_json.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>

namespace exitgw::admin {
namespace {

using nlohmann::json;

constexpr std::string_view kKey1 = "xiDQIB2Qx4UzFfqxCiTODnTd2LowLtgAESpFjJNxyQs=";
constexpr std::string_view kKey2 = "4Pa/u/49Pt2PkHMK3mfrbOjMdSSZ0xeO4GW3ECoPoUk=";
constexpr std::string_view kPsk = "xnbDEo95x+Rv7Lvr90X76ISQi0N6DegLBiAH4SuFkR4=";

wg::Key key(std::string_view base64) {
  return *wg::key_from_base64(base64);
}

json peer_body() {
  return {{"public_key", kKey1}, {"allowed_ips", {"100.64.0.11/32"}}};
}

std::string rejection(const json& body) {
  auto peer = peer_from_json(body, nullptr);
  return peer.ok() ? "accepted" : peer.error();
}

TEST(PeerFromJson, ReadsEveryField) {
  const json body = {{"public_key", kKey1},
                     {"preshared_key", kPsk},
                     {"allowed_ips", {"100.64.0.11/32", "10.9.0.0/24"}},
                     {"endpoint", "10.77.0.11:51820"},
                     {"persistent_keepalive", 25},
                     {"user", "alice@example.com"},
                     {"tags", {"tag:server", "tag:prod"}}};
  auto peer = peer_from_json(body, nullptr);
  ASSERT_TRUE(peer.ok()) << peer.error();
  EXPECT_EQ(peer->public_key, key(kKey1));
  EXPECT_TRUE(peer->has_preshared_key);
  EXPECT_EQ(peer->preshared_key, key(kPsk));
  ASSERT_EQ(peer->allowed_ips.size(), 2u);
  EXPECT_EQ(peer->allowed_ips[1].addr, (10u << 24) | (9u << 16));
  EXPECT_EQ(peer->allowed_ips[1].len, 24);
  EXPECT_TRUE(peer->has_endpoint);
  EXPECT_EQ(peer->endpoint_port, 51820);
  EXPECT_EQ(peer->persistent_keepalive, 25);
  EXPECT_EQ(peer->user, "alice@example.com");
  EXPECT_EQ(peer->tags, (std::vector<std::string>{"tag:server", "tag:prod"}));
}

TEST(PeerFromJson, NullOptionalFieldsMeanAbsent) {
  json body = peer_body();
  body["endpoint"] = nullptr;
  body["user"] = nullptr;
  body["tags"] = nullptr;
  body["preshared_key"] = nullptr;
  body["persistent_keepalive"] = nullptr;
  auto peer = peer_from_json(body, nullptr);
  ASSERT_TRUE(peer.ok()) << peer.error();
  EXPECT_FALSE(peer->has_endpoint);
  EXPECT_FALSE(peer->has_preshared_key);
}

TEST(PeerFromJson, UnknownFieldIsNamed) {
  json body = peer_body();
  body["AllowedIPs"] = "10.0.0.0/8";
  EXPECT_NE(rejection(body).find("unknown field \"AllowedIPs\""), std::string::npos)
      << rejection(body);
}

TEST(PeerFromJson, WrongTypesNameFieldAndExpectedType) {
  json body = peer_body();
  body["allowed_ips"] = "100.64.0.11/32";
  EXPECT_EQ(rejection(body), "field 'allowed_ips' must be an array of strings, got string");
  body = peer_body();
  body["allowed_ips"] = {"100.64.0.11/32", 7};
  EXPECT_EQ(rejection(body), "field 'allowed_ips[1]' must be a string, got number");
  body = peer_body();
  body["persistent_keepalive"] = "25";
  EXPECT_NE(rejection(body).find("'persistent_keepalive' must be a number of seconds"),
            std::string::npos);
  body["persistent_keepalive"] = 65536;
  EXPECT_NE(rejection(body).find("from 0 to 65535"), std::string::npos);
  body["persistent_keepalive"] = -1;
  EXPECT_NE(rejection(body).find("from 0 to 65535"), std::string::npos);
  body["persistent_keepalive"] = 2.5;
  EXPECT_NE(rejection(body).find("from 0 to 65535"), std::string::npos);
  body = peer_body();
  body["public_key"] = 1;
  EXPECT_EQ(rejection(body), "field 'public_key' must be a base64 key string, got number");
  EXPECT_EQ(rejection(json::array()), "the body must be a JSON object (a peer), got array");
}

TEST(PeerFromJson, MissingKeyOrAllowedIpsIsNamed) {
  EXPECT_EQ(rejection({{"allowed_ips", {"10.0.0.0/8"}}}), "field 'public_key' is missing");
  EXPECT_NE(rejection({{"public_key", kKey1}}).find("field 'allowed_ips' is missing"),
            std::string::npos);
  EXPECT_NE(
      rejection({{"public_key", kKey1}, {"allowed_ips", json::array()}}).find("has no AllowedIPs"),
      std::string::npos);
}

// The point of sharing the rules: a value the peers file refuses, the API refuses with the same
// words (the file adds "origin:line: ", the API the field name).
TEST(PeerFromJson, RefusesWhatThePeersFileRefusesWithTheSameMessage) {
  struct Case {
    const char* file_line;
    json body;
  };
  const auto with = [](const char* field, json value) {
    json body = peer_body();
    body[field] = std::move(value);
    return body;
  };
  const Case cases[] = {
      {"AllowedIPs = 10.9.0.1/24", with("allowed_ips", {"10.9.0.1/24"})},
      {"AllowedIPs = 0.0.0.0/0", with("allowed_ips", {"0.0.0.0/0"})},
      {"AllowedIPs = 10.0.0.300/32", with("allowed_ips", {"10.0.0.300/32"})},
      {"AllowedIPs = 10.0.0.0/33", with("allowed_ips", {"10.0.0.0/33"})},
      {"AllowedIPs = fd7a::1/64", with("allowed_ips", {"fd7a::1/64"})},
      {"AllowedIPs = ::/0", with("allowed_ips", {"::/0"})},
      {"AllowedIPs = fd7a::/129", with("allowed_ips", {"fd7a::/129"})},
      {"AllowedIPs = fe80::/64", with("allowed_ips", {"fe80::/64"})},
      {"AllowedIPs = ff02::1", with("allowed_ips", {"ff02::1"})},
      {"AllowedIPs = ::1/128", with("allowed_ips", {"::1/128"})},
      {"AllowedIPs = fd7a:::1", with("allowed_ips", {"fd7a:::1"})},
      {"Endpoint = 10.77.0.11:0", with("endpoint", "10.77.0.11:0")},
      {"Endpoint = vpn.example.com:51820", with("endpoint", "vpn.example.com:51820")},
      {"Endpoint = [fe80::1]:51820", with("endpoint", "[fe80::1]:51820")},
      {"Endpoint = [::ffff:10.0.0.1]:51820", with("endpoint", "[::ffff:10.0.0.1]:51820")},
      {"User = alice smith", with("user", "alice smith")},
      {"Tags = tag:Prod", with("tags", {"tag:Prod"})},
      {"Tags = server", with("tags", {"server"})},
  };
  for (const Case& c : cases) {
    const std::string file = "[Peer]\nPublicKey = " + std::string(kKey1) +
                             "\nAllowedIPs = 100.64.0.11/32\n" + c.file_line + "\n";
    auto parsed = parse_peers(file, "peers.conf");
    ASSERT_FALSE(parsed.ok()) << c.file_line;
    const std::string file_message = parsed.error().substr(parsed.error().find(": ") + 2);
    const std::string api_message = rejection(c.body);
    EXPECT_TRUE(api_message.ends_with(file_message))
        << c.file_line << "\n  file: " << file_message << "\n  api:  " << api_message;
  }
}

TEST(PeerFromJson, OneAllowedIpsArrayHoldsBothFamiliesAndIsShownIPv4FirstInCanonicalText) {
  json body = peer_body();
  body["allowed_ips"] = {"FD7A:115C:A1E0:0:0:0:0:2/128", "100.64.0.11/32", "2001:db8:0:1::/64"};
  auto peer = peer_from_json(body, nullptr);
  ASSERT_TRUE(peer.ok()) << peer.error();
  EXPECT_EQ(peer->allowed_ips.size(), 1u);
  EXPECT_EQ(peer->allowed_ips6.size(), 2u);
  const json shown = {"100.64.0.11/32", "fd7a:115c:a1e0::2/128", "2001:db8:0:1::/64"};
  EXPECT_EQ(peer_to_request_json(*peer)["allowed_ips"], shown);
  AdminView::Peer view;
  view.allowed_ips = peer->allowed_ips;
  view.allowed_ips6 = peer->allowed_ips6;
  EXPECT_EQ(peer_view_json(view)["allowed_ips"], shown);
}

TEST(PeerFromJson, APeerWithOnlyIPv6AllowedIpsIsAccepted) {
  json body = peer_body();
  body["allowed_ips"] = {"fd7a:115c:a1e0::2"};
  auto peer = peer_from_json(body, nullptr);
  ASSERT_TRUE(peer.ok()) << peer.error();
  EXPECT_TRUE(peer->allowed_ips.empty());
  EXPECT_EQ(format_allowed_ip(peer->allowed_ips6.at(0)), "fd7a:115c:a1e0::2/128");
}

TEST(PeerFromJson, SameIPv6PrefixTwiceInAnySpellingIsRefused) {
  json body = peer_body();
  body["allowed_ips"] = {"fd7a::/64", "FD7A:0::/64"};
  EXPECT_NE(rejection(body).find("AllowedIPs fd7a::/64 is listed twice for this peer"),
            std::string::npos)
      << rejection(body);
}

TEST(PeerFromJson, SamePrefixOrTagTwiceIsRefused) {
  json body = peer_body();
  body["allowed_ips"] = {"10.1.0.0/16", "10.1.0.0/16"};
  EXPECT_NE(rejection(body).find("listed twice for this peer"), std::string::npos);
  body = peer_body();
  body["tags"] = {"tag:a", "tag:a"};
  EXPECT_NE(rejection(body).find("tag:a twice"), std::string::npos);
}

TEST(PeerFromJson, PresharedKeyNeverEchoed) {
  json body = peer_body();
  std::string bad(kPsk);
  bad[5] = '*';
  body["preshared_key"] = bad;
  const std::string message = rejection(body);
  EXPECT_NE(message.find("preshared_key"), std::string::npos);
  EXPECT_EQ(message.find(bad), std::string::npos) << message;
}

TEST(PeerFromJson, BodyKeyMustMatchTheUrlKey) {
  const wg::Key url = key(kKey2);
  auto peer = peer_from_json(peer_body(), &url);
  ASSERT_FALSE(peer.ok());
  EXPECT_NE(peer.error().find("is not the key in the URL"), std::string::npos) << peer.error();
  json no_key = {{"allowed_ips", {"100.64.0.11/32"}}};
  auto from_url = peer_from_json(no_key, &url);
  ASSERT_TRUE(from_url.ok()) << from_url.error();
  EXPECT_EQ(from_url->public_key, url);
}

TEST(PeerJson, RoundTripsRandomPeers) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    PeerConfig p;
    for (auto& b : p.public_key) b = static_cast<uint8_t>(rng());
    p.public_key[0] |= 1;
    p.has_preshared_key = rng() % 2;
    if (p.has_preshared_key)
      for (auto& b : p.preshared_key) b = static_cast<uint8_t>(rng());
    const int prefixes = 1 + rng() % 4;
    for (int i = 0; i < prefixes; ++i) {
      Ipv4Prefix prefix{0, static_cast<uint8_t>(8 + rng() % 25)};
      prefix.addr = (static_cast<uint32_t>(10 + i) << 24 | (rng() & 0xffffff)) & prefix.mask();
      p.allowed_ips.push_back(prefix);
    }
    for (int i = rng() % 3; i > 0; --i) {
      Ipv6Prefix prefix{{0x20, 0x01, 0x0d, static_cast<uint8_t>(0xb0 + i)}, 128};
      for (unsigned b = 4; b < 16; ++b) prefix.addr[b] = static_cast<uint8_t>(rng());
      p.allowed_ips6.push_back(prefix);
    }
    p.has_endpoint = rng() % 2;
    if (p.has_endpoint) {
      p.endpoint_ip = rng();
      p.endpoint_port = static_cast<uint16_t>(1 + rng() % 65535);
    }
    p.persistent_keepalive = static_cast<uint16_t>(rng() % 3 == 0 ? rng() : 0);
    if (rng() % 2) p.user = "user" + std::to_string(rng() % 1000) + "@example.com";
    if (rng() % 2) p.tags = {"tag:a" + std::to_string(rng() % 10), "tag:zz-9"};
    const json body = json::parse(peer_to_request_json(p).dump());
    auto back = peer_from_json(body, nullptr);
    ASSERT_TRUE(back.ok()) << back.error() << "\n" << body.dump();
    EXPECT_TRUE(same_settings(p, *back)) << body.dump();
  }
}

TEST(ParseRequestJson, RefusesInvalidJsonDeepNestingAndDuplicateFields) {
  auto bad = parse_request_json("{\"a\": ");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("not valid JSON"), std::string::npos) << bad.error();
  EXPECT_FALSE(parse_request_json("").ok());
  const std::string deep =
      std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  auto too_deep = parse_request_json(deep);
  ASSERT_FALSE(too_deep.ok());
  EXPECT_NE(too_deep.error().find("nests deeper than 8"), std::string::npos) << too_deep.error();
  const std::string ok_depth = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parse_request_json(ok_depth).ok());
  // A million brackets must not recurse: refused at depth 8.
  EXPECT_FALSE(parse_request_json(std::string(1'000'000, '[')).ok());
  auto twice = parse_request_json(R"({"user": "a@b", "user": "c@d"})");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().find("\"user\" appears twice"), std::string::npos) << twice.error();
  // The same name in two different objects is fine.
  EXPECT_TRUE(parse_request_json(R"({"a": {"x": 1}, "b": {"x": 2}})").ok());
}

TEST(KeyFromUrl, AcceptsStandardAndUrlSafeBase64WithOrWithoutPadding) {
  const wg::Key k = key(kKey2);  // has '/' in its base64
  EXPECT_EQ(*key_from_url(kKey2), k);
  EXPECT_EQ(*key_from_url(key_to_url(k)), k);
  EXPECT_EQ(key_to_url(k).find_first_of("+/="), std::string::npos);
  EXPECT_EQ(*key_from_url(std::string(kKey2.substr(0, 43))), k);
  EXPECT_FALSE(key_from_url("not-a-key").ok());
  EXPECT_FALSE(key_from_url("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").ok());  // all zero
}

TEST(FlagFromJson, OneBooleanFieldOrNullWhenAllowed) {
  EXPECT_EQ(*flag_from_json({{"on", true}}, "on", false), std::optional<bool>(true));
  EXPECT_EQ(*flag_from_json({{"approved", nullptr}}, "approved", true), std::nullopt);
  EXPECT_EQ(flag_from_json({{"on", nullptr}}, "on", false).error(),
            "field 'on' must be true or false, got null");
  EXPECT_EQ(flag_from_json({{"on", "yes"}}, "on", false).error(),
            "field 'on' must be true or false, got string");
  EXPECT_EQ(flag_from_json(json::object(), "on", false).error(), "field 'on' is missing");
  EXPECT_NE(flag_from_json({{"on", true}, {"off", false}}, "on", false)
                .error()
                .find("unknown field \"off\""),
            std::string::npos);
}

TEST(ValidatePeers, RefusesSharedKeysAndPrefixesNamingBothPeers) {
  auto a = peer_from_json(peer_body(), nullptr);
  ASSERT_TRUE(a.ok());
  PeerConfig b = *a;
  b.public_key = key(kKey2);
  EXPECT_TRUE(validate_peers({*a}).ok());
  auto shared = validate_peers({*a, b});
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.error().find("AllowedIPs 100.64.0.11/32 is allowed for both the peer " +
                                std::string(kKey1)),
            std::string::npos)
      << shared.error();
  auto twice = validate_peers({*a, *a});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().find("is used twice"), std::string::npos) << twice.error();
}

TEST(ValidatePeer, RefusesBuiltPeersTheFileWouldRefuse) {
  auto good = peer_from_json(peer_body(), nullptr);
  ASSERT_TRUE(good.ok());
  PeerConfig p = *good;
  p.allowed_ips.push_back({0, 0});
  EXPECT_NE(validate_peer(p).error().find("shorter than /8"), std::string::npos);
  p = *good;
  p.has_endpoint = true;
  EXPECT_NE(validate_peer(p).error().find("Endpoint port 0"), std::string::npos);
  p = *good;
  p.public_key = {};
  EXPECT_EQ(validate_peer(p).error(), "PublicKey is all zeros");
  p = *good;
  p.tags = {"prod"};
  EXPECT_NE(validate_peer(p).error().find("a tag is tag:<name>"), std::string::npos);
}

TEST(PeerFromJson, DiscoKeyIsReadShownAndChecked) {
  json body = peer_body();
  body["disco_key"] = kKey2;
  auto peer = peer_from_json(body, nullptr);
  ASSERT_TRUE(peer.ok()) << peer.error();
  EXPECT_TRUE(peer->has_disco_key);
  EXPECT_EQ(peer->disco_key, key(kKey2));
  EXPECT_EQ(peer_to_request_json(*peer)["disco_key"], kKey2);
  body["disco_key"] = 7;
  EXPECT_NE(rejection(body).find("field 'disco_key' must be a base64 key string"),
            std::string::npos);
  body["disco_key"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  EXPECT_NE(rejection(body).find("DiscoKey is all zeros"), std::string::npos);
  body["disco_key"] = nullptr;
  EXPECT_FALSE(peer_from_json(body, nullptr)->has_disco_key);
}

}  // namespace
}  // namespace exitgw::admin
