// Converts the data plane's NatEvent (TSC time) into the exporter's NatRecord (Unix time).
#pragma once

#include "control/export/ipfix.h"
#include "common/nat_types.h"

namespace exitgw::exporter {

// `unix_ms` is e.time converted by the caller (control knows the TSC rate and its epoch).
inline NatRecord to_nat_record(const dp::nat::NatEvent& e, uint64_t unix_ms) {
  using dp::nat::NatEventType;
  NatRecord r;
  r.time_ms = unix_ms;
  r.subscriber = e.subscriber;
  r.public_address = e.public_address;
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

}  // namespace exitgw::exporter
