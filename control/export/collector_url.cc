// Parses collector URLs with errors that say what is wrong and what is expected.
#include "control/export/collector_url.h"

#include <charconv>

namespace exitgw::exporter {

Result<CollectorUrl> parse_collector_url(std::string_view url) {
  const std::string hint = " (expected udp://host:port or tcp://host:port)";
  const std::string quoted = "collector \"" + std::string(url) + "\": ";
  CollectorUrl out;
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return make_error(quoted + "no scheme" + hint);
  const std::string_view scheme = url.substr(0, scheme_end);
  if (scheme == "udp")
    out.transport = Transport::kUdp;
  else if (scheme == "tcp")
    out.transport = Transport::kTcp;
  else
    return make_error(quoted + "unsupported scheme \"" + std::string(scheme) + "\"" + hint);
  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    return make_error(quoted + "path, query or user info not allowed" + hint);
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return make_error(quoted + "unclosed '[' in host");
    host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':')
      return make_error(quoted + "missing port" + hint);
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) return make_error(quoted + "missing port" + hint);
    host = rest.substr(0, colon);
    if (host.find(':') != std::string_view::npos)
      return make_error(quoted + "IPv6 addresses go in brackets, e.g. udp://[::1]:4739");
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return make_error(quoted + "empty host" + hint);
  if (port.empty()) return make_error(quoted + "missing port" + hint);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size())
    return make_error(quoted + "port \"" + std::string(port) + "\" is not a number");
  if (value == 0 || value > 65535)
    return make_error(quoted + "port " + std::string(port) + " out of range 1-65535");
  out.host = std::string(host);
  out.port = uint16_t(value);
  return out;
}

std::string to_string(const CollectorUrl& url) {
  const bool v6 = url.host.find(':') != std::string::npos;
  return std::string(url.transport == Transport::kTcp ? "tcp://" : "udp://") +
         (v6 ? "[" + url.host + "]" : url.host) + ":" + std::to_string(url.port);
}

}  // namespace exitgw::exporter
