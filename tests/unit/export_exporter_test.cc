// The exporter against in-process collectors on loopback: delivery, in-order replay after a
// UDP (ICMP unreachable) and a TCP outage, templates for a UDP collector that restarted
// unnoticed, restart from the spool, JSON lines, queue limits.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "control/export/exporter.h"
#include "control/export/ipfix_decode.h"

namespace exitgw::exporter {
namespace {

using namespace std::chrono_literals;

// A UDP or TCP collector on 127.0.0.1 that decodes whatever arrives.
class Collector {
 public:
  Collector(Transport t, uint16_t port = 0) : transport_(t) { open(port); }
  ~Collector() { close(); }
  uint16_t port() const { return port_; }

  void open(uint16_t port) {
    listen_fd_ = socket(AF_INET, transport_ == Transport::kUdp ? SOCK_DGRAM : SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (transport_ == Transport::kTcp) listen(listen_fd_, 4);
    decoder_ = IpfixDecoder();  // a new collector process knows no templates
  }
  void close() {
    if (conn_fd_ >= 0) ::close(conn_fd_);
    if (listen_fd_ >= 0) ::close(listen_fd_);
    conn_fd_ = listen_fd_ = -1;
    stream_.clear();
  }

  // Reads for `d`, decoding messages; returns false on a decode error.
  bool poll_for(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      int fd = transport_ == Transport::kUdp || conn_fd_ < 0 ? listen_fd_ : conn_fd_;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 10) <= 0) continue;
      if (transport_ == Transport::kTcp && conn_fd_ < 0) {
        conn_fd_ = accept(listen_fd_, nullptr, nullptr);
        decoder_ = IpfixDecoder();  // a new session: templates come again
        continue;
      }
      uint8_t buf[65536];
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (transport_ == Transport::kTcp) {
          ::close(conn_fd_);
          conn_fd_ = -1;
        }
        continue;
      }
      if (transport_ == Transport::kUdp) {
        if (!take(std::span(buf, size_t(n)))) return false;
      } else {
        stream_.insert(stream_.end(), buf, buf + n);
        while (size_t len = IpfixDecoder::next_message_length(stream_)) {
          if (!take(std::span(stream_.data(), len))) return false;
          stream_.erase(stream_.begin(), stream_.begin() + ptrdiff_t(len));
        }
      }
    }
    return true;
  }

  std::vector<DecodedRecord> records;
  std::vector<uint32_t> sequences;
  size_t unknown_template_sets = 0;  // data the collector could not decode (no template yet)
  size_t template_messages = 0;      // messages that carried templates

 private:
  bool take(std::span<const uint8_t> m) {
    auto d = decoder_.decode(m);
    if (!d.ok()) {
      ADD_FAILURE() << d.error();
      return false;
    }
    sequences.push_back(d->sequence);
    unknown_template_sets += d->unknown_template_sets;
    if (d->templates) ++template_messages;
    records.insert(records.end(), d->records.begin(), d->records.end());
    return true;
  }
  Transport transport_;
  int listen_fd_ = -1, conn_fd_ = -1;
  uint16_t port_ = 0;
  IpfixDecoder decoder_;
  std::vector<uint8_t> stream_;
};

FlowRecord flow(uint16_t key) {
  FlowRecord f;
  f.start_ms = 1700000000000;
  f.end_ms = 1700000001000;
  f.src_address = 0x6440000B;
  f.dst_address = 0xC633640A;
  f.src_port = key;
  f.dst_port = 443;
  f.protocol = 6;
  f.tx_packets = key;
  f.tx_bytes = 100u * key;
  return f;
}

// The flows' keys (source ports) in first-arrival order, duplicates (resends) removed.
std::vector<uint16_t> unique_keys(const std::vector<DecodedRecord>& recs) {
  std::vector<uint16_t> out;
  std::vector<bool> seen(65536);
  for (const DecodedRecord& r : recs) {
    const auto k = uint16_t(r.uint_of(ie::kSourceTransportPort));
    if (!seen[k]) out.push_back(k);
    seen[k] = true;
  }
  return out;
}

std::vector<uint16_t> range(uint16_t from, uint16_t to) {
  std::vector<uint16_t> v;
  for (uint16_t k = from; k < to; ++k) v.push_back(k);
  return v;
}

class ExportExporter : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/export_exporter_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  ExporterOptions options(Transport t, uint16_t port) {
    ExporterOptions o;
    o.collector =
        std::string(t == Transport::kUdp ? "udp" : "tcp") + "://127.0.0.1:" + std::to_string(port);
    o.spool_dir = dir_ + "/spool";
    o.spool_fsync = false;
    o.flush_ms = 20;
    o.retry_ms = 50;
    o.udp_confirm_ms = 50;
    o.max_messages_per_second = 0;
    return o;
  }
  // Runs the collector on its own thread while waiting for the exporter to settle.
  static bool settle(Exporter& e, Collector& c, bool spooled_is_enough = false) {
    std::atomic<bool> done{false};
    std::thread reader([&] {
      while (!done) c.poll_for(20ms);
    });
    const bool ok = e.wait_settled(10s, spooled_is_enough);
    std::this_thread::sleep_for(100ms);
    done = true;
    reader.join();
    return ok;
  }
  std::string dir_;
};

TEST_F(ExportExporter, DeliversOverUdpAndTcpWithConsistentSequenceNumbers) {
  for (Transport t : {Transport::kUdp, Transport::kTcp}) {
    Collector c(t);
    auto e = Exporter::create(options(t, c.port()));
    ASSERT_TRUE(e.ok()) << e.error();
    for (uint16_t k = 0; k < 300; ++k) ASSERT_TRUE((*e)->submit_flow(flow(k)));
    ASSERT_TRUE(settle(**e, c));
    EXPECT_EQ(unique_keys(c.records), range(0, 300));
    EXPECT_EQ(c.records.size(), 300u);
    EXPECT_EQ((*e)->counters().exported.load(), 300u);
    EXPECT_EQ((*e)->counters().sequence.load(), 300u);
    EXPECT_EQ((*e)->state(), CollectorState::kUp);
    std::filesystem::remove_all(dir_ + "/spool");
  }
}

TEST_F(ExportExporter, UdpOutageSpoolsAndReplaysEveryRecordInOrder) {
  Collector c(Transport::kUdp);
  const uint16_t port = c.port();
  auto e = Exporter::create(options(Transport::kUdp, port));
  ASSERT_TRUE(e.ok()) << e.error();
  for (uint16_t k = 0; k < 100; ++k) (*e)->submit_flow(flow(k));
  ASSERT_TRUE(settle(**e, c));
  c.close();  // the port is closed: ICMP port unreachable from now on
  for (uint16_t k = 100; k < 400; ++k) {
    (*e)->submit_flow(flow(k));
    if (k % 50 == 0) std::this_thread::sleep_for(30ms);
  }
  ASSERT_TRUE((*e)->wait_settled(5s, true));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ((*e)->state(), CollectorState::kDown);
  EXPECT_GE((*e)->counters().spool_records.load(), 300u);
  c.open(port);
  ASSERT_TRUE(settle(**e, c));
  EXPECT_EQ(unique_keys(c.records), range(0, 400));
  EXPECT_EQ((*e)->counters().dropped(), 0u);
  EXPECT_GE((*e)->counters().replayed.load(), 300u);
  EXPECT_EQ((*e)->counters().spool_records.load(), 0u);
}

// A UDP collector restarted while the exporter had nothing to send: no datagram met the closed
// port, so no ICMP error and no reconnect. The refresh triggers are off here (an hour, never by
// count), so only the resend after a quiet spell can make the new collector decode the data.
TEST_F(ExportExporter, UdpCollectorRestartedUnnoticedDecodesTheNextMessage) {
  Collector c(Transport::kUdp);
  const uint16_t port = c.port();
  ExporterOptions o = options(Transport::kUdp, port);
  o.template_refresh_seconds = 3600;
  o.template_refresh_messages = 0;
  o.template_idle_ms = 300;
  auto e = Exporter::create(o);
  ASSERT_TRUE(e.ok()) << e.error();
  for (uint16_t k = 0; k < 50; ++k) (*e)->submit_flow(flow(k));
  ASSERT_TRUE(settle(**e, c));
  ASSERT_EQ(unique_keys(c.records), range(0, 50));
  c.close();
  c.open(port);  // the restart: same port, empty template cache
  std::this_thread::sleep_for(400ms);
  for (uint16_t k = 50; k < 100; ++k) (*e)->submit_flow(flow(k));
  ASSERT_TRUE(settle(**e, c));
  EXPECT_EQ(c.unknown_template_sets, 0u);
  EXPECT_EQ(unique_keys(c.records), range(0, 100));
  EXPECT_EQ((*e)->counters().disconnects.load(), 0u);  // not the ICMP path
  EXPECT_EQ((*e)->counters().connects.load(), 1u);
}

// Under steady traffic (messages closer together than the quiet spell) templates are not
// repeated in every message: they cost only at the refresh.
TEST_F(ExportExporter, UdpTemplatesAreNotRepeatedWhileMessagesKeepFlowing) {
  Collector c(Transport::kUdp);
  ExporterOptions o = options(Transport::kUdp, c.port());
  o.template_refresh_seconds = 3600;
  o.template_refresh_messages = 0;
  o.template_idle_ms = 2000;
  auto e = Exporter::create(o);
  ASSERT_TRUE(e.ok()) << e.error();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) c.poll_for(20ms);
  });
  const uint64_t before = (*e)->counters().messages_sent.load();
  for (uint16_t k = 0; k < 10; ++k) {
    (*e)->submit_flow(flow(k));
    std::this_thread::sleep_for(60ms);
  }
  ASSERT_TRUE((*e)->wait_settled(5s));
  std::this_thread::sleep_for(100ms);
  done = true;
  reader.join();
  EXPECT_EQ(unique_keys(c.records), range(0, 10));
  EXPECT_GE((*e)->counters().messages_sent.load() - before, 5u);
  EXPECT_EQ(c.template_messages, 1u);  // the probe at connect only
}

TEST_F(ExportExporter, TcpOutageSpoolsAndReplaysEveryRecordInOrder) {
  Collector c(Transport::kTcp);
  const uint16_t port = c.port();
  auto e = Exporter::create(options(Transport::kTcp, port));
  ASSERT_TRUE(e.ok()) << e.error();
  for (uint16_t k = 0; k < 100; ++k) (*e)->submit_flow(flow(k));
  ASSERT_TRUE(settle(**e, c));
  c.close();
  for (uint16_t k = 100; k < 400; ++k) {
    (*e)->submit_flow(flow(k));
    if (k % 50 == 0) std::this_thread::sleep_for(30ms);
  }
  ASSERT_TRUE((*e)->wait_settled(5s, true));
  EXPECT_NE((*e)->state(), CollectorState::kUp);
  c.open(port);
  ASSERT_TRUE(settle(**e, c));
  EXPECT_EQ(unique_keys(c.records), range(0, 400));
  EXPECT_EQ((*e)->counters().dropped(), 0u);
  EXPECT_GE((*e)->counters().disconnects.load(), 1u);
}

TEST_F(ExportExporter, RecordsSpooledBeforeARestartAreReplayedFirst) {
  Collector c(Transport::kUdp);
  const uint16_t port = c.port();
  c.close();
  {
    auto e = Exporter::create(options(Transport::kUdp, port));
    ASSERT_TRUE(e.ok());
    for (uint16_t k = 0; k < 200; ++k) (*e)->submit_flow(flow(k));
    ASSERT_TRUE((*e)->wait_settled(5s, true));
  }  // destroyed with everything on disk
  c.open(port);
  auto e = Exporter::create(options(Transport::kUdp, port));
  ASSERT_TRUE(e.ok());
  for (uint16_t k = 200; k < 250; ++k) (*e)->submit_flow(flow(k));
  ASSERT_TRUE(settle(**e, c));
  EXPECT_EQ(unique_keys(c.records), range(0, 250));
}

TEST_F(ExportExporter, JsonLinesFollowTheFlowLogShapeAndOmitDestinationWhenOff) {
  ExporterOptions o;
  o.json_path = dir_ + "/flows.jsonl";
  o.node_id = "nTest";
  o.flush_ms = 10;
  auto e = Exporter::create(o);
  ASSERT_TRUE(e.ok()) << e.error();
  (*e)->submit_flow(flow(40000));
  (*e)->set_destination_logging(false);
  (*e)->submit_flow(flow(40001));
  (*e)->set_destination_logging(true);
  FlowRecord own = flow(40002);
  own.log_destination = false;
  (*e)->submit_flow(own);
  NatRecord n;
  n.kind = NatEventKind::kBlockAllocated;
  n.subscriber = 0x6440000B;
  n.public_address = 0xCB007105;
  n.port_first = 1024;
  n.port_last = 1535;
  (*e)->submit_nat_event(n);
  ASSERT_TRUE((*e)->wait_settled(2s));
  e->reset();
  std::ifstream in(o.json_path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("\"nodeId\":\"nTest\",\"start\":\"2023-11-14T22:13:20.000Z\",\"end\":"
                          "\"2023-11-14T22:13:21.000Z\",\"exitTraffic\":[{\"proto\":6,\"src\":"
                          "\"100.64.0.11:40000\",\"dst\":\"198.51.100.10:443\",\"txPkts\":40000"),
            std::string::npos)
      << lines[0];
  EXPECT_EQ(lines[0].find("\"logged\":\""), 1u);
  EXPECT_EQ(lines[1].find("\"dst\""), std::string::npos) << lines[1];
  EXPECT_EQ(lines[2].find("\"dst\""), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("\"natEvent\":{\"type\":\"block_allocated\",\"code\":16"),
            std::string::npos)
      << lines[3];
  EXPECT_NE(lines[3].find("\"portStart\":1024,\"portEnd\":1535"), std::string::npos);
}

TEST_F(ExportExporter, AFullQueueRefusesAndCountsInsteadOfBlocking) {
  ExporterOptions o;
  o.json_path = dir_ + "/flows.jsonl";
  o.queue_capacity = 4;
  o.flush_ms = 1000;
  auto e = Exporter::create(o);
  ASSERT_TRUE(e.ok());
  int refused = 0;
  for (uint16_t k = 0; k < 100; ++k) refused += !(*e)->submit_flow(flow(k));
  EXPECT_GT(refused, 0);
  EXPECT_EQ((*e)->counters().dropped_queue_full.load(), uint64_t(refused));
}

TEST_F(ExportExporter, BadOptionsAreRefusedWithAReason) {
  ExporterOptions o;
  o.collector = "udp://127.0.0.1";
  o.spool_dir = dir_;
  EXPECT_NE(Exporter::create(o).error().find("missing port"), std::string::npos);
  o.collector = "udp://127.0.0.1:4739";
  o.spool_dir.clear();
  EXPECT_NE(Exporter::create(o).error().find("spool directory"), std::string::npos);
  EXPECT_NE(Exporter::create(ExporterOptions{}).error().find("nothing to do"), std::string::npos);
}

}  // namespace
}  // namespace exitgw::exporter
