// Converts the data plane's NatEvent (TSC time) into the exporter's NatRecord (Unix time), for
// either family: NatEventAddresses is the one place that knows where an event keeps its
// addresses.
#pragma once

#include "common/nat_types.h"
#include "control/export/ipfix.h"

namespace exitgw::exporter {

// A NAT event's addresses by family. NAT44: host order in subscriber/public_address. NAT66:
// 16 bytes each, network order.
struct NatEventAddresses {
  IpFamily family = IpFamily::kIpv4;
  uint32_t subscriber = 0, public_address = 0;
  Ipv6Address subscriber6{}, public_address6{};
};

// Where `e` keeps them: NAT44 (family 4) in subscriber/public_address (host order), NAT66
// (family 6) in subscriber6/public_address6 (network order).
inline NatEventAddresses addresses_of(const dp::nat::NatEvent& e) {
  NatEventAddresses a;
  if (e.family == 6) {
    a.family = IpFamily::kIpv6;
    a.subscriber6 = e.subscriber6;
    a.public_address6 = e.public_address6;
    return a;
  }
  a.subscriber = e.subscriber;
  a.public_address = e.public_address;
  return a;
}

// `unix_ms` is e.time converted by the caller (control knows the TSC rate and its epoch).
inline NatRecord to_nat_record(const dp::nat::NatEvent& e, uint64_t unix_ms,
                               const NatEventAddresses& a) {
  using dp::nat::NatEventType;
  NatRecord r;
  r.time_ms = unix_ms;
  r.family = a.family;
  r.subscriber = a.subscriber;
  r.public_address = a.public_address;
  r.subscriber6 = a.subscriber6;
  r.public_address6 = a.public_address6;
  r.port_first = e.port_first;
  r.port_last = e.port_last;
  r.worker = e.worker;
  switch (e.type) {
    case NatEventType::kBlockAllocated:
      r.kind = NatEventKind::kBlockAllocated;
      break;
    case NatEventType::kBlockReleased:
      r.kind = NatEventKind::kBlockReleased;
      break;
    case NatEventType::kPoolExhausted:
      r.kind = NatEventKind::kPoolExhausted;
      break;
    case NatEventType::kPortLimit:
      r.kind = NatEventKind::kPortLimit;
      break;
    case NatEventType::kSessionLimit:
      r.kind = NatEventKind::kSessionLimit;
      break;
  }
  return r;
}

inline NatRecord to_nat_record(const dp::nat::NatEvent& e, uint64_t unix_ms) {
  return to_nat_record(e, unix_ms, addresses_of(e));
}

}  // namespace exitgw::exporter
