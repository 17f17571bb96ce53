// Collector addresses: "udp://host:port" and "tcp://host:port" (IPv6 hosts in brackets).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace exitgw::exporter {

enum class Transport : uint8_t { kUdp, kTcp };

struct CollectorUrl {
  Transport transport = Transport::kUdp;
  std::string host;  // a name or a literal address, without brackets
  uint16_t port = 0;
};

// Syntax only; the host is resolved at each connection attempt (DNS may move the collector).
Result<CollectorUrl> parse_collector_url(std::string_view url);
std::string to_string(const CollectorUrl& url);

}  // namespace exitgw::exporter
