// Fuzzes the IPFIX decoder (the tests' and driver's reader): any bytes, never a crash.
// The input is split into messages by a leading length byte so templates carry across.
// Then the encoder's side: the input's first bytes as an IPv4 or IPv6 flow record and NAT
// event, encoded, framed with the templates and decoded again, must give back their addresses
// and ports (and the IPv6 addresses their RFC 5952 text, which inet_pton reads back the same).
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "control/export/ipfix.h"
#include "control/export/ipfix_decode.h"

namespace {

using namespace exitgw::exporter;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void round_trip(const uint8_t* data, size_t size) {
  constexpr size_t kNeed = 1 + 3 * 16 + 3 * 2;
  if (size < kNeed) return;
  FlowRecord f;
  f.family = data[0] & 1 ? IpFamily::kIpv6 : IpFamily::kIpv4;
  const bool with_destination = data[0] & 2;
  const uint8_t* p = data + 1;
  std::memcpy(f.src_address6.data(), p, 16);
  std::memcpy(f.dst_address6.data(), p + 16, 16);
  std::memcpy(f.post_nat_address6.data(), p + 32, 16);
  std::memcpy(&f.src_address, p, 4);
  std::memcpy(&f.dst_address, p + 16, 4);
  std::memcpy(&f.post_nat_address, p + 32, 4);
  p += 48;
  f.src_port = uint16_t(p[0] << 8 | p[1]);
  f.dst_port = uint16_t(p[2] << 8 | p[3]);
  f.post_nat_port = uint16_t(p[4] << 8 | p[5]);
  const EncodedRecord r = encode_flow(f, with_destination);
  check(r.length == template_record_length(r.template_id));
  IpfixEncoder enc(EncoderOptions{});
  IpfixDecoder dec;
  auto m = dec.decode(enc.encode(std::span(&r, 1), 1).at(0).bytes);
  check(m.ok() && m->records.size() == 1);
  const DecodedRecord& d = m->records[0];
  const bool v6 = f.family == IpFamily::kIpv6;
  const auto same = [&](uint16_t id4, uint16_t id6, uint32_t a4, const Ipv6Address& a6) {
    if (v6) {
      const DecodedField* x = d.find(id6);
      check(x != nullptr && x->value.size() == 16 &&
            std::memcmp(x->value.data(), a6.data(), 16) == 0);
      uint8_t back[16];
      check(inet_pton(AF_INET6, format_ipv6(a6).c_str(), back) == 1 &&
            std::memcmp(back, a6.data(), 16) == 0);
    } else {
      check(!d.has(id6) && d.uint_of(id4) == a4);
    }
  };
  same(ie::kSourceIPv4Address, ie::kSourceIPv6Address, f.src_address, f.src_address6);
  same(ie::kPostNATSourceIPv4Address, ie::kPostNATSourceIPv6Address, f.post_nat_address,
       f.post_nat_address6);
  if (with_destination)
    same(ie::kDestinationIPv4Address, ie::kDestinationIPv6Address, f.dst_address, f.dst_address6);
  else
    check(!d.has(ie::kDestinationIPv4Address) && !d.has(ie::kDestinationIPv6Address));
  check(d.uint_of(ie::kSourceTransportPort) == f.src_port);
  check(d.uint_of(ie::kPostNAPTSourceTransportPort) == f.post_nat_port);

  // The same addresses as a NAT event of the kind the first byte names (NAT44 or NAT66).
  NatRecord n;
  n.family = f.family;
  n.kind = NatEventKind((data[0] >> 2) % size_t(NatEventKind::kCount));
  n.subscriber = f.src_address;
  n.public_address = f.post_nat_address;
  n.subscriber6 = f.src_address6;
  n.public_address6 = f.post_nat_address6;
  n.port_first = f.src_port;
  n.port_last = f.dst_port;
  const EncodedRecord e = encode_nat(n);
  check(e.length == template_record_length(e.template_id));
  auto nm = dec.decode(enc.encode(std::span(&e, 1), 2).at(0).bytes);
  check(nm.ok() && nm->records.size() == 1);
  const DecodedRecord& nd = nm->records[0];
  const auto same_nat = [&](uint16_t id4, uint16_t id6, uint32_t a4, const Ipv6Address& a6) {
    if (v6) {
      const DecodedField* x = nd.find(id6);
      check(x != nullptr && x->value.size() == 16 &&
            std::memcmp(x->value.data(), a6.data(), 16) == 0 && !nd.has(id4));
    } else {
      check(nd.uint_of(id4) == a4 && !nd.has(id6));
    }
  };
  same_nat(ie::kSourceIPv4Address, ie::kSourceIPv6Address, n.subscriber, n.subscriber6);
  same_nat(ie::kPostNATSourceIPv4Address, ie::kPostNATSourceIPv6Address, n.public_address,
           n.public_address6);
  check(nd.uint_of(ie::kNatEvent) == uint64_t(nat_event_code(n.kind)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  IpfixDecoder decoder;
  std::span<const uint8_t> in(data, size);
  // Whole input as one message, then as a TCP-like stream of messages.
  (void)decoder.decode(in);
  while (size_t len = IpfixDecoder::next_message_length(in)) {
    auto m = decoder.decode(in.first(len));
    if (m.ok())
      for (const auto& r : m->records)
        for (const auto& f : r.fields) {
          (void)f.as_uint();
          if (f.value.size() == 16)
            (void)format_ipv6(std::span<const uint8_t, 16>(f.value.data(), 16));
        }
    in = in.subspan(len);
  }
  round_trip(data, size);
  return 0;
}
