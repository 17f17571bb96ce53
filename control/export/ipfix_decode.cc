// The minimal IPFIX decoder: every read bounds-checked against the message and set lengths.
#include "control/export/ipfix_decode.h"

#include <cstdio>

namespace exitgw::exporter {
namespace {

uint16_t get16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
uint32_t get32(const uint8_t* p) {
  return uint32_t(get16(p)) << 16 | get16(p + 2);
}

}  // namespace

uint64_t DecodedField::as_uint() const {
  if (value.empty() || value.size() > 8) return 0;
  uint64_t v = 0;
  for (uint8_t b : value) v = v << 8 | b;
  return v;
}

const DecodedField* DecodedRecord::find(uint16_t id, uint32_t enterprise) const {
  for (const DecodedField& f : fields)
    if (f.id == id && f.enterprise == enterprise) return &f;
  return nullptr;
}

uint64_t DecodedRecord::uint_of(uint16_t id, uint32_t enterprise) const {
  const DecodedField* f = find(id, enterprise);
  return f ? f->as_uint() : 0;
}

size_t IpfixDecoder::next_message_length(std::span<const uint8_t> stream) {
  if (stream.size() < 16) return 0;
  const size_t len = get16(stream.data() + 2);
  return len >= 16 && len <= stream.size() ? len : 0;
}

Result<DecodedMessage> IpfixDecoder::decode(std::span<const uint8_t> msg) {
  if (msg.size() < 16) return make_error("message shorter than the 16-byte header");
  DecodedMessage out;
  const uint8_t* p = msg.data();
  out.version = get16(p);
  out.length = get16(p + 2);
  out.export_time = get32(p + 4);
  out.sequence = get32(p + 8);
  out.observation_domain = get32(p + 12);
  if (out.version != 10) return make_error("version " + std::to_string(out.version) + ", not 10");
  if (out.length < 16 || out.length > msg.size())
    return make_error("header length " + std::to_string(out.length) + " does not fit the " +
                      std::to_string(msg.size()) + " bytes received");
  size_t off = 16;
  while (off < out.length) {
    if (out.length - off < 4) return make_error("truncated set header");
    const uint16_t set_id = get16(p + off);
    const uint16_t set_len = get16(p + off + 2);
    if (set_len < 4 || set_len > out.length - off) return make_error("bad set length");
    const size_t end = off + set_len;
    size_t q = off + 4;
    if (set_id == 2) {  // template set
      while (end - q >= 4) {
        const uint16_t tid = get16(p + q);
        const uint16_t count = get16(p + q + 2);
        q += 4;
        if (tid < 256) return make_error("template id below 256");
        std::vector<TemplateField> fields;
        for (uint16_t i = 0; i < count; ++i) {
          if (end - q < 4) return make_error("truncated template record");
          TemplateField f{uint16_t(get16(p + q) & 0x7fff), get16(p + q + 2), 0};
          const bool enterprise = get16(p + q) & 0x8000;
          q += 4;
          if (enterprise) {
            if (end - q < 4) return make_error("truncated enterprise number");
            f.enterprise = get32(p + q);
            q += 4;
          }
          fields.push_back(f);
        }
        templates_[{out.observation_domain, tid}] = std::move(fields);
        ++out.templates;
      }
    } else if (set_id == 3) {
      // Options templates: not used by us; skipped whole.
    } else if (set_id >= 256) {
      auto it = templates_.find({out.observation_domain, set_id});
      if (it == templates_.end()) {
        ++out.unknown_template_sets;
      } else {
        const std::vector<TemplateField>& fields = it->second;
        // Records until what is left is smaller than the smallest possible record (padding).
        size_t min_len = 0;
        for (const TemplateField& f : fields) min_len += f.length == 0xffff ? 1 : f.length;
        while (q < end && end - q >= std::max<size_t>(min_len, 1)) {
          DecodedRecord r;
          r.template_id = set_id;
          for (const TemplateField& f : fields) {
            size_t len = f.length;
            if (len == 0xffff) {
              if (q >= end) return make_error("truncated variable length");
              len = p[q++];
              if (len == 255) {
                if (end - q < 2) return make_error("truncated variable length");
                len = get16(p + q);
                q += 2;
              }
            }
            if (end - q < len) return make_error("truncated data record");
            r.fields.push_back(DecodedField{f.id, f.enterprise, {p + q, p + q + len}});
            q += len;
          }
          out.records.push_back(std::move(r));
          if (min_len == 0) break;  // a template of no fields: one empty record, not a loop
        }
      }
    } else {
      return make_error("reserved set id " + std::to_string(set_id));
    }
    off = end;
  }
  return out;
}

std::string format_ipv4(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
         std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255);
}

std::string format_ipv6(std::span<const uint8_t, 16> a) {
  uint16_t w[8];
  for (int i = 0; i < 8; ++i) w[i] = get16(a.data() + 2 * i);
  // RFC 5952 4.2: the longest run of two or more zero groups becomes "::", the first of equal
  // runs. (glibc's inet_ntop would also print IPv4-compatible ::a.b.c.d, which 5952 does not.)
  int best = -1, best_len = 1;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && w[j] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j == i ? i + 1 : j;
  }
  // RFC 5952 5: IPv4-mapped addresses end in the dotted quad.
  const bool mapped = best == 0 && best_len == 5 && w[5] == 0xffff;
  const int groups = mapped ? 6 : 8;
  std::string out;
  char buf[8];
  for (int i = 0; i < groups; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buf, sizeof(buf), "%x", w[i]);
    out += buf;
  }
  if (mapped) out += ":" + format_ipv4(uint32_t{get16(a.data() + 12)} << 16 | get16(a.data() + 14));
  return out;
}

std::string format_address(IpFamily family, uint32_t a4, const Ipv6Address& a6) {
  return family == IpFamily::kIpv6 ? format_ipv6(a6) : format_ipv4(a4);
}

}  // namespace exitgw::exporter
