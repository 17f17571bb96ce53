// Collector URLs: what parses, and that every mistake is named in the error.
#include <gtest/gtest.h>

#include "control/export/collector_url.h"

namespace exitgw::exporter {
namespace {

TEST(ExportUrl, ParsesUdpTcpNamesAndBracketedIpv6) {
  auto u = parse_collector_url("udp://127.0.0.1:4739");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->transport, Transport::kUdp);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 4739);
  auto t = parse_collector_url("tcp://collector.example:9995");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->transport, Transport::kTcp);
  EXPECT_EQ(t->host, "collector.example");
  auto v6 = parse_collector_url("udp://[2001:db8::1]:4739");
  ASSERT_TRUE(v6.ok()) << v6.error();
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(to_string(*v6), "udp://[2001:db8::1]:4739");
}

TEST(ExportUrl, EachMistakeGetsItsOwnError) {
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1:4739", "no scheme"},
      {"sctp://127.0.0.1:4739", "unsupported scheme \"sctp\""},
      {"udp://127.0.0.1", "missing port"},
      {"udp://127.0.0.1:", "missing port"},
      {"udp://:4739", "empty host"},
      {"udp://127.0.0.1:http", "not a number"},
      {"udp://127.0.0.1:0", "out of range"},
      {"udp://127.0.0.1:65536", "out of range"},
      {"udp://127.0.0.1:4739/path", "path"},
      {"udp://2001:db8::1:4739", "brackets"},
      {"udp://[2001:db8::1]", "missing port"},
      {"udp://[2001:db8::1:4739", "unclosed"},
  };
  for (const auto& [url, want] : cases) {
    auto r = parse_collector_url(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_NE(r.error().find(want), std::string::npos) << url << ": " << r.error();
    EXPECT_NE(r.error().find(url), std::string::npos) << "error names the URL: " << r.error();
  }
}

}  // namespace
}  // namespace exitgw::exporter
