// The IPFIX encoder: exact bytes, sequence numbers, MTU splitting, template refresh, templates
// with and without the destination, and a decode of every record kind.
#include <gtest/gtest.h>

#include "control/export/ipfix.h"
#include "control/export/ipfix_decode.h"

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
  // The template set opens with set id 2 and template 256 of six fields.
  const std::vector<uint8_t> t256 = {0x00,
                                     0x02,
                                     uint8_t(templates.size() >> 8),
                                     uint8_t(templates.size()),
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
  for (size_t mtu : {512u, 1400u, 9000u}) {
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

TEST(ExportIpfix, EveryNatEventKindDecodesToItsRfc8158Fields) {
  IpfixEncoder enc(EncoderOptions{});
  std::vector<EncodedRecord> recs;
  for (size_t k = 0; k < size_t(NatEventKind::kCount); ++k) {
    NatRecord n = block_record();
    n.kind = NatEventKind(k);
    recs.push_back(encode_nat(n));
  }
  IpfixDecoder dec;
  auto d = dec.decode(enc.encode(recs, 1)[0].bytes);
  ASSERT_TRUE(d.ok()) << d.error();
  ASSERT_EQ(d->records.size(), 5u);
  const uint64_t events[] = {16, 17, 12, 13, 13};
  const uint16_t templates[] = {256, 256, 257, 258, 258};
  for (size_t k = 0; k < 5; ++k) {
    const DecodedRecord& r = d->records[k];
    EXPECT_EQ(r.template_id, templates[k]);
    EXPECT_EQ(r.uint_of(ie::kNatEvent), events[k]);
    EXPECT_EQ(r.uint_of(ie::kObservationTimeMilliseconds), 0x0000018BD0A1B2C3u);
    EXPECT_EQ(r.uint_of(ie::kSourceIPv4Address), 0x6440000Bu);
    EXPECT_EQ(r.uint_of(ie::kPostNATSourceIPv4Address), 0xCB007105u);
  }
  EXPECT_EQ(d->records[1].uint_of(ie::kPortRangeEnd), 1535u);
  EXPECT_FALSE(d->records[2].has(ie::kPortRangeStart));
  EXPECT_EQ(d->records[3].uint_of(ie::kNatQuotaExceededEvent), 3u);  // max entries per user
  EXPECT_EQ(d->records[4].uint_of(ie::kNatQuotaExceededEvent), 1u);  // max session entries
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

}  // namespace
}  // namespace exitgw::exporter
