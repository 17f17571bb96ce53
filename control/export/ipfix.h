// IPFIX (RFC 7011) encoding of NAT events (RFC 8158) and flow records: templates, records,
// MTU-bounded messages with per-domain sequence numbers and template refresh.
//
// Why not libfixbuf (Debian 12 ships libfixbuf-dev 2.4.1): it pulls in glib, owns the socket
// and its own threads/session model, and has no notion of our on-disk spool (records must be
// encodable without a session, stored, and framed into messages only when they are sent, so
// that sequence numbers and export times are those of the message that actually leaves).
// Our needs are a few fixed templates of fixed-length fields, which is a few hundred lines.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace exitgw::exporter {

// Information elements used (IANA "IPFIX Information Elements" registry).
namespace ie {
inline constexpr uint16_t kOctetDeltaCount = 1;
inline constexpr uint16_t kPacketDeltaCount = 2;
inline constexpr uint16_t kProtocolIdentifier = 4;
inline constexpr uint16_t kTcpControlBits = 6;  // unsigned16 since RFC 7125
inline constexpr uint16_t kSourceTransportPort = 7;
inline constexpr uint16_t kSourceIPv4Address = 8;
inline constexpr uint16_t kDestinationTransportPort = 11;
inline constexpr uint16_t kDestinationIPv4Address = 12;
inline constexpr uint16_t kSourceIPv6Address = 27;
inline constexpr uint16_t kDestinationIPv6Address = 28;
inline constexpr uint16_t kFlowStartMilliseconds = 152;
inline constexpr uint16_t kFlowEndMilliseconds = 153;
inline constexpr uint16_t kPostNATSourceIPv4Address = 225;
inline constexpr uint16_t kPostNAPTSourceTransportPort = 227;
inline constexpr uint16_t kNatEvent = 230;
inline constexpr uint16_t kPostNATSourceIPv6Address = 281;
inline constexpr uint16_t kPostNATDestinationIPv6Address = 282;
inline constexpr uint16_t kObservationTimeMilliseconds = 323;
inline constexpr uint16_t kPortRangeStart = 361;
inline constexpr uint16_t kPortRangeEnd = 362;
inline constexpr uint16_t kNatQuotaExceededEvent = 466;
// RFC 5103 reverse elements: the same element id under the reverse-direction PEN.
inline constexpr uint32_t kReversePen = 29305;
// Our one enterprise-specific element: the WireGuard peer (its control-plane slot),
// unsigned32, element id 1 under ExporterOptions::enterprise_number. The default PEN is
// 32473, which RFC 5612 reserves for documentation: an operator who wants the field to be
// globally unambiguous registers a PEN with IANA and configures it.
inline constexpr uint16_t kPeerId = 1;
inline constexpr uint32_t kDocumentationPen = 32473;
}  // namespace ie

// IANA "NAT Event Type" registry (natEvent; RFC 8158 section 4.1, table 1). 1 and 2 are the
// historic NSEL "translation create/delete", so the RFC 8158 events start at 3; this is what
// VPP's nat_ipfix_logging.h and Wireshark use (a list numbered from 1 without them is wrong).
enum class NatEventCode : uint8_t {
  kNatAddressesExhausted = 3,
  kNat44SessionCreate = 4,
  kNat44SessionDelete = 5,
  kNatPortsExhausted = 12,
  kQuotaExceeded = 13,
  kAddressBindingCreate = 14,
  kAddressBindingDelete = 15,
  kPortBlockAllocation = 16,
  kPortBlockDeallocation = 17,
  kThresholdReached = 18,
};

// IANA "NAT Quota Exceeded Event Type" (natQuotaExceededEvent, RFC 8158 section 4.2).
enum class NatQuotaCode : uint32_t {
  kMaxSessionEntries = 1,
  kMaxBibEntries = 2,
  kMaxEntriesPerUser = 3,
};

// The gateway's NAT events (mirrors dp::nat::NatEventType; see nat_event.h for the
// conversion). Each maps to one natEvent value and one template.
enum class NatEventKind : uint8_t {
  kBlockAllocated,  // natEvent 16, port block allocation
  kBlockReleased,   // natEvent 17, port block de-allocation
  kPoolExhausted,   // natEvent 12, NAT ports exhausted (on the subscriber's paired address)
  kPortLimit,       // natEvent 13, quota exceeded: maximum entries per user (3)
  kSessionLimit,    // natEvent 13, quota exceeded: maximum session entries (1), per subscriber
  kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(NatEventKind::kCount)>
    kNatEventKindNames = {"block_allocated", "block_released", "pool_exhausted", "port_limit",
                          "session_limit"};

enum class IpFamily : uint8_t { kIpv4, kIpv6 };
using Ipv6Address = std::array<uint8_t, 16>;  // network order

// NAT44 (family kIpv4): addresses in host order in subscriber/public_address. NAT66 (kIpv6):
// in subscriber6/public_address6, network order, encoded with RFC 8158's IPv6 elements
// (sourceIPv6Address, postNATSourceIPv6Address). Times in Unix milliseconds.
struct NatRecord {
  uint64_t time_ms = 0;
  IpFamily family = IpFamily::kIpv4;
  uint32_t subscriber = 0;
  uint32_t public_address = 0;
  Ipv6Address subscriber6{}, public_address6{};
  uint16_t port_first = 0, port_last = 0;
  NatEventKind kind = NatEventKind::kBlockAllocated;
  uint8_t worker = 0;
};

// One flow's counters for an interval, from the subscriber's side: tx is subscriber → internet.
// IPv4 addresses in host order, IPv6 ones as on the wire (which fields: `family`); times in
// Unix milliseconds.
struct FlowRecord {
  uint64_t start_ms = 0, end_ms = 0;
  IpFamily family = IpFamily::kIpv4;
  uint32_t src_address = 0, dst_address = 0;  // pre-NAT source (the subscriber), destination
  Ipv6Address src_address6{}, dst_address6{};
  uint16_t src_port = 0, dst_port = 0;
  uint32_t post_nat_address = 0;
  Ipv6Address post_nat_address6{};  // all zero: not known
  uint16_t post_nat_port = 0;
  uint8_t protocol = 0;
  uint16_t tcp_flags = 0;  // OR of the flags seen
  uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
  uint32_t peer_id = 0;
  // The caller's per-record choice; the exporter also applies its own switch (both must allow).
  bool log_destination = true;
};

enum TemplateId : uint16_t {
  kTemplateNatBlock = 256,
  kTemplateNatPortsExhausted = 257,
  kTemplateNatQuota = 258,
  kTemplateFlow = 259,
  kTemplateFlowNoDestination = 260,
  kTemplateFlow6 = 261,  // the IPv6 flow templates: the IPv4 ones' fields, IPv6 addresses
  kTemplateFlow6NoDestination = 262,
  kTemplateNatBlock6 = 263,  // NAT66 events: the NAT44 templates with IPv6 addresses
  kTemplateNatPortsExhausted6 = 264,
  kTemplateNatQuota6 = 265,
};

// One data record already in IPFIX wire form, without framing: what the spool stores.
struct EncodedRecord {
  static constexpr size_t kMaxBytes = 112;  // the IPv6 flow record (109) fits
  uint16_t template_id = 0;
  uint16_t length = 0;
  std::array<uint8_t, kMaxBytes> bytes{};

  std::span<const uint8_t> data() const { return {bytes.data(), length}; }
  bool operator==(const EncodedRecord& o) const {
    return template_id == o.template_id && length == o.length &&
           std::equal(bytes.begin(), bytes.begin() + length, o.bytes.begin());
  }
};

NatEventCode nat_event_code(NatEventKind kind);
EncodedRecord encode_nat(const NatRecord& r);
EncodedRecord encode_flow(const FlowRecord& r, bool with_destination);

// The template sets (set id 2): all the IPv4 templates in one set, the IPv6 ones in a second.
std::vector<uint8_t> template_set(uint32_t enterprise_number);
// The smallest message the encoder frames: the header, every template and one record of the
// longest kind (a smaller max_message_bytes is raised to this).
size_t min_message_bytes(uint32_t enterprise_number);
// Record length a template defines, 0 for an unknown id.
size_t template_record_length(uint16_t template_id);

struct EncoderOptions {
  uint32_t observation_domain = 1;
  size_t max_message_bytes = 1400;  // keep UDP under a typical path MTU
  uint32_t enterprise_number = ie::kDocumentationPen;
  // UDP: resend templates when either is reached (RFC 7011 section 8.4). 0 disables that trigger.
  uint32_t template_refresh_seconds = 10;
  uint32_t template_refresh_messages = 100;
  bool connection_oriented = false;  // TCP: templates once per connection, never refreshed
};

// One message and which of the input records it carries ([first, first + count)).
struct Message {
  std::vector<uint8_t> bytes;
  size_t first_record = 0, record_count = 0;
  uint32_t sequence = 0;
  bool has_templates = false;
};

// Frames records into messages. Not thread-safe; owned by the exporter's I/O thread.
class IpfixEncoder {
 public:
  explicit IpfixEncoder(const EncoderOptions& options);

  // Messages carrying `records` in order; the sequence number advances by every record framed
  // (RFC 7011: data records sent before this message), whether or not the send later succeeds.
  // At most max_messages messages; records beyond them are left (and not counted).
  std::vector<Message> encode(std::span<const EncodedRecord> records, uint32_t export_time,
                              size_t max_messages = SIZE_MAX);
  // A message with only the template set (a probe for UDP reachability; sequence unchanged).
  Message templates_only(uint32_t export_time);
  // A new transport session (TCP reconnect, UDP socket re-created): templates go first again.
  void reset_templates() { templates_sent_ = false; }
  uint32_t sequence() const { return sequence_; }
  const EncoderOptions& options() const { return options_; }

 private:
  bool templates_due(uint32_t export_time) const;
  void note_templates(uint32_t export_time);

  EncoderOptions options_;
  std::vector<uint8_t> templates_;
  uint32_t sequence_ = 0;
  bool templates_sent_ = false;
  uint32_t last_template_time_ = 0;
  uint32_t messages_since_templates_ = 0;
};

inline constexpr size_t kMessageHeaderBytes = 16;
inline constexpr size_t kSetHeaderBytes = 4;

}  // namespace exitgw::exporter
