// net_parse: every accepted form of the address parsers, every rejection, and error messages
// that name the text the operator gave.
#include "control/net_parse.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace exitgw {
namespace {

// Asserts `r` failed and its message quotes `named` (the input, or the part at fault).
template <typename T>
void expect_rejected(const Result<T>& r, const std::string& named) {
  ASSERT_FALSE(r.ok()) << "accepted '" << named << "'";
  EXPECT_NE(r.error().find(named), std::string::npos)
      << "the error does not name '" << named << "': " << r.error();
}

// --- parse_ipv4 ---------------------------------------------------------------------------

TEST(ParseIpv4, AcceptsDottedQuadsAsHostOrder) {
  const std::pair<const char*, uint32_t> cases[] = {
      {"10.77.0.1", 0x0a4d0001u}, {"0.0.0.0", 0u},          {"255.255.255.255", 0xffffffffu},
      {"192.0.2.1", 0xc0000201u}, {"1.0.0.0", 0x01000000u}, {"100.64.10.200", 0x64400ac8u},
  };
  for (const auto& [text, want] : cases) {
    auto r = parse_ipv4(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.error();
    EXPECT_EQ(*r, want) << text;
  }
}

TEST(ParseIpv4, RejectsLeadingZerosInAnyOctet) {
  for (const char* s : {"010.0.0.1", "10.00.0.1", "10.0.01.1", "10.0.0.01", "10.0.0.00"})
    expect_rejected(parse_ipv4(s), s);
}

TEST(ParseIpv4, RejectsOctetsAbove255) {
  for (const char* s : {"256.0.0.1", "10.0.0.256", "10.999.0.1", "10.0.0.4294967296"})
    expect_rejected(parse_ipv4(s), s);
}

TEST(ParseIpv4, RejectsMissingOrEmptyOctets) {
  for (const char* s : {"", "10", "10.0", "10.0.0", "10.0.0.", "10..0.1", ".10.0.0.1", "..."})
    expect_rejected(parse_ipv4(s), std::string("'") + s + "'");
}

TEST(ParseIpv4, RejectsTrailingGarbageAndExtraOctets) {
  for (const char* s :
       {"10.0.0.1x", "10.0.0.1 ", "10.0.0.1.", "10.0.0.1.5", "10.0.0.1/24", "10.0.0.1:80"})
    expect_rejected(parse_ipv4(s), s);
}

TEST(ParseIpv4, RejectsSignsSpacesAndNonDigits) {
  for (const char* s :
       {"+10.0.0.1", " 10.0.0.1", "10.0.0.-1", "10.0.0.+1", "a.b.c.d", "0x0a.0.0.1", "10.0 .0.1"})
    expect_rejected(parse_ipv4(s), s);
}

TEST(FormatIpv4, RoundTripsThroughParse) {
  for (const char* s : {"0.0.0.0", "10.77.0.1", "255.255.255.255", "192.0.2.254"}) {
    auto r = parse_ipv4(s);
    ASSERT_TRUE(r.ok()) << s;
    EXPECT_EQ(format_ipv4(*r), s);
  }
}

// --- parse_ipv4_prefix --------------------------------------------------------------------

TEST(ParseIpv4Prefix, AcceptsAddressWithLengthAndMaskMatches) {
  struct Case {
    const char* text;
    uint32_t addr;
    uint8_t len;
    uint32_t mask;
  };
  const Case cases[] = {
      {"10.77.0.1/24", 0x0a4d0001u, 24, 0xffffff00u},
      {"0.0.0.0/0", 0u, 0, 0u},
      {"192.0.2.1/32", 0xc0000201u, 32, 0xffffffffu},
      {"100.64.0.0/10", 0x64400000u, 10, 0xffc00000u},
      {"128.0.0.0/1", 0x80000000u, 1, 0x80000000u},
      {"10.0.0.1/31", 0x0a000001u, 31, 0xfffffffeu},
  };
  for (const Case& c : cases) {
    auto r = parse_ipv4_prefix(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.error();
    EXPECT_EQ(r->addr, c.addr) << c.text;
    EXPECT_EQ(r->len, c.len) << c.text;
    EXPECT_EQ(r->mask(), c.mask) << c.text;
  }
}

TEST(ParseIpv4Prefix, BareAddressMeansSlash32) {
  auto r = parse_ipv4_prefix("192.0.2.7");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->addr, 0xc0000207u);
  EXPECT_EQ(r->len, 32);
  EXPECT_EQ(r->mask(), 0xffffffffu);
}

TEST(ParseIpv4Prefix, RejectsLengthAbove32) {
  for (const char* s : {"10.0.0.0/33", "10.0.0.0/64", "10.0.0.0/4294967296"})
    expect_rejected(parse_ipv4_prefix(s), s);
}

TEST(ParseIpv4Prefix, RejectsMalformedLength) {
  for (const char* s : {"10.0.0.0/", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8x",
                        "10.0.0.0/ 8", "10.0.0.0/8/8", "10.0.0.0/0x8"})
    expect_rejected(parse_ipv4_prefix(s), s);
}

TEST(ParseIpv4Prefix, RejectsBadAddressNamingIt) {
  // The address part is what the message quotes.
  expect_rejected(parse_ipv4_prefix("10.0.0/8"), "10.0.0");
  expect_rejected(parse_ipv4_prefix("10.0.0.256/8"), "10.0.0.256");
  expect_rejected(parse_ipv4_prefix("010.0.0.0/8"), "010.0.0.0");
  expect_rejected(parse_ipv4_prefix("/24"), "''");
  expect_rejected(parse_ipv4_prefix(""), "''");
}

// --- parse_mac ----------------------------------------------------------------------------

TEST(ParseMac, AcceptsColonAndDashFormsInEitherCase) {
  const std::vector<uint8_t> want = {0x02, 0x70, 0x63, 0x61, 0x7a, 0xbc};
  for (const char* s :
       {"02:70:63:61:7a:bc", "02-70-63-61-7a-bc", "02:70:63:61:7A:BC", "02-70-63-61-7A-Bc"}) {
    auto r = parse_mac(s);
    ASSERT_TRUE(r.ok()) << s << ": " << r.error();
    EXPECT_EQ(*r, want) << s;
  }
}

TEST(ParseMac, AcceptsLocallyAdministeredAndGlobalUnicast) {
  auto r = parse_mac("00:1b:21:3a:4f:5e");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ((*r)[0], 0x00);
  EXPECT_EQ((*r)[5], 0x5e);
  ASSERT_TRUE(parse_mac("fe:ff:ff:ff:ff:ff").ok());  // bit 0 clear: unicast
}

TEST(ParseMac, RejectsMulticastAndBroadcast) {
  for (const char* s : {"01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff",
                        "03:00:00:00:00:00", "01:80:c2:00:00:0e"}) {
    auto r = parse_mac(s);
    expect_rejected(r, s);
    if (!r.ok()) {
      EXPECT_NE(r.error().find("multicast"), std::string::npos) << r.error();
    }
  }
}

TEST(ParseMac, RejectsBadSeparators) {
  for (const char* s : {"02.70.63.61.70.00", "02 70 63 61 70 00", "02_70_63_61_70_00",
                        "0270.6361.7000", "027063617000", "02::70:63:61:70:0"})
    expect_rejected(parse_mac(s), s);
}

TEST(ParseMac, RejectsWrongLengthAndNonHex) {
  for (const char* s :
       {"02:70:63:61:70", "02:70:63:61:70:00:", "02:70:63:61:70:00:11", "2:70:63:61:70:0",
        "02:70:63:61:70:0g", "g2:70:63:61:70:00", "02:70:63:61:70:+0", " 02:70:63:61:70:0"})
    expect_rejected(parse_mac(s), s);
  expect_rejected(parse_mac(""), "''");
}

// --- parse_host_port ----------------------------------------------------------------------

TEST(ParseHostPort, AcceptsHostAndPort) {
  auto r = parse_host_port("127.0.0.1:9550");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->port, 9550);

  r = parse_host_port("metrics.example:65535");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->host, "metrics.example");
  EXPECT_EQ(r->port, 65535);

  r = parse_host_port("0.0.0.0:1");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->port, 1);
}

TEST(ParseHostPort, StripsBracketsFromIpv6Hosts) {
  auto r = parse_host_port("[::1]:9550");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->host, "::1");
  EXPECT_EQ(r->port, 9550);

  r = parse_host_port("[2001:db8::1]:80");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->host, "2001:db8::1");
  EXPECT_EQ(r->port, 80);
}

TEST(ParseHostPort, RejectsMissingHostOrPort) {
  for (const char* s : {"127.0.0.1", ":9550", "127.0.0.1:", "localhost", "[::1]:"})
    expect_rejected(parse_host_port(s), s);
  expect_rejected(parse_host_port(""), "''");
}

TEST(ParseHostPort, RejectsBadPortNumbers) {
  for (const char* s : {"127.0.0.1:65536", "127.0.0.1:99999999999", "127.0.0.1:080", "127.0.0.1:-1",
                        "127.0.0.1:+80", "127.0.0.1:80x", "127.0.0.1:8 0", "127.0.0.1:http"})
    expect_rejected(parse_host_port(s), s);
}

// --- parse_static_neighbors ---------------------------------------------------------------

TEST(ParseStaticNeighbors, EmptyStringIsAnEmptyList) {
  auto r = parse_static_neighbors("");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->empty());
}

TEST(ParseStaticNeighbors, AcceptsOneAndManyPairsInOrder) {
  auto r = parse_static_neighbors("192.0.2.2=02:00:00:00:00:02");
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].ip, 0xc0000202u);
  EXPECT_EQ((*r)[0].mac[0], 0x02);
  EXPECT_EQ((*r)[0].mac[5], 0x02);

  r = parse_static_neighbors("192.0.2.2=02:00:00:00:00:02,10.77.0.9=02-aa-bb-cc-dd-ee");
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].ip, 0x0a4d0009u);
  const uint8_t want[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
  EXPECT_TRUE(std::equal(std::begin(want), std::end(want), (*r)[1].mac));
}

TEST(ParseStaticNeighbors, RejectsStrayCommas) {
  expect_rejected(parse_static_neighbors("192.0.2.2=02:00:00:00:00:02,"), "stray ','");
  expect_rejected(parse_static_neighbors(",192.0.2.2=02:00:00:00:00:02"), "''");
  expect_rejected(
      parse_static_neighbors("192.0.2.2=02:00:00:00:00:02,,10.77.0.9=02:00:00:00:00:09"), "''");
  expect_rejected(parse_static_neighbors(","), "''");
}

TEST(ParseStaticNeighbors, RejectsItemsThatAreNotIpEqualsMac) {
  for (const char* s : {"192.0.2.2", "02:00:00:00:00:02", "192.0.2.2:02:00:00:00:00:02"})
    expect_rejected(parse_static_neighbors(s), s);
  // The second item is the one named.
  expect_rejected(parse_static_neighbors("192.0.2.2=02:00:00:00:00:02,10.77.0.9"), "10.77.0.9");
}

TEST(ParseStaticNeighbors, RejectsBadAddressOrMacNamingIt) {
  expect_rejected(parse_static_neighbors("192.0.2.256=02:00:00:00:00:02"), "192.0.2.256");
  expect_rejected(parse_static_neighbors("=02:00:00:00:00:02"), "''");
  expect_rejected(parse_static_neighbors("192.0.2.2="), "''");
  expect_rejected(parse_static_neighbors("192.0.2.2=02:00:00:00:00"), "02:00:00:00:00");
  expect_rejected(parse_static_neighbors("192.0.2.2=ff:ff:ff:ff:ff:ff"), "ff:ff:ff:ff:ff:ff");
  expect_rejected(parse_static_neighbors("192.0.2.2=01:00:5e:00:00:01,10.77.0.9=02:00:00:00:00:09"),
                  "01:00:5e:00:00:01");
  expect_rejected(
      parse_static_neighbors("192.0.2.2=02:00:00:00:00:02,10.77.0.09=02:00:00:00:00:09"),
      "10.77.0.09");
}

TEST(ParseIpv6, AcceptsEveryTextFormAndFormatsCanonically) {
  for (const char* s :
       {"2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:0db8::0001", "::ffff:192.0.2.1"}) {
    auto a = parse_ipv6(s);
    ASSERT_TRUE(a) << s << ": " << a.error();
  }
  EXPECT_EQ(format_ipv6(parse_ipv6("2001:DB8:0:0:0:0:0:1")->data()), "2001:db8::1");
  EXPECT_EQ(format_ipv6(parse_ipv6("fe80::0:0:1")->data()), "fe80::1");
  const auto a = *parse_ipv6("2001:db8::1");
  EXPECT_EQ(a[0], 0x20);
  EXPECT_EQ(a[1], 0x01);
  EXPECT_EQ(a[15], 0x01);
}

TEST(ParseIpv6, RejectsGarbageZonesAndEmbeddedNulNamingIt) {
  for (std::string s :
       {std::string(""), std::string("2001:db8::1::2"), std::string("fe80::1%eth0"),
        std::string("2001:db8:::1"), std::string("12345::"), std::string("192.0.2.1"),
        std::string("2001:db8::1 "), std::string("2001:db8::1\0x", 14)}) {
    auto a = parse_ipv6(s);
    EXPECT_FALSE(a) << s;
    if (!a && !s.empty() && s.find('\0') == std::string::npos) {
      EXPECT_NE(a.error().find(s), std::string::npos);
    }
  }
}

TEST(ParseIpv6Prefix, AcceptsLengthUpTo128AndBareMeans128) {
  auto p = parse_ipv6_prefix("2001:db8:77::1/64");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->len, 64);
  EXPECT_EQ(format_ipv6(p->addr.data()), "2001:db8:77::1");
  EXPECT_EQ(parse_ipv6_prefix("2001:db8::1")->len, 128);
  EXPECT_FALSE(parse_ipv6_prefix("2001:db8::1/129"));
  EXPECT_FALSE(parse_ipv6_prefix("2001:db8::1/"));
  EXPECT_FALSE(parse_ipv6_prefix("2001:db8::1/+64"));
  EXPECT_FALSE(parse_ipv6_prefix("2001:db8::zz/64"));
}

}  // namespace
}  // namespace exitgw
