// The gateway process on the main lcore: builds the data plane, launches the workers, runs
// the control loop (punts, events, timers) and serves metrics until asked to stop.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <rte_mempool.h>

#include "common/result.h"
#include "control/peer_update.h"
#include "control/domain_policy.h"
#include "control/exit_policy.h"
#include "control/heartbeat.h"
#include "control/exception_port.h"
#include "control/flow_export.h"
#include "control/metrics.h"
#include "control/services.h"
#include "control/neighbor.h"
#include "control/updates.h"
#include "control/wireguard.h"
#include "dataplane/nat/nat_config.h"
#include "common/dataplane_context.h"

namespace exitgw {

// Values the control loop publishes for the metrics thread (which must not touch
// control-owned containers).
struct ControlStats {
  std::atomic<uint64_t> neighbors{0}, neighbor_unresolved_drops{0}, arp_requests_sent{0};
  std::atomic<uint64_t> neighbors6{0}, nd_solicitations_sent{0};
  std::atomic<double> busy_ratio[dp::kMaxWorkers] = {};
  std::atomic<bool> link_up[dp::kMaxPorts] = {};
  // The device's own counters (rte_eth_stats_get): what the NIC or the kernel ring lost
  // before a worker saw it, and what it failed to send.
  struct PortDeviceStats {
    std::atomic<uint64_t> rx_missed{0}, rx_errors{0}, rx_nombuf{0}, tx_errors{0};
  } port_device[dp::kMaxPorts];
};

class Gateway {
 public:
  Gateway();
  ~Gateway();
  // Reads the flags, sets up pool, ports, tables and rings. Nothing runs yet.
  Status init();
  // Launches workers and the metrics listener, then runs the control loop until `stop`.
  int run(const std::atomic<bool>& stop);

 private:
  Status init_ports();
  Status init_nat();
  Status init_nptv6();
  Status init_nptv6_map();
  Status init_nat66();
  void install_steering();
  // The NAT settings NAT44 and NAT66 share (mode, filtering, ports, blocks, limits, timeouts).
  Status nat_settings(dp::nat::NatConfig* cfg);
  // The result, or nullopt while the update's policy classifier builds (finish_policy_update()
  // answers it once it is in force).
  std::optional<UpdateResult> apply_update(const Update& u, const std::string& source);
  // Logs the result, advances the generation when it applied.
  UpdateResult settle_update(UpdateResult r, const std::string& source);
  // Answers the update in flight once the policy reported it in force (or refused).
  void finish_policy_update();
  void publish_admin_view();
  void drain_workers(uint64_t now_ms, uint64_t now_ns);
  void drain_events(uint64_t now_ms, uint64_t now_ns);  // every worker's event ring
  void sample_stats();
  std::string render_metrics();
  void render_wireguard_metrics(MetricFamilies& mf);
  void render_nat_metrics(MetricFamilies& mf);
  // One family's NAT series: NAT44 as exitgw_nat_*, NAT66 as exitgw_nat66_* (same shapes).
  void render_nat_family_metrics(MetricFamilies& mf, const dp::nat::NatConfig& cfg);
  void render_policy_metrics(MetricFamilies& mf);
  void render_tailnet_metrics(MetricFamilies& mf);
  Status init_policy();
  Readiness readiness();
  void shutdown();
  // A file watcher applied a change: the generation advances, as for any other update.
  void note_file_update(const char* source);
  // Any applied update: generation, last update and its source's last success.
  void note_applied(const std::string& source);
  // Set by ExitPolicy's Done callback for the policy update being applied or in flight.
  std::optional<Status> policy_done_;

  std::unique_ptr<dp::DataplaneContext> ctx_;
  rte_mempool* pool_ = nullptr;
  std::unique_ptr<NeighborTable> neighbors_;
  std::unique_ptr<WireGuard> wg_;
  std::unique_ptr<ExitPolicy> policy_;
  std::unique_ptr<DomainPolicy> domains_;
  std::unique_ptr<FlowExport> flow_export_;  // exporter, flow tables, NAT event rings
  UpdateQueue updates_;
  GatewaySelf self_;  // what no peer may be (own key, addresses, NAT pool); set by init
  std::atomic<std::shared_ptr<const admin::AdminView>> admin_view_;
  std::atomic<uint64_t> generation_{0};  // advanced by every applied update, from any source
  std::string last_update_source_;
  std::map<std::string, int64_t> source_last_ok_ms_;  // admin view source name -> unix ms
  int64_t last_update_unix_ms_ = 0;
  bool draining_ = false;
  unsigned admin_view_ticks_ = 0;
  uint64_t policy_peers_generation_ = 0;  // the peers generation the policy was given
  // Peers changed since the policy last saw them: its classes follow. True when they had.
  bool sync_policy_peers();
  uint64_t policy_reloads_seen_ = 0, domain_reloads_seen_ = 0;  // reloads_applied() seen
  std::unique_ptr<dp::nat::NatConfig> nat_;                     // published to workers as ctx.nat
  std::unique_ptr<dp::nat::NatConfig> nat66_;  // stateful NAT66; published as ctx.nat66
  bool nat66_nic_steering_ = false;            // the same for the NAT66 pool
  bool nat_nic_steering_ = false;              // rte_flow rules installed on the internet port
  Services services_;                          // metrics listener, admin API, etcd watch
  ControlHeartbeat heartbeat_;  // beaten by the control loop, read by /readyz and /metrics
  ControlStats stats_;
  std::vector<std::string> port_labels_;
  std::vector<unsigned> worker_lcores_;
  Labels constant_labels_;
  // Per-peer rows for /metrics, rebuilt by the control loop (at most kMaxPeerSeries peers).
  std::atomic<std::shared_ptr<const std::vector<PeerStatus>>> peer_status_;
  // The tailnet connector's last report (control thread writes, metrics thread reads).
  TailnetHealth tailnet_;
  // The exception port's kernel interface (--exception_port); empty: none.
  std::optional<ExceptionInterface> exception_;
  // The node's IPv4 tailnet addresses to the data path and the exception interface.
  void set_tailnet_addresses(const std::vector<std::string>& addresses);
  std::atomic<std::shared_ptr<const TailnetHealth>> tailnet_health_;
  uint64_t last_busy_[dp::kMaxWorkers] = {}, last_idle_[dp::kMaxWorkers] = {};
  bool ports_started_ = false;
  bool workers_launched_ = false;
};

}  // namespace exitgw
