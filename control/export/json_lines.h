// JSON lines: flows in the tailnet's network-flow-log shape, NAT events beside them.
//
// A flow line is one netlogtype.Message with one exitTraffic entry:
//   {"logged":..., "nodeId":..., "start":..., "end":...,
//    "exitTraffic":[{"proto":6,"src":"100.64.0.11:40000","dst":"198.51.100.10:80",
//                    "txPkts":..,"txBytes":..,"rxPkts":..,"rxBytes":..}]}
// IPv6 flows write their addresses in RFC 5952 text form, bracketed before the port
// ("[fd7a:115c:a1e0::11]:40000"), as Go's netip.AddrPort does.
// src is the subscriber's tailnet address (pre-NAT), as an exit node logs it; "dst" is
// omitted when destination logging is off (the schema marks it omitempty). Times are RFC 3339
// UTC with milliseconds. NAT events have no place in that schema, so they are their own line:
//   {"logged":..., "nodeId":..., "natEvent":{"type":"block_allocated","code":14,"time":...,
//    "subscriber":"100.64.0.11","public":"203.0.113.5","portStart":1024,"portEnd":1535,...}}
// (NAT66 events: the addresses in RFC 5952 text.)
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "control/export/ipfix.h"

namespace exitgw::exporter {

std::string rfc3339_ms(uint64_t unix_ms);
std::string flow_json(const FlowRecord& f, bool with_destination, std::string_view node_id,
                      uint64_t logged_ms);
std::string nat_json(const NatRecord& n, std::string_view node_id, uint64_t logged_ms);

// Appends lines to a file ("-": stdout). I/O thread only.
class JsonLinesWriter {
 public:
  static Result<std::unique_ptr<JsonLinesWriter>> open(const std::string& path);
  ~JsonLinesWriter();
  bool write(const std::string& line);  // line without its newline
  void flush();

 private:
  JsonLinesWriter(FILE* f, bool owned) : file_(f), owned_(owned) {}
  FILE* file_;
  bool owned_;
};

}  // namespace exitgw::exporter
