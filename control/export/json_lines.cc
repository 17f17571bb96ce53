// JSON line formatting (no escaping needed: every value is a number, address or fixed name,
// except node_id, which is escaped).
#include "control/export/json_lines.h"

#include <cerrno>
#include <cstring>
#include <ctime>

#include "control/export/ipfix_decode.h"

namespace exitgw::exporter {
namespace {

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string addr_port(uint32_t a, uint16_t port) {
  return format_ipv4(a) + ":" + std::to_string(port);
}

// RFC 5952 section 6: the IPv6 address in brackets, then the port (Go's netip.AddrPort form).
std::string addr_port(const Ipv6Address& a, uint16_t port) {
  return "[" + format_ipv6(a) + "]:" + std::to_string(port);
}

std::string source(const FlowRecord& f) {
  return f.family == IpFamily::kIpv6 ? addr_port(f.src_address6, f.src_port)
                                     : addr_port(f.src_address, f.src_port);
}

std::string destination(const FlowRecord& f) {
  return f.family == IpFamily::kIpv6 ? addr_port(f.dst_address6, f.dst_port)
                                     : addr_port(f.dst_address, f.dst_port);
}

}  // namespace

std::string rfc3339_ms(uint64_t unix_ms) {
  const time_t secs = time_t(unix_ms / 1000);
  tm t;
  gmtime_r(&secs, &t);
  char buf[40];
  const size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &t);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03uZ", unsigned(unix_ms % 1000));
  return buf;
}

std::string flow_json(const FlowRecord& f, bool with_destination, std::string_view node_id,
                      uint64_t logged_ms) {
  std::string s = "{\"logged\":\"" + rfc3339_ms(logged_ms) + "\",\"nodeId\":" + quoted(node_id) +
                  ",\"start\":\"" + rfc3339_ms(f.start_ms) + "\",\"end\":\"" +
                  rfc3339_ms(f.end_ms) +
                  "\",\"exitTraffic\":[{\"proto\":" + std::to_string(f.protocol) + ",\"src\":\"" +
                  source(f) + "\"";
  if (with_destination) s += ",\"dst\":\"" + destination(f) + "\"";
  s += ",\"txPkts\":" + std::to_string(f.tx_packets) +
       ",\"txBytes\":" + std::to_string(f.tx_bytes) +
       ",\"rxPkts\":" + std::to_string(f.rx_packets) +
       ",\"rxBytes\":" + std::to_string(f.rx_bytes) + "}]}";
  return s;
}

std::string nat_json(const NatRecord& n, std::string_view node_id, uint64_t logged_ms) {
  const size_t kind = static_cast<size_t>(n.kind);
  std::string s =
      "{\"logged\":\"" + rfc3339_ms(logged_ms) + "\",\"nodeId\":" + quoted(node_id) +
      ",\"natEvent\":{\"type\":\"" +
      std::string(kind < kNatEventKindNames.size() ? kNatEventKindNames[kind] : "unknown") +
      "\",\"code\":" + std::to_string(unsigned(nat_event_code(n.kind))) + ",\"time\":\"" +
      rfc3339_ms(n.time_ms) + "\",\"subscriber\":\"" +
      format_address(n.family, n.subscriber, n.subscriber6) + "\",\"public\":\"" +
      format_address(n.family, n.public_address, n.public_address6) + "\"";
  if (n.kind == NatEventKind::kBlockAllocated || n.kind == NatEventKind::kBlockReleased)
    s += ",\"portStart\":" + std::to_string(n.port_first) +
         ",\"portEnd\":" + std::to_string(n.port_last);
  s += ",\"worker\":" + std::to_string(n.worker) + "}}";
  return s;
}

Result<std::unique_ptr<JsonLinesWriter>> JsonLinesWriter::open(const std::string& path) {
  if (path == "-") return std::unique_ptr<JsonLinesWriter>(new JsonLinesWriter(stdout, false));
  FILE* f = std::fopen(path.c_str(), "ae");
  if (!f) return make_error("json log " + path + ": " + std::strerror(errno));
  return std::unique_ptr<JsonLinesWriter>(new JsonLinesWriter(f, true));
}

JsonLinesWriter::~JsonLinesWriter() {
  if (owned_)
    std::fclose(file_);
  else
    std::fflush(file_);
}

bool JsonLinesWriter::write(const std::string& line) {
  return std::fwrite(line.data(), 1, line.size(), file_) == line.size() &&
         std::fputc('\n', file_) != EOF;
}

void JsonLinesWriter::flush() {
  std::fflush(file_);
}

}  // namespace exitgw::exporter
