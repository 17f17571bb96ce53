// A minimal IPFIX (RFC 7011) decoder: templates and data sets of any exporter, into fields.
// For tests, the fuzz target and the driver's self-check; never trusts a length it reads.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "common/result.h"
#include "control/export/ipfix.h"

namespace exitgw::exporter {

struct DecodedField {
  uint16_t id = 0;
  uint32_t enterprise = 0;  // 0: IANA element
  std::vector<uint8_t> value;

  // The value as a big-endian unsigned integer (0 for an empty or longer-than-8 value).
  uint64_t as_uint() const;
};

struct DecodedRecord {
  uint16_t template_id = 0;
  std::vector<DecodedField> fields;

  const DecodedField* find(uint16_t id, uint32_t enterprise = 0) const;
  uint64_t uint_of(uint16_t id, uint32_t enterprise = 0) const;  // 0 when absent
  bool has(uint16_t id, uint32_t enterprise = 0) const { return find(id, enterprise); }
};

struct DecodedMessage {
  uint16_t version = 0, length = 0;
  uint32_t export_time = 0, sequence = 0, observation_domain = 0;
  size_t templates = 0;  // template records in this message
  std::vector<DecodedRecord> records;
  size_t unknown_template_sets = 0;  // data sets whose template is not known (skipped)
};

class IpfixDecoder {
 public:
  // Decodes one message; templates it carries are remembered for later messages.
  Result<DecodedMessage> decode(std::span<const uint8_t> message);
  // Splits a byte stream (TCP) into messages by their length field; returns the bytes used.
  static size_t next_message_length(std::span<const uint8_t> stream);

 private:
  struct TemplateField {
    uint16_t id;
    uint16_t length;  // 0xffff: variable length
    uint32_t enterprise;
  };
  // Keyed by (observation domain, template id).
  std::map<std::tuple<uint32_t, uint16_t>, std::vector<TemplateField>> templates_;
};

std::string format_ipv4(uint32_t host_order);
// RFC 5952 text form (lower case, the longest run of two or more zero groups as "::", the
// first of equal runs; IPv4-mapped addresses with a dotted quad).
std::string format_ipv6(std::span<const uint8_t, 16> address);
// The family's text form: format_ipv4(a4) or format_ipv6(a6).
std::string format_address(IpFamily family, uint32_t a4, const Ipv6Address& a6);

}  // namespace exitgw::exporter
