// The flow-log exporter: IPFIX to a UDP or TCP collector and JSON lines, fed by the control
// thread through a bounded queue and run on its own I/O thread, with an on-disk spool so that
// records survive a collector outage (and a restart) and are replayed in order.
//
// Threads: submit_*() (any thread, typically control) only copies the record into a bounded
// queue under a short mutex, never doing I/O; a full queue drops the record, counted in
// dropped_queue_full. The I/O thread wakes every flush_ms (or when the queue fills past a
// quarter), writes JSON lines, frames IPFIX messages and sends them or spools them.
//
// Delivery: a record counts as exported once the collector is known to have it: for TCP
// when the peer's TCP acknowledged its bytes (SIOCOUTQ), for UDP when udp_confirm_ms passed
// after its datagram without an ICMP port unreachable (ECONNREFUSED on the connected socket).
// Until then it is kept in memory; when the collector goes away those records and everything
// newer go to the spool, oldest first, so the collector sees each record at least once and in
// order (a record may arrive twice around an outage). While the spool is non-empty new
// records are appended to it, and replay drains it before anything new is sent.
// Loss happens only: when the queue is full, when the spool is over spool_max_bytes (oldest
// segments dropped), on a spool write error, or (UDP) when a datagram vanishes without an
// ICMP error — use TCP where that matters. All are counted.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/result.h"
#include "control/export/collector_url.h"
#include "control/export/ipfix.h"

namespace exitgw::exporter {

struct ExporterOptions {
  std::string collector;  // udp://host:port or tcp://host:port; empty: JSON lines only
  std::string spool_dir;  // required with a collector
  uint64_t spool_max_bytes = 256ull << 20;
  uint64_t spool_segment_bytes = 1ull << 20;
  bool spool_fsync = true;
  std::string json_path;  // "" off, "-" stdout
  std::string node_id;    // the JSON lines' nodeId
  uint32_t observation_domain = 1;
  size_t max_message_bytes = 1400;
  // UDP (RFC 7011 section 8.4): a collector that restarted between two datagrams (so no ICMP
  // error told us) knows no templates. Templates therefore go out again: in the first message
  // after template_idle_ms without a datagram (the quiet time a restart hides in), and at the
  // latest every template_refresh_seconds or template_refresh_messages messages, which bounds
  // what a restart under steady traffic can cost. 0 disables a trigger. TCP: once per connection.
  uint32_t template_refresh_seconds = 10;
  uint32_t template_refresh_messages = 100;
  uint32_t template_idle_ms = 500;
  uint32_t enterprise_number = ie::kDocumentationPen;
  size_t queue_capacity = 65536;
  uint32_t flush_ms = 100;
  uint32_t retry_ms = 1000;       // between connection attempts while the collector is down
  uint32_t udp_confirm_ms = 200;  // > the collector's RTT: how long an ICMP error may take
  uint32_t connect_timeout_ms = 1000;
  uint32_t send_timeout_ms = 5000;          // TCP: a collector that stops reading counts as down
  uint32_t max_messages_per_second = 2000;  // paces replay so a UDP collector keeps up
  bool destination_logging = true;
};

enum class CollectorState : uint8_t { kDisabled, kDown, kProbing, kUp };
std::string_view collector_state_name(CollectorState s);

// Monotonic except spool_bytes, spool_records, sequence and state (levels).
struct ExporterCounters {
  std::atomic<uint64_t> submitted{0}, exported{0}, spooled{0}, replayed{0};
  std::atomic<uint64_t> dropped_queue_full{0}, dropped_spool_limit{0}, dropped_io_error{0};
  std::atomic<uint64_t> messages_sent{0}, json_lines{0}, connects{0}, disconnects{0};
  std::atomic<uint64_t> spool_bytes{0}, spool_records{0}, sequence{0};
  std::atomic<uint8_t> state{0};
  uint64_t dropped() const {
    return dropped_queue_full.load() + dropped_spool_limit.load() + dropped_io_error.load();
  }
};

class Exporter {
 public:
  // Validates everything (URL, spool directory writable, JSON path), then starts the thread.
  static Result<std::unique_ptr<Exporter>> create(const ExporterOptions& options);
  // Stops the thread after a last pass: queued records are sent or spooled, never dropped.
  ~Exporter();
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Never block on I/O; false when the queue is full (the record is counted as dropped).
  bool submit_nat_event(const NatRecord& event);
  bool submit_flow(const FlowRecord& flow);
  // The tailnet-wide switch; a flow carries its destination only when this and the record's
  // own log_destination both allow it. Applies to records submitted afterwards.
  void set_destination_logging(bool on) { destination_logging_.store(on); }
  bool destination_logging() const { return destination_logging_.load(); }

  const ExporterCounters& counters() const { return counters_; }
  CollectorState state() const { return CollectorState(counters_.state.load()); }

  // Waits until every submitted record is exported (spool empty too) or, with
  // spooled_is_enough, exported or on disk. For tests, the driver and shutdown; false on timeout.
  bool wait_settled(std::chrono::milliseconds timeout, bool spooled_is_enough = false);

 private:
  struct Item {
    std::variant<NatRecord, FlowRecord> record;
    bool with_destination = true;
  };
  class Io;  // the I/O thread's state: socket, encoder, spool, in-flight messages

  explicit Exporter(const ExporterOptions& options);
  bool enqueue(Item&& item);
  void run();

  ExporterOptions options_;
  ExporterCounters counters_;
  std::atomic<bool> destination_logging_;
  std::unique_ptr<Io> io_;

  std::mutex mu_;
  std::condition_variable wake_, settled_cv_;
  std::vector<Item> queue_;
  bool stop_ = false;
  uint64_t passes_ = 0;                                // I/O passes completed (guarded by mu_)
  bool idle_exported_ = false, idle_spooled_ = false;  // after the last pass (guarded by mu_)
  std::thread thread_;
};

}  // namespace exitgw::exporter
