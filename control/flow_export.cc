// Flow accounting and NAT events on the control thread: set-up from the flags, the bounded
// drain from the workers' rings to the exporter, and their metrics.
#include "control/flow_export.h"

#include <rte_cycles.h>

#include <chrono>
#include <string>

#include "control/export/nat_event.h"
#include "control/flags.h"
#include "control/log.h"
#include "control/net_parse.h"

namespace exitgw {

using prometheus::MetricType;

void FlowExport::init_nat_events() {
  for (unsigned w = 0; w < ctx_.n_workers; ++w) {
    nat_event_rings_.push_back(std::make_unique<dp::nat::NatEventRing>(4096));
    ctx_.workers[w].nat_events = nat_event_rings_.back().get();
  }
}

void FlowExport::flush_flows() {
  for (const auto& table : flows_) {
    while (table->active() > 0) {
      table->expire_all(table->ring().capacity() - table->ring().size());
      drain_flow_records();
    }
    drain_flow_records();
  }
}

void FlowExport::set_destination_logging(bool on) {
  destination_logging_ = on;
  if (exporter_) exporter_->set_destination_logging(on);
}

bool FlowExport::collector_up() const {
  return exporter_ &&
         exporter_->counters().state.load() == static_cast<uint8_t>(exporter::CollectorState::kUp);
}

Status FlowExport::init_exporter(const std::string& node) {
  tsc_epoch_ = rte_rdtsc();
  unix_ms_epoch_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count());
  destination_logging_ = FLAGS_destination_logging;
  if (FLAGS_ipfix_collector.empty() && FLAGS_flow_log_json.empty()) return Ok{};
  exporter::ExporterOptions opt;
  opt.collector = FLAGS_ipfix_collector;
  opt.spool_dir = FLAGS_export_spool_dir;
  opt.spool_max_bytes = uint64_t{FLAGS_export_spool_max_mb} << 20;
  opt.json_path = FLAGS_flow_log_json;
  opt.node_id = node;
  opt.destination_logging = FLAGS_destination_logging;
  auto e = exporter::Exporter::create(opt);
  if (!e) return make_error("export: " + e.error());
  exporter_ = std::move(*e);
  log_info(
      "export: " + (opt.collector.empty() ? std::string("no IPFIX collector") : opt.collector) +
      (opt.json_path.empty() ? "" : ", JSON lines to " + opt.json_path) + ", spool " +
      opt.spool_dir + ", destination logging " + (opt.destination_logging ? "on" : "off"));
  return Ok{};
}

Status FlowExport::init_flows() {
  if (!FLAGS_flow_accounting || !exporter_) {
    log_info(std::string("flow accounting off") +
             (FLAGS_flow_accounting ? " (no exporter configured)" : ""));
    return Ok{};
  }
  if (FLAGS_flow_table_size == 0 || FLAGS_flow_table_size > (1u << 24))
    return make_error("--flow_table_size must be 1..16777216");
  if (FLAGS_flow_idle_timeout == 0 || FLAGS_flow_active_timeout == 0)
    return make_error("--flow_idle_timeout and --flow_active_timeout must be at least 1 second");
  try {
    for (unsigned w = 0; w < ctx_.n_workers; ++w) {
      // Allocated here, once; the worker that owns it never allocates.
      flows_.push_back(std::make_unique<dp::flow::FlowTable>(dp::flow::FlowConfig::with_timeouts(
          FLAGS_flow_table_size, FLAGS_flow_idle_timeout, FLAGS_flow_active_timeout,
          rte_get_tsc_hz(), static_cast<uint8_t>(w))));
      ctx_.workers[w].flows = flows_.back().get();
    }
  } catch (const std::bad_alloc&) {
    return make_error("cannot allocate flow tables of " + std::to_string(FLAGS_flow_table_size) +
                      " flows per worker: lower --flow_table_size");
  }
  log_info("flow accounting: " + std::to_string(FLAGS_flow_table_size) +
           " flows per worker, idle " + std::to_string(FLAGS_flow_idle_timeout) + " s, active " +
           std::to_string(FLAGS_flow_active_timeout) + " s");
  return Ok{};
}

uint64_t FlowExport::tsc_to_unix_ms(uint64_t tsc) const {
  const auto since = static_cast<int64_t>(tsc - tsc_epoch_);
  return unix_ms_epoch_ + static_cast<uint64_t>(static_cast<__int128>(since) * 1000 /
                                                static_cast<__int128>(rte_get_tsc_hz()));
}

// Finished and interval flow records from each worker's ring to the exporter, bounded per
// pass like the NAT events (the loop comes back at once).
void FlowExport::drain_flow_records() {
  for (const auto& table : flows_) {
    dp::flow::FlowExport e;
    for (int budget = 1024; budget > 0 && table->ring().pop(&e); --budget) {
      exporter::FlowRecord r;
      r.start_ms = tsc_to_unix_ms(e.first_tsc);
      r.end_ms = tsc_to_unix_ms(e.last_tsc);
      r.src_address = rte_be_to_cpu_32(e.key.src_address);
      r.dst_address = rte_be_to_cpu_32(e.key.dst_address);
      r.src_port = rte_be_to_cpu_16(e.key.src_port);
      r.dst_port = rte_be_to_cpu_16(e.key.dst_port);
      r.post_nat_address = rte_be_to_cpu_32(e.post_nat_address);
      r.post_nat_port = rte_be_to_cpu_16(e.post_nat_port);
      r.protocol = e.key.protocol;
      r.tcp_flags = e.tcp_flags;
      r.tx_packets = e.tx_packets;
      r.tx_bytes = e.tx_bytes;
      r.rx_packets = e.rx_packets;
      r.rx_bytes = e.rx_bytes;
      r.peer_id = e.key.peer_slot;
      r.log_destination = destination_logging_;
      exporter_->submit_flow(r);
    }
  }
}

// NAT events become one structured log line each (RFC 8158's fields); the IPFIX exporter
// will take them from here.
void FlowExport::drain() {
  static const char* const kNames[] = {"block_allocated", "block_released", "pool_exhausted",
                                       "port_limit", "session_limit"};
  for (unsigned w = 0; w < ctx_.n_workers; ++w) {
    dp::nat::NatEventRing* ring = ctx_.workers[w].nat_events;
    if (ring == nullptr) continue;
    dp::nat::NatEvent e;
    for (int budget = 256; budget > 0 && ring->pop(&e); --budget) {
      const unsigned type = static_cast<unsigned>(e.type);
      const bool v6 = e.family == 6;
      log_info(std::string("nat_event type=") + (type < 5 ? kNames[type] : "unknown") +
               " worker=" + std::to_string(e.worker) + " subscriber=" +
               (v6 ? format_ipv6(e.subscriber6.data()) : format_ipv4(e.subscriber)) + " public=" +
               (v6 ? format_ipv6(e.public_address6.data()) : format_ipv4(e.public_address)) +
               " ports=" + std::to_string(e.port_first) + "-" + std::to_string(e.port_last));
      // The exporter's NAT record has IPv4 fields only: NAT66 events are logged above until it
      // has IPv6 ones (control/export is another change's).
      if (exporter_ && !v6) {
        const uint64_t ms = unix_ms_epoch_ + (e.time - tsc_epoch_) * 1000 / rte_get_tsc_hz();
        exporter_->submit_nat_event(exporter::to_nat_record(e, ms));
      }
    }
  }
  if (exporter_) drain_flow_records();
}

void FlowExport::render_metrics(MetricFamilies& mf) const {
  if (exporter_) render_export_metrics(mf);
  if (flows_.empty()) return;
  auto& created = mf.family("exitgw_flows_created_total", "Flows the workers started tracking",
                            MetricType::Counter);
  auto& active =
      mf.family("exitgw_flows_active", "Flows in the workers' flow tables", MetricType::Gauge);
  auto& records = mf.family("exitgw_flow_records_emitted_total",
                            "Flow records the workers handed to the control thread for export",
                            MetricType::Counter);
  auto& lost = mf.family("exitgw_flow_records_lost_total",
                         "Flow records lost because the ring to the control thread was full",
                         MetricType::Counter);
  auto& untracked = mf.family("exitgw_flow_untracked_packets_total",
                              "Packets not accounted because the worker's flow table was full",
                              MetricType::Counter);
  for (size_t w = 0; w < flows_.size(); ++w) {
    const dp::flow::FlowCounters& c = flows_[w]->counters();
    const Labels wl{{"worker", std::to_string(w)}};
    mf.counter(created, wl, double(c.created.get()));
    mf.gauge(active, wl, double(c.active()));
    mf.counter(records, wl, double(c.records.get()));
    mf.counter(lost, wl, double(c.ring_full.get()));
    mf.counter(untracked, wl, double(c.untracked.get()));
  }
}

void FlowExport::render_export_metrics(MetricFamilies& mf) const {
  const exporter::ExporterCounters& c = exporter_->counters();
  auto& records = mf.family("exitgw_export_records_total",
                            "Flow and NAT records by fate: exported (confirmed by the collector), "
                            "spooled, replayed from the spool, dropped",
                            MetricType::Counter);
  mf.counter(records, {{"fate", "exported"}}, double(c.exported.load()));
  mf.counter(records, {{"fate", "spooled"}}, double(c.spooled.load()));
  mf.counter(records, {{"fate", "replayed"}}, double(c.replayed.load()));
  mf.counter(records, {{"fate", "dropped_queue_full"}}, double(c.dropped_queue_full.load()));
  mf.counter(records, {{"fate", "dropped_spool_limit"}}, double(c.dropped_spool_limit.load()));
  mf.counter(records, {{"fate", "dropped_io_error"}}, double(c.dropped_io_error.load()));
  mf.gauge(mf.family("exitgw_export_spool_bytes", "Bytes waiting in the on-disk spool",
                     MetricType::Gauge),
           {}, double(c.spool_bytes.load()));
  mf.gauge(mf.family("exitgw_export_collector_up", "1 while the IPFIX collector takes records",
                     MetricType::Gauge),
           {}, c.state.load() == static_cast<uint8_t>(exporter::CollectorState::kUp) ? 1 : 0);
}

}  // namespace exitgw
