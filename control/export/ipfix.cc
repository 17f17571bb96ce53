// IPFIX encoding: the templates, big-endian record writers, and message framing.
#include "control/export/ipfix.h"

#include <array>

#include <cstring>

namespace exitgw::exporter {
namespace {

// kOurPen stands for ExporterOptions::enterprise_number, filled in when the set is built.
constexpr uint32_t kOurPen = 0xffffffff;

struct FieldSpec {
  uint16_t id;
  uint16_t length;
  uint32_t pen;  // 0: IANA element
};

struct TemplateSpec {
  uint16_t id;
  std::span<const FieldSpec> fields;
};

// RFC 8158 section 5.x layouts; the timestamp first, as in its templates.
constexpr FieldSpec kNatBlockFields[] = {
    {ie::kObservationTimeMilliseconds, 8, 0},
    {ie::kNatEvent, 1, 0},
    {ie::kSourceIPv4Address, 4, 0},
    {ie::kPostNATSourceIPv4Address, 4, 0},
    {ie::kPortRangeStart, 2, 0},
    {ie::kPortRangeEnd, 2, 0},
};
constexpr FieldSpec kNatPortsExhaustedFields[] = {
    {ie::kObservationTimeMilliseconds, 8, 0},
    {ie::kNatEvent, 1, 0},
    {ie::kPostNATSourceIPv4Address, 4, 0},
    {ie::kSourceIPv4Address, 4, 0},  // the subscriber that hit it (beyond RFC 8158's minimum)
};
constexpr FieldSpec kNatQuotaFields[] = {
    {ie::kObservationTimeMilliseconds, 8, 0}, {ie::kNatEvent, 1, 0},
    {ie::kNatQuotaExceededEvent, 4, 0},       {ie::kSourceIPv4Address, 4, 0},
    {ie::kPostNATSourceIPv4Address, 4, 0},
};
constexpr FieldSpec kFlowFields[] = {
    {ie::kFlowStartMilliseconds, 8, 0},
    {ie::kFlowEndMilliseconds, 8, 0},
    {ie::kSourceIPv4Address, 4, 0},
    {ie::kDestinationIPv4Address, 4, 0},
    {ie::kSourceTransportPort, 2, 0},
    {ie::kDestinationTransportPort, 2, 0},
    {ie::kProtocolIdentifier, 1, 0},
    {ie::kPostNATSourceIPv4Address, 4, 0},
    {ie::kPostNAPTSourceTransportPort, 2, 0},
    {ie::kPacketDeltaCount, 8, 0},
    {ie::kOctetDeltaCount, 8, 0},
    {ie::kPacketDeltaCount, 8, ie::kReversePen},
    {ie::kOctetDeltaCount, 8, ie::kReversePen},
    {ie::kTcpControlBits, 2, 0},
    {ie::kPeerId, 4, kOurPen},
};
// Destination logging off: the same record without destination address and port.
constexpr bool is_destination(const FieldSpec& f) {
  return f.pen == 0 &&
         (f.id == ie::kDestinationIPv4Address || f.id == ie::kDestinationTransportPort);
}
constexpr auto kFlowNoDestinationFields = [] {
  std::array<FieldSpec, std::size(kFlowFields) - 2> out{};
  size_t n = 0;
  for (const FieldSpec& f : kFlowFields)
    if (!is_destination(f)) out[n++] = f;
  return out;
}();

// IPv6 flows: the same fields in the same order, the addresses IPv6 (IANA 27, 28, 281).
constexpr FieldSpec ipv6_field(FieldSpec f) {
  if (f.pen != 0) return f;
  switch (f.id) {
    case ie::kSourceIPv4Address:
      return {ie::kSourceIPv6Address, 16, 0};
    case ie::kDestinationIPv4Address:
      return {ie::kDestinationIPv6Address, 16, 0};
    case ie::kPostNATSourceIPv4Address:
      return {ie::kPostNATSourceIPv6Address, 16, 0};
    default:
      return f;
  }
}
template <size_t N>
constexpr std::array<FieldSpec, N> ipv6_fields(std::span<const FieldSpec, N> in) {
  std::array<FieldSpec, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = ipv6_field(in[i]);
  return out;
}
constexpr auto kNatBlock6Fields =
    ipv6_fields(std::span<const FieldSpec, std::size(kNatBlockFields)>(kNatBlockFields));
constexpr auto kNatPortsExhausted6Fields = ipv6_fields(
    std::span<const FieldSpec, std::size(kNatPortsExhaustedFields)>(kNatPortsExhaustedFields));
constexpr auto kNatQuota6Fields =
    ipv6_fields(std::span<const FieldSpec, std::size(kNatQuotaFields)>(kNatQuotaFields));
constexpr auto kFlow6Fields =
    ipv6_fields(std::span<const FieldSpec, std::size(kFlowFields)>(kFlowFields));
constexpr auto kFlow6NoDestinationFields = ipv6_fields(
    std::span<const FieldSpec, kFlowNoDestinationFields.size()>(kFlowNoDestinationFields));

constexpr TemplateSpec kTemplates4[] = {
    {kTemplateNatBlock, kNatBlockFields},
    {kTemplateNatPortsExhausted, kNatPortsExhaustedFields},
    {kTemplateNatQuota, kNatQuotaFields},
    {kTemplateFlow, kFlowFields},
    {kTemplateFlowNoDestination, kFlowNoDestinationFields},
};
constexpr TemplateSpec kTemplates6[] = {
    {kTemplateFlow6, kFlow6Fields},
    {kTemplateFlow6NoDestination, kFlow6NoDestinationFields},
    {kTemplateNatBlock6, kNatBlock6Fields},
    {kTemplateNatPortsExhausted6, kNatPortsExhausted6Fields},
    {kTemplateNatQuota6, kNatQuota6Fields},
};
constexpr std::span<const TemplateSpec> kTemplateSets[] = {kTemplates4, kTemplates6};

constexpr size_t record_length(std::span<const FieldSpec> fields) {
  size_t n = 0;
  for (const FieldSpec& f : fields) n += f.length;
  return n;
}
static_assert(record_length(kFlowFields) <= EncodedRecord::kMaxBytes);
static_assert(record_length(kFlow6Fields) <= EncodedRecord::kMaxBytes);

void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, uint16_t(v >> 16));
  put16(p + 2, uint16_t(v));
}
void put64(uint8_t* p, uint64_t v) {
  put32(p, uint32_t(v >> 32));
  put32(p + 4, uint32_t(v));
}
void append16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}
void append32(std::vector<uint8_t>& out, uint32_t v) {
  append16(out, uint16_t(v >> 16));
  append16(out, uint16_t(v));
}

// Appends fields to a record in template order.
class RecordWriter {
 public:
  explicit RecordWriter(EncodedRecord& r) : r_(r) {}
  RecordWriter& u8(uint8_t v) {
    r_.bytes[r_.length++] = v;
    return *this;
  }
  RecordWriter& u16(uint16_t v) {
    put16(&r_.bytes[r_.length], v);
    r_.length += 2;
    return *this;
  }
  RecordWriter& u32(uint32_t v) {
    put32(&r_.bytes[r_.length], v);
    r_.length += 4;
    return *this;
  }
  RecordWriter& u64(uint64_t v) {
    put64(&r_.bytes[r_.length], v);
    r_.length += 8;
    return *this;
  }
  RecordWriter& ipv6(const Ipv6Address& a) {
    std::memcpy(&r_.bytes[r_.length], a.data(), 16);
    r_.length += 16;
    return *this;
  }
  // The family's form of an address: 4 bytes, or 16.
  RecordWriter& address(bool v6, uint32_t a4, const Ipv6Address& a6) {
    return v6 ? ipv6(a6) : u32(a4);
  }

 private:
  EncodedRecord& r_;
};

void write_header(uint8_t* p, uint16_t length, uint32_t export_time, uint32_t sequence,
                  uint32_t domain) {
  put16(p, 10);
  put16(p + 2, length);
  put32(p + 4, export_time);
  put32(p + 8, sequence);
  put32(p + 12, domain);
}

}  // namespace

NatEventCode nat_event_code(NatEventKind kind) {
  switch (kind) {
    case NatEventKind::kBlockAllocated:
      return NatEventCode::kPortBlockAllocation;
    case NatEventKind::kBlockReleased:
      return NatEventCode::kPortBlockDeallocation;
    case NatEventKind::kPoolExhausted:
      return NatEventCode::kNatPortsExhausted;
    case NatEventKind::kPortLimit:
    case NatEventKind::kSessionLimit:
    case NatEventKind::kCount:
      break;
  }
  return NatEventCode::kQuotaExceeded;
}

EncodedRecord encode_nat(const NatRecord& n) {
  EncodedRecord r;
  RecordWriter w(r);
  const bool v6 = n.family == IpFamily::kIpv6;
  const auto subscriber = [&] { w.address(v6, n.subscriber, n.subscriber6); };
  const auto public_address = [&] { w.address(v6, n.public_address, n.public_address6); };
  const uint8_t code = static_cast<uint8_t>(nat_event_code(n.kind));
  switch (n.kind) {
    case NatEventKind::kBlockAllocated:
    case NatEventKind::kBlockReleased:
      r.template_id = v6 ? kTemplateNatBlock6 : kTemplateNatBlock;
      w.u64(n.time_ms).u8(code);
      subscriber();
      public_address();
      w.u16(n.port_first).u16(n.port_last);
      break;
    case NatEventKind::kPoolExhausted:
      r.template_id = v6 ? kTemplateNatPortsExhausted6 : kTemplateNatPortsExhausted;
      w.u64(n.time_ms).u8(code);
      public_address();
      subscriber();
      break;
    case NatEventKind::kPortLimit:
    case NatEventKind::kSessionLimit:
    case NatEventKind::kCount:
      r.template_id = v6 ? kTemplateNatQuota6 : kTemplateNatQuota;
      w.u64(n.time_ms).u8(code);
      w.u32(static_cast<uint32_t>(n.kind == NatEventKind::kPortLimit
                                      ? NatQuotaCode::kMaxEntriesPerUser
                                      : NatQuotaCode::kMaxSessionEntries));
      subscriber();
      public_address();
      break;
  }
  return r;
}

EncodedRecord encode_flow(const FlowRecord& f, bool with_destination) {
  EncodedRecord r;
  RecordWriter w(r);
  const bool v6 = f.family == IpFamily::kIpv6;
  if (v6)
    r.template_id = with_destination ? kTemplateFlow6 : kTemplateFlow6NoDestination;
  else
    r.template_id = with_destination ? kTemplateFlow : kTemplateFlowNoDestination;
  w.u64(f.start_ms).u64(f.end_ms).address(v6, f.src_address, f.src_address6);
  if (with_destination) w.address(v6, f.dst_address, f.dst_address6);
  w.u16(f.src_port);
  if (with_destination) w.u16(f.dst_port);
  w.u8(f.protocol).address(v6, f.post_nat_address, f.post_nat_address6).u16(f.post_nat_port);
  w.u64(f.tx_packets).u64(f.tx_bytes).u64(f.rx_packets).u64(f.rx_bytes);
  w.u16(f.tcp_flags).u32(f.peer_id);
  return r;
}

std::vector<uint8_t> template_set(uint32_t enterprise_number) {
  std::vector<uint8_t> out;
  // One set per family, so a collector that does not take IPv6 elements refuses only those.
  for (std::span<const TemplateSpec> set : kTemplateSets) {
    const size_t start = out.size();
    append16(out, 2);  // set id: template set
    append16(out, 0);  // length, patched below
    for (const TemplateSpec& t : set) {
      append16(out, t.id);
      append16(out, uint16_t(t.fields.size()));
      for (const FieldSpec& f : t.fields) {
        append16(out, f.pen ? uint16_t(f.id | 0x8000) : f.id);
        append16(out, f.length);
        if (f.pen) append32(out, f.pen == kOurPen ? enterprise_number : f.pen);
      }
    }
    put16(&out[start + 2], uint16_t(out.size() - start));
  }
  return out;
}

size_t min_message_bytes(uint32_t enterprise_number) {
  return kMessageHeaderBytes + template_set(enterprise_number).size() + kSetHeaderBytes +
         EncodedRecord::kMaxBytes;
}

size_t template_record_length(uint16_t template_id) {
  for (std::span<const TemplateSpec> set : kTemplateSets)
    for (const TemplateSpec& t : set)
      if (t.id == template_id) return record_length(t.fields);
  return 0;
}

IpfixEncoder::IpfixEncoder(const EncoderOptions& options)
    : options_(options), templates_(template_set(options.enterprise_number)) {}

bool IpfixEncoder::templates_due(uint32_t export_time) const {
  if (!templates_sent_) return true;
  if (options_.connection_oriented) return false;
  if (options_.template_refresh_messages &&
      messages_since_templates_ >= options_.template_refresh_messages)
    return true;
  return options_.template_refresh_seconds &&
         export_time - last_template_time_ >= options_.template_refresh_seconds;
}

void IpfixEncoder::note_templates(uint32_t export_time) {
  templates_sent_ = true;
  last_template_time_ = export_time;
  messages_since_templates_ = 0;
}

Message IpfixEncoder::templates_only(uint32_t export_time) {
  Message m;
  m.bytes.resize(kMessageHeaderBytes);
  m.bytes.insert(m.bytes.end(), templates_.begin(), templates_.end());
  write_header(m.bytes.data(), uint16_t(m.bytes.size()), export_time, sequence_,
               options_.observation_domain);
  m.sequence = sequence_;
  m.has_templates = true;
  note_templates(export_time);
  return m;
}

std::vector<Message> IpfixEncoder::encode(std::span<const EncodedRecord> records,
                                          uint32_t export_time, size_t max_messages) {
  std::vector<Message> out;
  // Never below what one set of templates plus one record needs (min_message_bytes).
  const size_t limit =
      std::max(options_.max_message_bytes, kMessageHeaderBytes + templates_.size() +
                                               kSetHeaderBytes + EncodedRecord::kMaxBytes);
  size_t i = 0;
  while (i < records.size() && out.size() < max_messages) {
    Message m;
    m.first_record = i;
    m.sequence = sequence_;
    m.bytes.reserve(limit);
    m.bytes.resize(kMessageHeaderBytes);
    if (templates_due(export_time)) {
      m.bytes.insert(m.bytes.end(), templates_.begin(), templates_.end());
      m.has_templates = true;
      note_templates(export_time);
    }
    size_t set_start = 0;  // offset of the open data set's header, 0 when none
    uint16_t set_template = 0;
    while (i < records.size()) {
      const EncodedRecord& r = records[i];
      const bool new_set = set_start == 0 || r.template_id != set_template;
      const size_t need = r.length + (new_set ? kSetHeaderBytes : 0);
      if (m.bytes.size() + need > limit) break;
      if (new_set) {
        if (set_start) put16(&m.bytes[set_start + 2], uint16_t(m.bytes.size() - set_start));
        set_start = m.bytes.size();
        set_template = r.template_id;
        append16(m.bytes, r.template_id);
        append16(m.bytes, 0);
      }
      m.bytes.insert(m.bytes.end(), r.bytes.begin(), r.bytes.begin() + r.length);
      ++i;
    }
    if (set_start) put16(&m.bytes[set_start + 2], uint16_t(m.bytes.size() - set_start));
    m.record_count = i - m.first_record;
    write_header(m.bytes.data(), uint16_t(m.bytes.size()), export_time, sequence_,
                 options_.observation_domain);
    sequence_ += uint32_t(m.record_count);
    ++messages_since_templates_;
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace exitgw::exporter
