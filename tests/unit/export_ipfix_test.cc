// The IPFIX encoder: exact bytes, sequence numbers, MTU splitting, template refresh, templates
// with and without the destination, and a decode of every record kind; IPv6 flow templates
// and records, and IPv6 addresses in RFC 5952 text (JSON lines).
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <algorithm>
#include <random>
#include <tuple>

#include "control/export/ipfix.h"
#include "control/export/ipfix_decode.h"
#include "control/export/json_lines.h"
#include "control/export/nat_event.h"

namespace exitgw::exporter {
namespace {

NatRecord block_record() {
  NatRecord n;
  n.time_ms = 0x0000018BD0A1B2C3;
  n.subscriber = 0x6440000B;      // 100.64.0.11
  n.public_address = 0xCB007105;  // 203.0.113.5
  n.port_first = 1024;
  n.port_last = 1535;
  n.kind = NatEventKind::kBlockAllocated;
  return n;
}

FlowRecord flow_record(uint16_t src_port) {
  FlowRecord f;
  f.start_ms = 1700000000000;
  f.end_ms = 1700000005000;
  f.src_address = 0x6440000B;
  f.dst_address = 0xC633640A;  // 198.51.100.10
  f.src_port = src_port;
  f.dst_port = 80;
  f.post_nat_address = 0xCB007105;
  f.post_nat_port = 1030;
  f.protocol = 6;
  f.tcp_flags = 0x1b;
  f.tx_packets = 10;
  f.tx_bytes = 1000;
  f.rx_packets = 8;
  f.rx_bytes = 9000;
  f.peer_id = 7;
  return f;
}

// The IPv6 template set: two flow templates of 15 and 13 fields (three of each under an
// enterprise number: 8 bytes instead of 4), the NAT66 event templates of 6, 4 and 5 fields.
constexpr size_t kIpv6SetBytes =
    4 + (4 + 15 * 4 + 3 * 4) + (4 + 13 * 4 + 3 * 4) + (4 + 6 * 4) + (4 + 4 * 4) + (4 + 5 * 4);

Ipv6Address v6(const char* text) {
  Ipv6Address a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

FlowRecord flow_record6(uint16_t src_port) {
  FlowRecord f = flow_record(src_port);
  f.family = IpFamily::kIpv6;
  f.src_address = f.dst_address = f.post_nat_address = 0;
  f.src_address6 = v6("fd7a:115c:a1e0::11");
  f.dst_address6 = v6("2001:db8:5::10");
  f.post_nat_address6 = v6("2001:db8:64:0:1234::11");
  f.dst_port = 443;
  return f;
}

TEST(ExportIpfix, NatEventCodesAreTheIanaRegistryValues) {
  EXPECT_EQ(nat_event_code(NatEventKind::kBlockAllocated), NatEventCode{16});
  EXPECT_EQ(nat_event_code(NatEventKind::kBlockReleased), NatEventCode{17});
  EXPECT_EQ(nat_event_code(NatEventKind::kPoolExhausted), NatEventCode{12});
  EXPECT_EQ(nat_event_code(NatEventKind::kPortLimit), NatEventCode{13});
  EXPECT_EQ(nat_event_code(NatEventKind::kSessionLimit), NatEventCode{13});
}

TEST(ExportIpfix, FirstMessageIsByteExactHeaderTemplatesAndDataSet) {
  IpfixEncoder enc(EncoderOptions{.observation_domain = 0x01020304});
  const EncodedRecord r = encode_nat(block_record());
  const std::vector<Message> msgs = enc.encode(std::span(&r, 1), 0x65000000);
  ASSERT_EQ(msgs.size(), 1u);
  const std::vector<uint8_t>& b = msgs[0].bytes;
  const std::vector<uint8_t> templates = template_set(ie::kDocumentationPen);
  // Header: version 10, length, export time, sequence 0, observation domain.
  const uint16_t len = uint16_t(16 + templates.size() + 4 + 21);
  const std::vector<uint8_t> header = {
      0x00, 0x0a, uint8_t(len >> 8), uint8_t(len), 0x65, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
  ASSERT_EQ(b.size(), len);
  EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.begin() + 16), header);
  // Two template sets, IPv4's then IPv6's.
  const size_t ipv6_set = kIpv6SetBytes;
  const size_t ipv4_set = templates.size() - ipv6_set;
  // The template set opens with set id 2 and template 256 of six fields.
  const std::vector<uint8_t> t256 = {0x00,
                                     0x02,
                                     uint8_t(ipv4_set >> 8),
                                     uint8_t(ipv4_set),
                                     0x01,
                                     0x00,
                                     0x00,
                                     0x06,  // template 256, 6 fields
                                     0x01,
                                     0x43,
                                     0x00,
                                     0x08,  // observationTimeMilliseconds
                                     0x00,
                                     0xe6,
                                     0x00,
                                     0x01,  // natEvent
                                     0x00,
                                     0x08,
                                     0x00,
                                     0x04,  // sourceIPv4Address
                                     0x00,
                                     0xe1,
                                     0x00,
                                     0x04,  // postNATSourceIPv4Address
                                     0x01,
                                     0x69,
                                     0x00,
                                     0x02,  // portRangeStart
                                     0x01,
                                     0x6a,
                                     0x00,
                                     0x02};  // portRangeEnd
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 16, b.begin() + 16 + t256.size()), t256);
  const std::vector<uint8_t> v6_set_header = {0x00, 0x02, uint8_t(ipv6_set >> 8),
                                              uint8_t(ipv6_set)};
  EXPECT_EQ(std::vector<uint8_t>(b.begin() + 16 + ptrdiff_t(ipv4_set),
                                 b.begin() + 16 + ptrdiff_t(ipv4_set) + 4),
            v6_set_header);
  const std::vector<uint8_t> data = {0x01, 0x00, 0x00, 25,  // set 256, length 25
                                     0x00, 0x00, 0x01, 0x8b, 0xd0, 0xa1, 0xb2, 0xc3,  // time
                                     16,                                              // natEvent
                                     100,  64,   0,    11,   203,  0,    113,  5,
                                     0x04, 0x00, 0x05, 0xff};  // ports 1024-1535
  EXPECT_EQ(std::vector<uint8_t>(b.end() - ptrdiff_t(data.size()), b.end()), data);
}

TEST(ExportIpfix, FlowTemplateCarriesReverseCountersAndPeerUnderOurPen) {
  const std::vector<uint8_t> t = template_set(0x11223344);
  // flow template 259: the reverse counters under PEN 29305, the peer id under ours.
  const std::vector<uint8_t> reverse_packets = {0x80, 0x02, 0x00, 0x08, 0x00, 0x00, 0x72, 0x79};
  const std::vector<uint8_t> peer = {0x80, 0x01, 0x00, 0x04, 0x11, 0x22, 0x33, 0x44};
  EXPECT_NE(std::search(t.begin(), t.end(), reverse_packets.begin(), reverse_packets.end()),
            t.end());
  EXPECT_NE(std::search(t.begin(), t.end(), peer.begin(), peer.end()), t.end());
  EXPECT_EQ(template_record_length(kTemplateFlow), 73u);
  EXPECT_EQ(template_record_length(kTemplateFlowNoDestination), 67u);
  EXPECT_EQ(encode_flow(flow_record(1), true).length, 73u);
  EXPECT_EQ(encode_flow(flow_record(1), false).length, 67u);
}

TEST(ExportIpfix, SequenceNumberCountsDataRecordsSentBeforeEachMessage) {
  IpfixEncoder enc(EncoderOptions{.max_message_bytes = 512});
  std::vector<EncodedRecord> recs;
  for (int i = 0; i < 50; ++i) recs.push_back(encode_flow(flow_record(uint16_t(i)), true));
  uint32_t expected = 0;
  IpfixDecoder dec;
  for (int round = 0; round < 3; ++round) {
    for (const Message& m : enc.encode(recs, 1000)) {
      auto d = dec.decode(m.bytes);
      ASSERT_TRUE(d.ok()) << d.error();
      EXPECT_EQ(d->sequence, expected);
      expected += uint32_t(d->records.size());
    }
  }
  EXPECT_EQ(enc.sequence(), 150u);
  // A template-only probe neither carries records nor moves the sequence.
  EXPECT_EQ(dec.decode(enc.templates_only(1000).bytes)->sequence, 150u);
  EXPECT_EQ(enc.sequence(), 150u);
}

TEST(ExportIpfix, MessagesStayWithinTheMtuAndKeepEveryRecordInOrder) {
  // The smallest size the exporter accepts: every template and the longest record.
  EXPECT_EQ(min_message_bytes(ie::kDocumentationPen),
            16 + template_set(ie::kDocumentationPen).size() + 4 + EncodedRecord::kMaxBytes);
  EXPECT_LT(min_message_bytes(ie::kDocumentationPen), 600u);
  for (size_t mtu : {600u, 1400u, 9000u}) {
    IpfixEncoder enc(EncoderOptions{.max_message_bytes = mtu});
    std::vector<EncodedRecord> recs;
    for (int i = 0; i < 1000; ++i) {
      if (i % 3 == 0) {
        NatRecord n = block_record();
        n.port_first = uint16_t(i);
        recs.push_back(encode_nat(n));
      } else {
        recs.push_back(encode_flow(flow_record(uint16_t(i)), i % 2));
      }
    }
    IpfixDecoder dec;
    std::vector<uint64_t> keys;
    size_t next = 0;
    for (const Message& m : enc.encode(recs, 1)) {
      EXPECT_LE(m.bytes.size(), mtu);
      EXPECT_EQ(m.first_record, next);
      next += m.record_count;
      auto d = dec.decode(m.bytes);
      ASSERT_TRUE(d.ok()) << d.error();
      EXPECT_EQ(d->length, m.bytes.size());
      for (const DecodedRecord& r : d->records)
        keys.push_back(r.template_id == kTemplateNatBlock ? r.uint_of(ie::kPortRangeStart)
                                                          : r.uint_of(ie::kSourceTransportPort));
    }
    ASSERT_EQ(keys.size(), 1000u) << "mtu " << mtu;
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(keys[i], i);
  }
}

TEST(ExportIpfix, UdpResendsTemplatesEveryNMessagesAndEveryNSeconds) {
  IpfixEncoder enc(EncoderOptions{.template_refresh_seconds = 30, .template_refresh_messages = 3});
  const EncodedRecord r = encode_nat(block_record());
  std::vector<bool> with;
  for (uint32_t t = 100; t < 107; ++t)
    with.push_back(enc.encode(std::span(&r, 1), t)[0].has_templates);
  EXPECT_EQ(with, (std::vector<bool>{true, false, false, true, false, false, true}));
  IpfixEncoder timed(
      EncoderOptions{.template_refresh_seconds = 30, .template_refresh_messages = 0});
  EXPECT_TRUE(timed.encode(std::span(&r, 1), 100)[0].has_templates);
  EXPECT_FALSE(timed.encode(std::span(&r, 1), 129)[0].has_templates);
  EXPECT_TRUE(timed.encode(std::span(&r, 1), 130)[0].has_templates);
}

TEST(ExportIpfix, TcpSendsTemplatesOncePerConnection) {
  IpfixEncoder enc(EncoderOptions{
      .template_refresh_seconds = 1, .template_refresh_messages = 1, .connection_oriented = true});
  const EncodedRecord r = encode_nat(block_record());
  EXPECT_TRUE(enc.encode(std::span(&r, 1), 1)[0].has_templates);
  for (uint32_t t = 2; t < 100; t += 10)
    EXPECT_FALSE(enc.encode(std::span(&r, 1), t)[0].has_templates);
  enc.reset_templates();  // reconnected
  EXPECT_TRUE(enc.encode(std::span(&r, 1), 200)[0].has_templates);
}

TEST(ExportIpfix, DestinationLoggingOffLeavesOutDestinationAddressAndPort) {
  IpfixEncoder enc(EncoderOptions{});
  const EncodedRecord recs[] = {encode_flow(flow_record(1), true),
                                encode_flow(flow_record(2), false)};
  IpfixDecoder dec;
  auto d = dec.decode(enc.encode(recs, 1)[0].bytes);
  ASSERT_TRUE(d.ok()) << d.error();
  ASSERT_EQ(d->records.size(), 2u);
  const DecodedRecord& on = d->records[0];
  const DecodedRecord& off = d->records[1];
  EXPECT_EQ(on.template_id, kTemplateFlow);
  EXPECT_EQ(on.uint_of(ie::kDestinationIPv4Address), 0xC633640Au);
  EXPECT_EQ(on.uint_of(ie::kDestinationTransportPort), 80u);
  EXPECT_EQ(off.template_id, kTemplateFlowNoDestination);
  EXPECT_FALSE(off.has(ie::kDestinationIPv4Address));
  EXPECT_FALSE(off.has(ie::kDestinationTransportPort));
  for (const DecodedRecord* r : {&on, &off}) {
    EXPECT_EQ(r->uint_of(ie::kSourceIPv4Address), 0x6440000Bu);
    EXPECT_EQ(r->uint_of(ie::kPostNATSourceIPv4Address), 0xCB007105u);
    EXPECT_EQ(r->uint_of(ie::kPostNAPTSourceTransportPort), 1030u);
    EXPECT_EQ(r->uint_of(ie::kPacketDeltaCount), 10u);
    EXPECT_EQ(r->uint_of(ie::kOctetDeltaCount), 1000u);
    EXPECT_EQ(r->uint_of(ie::kPacketDeltaCount, ie::kReversePen), 8u);
    EXPECT_EQ(r->uint_of(ie::kOctetDeltaCount, ie::kReversePen), 9000u);
    EXPECT_EQ(r->uint_of(ie::kFlowStartMilliseconds), 1700000000000u);
    EXPECT_EQ(r->uint_of(ie::kFlowEndMilliseconds), 1700000005000u);
    EXPECT_EQ(r->uint_of(ie::kTcpControlBits), 0x1bu);
    EXPECT_EQ(r->uint_of(ie::kProtocolIdentifier), 6u);
    EXPECT_EQ(r->uint_of(ie::kPeerId, ie::kDocumentationPen), 7u);
  }
}

// `base` as each NAT event kind in turn, encoded in one message and decoded.
std::vector<DecodedRecord> every_nat_kind_decoded(const NatRecord& base) {
  IpfixEncoder enc(EncoderOptions{});
  std::vector<EncodedRecord> recs;
  for (size_t k = 0; k < size_t(NatEventKind::kCount); ++k) {
    NatRecord n = base;
    n.kind = NatEventKind(k);
    recs.push_back(encode_nat(n));
  }
  IpfixDecoder dec;
  auto d = dec.decode(enc.encode(recs, 1)[0].bytes);
  EXPECT_TRUE(d.ok()) << d.error();
  return d.ok() ? d->records : std::vector<DecodedRecord>{};
}

TEST(ExportIpfix, EveryNatEventKindDecodesToItsRfc8158Fields) {
  const std::vector<DecodedRecord> d = every_nat_kind_decoded(block_record());
  ASSERT_EQ(d.size(), 5u);
  const uint64_t events[] = {16, 17, 12, 13, 13};
  const uint16_t templates[] = {256, 256, 257, 258, 258};
  for (size_t k = 0; k < 5; ++k) {
    const DecodedRecord& r = d[k];
    EXPECT_EQ(r.template_id, templates[k]);
    EXPECT_EQ(r.uint_of(ie::kNatEvent), events[k]);
    EXPECT_EQ(r.uint_of(ie::kObservationTimeMilliseconds), 0x0000018BD0A1B2C3u);
    EXPECT_EQ(r.uint_of(ie::kSourceIPv4Address), 0x6440000Bu);
    EXPECT_EQ(r.uint_of(ie::kPostNATSourceIPv4Address), 0xCB007105u);
  }
  EXPECT_EQ(d[1].uint_of(ie::kPortRangeEnd), 1535u);
  EXPECT_FALSE(d[2].has(ie::kPortRangeStart));
  EXPECT_EQ(d[3].uint_of(ie::kNatQuotaExceededEvent), 3u);  // max entries per user
  EXPECT_EQ(d[4].uint_of(ie::kNatQuotaExceededEvent), 1u);  // max session entries
}

TEST(ExportIpfixDecoder, RejectsWhatIsNotIpfixWithAReason) {
  IpfixDecoder dec;
  EXPECT_FALSE(dec.decode(std::vector<uint8_t>(8, 0)).ok());
  std::vector<uint8_t> v9(20, 0);
  v9[1] = 9;
  EXPECT_NE(dec.decode(v9).error().find("version 9"), std::string::npos);
  std::vector<uint8_t> long_header = {0, 10, 0, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_FALSE(dec.decode(long_header).ok());
  // Data for a template never seen is skipped and counted, not an error.
  std::vector<uint8_t> unknown = {0, 10, 0, 24, 0, 0,  0, 0, 0, 0, 0, 0,
                                  0, 0,  0, 1,  1, 44, 0, 8, 1, 2, 3, 4};
  auto d = dec.decode(unknown);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->unknown_template_sets, 1u);
}

// The IPv6 set: template 261 with the IPv4 flow template's fields in its order, the three
// addresses as IANA's IPv6 elements of 16 bytes (27, 28, 281).
TEST(ExportIpfix, Ipv6FlowTemplatesAreTheirOwnSetWithTheIanaIpv6Elements) {
  const std::vector<uint8_t> t = template_set(ie::kDocumentationPen);
  const size_t ipv6_set = kIpv6SetBytes;
  ASSERT_GT(t.size(), ipv6_set);
  const std::vector<uint8_t> v6(t.end() - ptrdiff_t(ipv6_set), t.end());
  const std::vector<uint8_t> head = {
      0x00,
      0x02,
      uint8_t(ipv6_set >> 8),
      uint8_t(ipv6_set),  // template set
      0x01,
      0x05,
      0x00,
      15,  // template 261, 15 fields
      0x00,
      152,
      0x00,
      8,  // flowStartMilliseconds
      0x00,
      153,
      0x00,
      8,  // flowEndMilliseconds
      0x00,
      27,
      0x00,
      16,  // sourceIPv6Address
      0x00,
      28,
      0x00,
      16,  // destinationIPv6Address
      0x00,
      7,
      0x00,
      2,  // sourceTransportPort
      0x00,
      11,
      0x00,
      2,  // destinationTransportPort
      0x00,
      4,
      0x00,
      1,  // protocolIdentifier
      0x01,
      0x19,
      0x00,
      16,  // postNATSourceIPv6Address (281)
      0x00,
      227,
      0x00,
      2,  // postNAPTSourceTransportPort
  };
  EXPECT_EQ(std::vector<uint8_t>(v6.begin(), v6.begin() + ptrdiff_t(head.size())), head);
  // Template 262 (no destination) follows template 261's 76 bytes, and carries no 28.
  EXPECT_EQ(v6[4 + 76], 0x01);
  EXPECT_EQ(v6[4 + 76 + 1], 0x06);
  EXPECT_EQ(v6[4 + 76 + 3], 13);
  EXPECT_EQ(template_record_length(kTemplateFlow6), 109u);
  EXPECT_EQ(template_record_length(kTemplateFlow6NoDestination), 91u);
  EXPECT_EQ(encode_flow(flow_record6(1), true).length, 109u);
  EXPECT_EQ(encode_flow(flow_record6(1), false).length, 91u);
}

TEST(ExportIpfix, Ipv6FlowRecordsDecodeWithTheirAddressesBesideIpv4Ones) {
  IpfixEncoder enc(EncoderOptions{});
  const EncodedRecord recs[] = {encode_flow(flow_record(1), true),
                                encode_flow(flow_record6(2), true),
                                encode_flow(flow_record6(3), false)};
  IpfixDecoder dec;
  auto d = dec.decode(enc.encode(recs, 1)[0].bytes);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->templates, 10u);
  ASSERT_EQ(d->records.size(), 3u);
  EXPECT_EQ(d->records[0].template_id, kTemplateFlow);
  const DecodedRecord& on = d->records[1];
  const DecodedRecord& off = d->records[2];
  EXPECT_EQ(on.template_id, kTemplateFlow6);
  EXPECT_EQ(off.template_id, kTemplateFlow6NoDestination);
  const auto bytes = [](const Ipv6Address& a) { return std::vector<uint8_t>(a.begin(), a.end()); };
  ASSERT_TRUE(on.has(ie::kDestinationIPv6Address));
  EXPECT_EQ(on.find(ie::kDestinationIPv6Address)->value, bytes(v6("2001:db8:5::10")));
  EXPECT_EQ(on.uint_of(ie::kDestinationTransportPort), 443u);
  EXPECT_FALSE(off.has(ie::kDestinationIPv6Address));
  EXPECT_FALSE(off.has(ie::kDestinationTransportPort));
  for (const DecodedRecord* r : {&on, &off}) {
    ASSERT_TRUE(r->has(ie::kSourceIPv6Address));
    EXPECT_EQ(r->find(ie::kSourceIPv6Address)->value, bytes(v6("fd7a:115c:a1e0::11")));
    ASSERT_TRUE(r->has(ie::kPostNATSourceIPv6Address));
    EXPECT_EQ(r->find(ie::kPostNATSourceIPv6Address)->value, bytes(v6("2001:db8:64:0:1234::11")));
    EXPECT_FALSE(r->has(ie::kSourceIPv4Address));
    EXPECT_FALSE(r->has(ie::kPostNATDestinationIPv6Address));
    EXPECT_EQ(r->uint_of(ie::kPostNAPTSourceTransportPort), 1030u);
    EXPECT_EQ(r->uint_of(ie::kPacketDeltaCount), 10u);
    EXPECT_EQ(r->uint_of(ie::kOctetDeltaCount, ie::kReversePen), 9000u);
    EXPECT_EQ(r->uint_of(ie::kFlowEndMilliseconds), 1700000005000u);
    EXPECT_EQ(r->uint_of(ie::kPeerId, ie::kDocumentationPen), 7u);
  }
}

// RFC 5952's own examples (sections 4.1-4.3 and 5).
TEST(ExportFormat, Ipv6TextIsRfc5952Canonical) {
  const std::pair<const char*, const char*> cases[] = {
      {"2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8:0:0:0:0:2:1", "2001:db8::2:1"},
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // one zero group stays
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // the longest run
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // the first of equal runs
      {"2001:DB8:AAAA:BBBB:CCCC:DDDD:EEEE:AAAA", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:aaaa"},
      {"0:0:0:0:0:0:0:0", "::"},
      {"0:0:0:0:0:0:0:1", "::1"},
      {"1:0:0:0:0:0:0:0", "1::"},
      {"::ffff:c000:0201", "::ffff:192.0.2.1"},  // IPv4-mapped: dotted quad
      {"::0102:0304", "::102:304"},              // not IPv4-mapped: hex
      {"fd7a:115c:a1e0:0:0:0:0:11", "fd7a:115c:a1e0::11"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(format_ipv6(v6(in)), want) << in;
}

// Against glibc's inet_ntop (its own RFC 5952 implementation) on random addresses rich in
// zero groups, away from ::/96 where the two choose differently on purpose.
TEST(ExportFormat, Ipv6TextAgreesWithInetNtopOnRandomAddresses) {
  std::mt19937 rng(5952);
  for (int i = 0; i < 20000; ++i) {
    Ipv6Address a{};
    for (int g = 0; g < 8; ++g) {
      const uint16_t w = rng() % 2 ? 0 : uint16_t(rng() % 4 ? rng() : rng() % 16);
      a[2 * g] = uint8_t(w >> 8);
      a[2 * g + 1] = uint8_t(w);
    }
    if (std::all_of(a.begin(), a.begin() + 10, [](uint8_t b) { return b == 0; })) continue;
    char buf[INET6_ADDRSTRLEN];
    ASSERT_NE(inet_ntop(AF_INET6, a.data(), buf, sizeof(buf)), nullptr);
    ASSERT_EQ(format_ipv6(a), buf);
  }
}

TEST(ExportJson, Ipv6FlowsCarryBracketedRfc5952AddressesAndPorts) {
  const FlowRecord f = flow_record6(40000);
  const std::string with = flow_json(f, true, "nTest", 1700000000000);
  EXPECT_NE(with.find("\"exitTraffic\":[{\"proto\":6,\"src\":\"[fd7a:115c:a1e0::11]:40000\","
                      "\"dst\":\"[2001:db8:5::10]:443\",\"txPkts\":10,\"txBytes\":1000,"
                      "\"rxPkts\":8,\"rxBytes\":9000}]}"),
            std::string::npos)
      << with;
  const std::string without = flow_json(f, false, "nTest", 1700000000000);
  EXPECT_NE(without.find("\"src\":\"[fd7a:115c:a1e0::11]:40000\",\"txPkts\""), std::string::npos)
      << without;
  EXPECT_EQ(without.find("dst"), std::string::npos);
}

// NAT66 (RFC 8158 with IPv6 elements): each event kind in its IPv6 template, the subscriber as
// sourceIPv6Address and the public address as postNATSourceIPv6Address.
TEST(ExportIpfix, EveryNat66EventKindDecodesToItsRfc8158Ipv6Fields) {
  NatRecord n = block_record();
  n.family = IpFamily::kIpv6;
  n.subscriber = n.public_address = 0;
  n.subscriber6 = v6("fd7a:115c:a1e0::11");
  n.public_address6 = v6("2001:db8:100::5");
  const std::vector<DecodedRecord> d = every_nat_kind_decoded(n);
  ASSERT_EQ(d.size(), 5u);
  const uint64_t events[] = {16, 17, 12, 13, 13};
  const uint16_t templates[] = {263, 263, 264, 265, 265};
  const std::vector<uint8_t> sub = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0,
                                    0,    0,    0,    0,    0,    0,    0, 0x11};
  const std::vector<uint8_t> pub = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
  for (size_t k = 0; k < 5; ++k) {
    const DecodedRecord& r = d[k];
    EXPECT_EQ(r.template_id, templates[k]);
    EXPECT_EQ(r.uint_of(ie::kNatEvent), events[k]);
    EXPECT_EQ(r.uint_of(ie::kObservationTimeMilliseconds), 0x0000018BD0A1B2C3u);
    ASSERT_TRUE(r.has(ie::kSourceIPv6Address) && r.has(ie::kPostNATSourceIPv6Address));
    EXPECT_EQ(r.find(ie::kSourceIPv6Address)->value, sub);
    EXPECT_EQ(r.find(ie::kPostNATSourceIPv6Address)->value, pub);
    EXPECT_FALSE(r.has(ie::kSourceIPv4Address));
    EXPECT_FALSE(r.has(ie::kPostNATSourceIPv4Address));
  }
  EXPECT_EQ(d[0].uint_of(ie::kPortRangeStart), 1024u);
  EXPECT_EQ(d[1].uint_of(ie::kPortRangeEnd), 1535u);
  EXPECT_EQ(d[3].uint_of(ie::kNatQuotaExceededEvent), 3u);
  EXPECT_EQ(d[4].uint_of(ie::kNatQuotaExceededEvent), 1u);
  EXPECT_EQ(template_record_length(kTemplateNatBlock6), 8u + 1 + 16 + 16 + 2 + 2);
}

// The NAT side's hand-over: a NatEvent's type, ports and worker with the addresses of either
// family (addresses_of: NAT44's from the event itself).
TEST(ExportNatEvent, ToNatRecordTakesTheAddressesOfEitherFamily) {
  dp::nat::NatEvent e{};
  e.type = dp::nat::NatEventType::kBlockReleased;
  e.subscriber = 0x6440000B;
  e.public_address = 0xCB007105;
  e.port_first = 2048;
  e.port_last = 2559;
  e.worker = 2;
  const NatRecord r4 = to_nat_record(e, 1234);
  EXPECT_EQ(r4.family, IpFamily::kIpv4);
  EXPECT_EQ(r4.subscriber, 0x6440000Bu);
  EXPECT_EQ(r4.public_address, 0xCB007105u);
  EXPECT_EQ(r4.kind, NatEventKind::kBlockReleased);
  EXPECT_EQ(r4.time_ms, 1234u);
  EXPECT_EQ(encode_nat(r4).template_id, kTemplateNatBlock);

  NatEventAddresses a;
  a.family = IpFamily::kIpv6;
  a.subscriber6 = v6("fd7a:115c:a1e0::12");
  a.public_address6 = v6("2001:db8:100::6");
  const NatRecord r6 = to_nat_record(e, 1234, a);
  EXPECT_EQ(r6.family, IpFamily::kIpv6);
  EXPECT_EQ(r6.subscriber6, a.subscriber6);
  EXPECT_EQ(r6.public_address6, a.public_address6);
  EXPECT_EQ((std::tuple{r6.port_first, r6.port_last, r6.worker}),
            (std::tuple{uint16_t{2048}, uint16_t{2559}, uint8_t{2}}));
  EXPECT_EQ(encode_nat(r6).template_id, kTemplateNatBlock6);
  const std::string line = nat_json(r6, "nTest", 1700000000000);
  EXPECT_NE(line.find("\"natEvent\":{\"type\":\"block_released\",\"code\":17,"), std::string::npos)
      << line;
  EXPECT_NE(line.find("\"subscriber\":\"fd7a:115c:a1e0::12\",\"public\":\"2001:db8:100::6\","
                      "\"portStart\":2048,\"portEnd\":2559,\"worker\":2}}"),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace exitgw::exporter
