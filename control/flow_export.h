// Flow accounting and NAT events on the control thread: the exporter (IPFIX, JSON lines, the
// spool), the workers' flow tables and NAT event rings (control allocates them, each worker
// fills its own), and the bounded drain from those rings to the exporter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "control/export/exporter.h"
#include "control/metrics.h"
#include "common/dataplane_context.h"
#include "dataplane/flow/flow_table.h"
#include "common/nat_types.h"

namespace exitgw {

class FlowExport {
 public:
  explicit FlowExport(dp::DataplaneContext& ctx) : ctx_(ctx) {}
  FlowExport(const FlowExport&) = delete;
  FlowExport& operator=(const FlowExport&) = delete;

  // The exporter from --ipfix_collector / --flow_log_json (neither: no exporter) and
  // --destination_logging.
  Status init_exporter(const std::string& node);
  // One NAT event ring per worker; control's, so what workers pushed last can be drained after
  // they stop.
  void init_nat_events();
  // One flow table per family per worker with --flow_accounting and an exporter (else accounting is
  // off).
  Status init_flows();

  // NAT events to the log and the exporter, flow records to the exporter; bounded per pass.
  void drain();
  // The workers are stopped, so their flow tables are control's: every open flow goes out.
  void flush_flows();
  // Closes the exporter: it flushes what it can; the rest stays in the spool for the next start.
  void close() { exporter_.reset(); }

  void set_destination_logging(bool on);
  bool destination_logging() const { return destination_logging_; }
  bool has_exporter() const { return exporter_ != nullptr; }
  bool collector_up() const;
  void render_metrics(MetricFamilies& mf) const;

 private:
  uint64_t tsc_to_unix_ms(uint64_t tsc) const;
  void drain_flow_records();
  template <class Table>
  void drain_table(Table& table);
  template <class Table>
  void flush_table(Table& table);
  void render_export_metrics(MetricFamilies& mf) const;

  dp::DataplaneContext& ctx_;
  std::unique_ptr<exporter::Exporter> exporter_;
  bool destination_logging_ = false;
  uint64_t tsc_epoch_ = 0, unix_ms_epoch_ = 0;  // converts worker TSC times to Unix time
  // One flow table per family per worker (empty: accounting off), published as
  // ctx.workers[w].flows and .flows6.
  std::vector<std::unique_ptr<dp::flow::FlowTable>> flows_;
  std::vector<std::unique_ptr<dp::flow::FlowTable6>> flows6_;
  std::vector<std::unique_ptr<dp::nat::NatEventRing>> nat_event_rings_;
};

}  // namespace exitgw
