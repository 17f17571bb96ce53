// Name extractors: DNS query names, TLS ClientHello SNI and HTTP Host, on well-formed bytes and
// on every truncation and malformation the parsers must tell apart.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/domain/name_extract.h"

namespace exitgw::dp::domain {
namespace {

using Bytes = std::vector<uint8_t>;
using Extractor = NameStatus (*)(const uint8_t*, size_t, char*, size_t, size_t*);

struct Extracted {
  NameStatus status;
  std::string name;
};

// Runs an extractor on an exactly sized heap copy, so ASan sees any read past len.
Extracted run(Extractor f, const Bytes& b, size_t cap = kNameCapacity) {
  std::vector<uint8_t> exact(b);
  std::vector<char> out(cap + 1, '#');
  size_t n = 12345;
  const NameStatus s = f(exact.data(), exact.size(), out.data(), cap, &n);
  EXPECT_EQ(out[cap], '#') << "wrote past cap";
  if (s != NameStatus::kFound) {
    EXPECT_EQ(n, 0u);
    return {s, {}};
  }
  EXPECT_LE(n, cap);
  return {s, std::string(out.data(), n)};
}

Bytes prefix(const Bytes& b, size_t n) {
  return Bytes(b.begin(), b.begin() + long(n));
}
Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}
void put16(Bytes& b, size_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
void append(Bytes& b, const Bytes& more) {
  b.insert(b.end(), more.begin(), more.end());
}

// ---- DNS -------------------------------------------------------------------------------------

Bytes dns_header(uint16_t flags = 0x0100, uint16_t qdcount = 1) {
  Bytes b = {0xab, 0xcd};
  put16(b, flags);
  put16(b, qdcount);
  put16(b, 0);
  put16(b, 0);
  put16(b, 0);
  return b;
}

Bytes dns_query(const std::vector<std::string>& labels, uint16_t flags = 0x0100) {
  Bytes b = dns_header(flags);
  for (const auto& l : labels) {
    b.push_back(uint8_t(l.size()));
    append(b, text(l));
  }
  b.push_back(0);
  put16(b, 1);  // QTYPE A
  put16(b, 1);  // QCLASS IN
  return b;
}

TEST(DnsQueryName, FindsFirstQuestionLowercasedAndDotted) {
  const auto r = run(dns_query_name, dns_query({"WWW", "Example", "COM"}));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "www.example.com");
}

TEST(DnsQueryName, NameIsNulTerminatedWhenRoomRemains) {
  const Bytes q = dns_query({"a", "b"});
  char out[kNameCapacity];
  size_t n = 0;
  ASSERT_EQ(dns_query_name(q.data(), q.size(), out, sizeof out, &n), NameStatus::kFound);
  EXPECT_STREQ(out, "a.b");
}

TEST(DnsQueryName, EveryTruncationInsideTheNameIsIncompleteAndAfterItFound) {
  const Bytes q = dns_query({"mail", "example", "org"});
  const size_t name_end = 12 + 1 + 4 + 1 + 7 + 1 + 3 + 1;
  for (size_t n = 0; n <= q.size(); ++n) {
    const auto r = run(dns_query_name, prefix(q, n));
    if (n < name_end) {
      EXPECT_EQ(r.status, NameStatus::kIncomplete) << n;
    } else {
      EXPECT_EQ(r.status, NameStatus::kFound) << n;
      EXPECT_EQ(r.name, "mail.example.org");
    }
  }
}

TEST(DnsQueryName, ResponsesAndOtherOpcodesAreNotQueries) {
  EXPECT_EQ(run(dns_query_name, dns_query({"a", "com"}, 0x8180)).status,
            NameStatus::kNotThisProtocol);
  EXPECT_EQ(run(dns_query_name, dns_query({"a", "com"}, 0x2800)).status,  // UPDATE
            NameStatus::kNotThisProtocol);
  EXPECT_EQ(run(dns_query_name, dns_query({"a", "com"}, 0x2000)).status,  // NOTIFY
            NameStatus::kNotThisProtocol);
}

TEST(DnsQueryName, NoQuestionOrTheRootIsNoName) {
  EXPECT_EQ(run(dns_query_name, dns_header(0x0100, 0)).status, NameStatus::kNoName);
  EXPECT_EQ(run(dns_query_name, dns_query({})).status, NameStatus::kNoName);
}

TEST(DnsQueryName, CompressionPointerInFirstNameIsMalformed) {
  Bytes q = dns_header();
  append(q, {3, 'w', 'w', 'w', 0xc0, 0x0c});
  EXPECT_EQ(run(dns_query_name, q).status, NameStatus::kMalformed);
  Bytes only = dns_header();
  append(only, {0xc0, 0x0c});
  EXPECT_EQ(run(dns_query_name, only).status, NameStatus::kMalformed);
}

TEST(DnsQueryName, ExtendedLabelTypesAndLongLabelsAreMalformed) {
  for (uint8_t first : {uint8_t(0x40), uint8_t(0x80), uint8_t(64)}) {
    Bytes q = dns_header();
    q.push_back(first);
    q.resize(q.size() + 100, 'a');
    EXPECT_EQ(run(dns_query_name, q).status, NameStatus::kMalformed) << int(first);
  }
  const auto r = run(dns_query_name, dns_query({std::string(63, 'x'), "com"}));
  EXPECT_EQ(r.status, NameStatus::kFound);
}

TEST(DnsQueryName, NameOf255WireBytesIsTheLimit) {
  // 3 labels of 63 and one of 61: 4*1 + 250 + 1 = 255 wire bytes, 253 dotted.
  std::vector<std::string> labels = {std::string(63, 'a'), std::string(63, 'b'),
                                     std::string(63, 'c'), std::string(61, 'd')};
  auto r = run(dns_query_name, dns_query(labels));
  ASSERT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name.size(), kMaxNameLength);
  labels.back().push_back('d');
  EXPECT_EQ(run(dns_query_name, dns_query(labels)).status, NameStatus::kMalformed);
}

TEST(DnsQueryName, DotsAndControlBytesInLabelsAreMalformed) {
  EXPECT_EQ(run(dns_query_name, dns_query({"a.b", "com"})).status, NameStatus::kMalformed);
  EXPECT_EQ(run(dns_query_name, dns_query({std::string("a\nb"), "com"})).status,
            NameStatus::kMalformed);
  EXPECT_EQ(run(dns_query_name, dns_query({std::string("a b"), "com"})).status,
            NameStatus::kMalformed);
  EXPECT_EQ(run(dns_query_name, dns_query({std::string("\xc3\xa9t\xc3\xa9"), "fr"})).status,
            NameStatus::kMalformed);
}

TEST(DnsQueryName, UnderscoreAndDigitsAreNames) {
  const auto r = run(dns_query_name, dns_query({"_443", "_tcp", "Mx1", "net"}));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "_443._tcp.mx1.net");
}

TEST(DnsQueryName, NameLongerThanTheBufferIsMalformedNotTruncated) {
  const Bytes q = dns_query({"abcdef", "com"});
  EXPECT_EQ(run(dns_query_name, q, 10).status, NameStatus::kFound);  // exactly fits, no NUL
  EXPECT_EQ(run(dns_query_name, q, 9).status, NameStatus::kMalformed);
}

// ---- TLS -------------------------------------------------------------------------------------

Bytes from_hex(std::string_view hex) {
  Bytes b;
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    b.push_back(uint8_t(nibble(hex[i]) << 4 | nibble(hex[i + 1])));
  return b;
}

// RFC 8448 section 3 (Simple 1-RTT Handshake): the client's ClientHello handshake message,
// 196 bytes, SNI "server", sent in one record.
const Bytes kRfc8448ClientHello = from_hex(
    "010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef"
    "6283024dece7000006130113031302010000910000000b000900000673657276"
    "6572ff01000100000a00140012001d0017001800190100010101020103010400"
    "230000003300260024001d002099381de560e4bd43d23d8e435a7dbafeb3c06e"
    "51c13cae4d5413691e529aaf2c002b0003020304000d0020001e040305030603"
    "020308040805080604010501060102010402050206020202002d00020101001c"
    "00024001");

// Wraps handshake bytes in TLS records of at most `fragment` bytes each.
Bytes records(const Bytes& handshake, size_t fragment = 16384, uint8_t minor = 1) {
  Bytes b;
  for (size_t off = 0; off < handshake.size(); off += fragment) {
    const size_t n = std::min(fragment, handshake.size() - off);
    append(b, {22, 3, minor});
    put16(b, n);
    b.insert(b.end(), handshake.begin() + long(off), handshake.begin() + long(off + n));
  }
  return b;
}

struct Extension {
  uint16_t type;
  Bytes body;
};

Extension sni(std::string_view host) {
  Bytes body;
  put16(body, host.size() + 3);
  body.push_back(0);
  put16(body, host.size());
  append(body, text(host));
  return {0, body};
}

Extension padding(size_t n) {
  return {21, Bytes(n, 0)};
}

// A ClientHello handshake message built field by field.
Bytes client_hello(const std::vector<Extension>& extensions, size_t session_id = 32,
                   bool with_extensions = true) {
  Bytes body = {3, 3};
  for (int i = 0; i < 32; ++i) body.push_back(uint8_t(i));  // random
  body.push_back(uint8_t(session_id));
  for (size_t i = 0; i < session_id; ++i) body.push_back(0xe0);
  put16(body, 6);
  append(body, {0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f});
  append(body, {1, 0});  // compression: null
  if (with_extensions) {
    Bytes ext;
    for (const auto& e : extensions) {
      put16(ext, e.type);
      put16(ext, e.body.size());
      append(ext, e.body);
    }
    put16(body, ext.size());
    append(body, ext);
  }
  Bytes hs = {1, uint8_t(body.size() >> 16), uint8_t(body.size() >> 8), uint8_t(body.size())};
  append(hs, body);
  return hs;
}

TEST(TlsSni, Rfc8448ClientHelloNamesServer) {
  ASSERT_EQ(kRfc8448ClientHello.size(), 196u);
  const auto r = run(tls_client_hello_sni, records(kRfc8448ClientHello));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "server");
}

TEST(TlsSni, EveryTruncationBeforeTheNameEndsIsIncomplete) {
  const Bytes rec = records(kRfc8448ClientHello);
  // Record header 5, handshake header 4, version+random 34, session id 1, suites 2+6,
  // compression 2, extensions length 2, SNI extension header 4, list 2, type 1, length 2,
  // then "server".
  const size_t name_end = 5 + 4 + 34 + 1 + 8 + 2 + 2 + 4 + 2 + 1 + 2 + 6;
  for (size_t n = 0; n < rec.size(); ++n) {
    const auto r = run(tls_client_hello_sni, prefix(rec, n));
    if (n < name_end) {
      EXPECT_EQ(r.status, NameStatus::kIncomplete) << n;
    } else {
      EXPECT_EQ(r.status, NameStatus::kFound) << n;
      EXPECT_EQ(r.name, "server");
    }
  }
}

TEST(TlsSni, FindsNameAfterOtherExtensionsAndNormalisesIt) {
  const Bytes hs = client_hello({padding(40), {10, {0, 2, 0, 0x1d}}, sni("WWW.Example.Org.")});
  const auto r = run(tls_client_hello_sni, records(hs, 16384, 3));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "www.example.org");
}

TEST(TlsSni, FollowsTheHandshakeAcrossRecordsSplitAnywhere) {
  const Bytes hs = client_hello({padding(17), sni("split.example.net")});
  for (size_t fragment : {1, 2, 3, 7, 50, 64, 100}) {
    const Bytes rec = records(hs, fragment);
    const auto r = run(tls_client_hello_sni, rec);
    if (hs.size() / fragment + 1 > 16) {
      // More records than the extractor follows: it reports it needs more, never a wrong name.
      EXPECT_EQ(r.status, NameStatus::kIncomplete) << fragment;
    } else {
      EXPECT_EQ(r.status, NameStatus::kFound) << fragment;
      EXPECT_EQ(r.name, "split.example.net") << fragment;
    }
  }
}

TEST(TlsSni, ClientHelloLongerThanTheSegmentIsIncompleteUnlessTheNameCameFirst) {
  // Like a post-quantum key share: the record claims more bytes than this segment carries.
  const Bytes late = records(client_hello({padding(1500), sni("late.example")}));
  EXPECT_EQ(run(tls_client_hello_sni, prefix(late, 1200)).status, NameStatus::kIncomplete);
  const Bytes early = records(client_hello({sni("early.example"), padding(1500)}));
  const auto r = run(tls_client_hello_sni, prefix(early, 1200));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "early.example");
}

TEST(TlsSni, HelloWithoutServerNameIsNoName) {
  EXPECT_EQ(run(tls_client_hello_sni, records(client_hello({padding(8)}))).status,
            NameStatus::kNoName);
  EXPECT_EQ(run(tls_client_hello_sni, records(client_hello({}, 0, false))).status,
            NameStatus::kNoName);
  // A server_name list holding only a non-host_name entry.
  EXPECT_EQ(run(tls_client_hello_sni, records(client_hello({{0, {0, 4, 7, 0, 1, 'x'}}}))).status,
            NameStatus::kNoName);
}

TEST(TlsSni, OtherBytesAreNotThisProtocol) {
  EXPECT_EQ(run(tls_client_hello_sni, text("GET / HTTP/1.1\r\n")).status,
            NameStatus::kNotThisProtocol);
  EXPECT_EQ(run(tls_client_hello_sni, {23, 3, 3, 0, 5, 1, 2, 3, 4, 5}).status,
            NameStatus::kNotThisProtocol);  // application data
  EXPECT_EQ(run(tls_client_hello_sni, {22, 2, 0, 0, 5, 1, 0, 0, 1, 0}).status,
            NameStatus::kNotThisProtocol);  // SSL 2 version
  Bytes server_hello = records(kRfc8448ClientHello);
  server_hello[5] = 2;
  EXPECT_EQ(run(tls_client_hello_sni, server_hello).status, NameStatus::kNotThisProtocol);
  EXPECT_EQ(run(tls_client_hello_sni, {22, 4}).status, NameStatus::kNotThisProtocol);
}

TEST(TlsSni, ShortPlausiblePrefixIsIncomplete) {
  EXPECT_EQ(run(tls_client_hello_sni, {}).status, NameStatus::kIncomplete);
  EXPECT_EQ(run(tls_client_hello_sni, {22}).status, NameStatus::kIncomplete);
  EXPECT_EQ(run(tls_client_hello_sni, {22, 3, 1, 0}).status, NameStatus::kIncomplete);
}

// Applies `edit` to a fresh ClientHello with SNI (offsets are into the handshake message).
NameStatus edited(void (*edit)(Bytes&)) {
  Bytes hs = client_hello({padding(4), sni("x.example")}, 0);
  edit(hs);
  return run(tls_client_hello_sni, records(hs)).status;
}

TEST(TlsSni, BrokenLengthsAreMalformed) {
  // Offsets: 0 type, 1-3 length, 4-5 version, 6-37 random, 38 session id length (0),
  // 39-40 suites length (6), 41-46 suites, 47 compressions (1), 48 null, 49-50 extensions
  // length, 51.. padding ext (type 2, len 2, 4 bytes), 59.. SNI ext.
  EXPECT_EQ(edited([](Bytes& h) { h[38] = 33; }), NameStatus::kMalformed);    // session id > 32
  EXPECT_EQ(edited([](Bytes& h) { h[40] = 5; }), NameStatus::kMalformed);     // odd suites
  EXPECT_EQ(edited([](Bytes& h) { h[40] = 0; }), NameStatus::kMalformed);     // no suites
  EXPECT_EQ(edited([](Bytes& h) { h[47] = 0; }), NameStatus::kMalformed);     // no compression
  EXPECT_EQ(edited([](Bytes& h) { h[50] ^= 1; }), NameStatus::kMalformed);    // extensions length
  EXPECT_EQ(edited([](Bytes& h) { h[54] = 200; }), NameStatus::kMalformed);   // ext past end
  EXPECT_EQ(edited([](Bytes& h) { h[64] ^= 1; }), NameStatus::kMalformed);    // SNI list length
  EXPECT_EQ(edited([](Bytes& h) { h[67] = 60; }), NameStatus::kMalformed);    // name past list
  EXPECT_EQ(edited([](Bytes& h) { h[68] = '.'; }), NameStatus::kMalformed);   // empty label
  EXPECT_EQ(edited([](Bytes& h) { h[69] = 0x07; }), NameStatus::kMalformed);  // control byte
  EXPECT_EQ(edited([](Bytes& h) { h[3] -= 1; }), NameStatus::kMalformed);     // handshake length
  EXPECT_EQ(edited([](Bytes&) {}), NameStatus::kFound);
}

TEST(TlsSni, EmptyOrOversizedHostNameIsMalformed) {
  EXPECT_EQ(run(tls_client_hello_sni, records(client_hello({sni("")}))).status,
            NameStatus::kMalformed);
  EXPECT_EQ(run(tls_client_hello_sni, records(client_hello({sni(std::string(300, 'a'))}))).status,
            NameStatus::kMalformed);
}

TEST(TlsSni, RecordLengthsOutOfRangeAreMalformed) {
  EXPECT_EQ(run(tls_client_hello_sni, {22, 3, 1, 0, 0, 1}).status, NameStatus::kMalformed);
  EXPECT_EQ(run(tls_client_hello_sni, {22, 3, 1, 0x40, 0x01, 1}).status, NameStatus::kMalformed);
}

TEST(TlsSni, HandshakeCutShortByAnotherRecordTypeIsMalformed) {
  const Bytes hs = client_hello({padding(100), sni("cut.example")});
  Bytes b = records(prefix(hs, 60));
  append(b, {21, 3, 3, 0, 2, 2, 40});  // an alert where the handshake should continue
  EXPECT_EQ(run(tls_client_hello_sni, b).status, NameStatus::kMalformed);
}

// ---- HTTP ------------------------------------------------------------------------------------

TEST(HttpHost, FindsHostHeaderCaseInsensitivelyAndStripsPort) {
  const auto r = run(http_host, text("GET /index.html HTTP/1.1\r\nUser-Agent: t\r\n"
                                     "hOsT:  WWW.Example.COM:8080 \t\r\nAccept: */*\r\n\r\n"));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "www.example.com");
}

TEST(HttpHost, TrailingDotAndBareLineFeedsAreAccepted) {
  const auto r = run(http_host, text("POST /x HTTP/1.0\nHost: api.example.com.\n\n"));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "api.example.com");
}

TEST(HttpHost, AbsoluteFormTargetOverridesHost) {
  const auto r = run(http_host, text("GET HTTP://user:pw@Real.Example:81/p?q HTTP/1.1\r\n"
                                     "Host: decoy.example\r\n\r\n"));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "real.example");
}

TEST(HttpHost, ConnectTargetIsTheName) {
  const auto r = run(http_host, text("CONNECT tunnel.example:443 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "tunnel.example");
}

TEST(HttpHost, Ipv6LiteralKeepsItsBrackets) {
  const auto r = run(http_host, text("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n"));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "[2001:db8::1]");
  EXPECT_EQ(run(http_host, text("GET / HTTP/1.1\r\nHost: [2001:db8::1\r\n\r\n")).status,
            NameStatus::kMalformed);
}

TEST(HttpHost, FirstHostHeaderWinsAndLookalikeHeadersDoNot) {
  const auto r = run(http_host, text("GET / HTTP/1.1\r\nX-Host: no.example\r\nHostname: no\r\n"
                                     " Host: folded.example\r\nHost: a.example\r\n"
                                     "Host: b.example\r\n\r\n"));
  EXPECT_EQ(r.status, NameStatus::kFound);
  EXPECT_EQ(r.name, "a.example");
}

TEST(HttpHost, EveryTruncationBeforeTheHostLineEndsIsIncomplete) {
  const std::string req = "GET /a HTTP/1.1\r\nAccept: */*\r\nHost: t.example\r\nX: y\r\n\r\n";
  const size_t host_line_end = req.find("t.example\r\n") + std::string_view("t.example\r\n").size();
  for (size_t n = 0; n <= req.size(); ++n) {
    const auto r = run(http_host, text(req.substr(0, n)));
    if (n < host_line_end) {
      EXPECT_EQ(r.status, NameStatus::kIncomplete) << n;
    } else {
      EXPECT_EQ(r.status, NameStatus::kFound) << n;
      EXPECT_EQ(r.name, "t.example");
    }
  }
}

TEST(HttpHost, HeadersEndingWithoutHostAreNoName) {
  EXPECT_EQ(run(http_host, text("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n")).status,
            NameStatus::kNoName);
  EXPECT_EQ(run(http_host, text("GET / HTTP/1.1\r\nHost: \r\n\r\n")).status, NameStatus::kNoName);
}

TEST(HttpHost, OtherBytesAreNotThisProtocol) {
  for (std::string_view s :
       {"get / HTTP/1.1\r\n", "GET / HTTP/1.1 \r\n", "GET /\r\n", "GET  / HTTP/1.1\r\n",
        "GET / FTP/1.1\r\n", "GET / HTTP/x.1\r\n", "SSH-2.0-OpenSSH_9.2\r\n",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n", "\x16\x03\x01\x00\x10"}) {
    EXPECT_EQ(run(http_host, text(s)).status, NameStatus::kNotThisProtocol) << s;
  }
}

TEST(HttpHost, BadHostValuesAreMalformed) {
  for (std::string_view host : {std::string_view("exa mple.com"), std::string_view("a..b"),
                                std::string_view(".a"), std::string_view("a\x01", 2)}) {
    const std::string req = "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n";
    EXPECT_EQ(run(http_host, text(req)).status, NameStatus::kMalformed) << host;
  }
  const std::string long_host = "GET / HTTP/1.1\r\nHost: " + std::string(254, 'a') + "\r\n\r\n";
  EXPECT_EQ(run(http_host, text(long_host)).status, NameStatus::kMalformed);
}

}  // namespace
}  // namespace exitgw::dp::domain
