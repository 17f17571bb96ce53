// The peers file parser (every rejection names its line), the canonical format round trip, and
// the private key loader's permission and content checks.
#include "control/peers_config.h"
#include "tests/support/test_files.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <string_view>

namespace exitgw {
namespace {

// Public keys from `wg genkey | wg pubkey`, a key from `wg genpsk`.
constexpr std::string_view kKey1 = "xiDQIB2Qx4UzFfqxCiTODnTd2LowLtgAESpFjJNxyQs=";
constexpr std::string_view kKey2 = "4Pa/u/49Pt2PkHMK3mfrbOjMdSSZ0xeO4GW3ECoPoUk=";
constexpr std::string_view kKey3 = "VcAal5QcrW0D1dxHu+oDfuKxh568yEvlvi0his8x9x0=";
constexpr std::string_view kPsk = "xnbDEo95x+Rv7Lvr90X76ISQi0N6DegLBiAH4SuFkR4=";

std::string s(std::string_view v) {
  return std::string(v);
}

wg::Key key(std::string_view base64) {
  return *wg::key_from_base64(base64);
}

// Replaces the placeholders KEY1, KEY2 and PSK with the keys above.
std::string with_keys(std::string text) {
  const std::pair<std::string_view, std::string_view> placeholders[] = {
      {"KEY1", kKey1}, {"KEY2", kKey2}, {"PSK", kPsk}};
  for (const auto& [from, to] : placeholders) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at))
      text.replace(at, from.size(), to);
  }
  return text;
}

// One peer with key 1, the given extra lines appended.
std::string peer1(std::string_view extra = "") {
  return "[Peer]\nPublicKey = " + s(kKey1) + "\nAllowedIPs = 100.64.0.11/32\n" + s(extra);
}

// Passes if parsing fails with a message that starts "peers.conf:<line>: " and contains `what`.
::testing::AssertionResult rejected_at(std::string_view text, int line, std::string_view what) {
  auto parsed = parse_peers(text, "peers.conf");
  if (parsed.ok()) return ::testing::AssertionFailure() << "parsed, expected an error";
  const std::string& message = parsed.error();
  const std::string where = "peers.conf:" + std::to_string(line) + ": ";
  if (!message.starts_with(where))
    return ::testing::AssertionFailure()
           << "message does not start with '" << where << "': " << message;
  if (message.find(what) == std::string::npos)
    return ::testing::AssertionFailure() << "message lacks '" << what << "': " << message;
  return ::testing::AssertionSuccess();
}

std::vector<PeerConfig> parse_ok(std::string_view text) {
  auto parsed = parse_peers(text, "peers.conf");
  EXPECT_TRUE(parsed.ok()) << parsed.error();
  return parsed.ok() ? *parsed : std::vector<PeerConfig>{};
}

TEST(ParsePeers, EmptyFileIsZeroPeers) {
  EXPECT_TRUE(parse_ok("").empty());
  EXPECT_TRUE(parse_ok("# nothing here yet\n\n   \n").empty());
}

// A reload that would remove every running peer: an empty, blank, comment-only or half-written
// (nothing complete yet) file is refused; the operator's explicit marker line removes them.
TEST(ParsePeersReload, AFileWithoutPeersDoesNotRemoveRunningPeersUnlessItSaysSo) {
  for (std::string_view text : {"", "\n", "   \n\t\n", "# being written\n"}) {
    auto parsed = parse_peers_reload(text, "peers.conf", 3);
    ASSERT_FALSE(parsed.ok()) << "'" << text << "' removed every peer";
    EXPECT_TRUE(parsed.error().starts_with("peers.conf: ")) << parsed.error();
    EXPECT_NE(parsed.error().find("running peers kept"), std::string::npos) << parsed.error();
    EXPECT_NE(parsed.error().find(kNoPeersMarker), std::string::npos) << parsed.error();
  }
  for (std::string_view text : {"# exitgw: no peers\n", "# all gone\n  # exitgw: no peers  \r\n"}) {
    auto parsed = parse_peers_reload(text, "peers.conf", 3);
    ASSERT_TRUE(parsed.ok()) << parsed.error();
    EXPECT_TRUE(parsed->empty());
  }
  // Nothing runs from the file yet (start-up, or it is already empty): nothing to protect.
  EXPECT_TRUE(parse_peers_reload("", "peers.conf", 0).ok());
  // A file that still holds peers replaces the running set as before.
  auto some = parse_peers_reload(peer1(), "peers.conf", 3);
  ASSERT_TRUE(some.ok()) << some.error();
  EXPECT_EQ(some->size(), 1u);
  // A half-written file cut inside its first section is a parse error, never zero peers.
  EXPECT_FALSE(parse_peers_reload("[Peer]\nPublicKey = " + s(kKey1) + "\n", "peers.conf", 3).ok());
}

TEST(ParsePeers, ReadsEveryFieldOfAMultiPeerFile) {
  // The [Peer] headers are lines 3 and 13; line 7 starts with a tab.
  const std::string text = with_keys(R"(# gateway peers

[Peer]  # alice's laptop
PublicKey = KEY1
PresharedKey=PSK
AllowedIPs = 100.64.0.11/32, 10.9.0.0/24
	AllowedIPs = 10.10.0.0/16   # a repeated key appends
Endpoint = 10.77.0.11:51820
PersistentKeepalive = 25
User = alice@example.com
Tags = tag:server, tag:prod

[Peer]
PublicKey = KEY2
AllowedIPs = 100.64.0.12
)");
  const auto peers = parse_ok(text);
  ASSERT_EQ(peers.size(), 2u);
  const PeerConfig& a = peers[0];
  EXPECT_EQ(a.line, 3);
  EXPECT_EQ(a.public_key, key(kKey1));
  EXPECT_TRUE(a.has_preshared_key);
  EXPECT_EQ(a.preshared_key, key(kPsk));
  ASSERT_EQ(a.allowed_ips.size(), 3u);
  EXPECT_EQ(a.allowed_ips[0].addr, (100u << 24) | (64u << 16) | 11u);
  EXPECT_EQ(a.allowed_ips[0].len, 32);
  EXPECT_EQ(a.allowed_ips[1].addr, (10u << 24) | (9u << 16));
  EXPECT_EQ(a.allowed_ips[1].len, 24);
  EXPECT_EQ(a.allowed_ips[2].addr, (10u << 24) | (10u << 16));
  EXPECT_EQ(a.allowed_ips[2].len, 16);
  EXPECT_TRUE(a.has_endpoint);
  EXPECT_EQ(a.endpoint_ip, (10u << 24) | (77u << 16) | 11u);
  EXPECT_EQ(a.endpoint_port, 51820);
  EXPECT_EQ(a.persistent_keepalive, 25);
  EXPECT_EQ(a.user, "alice@example.com");
  EXPECT_EQ(a.tags, (std::vector<std::string>{"tag:server", "tag:prod"}));

  const PeerConfig& b = peers[1];
  EXPECT_EQ(b.line, 13);
  EXPECT_EQ(b.public_key, key(kKey2));
  EXPECT_FALSE(b.has_preshared_key);
  ASSERT_EQ(b.allowed_ips.size(), 1u);
  EXPECT_EQ(b.allowed_ips[0].len, 32);  // a bare address is a /32
  EXPECT_FALSE(b.has_endpoint);
  EXPECT_EQ(b.persistent_keepalive, 0);
  EXPECT_TRUE(b.user.empty());
  EXPECT_TRUE(b.tags.empty());
}

TEST(ParsePeers, CrlfLineEndingsReadLikeLf) {
  std::string lf = peer1("Endpoint = 10.77.0.11:51820\nUser = bob@example.com\n") +
                   "\n[Peer]\nPublicKey = " + s(kKey2) + "\nAllowedIPs = 100.64.0.12/32\n";
  std::string crlf;
  for (char c : lf) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  const auto a = parse_ok(lf);
  const auto b = parse_ok(crlf);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_TRUE(same_settings(a, b));
  EXPECT_EQ(b[0].user, "bob@example.com");
  // Line numbers count CRLF lines the same way.
  EXPECT_TRUE(rejected_at("[Peer]\r\nPublicKey = " + s(kKey1) + "\r\nBogus = 1\r\n", 3, "Bogus"));
}

TEST(ParsePeers, KeyAndSectionNamesAreCaseInsensitive) {
  const auto peers = parse_ok("[peer]\npublickey = " + s(kKey1) +
                              "\nALLOWEDIPS = 100.64.0.11/32\npersistentKEEPALIVE = 5\n");
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].persistent_keepalive, 5);
}

TEST(ParsePeers, KeepaliveOffAndZeroMeanDisabled) {
  EXPECT_EQ(parse_ok(peer1("PersistentKeepalive = off\n"))[0].persistent_keepalive, 0);
  EXPECT_EQ(parse_ok(peer1("PersistentKeepalive = 0\n"))[0].persistent_keepalive, 0);
  EXPECT_EQ(parse_ok(peer1("PersistentKeepalive = 65535\n"))[0].persistent_keepalive, 65535);
}

TEST(ParsePeers, SlashEightIsTheShortestAllowedPrefix) {
  const auto peers = parse_ok("[Peer]\nPublicKey = " + s(kKey1) + "\nAllowedIPs = 10.0.0.0/8\n");
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].allowed_ips[0].len, 8);
}

TEST(ParsePeersRejects, UnknownSection) {
  EXPECT_TRUE(rejected_at(peer1("[Route]\n"), 4, "unknown section 'Route'"));
}

TEST(ParsePeersRejects, InterfaceSectionPointingAtThePrivateKeyFlag) {
  EXPECT_TRUE(rejected_at("# gw\n[Interface]\nPrivateKey = x\n", 2, "--private_key_file"));
}

TEST(ParsePeersRejects, MalformedSectionHeader) {
  EXPECT_TRUE(rejected_at("\n[Peer\n", 2, "malformed section header"));
}

TEST(ParsePeersRejects, UnknownKey) {
  EXPECT_TRUE(rejected_at(peer1("ListenPort = 51820\n"), 4, "unknown key 'ListenPort'"));
}

TEST(ParsePeersRejects, KeyOutsideASectionWithoutEchoingTheValue) {
  auto parsed = parse_peers("\nPrivateKey = " + s(kPsk) + "\n", "peers.conf");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(rejected_at("\nPrivateKey = " + s(kPsk) + "\n", 2, "before any [Peer] section"));
  EXPECT_EQ(parsed.error().find(kPsk), std::string::npos) << parsed.error();
}

TEST(ParsePeersRejects, LineThatIsNeitherKeyValueNorHeader) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs 10.0.0.0/24\n"), 4, "expected 'Key = Value'"));
}

TEST(ParsePeersRejects, PeerWithoutPublicKeyAtItsHeader) {
  EXPECT_TRUE(rejected_at(peer1("\n[Peer]\nAllowedIPs = 10.1.0.0/16\n"), 5, "has no PublicKey"));
  EXPECT_TRUE(rejected_at(peer1() + "[Peer]\n", 4, "has no PublicKey"));  // at end of file
}

TEST(ParsePeersRejects, PeerWithoutAllowedIPs) {
  EXPECT_TRUE(rejected_at("#\n[Peer]\nPublicKey = " + s(kKey1) + "\n", 2, "has no AllowedIPs"));
}

TEST(ParsePeersRejects, PublicKeyThatIsNotBase64OrNot32Bytes) {
  EXPECT_TRUE(rejected_at("[Peer]\nPublicKey = not-a-key\n", 2, "44 base64 characters"));
  EXPECT_TRUE(rejected_at("[Peer]\nPublicKey = " + s(kKey1.substr(0, 40)) + "\n", 2,
                          "44 base64 characters"));
  std::string bad = s(kKey1);
  bad[3] = '*';
  EXPECT_TRUE(rejected_at("[Peer]\nPublicKey = " + bad + "\n", 2, "not valid base64"));
}

TEST(ParsePeersRejects, AllZeroPublicKey) {
  EXPECT_TRUE(rejected_at("[Peer]\nPublicKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 2,
                          "all zeros"));
}

TEST(ParsePeersRejects, BadPresharedKey) {
  EXPECT_TRUE(rejected_at(peer1("PresharedKey = abc\n"), 4, "PresharedKey"));
}

TEST(ParsePeersRejects, DuplicatePublicKeyNamingBothPlaces) {
  const std::string text =
      peer1() + "\n[Peer]\nAllowedIPs = 100.64.0.12/32\nPublicKey = " + s(kKey1) + "\n";
  EXPECT_TRUE(rejected_at(text, 7, "already used by the peer at line 1 (PublicKey at line 2)"));
}

TEST(ParsePeersRejects, SamePrefixForTwoPeersNamingBothPlaces) {
  const std::string text =
      peer1() + "[Peer]\nPublicKey = " + s(kKey2) + "\nAllowedIPs = 10.1.0.0/16, 100.64.0.11/32\n";
  EXPECT_TRUE(rejected_at(text, 6,
                          "AllowedIPs 100.64.0.11/32 is already allowed for the peer at line 1 "
                          "(AllowedIPs at line 3)"));
}

TEST(ParsePeersRejects, SamePrefixTwiceForOnePeer) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 100.64.0.11\n"), 4,
                          "listed twice for this peer (first at line 3)"));
}

TEST(ParsePeersRejects, HostBitsNamingTheCanonicalPrefix) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.9.0.1/24\n"), 4,
                          "'10.9.0.1/24' has host bits set: write 10.9.0.0/24"));
}

TEST(ParsePeersRejects, DefaultRouteBecauseAnExitMustNotRouteTheInternetToAPeer) {
  EXPECT_TRUE(
      rejected_at(peer1("AllowedIPs = 0.0.0.0/0\n"), 4, "must never route the internet to a peer"));
}

TEST(ParsePeersRejects, PrefixShorterThanSlashEight) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.0.0.0/8, 64.0.0.0/2\n"), 4, "shorter than /8"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.0.0.0/7\n"), 4, "shorter than /8"));
}

TEST(ParsePeersRejects, OctetOverTwoFiftyFive) {
  EXPECT_TRUE(
      rejected_at(peer1("AllowedIPs = 10.0.0.300/32\n"), 4, "AllowedIPs '10.0.0.300/32': "));
  EXPECT_TRUE(
      rejected_at(peer1("AllowedIPs = 10.0.0.300/32\n"), 4, "octet 300 is larger than 255"));
}

TEST(ParsePeersRejects, PrefixLengthOverThirtyTwoOrNotANumber) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.0.0.0/33\n"), 4, "33 is larger than 32"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.0.0.0/\n"), 4, "is not a number"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.0.0.0/+8\n"), 4, "is not a number"));
}

TEST(ParsePeersRejects, EmptyAllowedIPsEntry) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.1.0.0/16,\n"), 4, "empty entry"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 10.1.0.0/16, , 10.2.0.0/16\n"), 4, "empty entry"));
}

TEST(ParsePeers, IPv6AllowedIPsBesideIPv4OnOneLineInCanonicalForm) {
  const auto peers = parse_ok(peer1(
      "AllowedIPs = FD7A:115C:A1E0:0:0:0:0:2/128, 10.9.0.0/24, 2001:db8:0:1::/64, fd7a::5\n"));
  ASSERT_EQ(peers.size(), 1u);
  ASSERT_EQ(peers[0].allowed_ips.size(), 2u);
  ASSERT_EQ(peers[0].allowed_ips6.size(), 3u);
  EXPECT_EQ(format_allowed_ip(peers[0].allowed_ips6[0]), "fd7a:115c:a1e0::2/128");
  EXPECT_EQ(format_allowed_ip(peers[0].allowed_ips6[1]), "2001:db8:0:1::/64");
  EXPECT_EQ(format_allowed_ip(peers[0].allowed_ips6[2]), "fd7a::5/128");  // bare: a /128
}

TEST(ParsePeers, APeerWithOnlyIPv6AllowedIPsIsAPeer) {
  const auto peers =
      parse_ok("[Peer]\nPublicKey = " + s(kKey1) + "\nAllowedIPs = fd7a:115c:a1e0::2/128\n");
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_TRUE(peers[0].allowed_ips.empty());
  EXPECT_EQ(peers[0].allowed_ips6.size(), 1u);
}

TEST(ParsePeers, SlashSixteenIsTheShortestIPv6AllowedPrefix) {
  const auto peers = parse_ok(peer1("AllowedIPs = 2001::/16\n"));
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_EQ(peers[0].allowed_ips6.at(0).len, 16);
}

TEST(ParsePeersRejects, SameIPv6PrefixForTwoPeersNamingBothPlaces) {
  const std::string text = peer1("AllowedIPs = fd7a:115c:a1e0::2/128\n") +
                           "[Peer]\nPublicKey = " + s(kKey2) +
                           "\nAllowedIPs = fd7a:115c:a1e0:0::2\n";
  EXPECT_TRUE(rejected_at(text, 7,
                          "AllowedIPs fd7a:115c:a1e0::2/128 is already allowed for the peer at "
                          "line 1 (AllowedIPs at line 4)"));
}

TEST(ParsePeersRejects, SameIPv6PrefixTwiceForOnePeerInAnySpelling) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fd00:1::/64, FD00:1:0:0::/64\n"), 4,
                          "fd00:1::/64 is listed twice for this peer (first at line 4)"));
}

TEST(ParsePeersRejects, IPv6HostBitsNamingTheCanonicalPrefix) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fd7a:115c:a1e0::2/64\n"), 4,
                          "'fd7a:115c:a1e0::2/64' has host bits set: write fd7a:115c:a1e0::/64 "
                          "for the network, or fd7a:115c:a1e0::2/128 for the one address"));
}

TEST(ParsePeersRejects, IPv6DefaultRouteAndPrefixesShorterThanSlashSixteen) {
  EXPECT_TRUE(
      rejected_at(peer1("AllowedIPs = ::/0\n"), 4, "must never route the internet to a peer"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 2000::/3\n"), 4, "shorter than /16"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = 2000::/15\n"), 4, "shorter than /16"));
}

TEST(ParsePeersRejects, IPv6AddressesNoPeerCanSendFrom) {
  const std::pair<std::string_view, std::string_view> cases[] = {
      {"ff02::1/128", "is multicast (ff00::/8)"},
      {"ff00::/16", "is multicast (ff00::/8)"},
      {"fe80::/64", "is link-local (fe80::/10)"},
      {"febf:ffff::/32", "is link-local (fe80::/10)"},
      {"::/128", "holds the unspecified address ::"},
      {"::/16", "holds the unspecified address ::"},
      {"::1", "holds the loopback address ::1"},
  };
  for (const auto& [prefix, why] : cases) {
    EXPECT_TRUE(rejected_at(peer1("AllowedIPs = " + s(prefix) + "\n"), 4, why)) << prefix;
    EXPECT_TRUE(rejected_at(peer1("AllowedIPs = " + s(prefix) + "\n"), 4,
                            "can never be the source of a peer's packets"))
        << prefix;
  }
  // Next to them, but outside: fine.
  EXPECT_EQ(parse_ok(peer1("AllowedIPs = fec0::/16, ::2/128, fe00::/16\n")).size(), 1u);
}

TEST(ParsePeersRejects, IPv6PrefixLengthOverOneTwentyEightOrNotANumberOrBadAddress) {
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fd00::/129\n"), 4, "129 is larger than 128"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fd00::/\n"), 4, "is not a number"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fd00::/x\n"), 4, "is not a number"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fd00:::1/128\n"), 4, "is not an IPv6 address"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = fe80::1%eth0/128\n"), 4, "is not an IPv6 address"));
}

TEST(ValidatePeers, AnIPv6PrefixOfTwoPeersIsAClashNamingBoth) {
  PeerConfig a = parse_ok(peer1("AllowedIPs = fd7a:115c:a1e0::2/128\n"))[0];
  PeerConfig b = a;
  b.public_key = key(kKey2);
  b.allowed_ips = {};
  b.line = 0;
  auto clash = validate_peers({a, b});
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.error().find("AllowedIPs fd7a:115c:a1e0::2/128 is allowed for both the peer " +
                               s(kKey1)),
            std::string::npos)
      << clash.error();
  EXPECT_NE(clash.error().find("a prefix may belong to one peer only"), std::string::npos);
  b.allowed_ips6 = {};
  auto empty = validate_peers({a, b});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().find("has no AllowedIPs"), std::string::npos) << empty.error();
}

TEST(ParsePeersRejects, BadEndpoints) {
  EXPECT_TRUE(rejected_at(peer1("Endpoint = 10.77.0.11\n"), 4, "is not IPv4:PORT or [IPv6]:PORT"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = 10.77.0.11:0\n"), 4, "from 1 to 65535"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = 10.77.0.11:65536\n"), 4, "from 1 to 65535"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = 10.77.0.11:port\n"), 4, "from 1 to 65535"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = vpn.example.com:51820\n"), 4, "host names"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [2001:db8::1]\n"), 4, "is not [IPv6]:PORT"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = 2001:db8::1:51820\n"), 4, "host names"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [2001:db8::1]:0\n"), 4, "from 1 to 65535"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [2001:db8::zz]:51820\n"), 4, "Endpoint"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [fe80::1%eth0]:51820\n"), 4, "a zone"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [fe80::1]:51820\n"), 4, "link-local"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [ff02::1]:51820\n"), 4, "multicast"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [::1]:51820\n"), 4, "::1"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [::]:51820\n"), 4, "::1"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = [::ffff:10.0.0.1]:51820\n"), 4, "IPv4-mapped"));
}

TEST(ParsePeers, Ipv6EndpointReadAndWrittenBackInCanonicalForm) {
  auto peers = parse_ok(peer1("Endpoint = [2001:DB8:0::7]:41641\n"));
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_TRUE(peers[0].has_endpoint);
  EXPECT_TRUE(peers[0].endpoint_is_ipv6);
  const std::array<uint8_t, 16> want = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
  EXPECT_EQ(peers[0].endpoint_ip6, want);
  EXPECT_EQ(peers[0].endpoint_port, 41641);
  EXPECT_EQ(peer_endpoint_text(peers[0]), "[2001:db8::7]:41641");
  EXPECT_NE(format_peers(peers).find("Endpoint = [2001:db8::7]:41641\n"), std::string::npos);
}

TEST(ParsePeersRejects, KeepaliveOutOfRange) {
  EXPECT_TRUE(rejected_at(peer1("PersistentKeepalive = 65536\n"), 4, "from 0 to 65535"));
  EXPECT_TRUE(rejected_at(peer1("PersistentKeepalive = -1\n"), 4, "from 0 to 65535"));
  EXPECT_TRUE(rejected_at(peer1("PersistentKeepalive = 25s\n"), 4, "from 0 to 65535"));
}

TEST(ParsePeersRejects, BadTags) {
  EXPECT_TRUE(rejected_at(peer1("Tags = server\n"), 4, "a tag is tag:<name>"));
  EXPECT_TRUE(rejected_at(peer1("Tags = tag:Prod\n"), 4, "'tag:Prod'"));
  EXPECT_TRUE(rejected_at(peer1("Tags = tag:\n"), 4, "a tag is tag:<name>"));
  EXPECT_TRUE(rejected_at(peer1("Tags = tag:a_b\n"), 4, "a tag is tag:<name>"));
  EXPECT_TRUE(rejected_at(peer1("Tags = tag:" + std::string(64, 'a') + "\n"), 4, "a tag is"));
  EXPECT_TRUE(rejected_at(peer1("Tags = tag:a,\n"), 4, "a tag is tag:<name>"));
}

TEST(ParsePeersRejects, SameTagTwice) {
  EXPECT_TRUE(rejected_at(peer1("Tags = tag:a\nTags = tag:b, tag:a\n"), 5, "tag:a twice"));
}

TEST(ParsePeersRejects, UserWithSpacesOrControlBytes) {
  EXPECT_TRUE(rejected_at(peer1("User = alice smith\n"), 4, "printable ASCII"));
  EXPECT_TRUE(rejected_at(peer1("User = a\x1b[2Jb\n"), 4, "'a\\x1b[2Jb'"));  // escaped, not raw
}

TEST(ParsePeersRejects, SingleValuedKeyTwiceInOneSection) {
  const std::string psk = "PresharedKey = " + s(kPsk) + "\n";
  EXPECT_TRUE(rejected_at(peer1("PublicKey = " + s(kKey2) + "\n"), 4,
                          "PublicKey appears twice in this [Peer] (first at line 2)"));
  EXPECT_TRUE(rejected_at(peer1(psk + psk), 5, "PresharedKey appears twice"));
  EXPECT_TRUE(rejected_at(peer1("Endpoint = 1.2.3.4:5\nendpoint = 1.2.3.4:6\n"), 5,
                          "Endpoint appears twice"));
  EXPECT_TRUE(rejected_at(peer1("PersistentKeepalive = 1\nPersistentKeepalive = 1\n"), 5,
                          "PersistentKeepalive appears twice"));
  EXPECT_TRUE(rejected_at(peer1("User = a@b\nUser = a@b\n"), 5, "User appears twice"));
}

TEST(ParsePeersRejects, KeyWithoutValue) {
  EXPECT_TRUE(rejected_at(peer1("User =\n"), 4, "User has no value"));
  EXPECT_TRUE(rejected_at(peer1("AllowedIPs = # later\n"), 4, "AllowedIPs has no value"));
}

TEST(ParsePeersRejects, LineOverFourKibibytes) {
  const std::string at_limit = "#" + std::string(kPeersLineMaxBytes - 1, 'x') + "\n";
  EXPECT_EQ(parse_ok(peer1(at_limit)).size(), 1u);
  EXPECT_TRUE(rejected_at(peer1(at_limit + "#" + at_limit), 5, "over the 4096-byte limit"));
}

TEST(ParsePeersRejects, FileOverSixteenMebibytes) {
  const std::string text(kPeersFileMaxBytes + 1, '\n');
  auto parsed = parse_peers(text, "peers.conf");
  ASSERT_FALSE(parsed.ok());
  EXPECT_TRUE(parsed.error().starts_with("peers.conf: ")) << parsed.error();
  EXPECT_NE(parsed.error().find("16 MiB"), std::string::npos) << parsed.error();
  EXPECT_TRUE(parse_ok(std::string(kPeersFileMaxBytes, '\n')).empty());
}

TEST(ParsePeersRejects, NulByte) {
  std::string text = peer1("# a comment with a ");
  text += '\0';
  text += " in it\n";
  EXPECT_TRUE(rejected_at(text, 4, "NUL byte"));
}

TEST(FormatPeers, RoundTripsToTheSameSettings) {
  const std::string text = with_keys(R"([Peer]
publickey=KEY1
PresharedKey = PSK
AllowedIPs = 100.64.0.11/32
AllowedIPs = fd7a:115c:a1e0:0::b/128, 10.9.0.0/24
Endpoint = 10.77.0.11:51820
PersistentKeepalive = off
User = alice@example.com
Tags = tag:server,tag:prod
[Peer]
PublicKey = KEY2
AllowedIPs = 100.64.0.12
PersistentKeepalive = 25
)");
  const auto first = parse_ok(text);
  ASSERT_EQ(first.size(), 2u);
  const std::string formatted = format_peers(first);
  const auto second = parse_ok(formatted);
  EXPECT_TRUE(same_settings(first, second)) << formatted;
  EXPECT_EQ(format_peers(second), formatted);  // the canonical form is a fixed point
  EXPECT_EQ(formatted, with_keys(R"([Peer]
PublicKey = KEY1
PresharedKey = PSK
AllowedIPs = 100.64.0.11/32, 10.9.0.0/24, fd7a:115c:a1e0::b/128
Endpoint = 10.77.0.11:51820
User = alice@example.com
Tags = tag:server, tag:prod

[Peer]
PublicKey = KEY2
AllowedIPs = 100.64.0.12/32
PersistentKeepalive = 25
)"));
  EXPECT_EQ(format_peers({}), "");
}

TEST(FormatPeers, SameSettingsNoticesEachField) {
  auto base = parse_ok(peer1("Endpoint = 1.2.3.4:5\nUser = a@b\nTags = tag:x\n"))[0];
  EXPECT_TRUE(same_settings(base, base));
  auto changed = base;
  changed.line = 99;
  EXPECT_TRUE(same_settings(base, changed));  // where it was read from is not a setting
  changed = base;
  changed.allowed_ips[0].len = 31;
  EXPECT_FALSE(same_settings(base, changed));
  changed = base;
  changed.allowed_ips6.push_back(Ipv6Prefix{{0xfd, 0x7a}, 32});
  EXPECT_FALSE(same_settings(base, changed));
  changed = base;
  changed.endpoint_port = 6;
  EXPECT_FALSE(same_settings(base, changed));
  changed = base;
  changed.tags.push_back("tag:y");
  EXPECT_FALSE(same_settings(base, changed));
  changed = base;
  changed.has_preshared_key = true;
  EXPECT_FALSE(same_settings(base, changed));
}

// Random valid configurations survive format -> parse unchanged.
TEST(FormatPeers, RandomConfigurationsRoundTrip) {
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    std::vector<PeerConfig> peers(rng() % 6);
    uint32_t first_octet = 20;  // each prefix gets its own /8, so no two peers share one
    for (PeerConfig& p : peers) {
      for (auto& b : p.public_key) b = static_cast<uint8_t>(rng());
      p.public_key[0] |= 1;  // never all zero
      p.has_preshared_key = rng() % 2;
      if (p.has_preshared_key)
        for (auto& b : p.preshared_key) b = static_cast<uint8_t>(rng());
      const int prefixes = 1 + rng() % 4;
      for (int i = 0; i < prefixes; ++i) {
        Ipv4Prefix prefix{0, static_cast<uint8_t>(8 + rng() % 25)};
        prefix.addr = (first_octet++ << 24 | (rng() & 0xffffff)) & prefix.mask();
        p.allowed_ips.push_back(prefix);
      }
      // Some IPv6 ones too, each under its own fdXX::/16 so no two peers share one.
      for (int i = rng() % 3; i > 0; --i) {
        Ipv6Prefix prefix{{0xfd, static_cast<uint8_t>(first_octet++)},
                          static_cast<uint8_t>(16 + rng() % 113)};
        for (unsigned b = 2; b < 16; ++b)
          if (b * 8 < prefix.len) prefix.addr[b] = static_cast<uint8_t>(rng());
        if (prefix.len % 8 != 0)
          prefix.addr[prefix.len / 8] &= static_cast<uint8_t>(0xff << (8 - prefix.len % 8));
        p.allowed_ips6.push_back(prefix);
      }
      p.has_endpoint = rng() % 2;
      if (p.has_endpoint) {
        p.endpoint_is_ipv6 = rng() % 2;
        if (p.endpoint_is_ipv6) {
          p.endpoint_ip6 = {0x20, 0x01, 0x0d, 0xb8};
          for (unsigned b = 4; b < 16; ++b) p.endpoint_ip6[b] = static_cast<uint8_t>(rng());
        } else {
          p.endpoint_ip = rng();
        }
        p.endpoint_port = static_cast<uint16_t>(1 + rng() % 65535);
      }
      p.persistent_keepalive = static_cast<uint16_t>(rng() % 3 == 0 ? rng() : 0);
      if (rng() % 2) p.user = "user" + std::to_string(rng() % 1000) + "@example.com";
      if (rng() % 2) p.tags = {"tag:a" + std::to_string(rng() % 10), "tag:zz-9"};
    }
    const std::string text = format_peers(peers);
    auto parsed = parse_peers(text, "random");
    ASSERT_TRUE(parsed.ok()) << parsed.error() << "\n" << text;
    EXPECT_TRUE(same_settings(peers, *parsed)) << text;
  }
}

TEST(ExamplePeersFile, ParsesAndIsAlreadyCanonicalApartFromComments) {
  std::ifstream in(std::string(EXITGW_SOURCE_DIR) + "/conf/peers.conf", std::ios::binary);
  ASSERT_TRUE(in) << "conf/peers.conf missing";
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto peers = parse_peers(text, "conf/peers.conf");
  ASSERT_TRUE(peers.ok()) << peers.error();
  ASSERT_EQ(peers->size(), 1u);
  EXPECT_EQ((*peers)[0].user, "alice@example.com");
  EXPECT_NE(text.find(format_peers(*peers)), std::string::npos);
}

// A private temporary directory, removed with everything in it.
class PrivateKeyFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/peers_config_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/private.key";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string error_for(std::string_view content, mode_t mode) {
    test::write_file(path_, content, mode);
    auto key = load_private_key(path_);
    EXPECT_FALSE(key.ok());
    return key.ok() ? "" : key.error();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(PrivateKeyFile, OwnerOnlyKeyWithTrailingNewlineLoads) {
  const wg::Key generated = wg::generate_private_key();
  test::write_file(path_, wg::key_to_base64(generated) + "\n", 0600);
  auto key = load_private_key(path_);
  ASSERT_TRUE(key.ok()) << key.error();
  EXPECT_EQ(*key, generated);
  test::write_file(path_, wg::key_to_base64(generated) + " \r\n\n", 0400);
  EXPECT_TRUE(load_private_key(path_).ok());
}

TEST_F(PrivateKeyFile, WorldReadableKeyRefusedWithTheFix) {
  const std::string error = error_for(wg::key_to_base64(wg::generate_private_key()), 0644);
  EXPECT_NE(error.find("0644"), std::string::npos) << error;
  EXPECT_NE(error.find("chmod 600 " + path_), std::string::npos) << error;
}

TEST_F(PrivateKeyFile, GroupAccessibleKeyRefused) {
  const std::string error = error_for(wg::key_to_base64(wg::generate_private_key()), 0610);
  EXPECT_NE(error.find("0610"), std::string::npos) << error;
  EXPECT_NE(error.find("chmod 600"), std::string::npos) << error;
}

TEST_F(PrivateKeyFile, MissingFileRefusedWithTheErrnoText) {
  auto key = load_private_key(dir_ + "/absent.key");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.error().find("No such file or directory"), std::string::npos) << key.error();
  EXPECT_NE(key.error().find("absent.key"), std::string::npos) << key.error();
}

TEST_F(PrivateKeyFile, DirectoryRefusedAsNotARegularFile) {
  ASSERT_EQ(chmod(dir_.c_str(), 0700), 0);
  auto key = load_private_key(dir_);
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.error().find("not a regular file"), std::string::npos) << key.error();
}

TEST_F(PrivateKeyFile, GarbageRefused) {
  EXPECT_NE(error_for("hello world\n", 0600).find("does not hold a WireGuard private key"),
            std::string::npos);
  EXPECT_NE(error_for("", 0600).find("does not hold"), std::string::npos);
  EXPECT_NE(error_for(std::string(4096, 'A'), 0600).find("too long"), std::string::npos);
  const std::string two_keys = s(kKey1) + "\n" + s(kKey2) + "\n";
  EXPECT_NE(error_for(two_keys, 0600).find("does not hold"), std::string::npos);
}

TEST_F(PrivateKeyFile, AllZeroKeyRefused) {
  EXPECT_NE(error_for("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0600).find("all-zero"),
            std::string::npos);
}

TEST(ParsePeers, DiscoKeyIsReadWrittenAndChecked) {
  const auto peers = parse_ok(peer1("DiscoKey = " + s(kKey3) + "\n"));
  ASSERT_EQ(peers.size(), 1u);
  EXPECT_TRUE(peers[0].has_disco_key);
  EXPECT_EQ(peers[0].disco_key, key(kKey3));
  const auto again = parse_ok(format_peers(peers));
  EXPECT_TRUE(same_settings(again, peers));
  PeerConfig other = peers[0];
  other.has_disco_key = false;
  EXPECT_FALSE(same_settings(other, peers[0]));
  EXPECT_TRUE(rejected_at(peer1("DiscoKey = nope\n"), 4, "DiscoKey"));
  EXPECT_TRUE(rejected_at(peer1("DiscoKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 4,
                          "DiscoKey is all zeros"));
  EXPECT_TRUE(rejected_at(peer1("DiscoKey = " + s(kKey3) + "\nDiscoKey = " + s(kKey3) + "\n"), 5,
                          "appears twice"));
}

}  // namespace
}  // namespace exitgw
