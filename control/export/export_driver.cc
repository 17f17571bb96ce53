// Test driver for the exporter: reads records from a JSON file, exports them to a collector
// (with a spool directory and optional JSON lines), waits until they settle, prints counters.
//
// usage: export_driver --records FILE --url URL --spool DIR [--json PATH] [--node-id ID]
//          [--pace-ms N] [--settle exported|spooled] [--timeout-s N] [--no-destination]
//          [--retry-ms N] [--confirm-ms N] [--rate N] [--mtu N] [--spool-max-bytes N]
//          [--pause-after N --pause-ms N] [--template-refresh-s N] [--template-idle-ms N]
// --pause-after: after N records, submit nothing for --pause-ms (a quiet spell, as when a
// collector restarts while the gateway has nothing to export).
// Records: [{"type":"nat","kind":"block_allocated","time_ms":..,"subscriber":"100.64.0.11",
//   "public":"203.0.113.5","port_first":1024,"port_last":1535,"worker":0},
//  {"type":"flow","start_ms":..,"end_ms":..,"src":"100.64.0.11:40000",
//   "dst":"198.51.100.10:80","post_nat":"203.0.113.5:1030","proto":6,"tcp_flags":27,
//   "tx_pkts":..,"tx_bytes":..,"rx_pkts":..,"rx_bytes":..,"peer_id":7,"log_destination":true}]
// An IPv6 flow writes its addresses "[2001:db8::1]:443" (src, dst and post_nat alike); a NAT66
// event its subscriber and public address as IPv6 text.
// Exit status: 0 settled, 1 bad usage or input, 3 not settled before the timeout.
#include <arpa/inet.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "control/export/exporter.h"

using exitgw::exporter::Exporter;
using exitgw::exporter::ExporterOptions;
using exitgw::exporter::FlowRecord;
using exitgw::exporter::NatEventKind;
using exitgw::exporter::NatRecord;
using Json = nlohmann::json;

namespace {

uint32_t ipv4(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) throw std::runtime_error("bad address " + s);
  return ntohl(a.s_addr);
}

std::pair<uint32_t, uint16_t> addr_port(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("no port in " + s);
  return {ipv4(s.substr(0, colon)), uint16_t(std::stoul(s.substr(colon + 1)))};
}

exitgw::exporter::Ipv6Address ipv6(const std::string& s) {
  exitgw::exporter::Ipv6Address a{};
  if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1) throw std::runtime_error("bad address " + s);
  return a;
}

// "[2001:db8::1]:443": an IPv6 address and port.
std::pair<exitgw::exporter::Ipv6Address, uint16_t> addr_port6(const std::string& s) {
  const size_t close = s.find("]:");
  if (s.empty() || s[0] != '[' || close == std::string::npos)
    throw std::runtime_error("not [address]:port: " + s);
  return {ipv6(s.substr(1, close - 1)), uint16_t(std::stoul(s.substr(close + 2)))};
}

// Either family, by the source's form; all three addresses must be of it.
void set_addresses(exitgw::exporter::FlowRecord& f, const Json& r) {
  const std::string src = r.at("src");
  if (!src.empty() && src[0] == '[') {
    f.family = exitgw::exporter::IpFamily::kIpv6;
    std::tie(f.src_address6, f.src_port) = addr_port6(src);
    std::tie(f.dst_address6, f.dst_port) = addr_port6(r.at("dst"));
    std::tie(f.post_nat_address6, f.post_nat_port) = addr_port6(r.at("post_nat"));
  } else {
    std::tie(f.src_address, f.src_port) = addr_port(src);
    std::tie(f.dst_address, f.dst_port) = addr_port(r.at("dst"));
    std::tie(f.post_nat_address, f.post_nat_port) = addr_port(r.at("post_nat"));
  }
}

NatEventKind kind_of(const std::string& s) {
  for (size_t i = 0; i < exitgw::exporter::kNatEventKindNames.size(); ++i)
    if (exitgw::exporter::kNatEventKindNames[i] == s) return NatEventKind(i);
  throw std::runtime_error("unknown NAT event kind " + s);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--no-destination") {
      args[k] = "1";
    } else if (k.rfind("--", 0) == 0 && i + 1 < argc) {
      args[k] = argv[++i];
    } else {
      std::fprintf(stderr, "export_driver: unexpected argument %s\n", argv[i]);
      return 1;
    }
  }
  auto arg = [&](const char* k, const std::string& d = "") {
    auto it = args.find(k);
    return it == args.end() ? d : it->second;
  };
  ExporterOptions o;
  o.collector = arg("--url");
  o.spool_dir = arg("--spool");
  o.json_path = arg("--json");
  o.node_id = arg("--node-id", "nExitgwTest");
  o.retry_ms = uint32_t(std::stoul(arg("--retry-ms", "300")));
  o.udp_confirm_ms = uint32_t(std::stoul(arg("--confirm-ms", "100")));
  o.max_messages_per_second = uint32_t(std::stoul(arg("--rate", "2000")));
  o.max_message_bytes = std::stoul(arg("--mtu", "1400"));
  o.spool_max_bytes = std::stoull(arg("--spool-max-bytes", std::to_string(64ull << 20)));
  o.flush_ms = 50;
  o.template_refresh_seconds =
      uint32_t(std::stoul(arg("--template-refresh-s", std::to_string(o.template_refresh_seconds))));
  o.template_idle_ms =
      uint32_t(std::stoul(arg("--template-idle-ms", std::to_string(o.template_idle_ms))));
  const size_t pause_after = std::stoul(arg("--pause-after", "0"));
  const unsigned pause_ms = unsigned(std::stoul(arg("--pause-ms", "0")));
  o.destination_logging = !args.count("--no-destination");
  const unsigned pace_ms = unsigned(std::stoul(arg("--pace-ms", "0")));
  const bool spooled_is_enough = arg("--settle", "exported") == "spooled";
  const int timeout_s = std::stoi(arg("--timeout-s", "60"));

  Json records = Json::array();
  if (!arg("--records").empty()) {
    std::ifstream in(arg("--records"));
    try {
      records = Json::parse(in);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "export_driver: %s: %s\n", arg("--records").c_str(), e.what());
      return 1;
    }
  }
  auto exporter = Exporter::create(o);
  if (!exporter) {
    std::fprintf(stderr, "export_driver: %s\n", exporter.error().c_str());
    return 1;
  }
  try {
    size_t submitted = 0;
    for (const Json& r : records) {
      if (pause_after && submitted++ == pause_after)
        std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      if (r.at("type") == "nat") {
        NatRecord n;
        n.kind = kind_of(r.at("kind"));
        n.time_ms = r.at("time_ms");
        const std::string subscriber = r.at("subscriber"), public_address = r.at("public");
        if (subscriber.find(':') != std::string::npos) {  // NAT66
          n.family = exitgw::exporter::IpFamily::kIpv6;
          n.subscriber6 = ipv6(subscriber);
          n.public_address6 = ipv6(public_address);
        } else {
          n.subscriber = ipv4(subscriber);
          n.public_address = ipv4(public_address);
        }
        n.port_first = r.value("port_first", 0);
        n.port_last = r.value("port_last", 0);
        n.worker = r.value("worker", 0);
        (*exporter)->submit_nat_event(n);
      } else {
        FlowRecord f;
        f.start_ms = r.at("start_ms");
        f.end_ms = r.at("end_ms");
        set_addresses(f, r);
        f.protocol = r.at("proto");
        f.tcp_flags = r.value("tcp_flags", 0);
        f.tx_packets = r.at("tx_pkts");
        f.tx_bytes = r.at("tx_bytes");
        f.rx_packets = r.value("rx_pkts", 0);
        f.rx_bytes = r.value("rx_bytes", 0);
        f.peer_id = r.value("peer_id", 0);
        f.log_destination = r.value("log_destination", true);
        (*exporter)->submit_flow(f);
      }
      if (pace_ms) std::this_thread::sleep_for(std::chrono::milliseconds(pace_ms));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "export_driver: bad record: %s\n", e.what());
    return 1;
  }
  const bool settled =
      (*exporter)->wait_settled(std::chrono::seconds(timeout_s), spooled_is_enough);
  const auto& c = (*exporter)->counters();
  Json out = {{"settled", settled},
              {"submitted", c.submitted.load()},
              {"exported", c.exported.load()},
              {"spooled", c.spooled.load()},
              {"replayed", c.replayed.load()},
              {"dropped", c.dropped()},
              {"messages", c.messages_sent.load()},
              {"sequence", c.sequence.load()},
              {"spool_records", c.spool_records.load()},
              {"spool_bytes", c.spool_bytes.load()},
              {"connects", c.connects.load()},
              {"disconnects", c.disconnects.load()},
              {"state", std::string(exitgw::exporter::collector_state_name((*exporter)->state()))}};
  exporter->reset();
  std::printf("%s\n", out.dump().c_str());
  return settled ? 0 : 3;
}
