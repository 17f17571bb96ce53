// The listeners and update sources around the control loop, each started from its flags once
// the workers run, and stopped first at shutdown: the metrics listener (/metrics, /readyz),
// the admin API and the etcd watch.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "control/admin/admin_server.h"
#include "control/etcd/etcd_source.h"
#include "control/metrics.h"
#include "control/updates.h"

namespace exitgw {

class Services {
 public:
  // What the services read of the gateway.
  struct Hooks {
    std::function<std::string()> render_metrics;   // on the metrics thread
    std::function<Readiness()> readiness;          // on the metrics thread
    admin::ViewSource admin_view;                  // on the admin API's threads
    etcd::EtcdSource::StatusCallback node_status;  // on the etcd status thread: atomics only
  };

  // Starts those the flags ask for (--metrics_listen, --admin_token_file, --etcd_endpoints),
  // in that order; the first that fails is the error (stop() stops what had started).
  Status start(UpdateQueue& updates, const std::string& node, Hooks hooks);
  void stop();

  const etcd::EtcdSource* etcd() const { return etcd_.get(); }
  const http::ListenerCounters& metrics_counters() const { return metrics_.counters(); }
  const http::ListenerCounters& admin_counters() const { return admin_.counters(); }

 private:
  MetricsServer metrics_;
  admin::AdminServer admin_;
  std::unique_ptr<etcd::EtcdSource> etcd_;
};

}  // namespace exitgw
