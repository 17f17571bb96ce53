// classify_burst on mixed inner IPv4 and IPv6 traffic: only UDP/53, TCP/443 and TCP/80 payloads are
// inspected, each gets its verdict, rule, protocol and name; everything else passes untouched.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/domain/domain_burst.h"
#include "tests/support/inner_packets.h"

namespace exitgw::dp::domain {
namespace {

using testing::Bytes;
using testing::client_hello;
using testing::ipv4;
using testing::tcp;
using testing::udp;

Bytes dns_query(const std::string& dotted) {
  return testing::dns_query(dotted, 28);
}
Bytes http(const std::string& host) {
  return testing::http_request(host);
}

struct Burst {
  std::vector<Bytes> packets;
  std::vector<DomainResult> results;
  std::vector<DomainName> names;

  void run(const DomainDatabase& db, DomainScratch& scratch, bool with_names = true) {
    std::vector<const uint8_t*> ptrs;
    std::vector<uint32_t> lens;
    for (auto& p : packets) {
      ptrs.push_back(p.data());
      lens.push_back(uint32_t(p.size()));
    }
    results.assign(packets.size(), DomainResult{Action::kLog, Protocol::kHttp});  // garbage
    names.assign(packets.size(), DomainName{});
    classify_burst(db, scratch, ptrs.data(), lens.data(), uint16_t(packets.size()), results.data(),
                   with_names ? names.data() : nullptr);
  }
};

class DomainBurstTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto list = parse_domain_list(
        "block suffix blocked.example\n"  // 0
        "log exact logged.example\n"      // 1
        "log regex ^ads[0-9]*\\.\n",      // 2
        "t");
    ASSERT_TRUE(list.ok()) << list.error();
    auto compiled = compile(*list);
    ASSERT_TRUE(compiled.ok()) << compiled.error();
    db_ = std::make_unique<DomainDatabase>(std::move(compiled).value());
    auto s = DomainScratch::create(*db_);
    ASSERT_TRUE(s.ok());
    scratch_ = std::make_unique<DomainScratch>(std::move(s).value());
  }
  std::unique_ptr<DomainDatabase> db_;
  std::unique_ptr<DomainScratch> scratch_;
};

TEST_F(DomainBurstTest, MixedBurstGetsVerdictsProtocolsAndNames) {
  Burst b;
  b.packets = {
      udp(53, dns_query("WWW.Blocked.Example")),  // 0 block via DNS
      tcp(443, client_hello("logged.example")),   // 1 log via SNI
      tcp(80, http("ads3.cdn.example:8080")),     // 2 log via Host (regex)
      tcp(443, client_hello("fine.example")),     // 3 no match
      tcp(22, http("blocked.example")),           // 4 other port: not inspected
      udp(54, dns_query("blocked.example")),      // 5 other port
      tcp(80, http("blocked.example"), 8),        // 6 TCP options before the payload
      tcp(443, {}),                               // 7 no payload (SYN-like)
      tcp(443, {23, 3, 3, 0, 2, 0, 0}),           // 8 application data
      udp(53, {0x12}),                            // 9 DNS cut short
  };
  b.run(*db_, *scratch_);
  const auto& r = b.results;
  EXPECT_EQ(r[0].protocol, Protocol::kDns);
  EXPECT_EQ(r[0].status, NameStatus::kFound);
  EXPECT_EQ(r[0].action, Action::kBlock);
  EXPECT_EQ(r[0].rule, 0u);
  EXPECT_STREQ(b.names[0].text, "www.blocked.example");
  EXPECT_EQ(r[0].name_length, 19u);

  EXPECT_EQ(r[1].protocol, Protocol::kTls);
  EXPECT_EQ(r[1].action, Action::kLog);
  EXPECT_EQ(r[1].rule, 1u);
  EXPECT_STREQ(b.names[1].text, "logged.example");

  EXPECT_EQ(r[2].protocol, Protocol::kHttp);
  EXPECT_EQ(r[2].action, Action::kLog);
  EXPECT_EQ(r[2].rule, 2u);
  EXPECT_STREQ(b.names[2].text, "ads3.cdn.example");

  EXPECT_EQ(r[3].protocol, Protocol::kTls);
  EXPECT_EQ(r[3].status, NameStatus::kFound);
  EXPECT_EQ(r[3].action, Action::kNone);
  EXPECT_EQ(r[3].rule, kNoRule);
  EXPECT_STREQ(b.names[3].text, "fine.example");

  for (int i : {4, 5, 7}) {
    EXPECT_EQ(r[i].protocol, Protocol::kNone) << i;
    EXPECT_EQ(r[i].action, Action::kNone) << i;
    EXPECT_EQ(r[i].rule, kNoRule) << i;
  }
  EXPECT_EQ(r[6].action, Action::kBlock);
  EXPECT_EQ(r[8].protocol, Protocol::kTls);
  EXPECT_EQ(r[8].status, NameStatus::kNotThisProtocol);
  EXPECT_EQ(r[9].protocol, Protocol::kDns);
  EXPECT_EQ(r[9].status, NameStatus::kIncomplete);
  EXPECT_EQ(r[9].action, Action::kNone);
}

TEST_F(DomainBurstTest, FragmentsAndBrokenHeadersAreNotInspected) {
  Burst b;
  Bytes later_fragment = udp(53, dns_query("blocked.example"));
  later_fragment[6] = 0x00;
  later_fragment[7] = 0x10;  // offset 128 bytes
  Bytes first_fragment = udp(53, dns_query("blocked.example"));
  first_fragment[6] = 0x20;  // MF, offset 0: the header is here, inspect it
  Bytes ipv6ish = udp(53, dns_query("blocked.example"));
  ipv6ish[0] = 0x65;
  Bytes short_ihl = udp(53, dns_query("blocked.example"));
  short_ihl[0] = 0x44;
  Bytes cut = tcp(80, http("blocked.example"));
  cut.resize(30);  // TCP header cut short
  Bytes bad_doff = tcp(80, http("blocked.example"));
  bad_doff[32] = 0x40;  // data offset 4 words
  Bytes short_udp_len = udp(53, dns_query("blocked.example"));
  short_udp_len[24] = 0;
  short_udp_len[25] = 4;
  b.packets = {later_fragment, first_fragment, ipv6ish,        short_ihl, cut,
               bad_doff,       short_udp_len,  Bytes(10, 0x45)};
  b.run(*db_, *scratch_);
  EXPECT_EQ(b.results[0].protocol, Protocol::kNone);
  EXPECT_EQ(b.results[1].action, Action::kBlock);
  for (size_t i = 2; i < b.packets.size(); ++i)
    EXPECT_EQ(b.results[i].protocol, Protocol::kNone) << i;
}

TEST_F(DomainBurstTest, TruncatedBufferIsInspectedForWhatItHolds) {
  Burst b;
  Bytes p = tcp(443, client_hello("blocked.example"));
  b.packets = {p};
  b.run(*db_, *scratch_);
  EXPECT_EQ(b.results[0].action, Action::kBlock);
  // The IP total length claims more than the buffer: only the buffer is read.
  b.packets[0].resize(p.size() - 4);
  b.run(*db_, *scratch_);
  EXPECT_EQ(b.results[0].status, NameStatus::kIncomplete);
}

TEST_F(DomainBurstTest, LargeBurstsWithoutNameBuffersKeepEveryVerdict) {
  Burst b;
  for (int i = 0; i < 200; ++i) {
    if (i % 3 == 0)
      b.packets.push_back(udp(53, dns_query("x" + std::to_string(i) + ".blocked.example")));
    else if (i % 3 == 1)
      b.packets.push_back(tcp(8443, client_hello("blocked.example")));
    else
      b.packets.push_back(tcp(80, http("logged.example")));
  }
  b.run(*db_, *scratch_, false);
  for (int i = 0; i < 200; ++i) {
    const Action want = i % 3 == 0 ? Action::kBlock : i % 3 == 1 ? Action::kNone : Action::kLog;
    EXPECT_EQ(b.results[i].action, want) << i;
  }
  EXPECT_EQ(b.results[0].name_length, std::string("x0.blocked.example").size());
}

// The same names inside IPv6: found behind extension headers, in a first fragment, never in a
// later one, and not in a header chain that does not parse.
TEST_F(DomainBurstTest, Ipv6PacketsAreInspectedThroughTheirExtensionHeaders) {
  using testing::ipv6;
  using testing::ipv6_dest_options;
  using testing::ipv6_fragment;
  using testing::tcp_l4;
  using testing::udp_l4;
  auto cat = [](Bytes a, const Bytes& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  const Bytes dns = udp_l4(53, testing::dns_query("ads7.example", 28));
  Burst b;
  b.packets = {
      ipv6(17, dns),                                          // 0 log (regex)
      ipv6(6, tcp_l4(443, client_hello("blocked.example"))),  // 1 block
      ipv6(6, tcp_l4(80, http("logged.example"))),            // 2 log
      ipv6(60, cat(ipv6_dest_options(6), tcp_l4(443, client_hello("blocked.example")))),  // 3
      ipv6(44, cat(ipv6_fragment(17, 0x0001), dns)),           // 4 first fragment (M): inspected
      ipv6(44, cat(ipv6_fragment(17, 0x0100), dns)),           // 5 later fragment: not
      ipv6(6, tcp_l4(8443, client_hello("blocked.example"))),  // 6 another port: not
      ipv6(0, cat(Bytes{6, 9}, tcp_l4(443, client_hello("blocked.example")))),  // 7 bad chain
      ipv6(58, Bytes(8, 0)),                                                    // 8 ICMPv6
  };
  b.run(*db_, *scratch_);
  EXPECT_EQ(b.results[0].action, Action::kLog);
  EXPECT_EQ(b.results[0].rule, 2u);
  EXPECT_STREQ(b.names[0].text, "ads7.example");
  EXPECT_EQ(b.results[1].action, Action::kBlock);
  EXPECT_EQ(b.results[1].protocol, Protocol::kTls);
  EXPECT_EQ(b.results[2].action, Action::kLog);
  EXPECT_EQ(b.results[2].protocol, Protocol::kHttp);
  EXPECT_EQ(b.results[3].action, Action::kBlock);
  EXPECT_EQ(b.results[4].action, Action::kLog);
  for (size_t i : {5u, 6u, 7u, 8u}) EXPECT_EQ(b.results[i].protocol, Protocol::kNone) << i;
  // Cut short, an IPv6 packet is inspected for what it holds, as an IPv4 one is.
  b.packets = {b.packets[1]};
  b.packets[0].resize(b.packets[0].size() - 4);
  b.run(*db_, *scratch_);
  EXPECT_EQ(b.results[0].status, NameStatus::kIncomplete);
}

TEST(DomainBurst, PrefilterPicksPayloadByProtocolAndPort) {
  const Bytes dns = udp(53, dns_query("a.b"));
  const Candidate c = prefilter(dns.data(), uint32_t(dns.size()));
  EXPECT_EQ(c.protocol, Protocol::kDns);
  EXPECT_EQ(c.payload, dns.data() + 28);
  EXPECT_EQ(c.payload_length, dns.size() - 28);
  const Bytes other = tcp(8080, http("a.b"));
  EXPECT_EQ(prefilter(other.data(), uint32_t(other.size())).protocol, Protocol::kNone);
  Bytes icmp = ipv4(1, Bytes(8, 0));
  EXPECT_EQ(prefilter(icmp.data(), uint32_t(icmp.size())).protocol, Protocol::kNone);
}

}  // namespace
}  // namespace exitgw::dp::domain
