// Starting and stopping the metrics listener, the admin API and the etcd watch from the flags.
#include "control/services.h"

#include <chrono>

#include "control/flags.h"
#include "control/log.h"

namespace exitgw {

Status Services::start(UpdateQueue& updates, const std::string& node, Hooks hooks) {
  if (!FLAGS_metrics_listen.empty()) {
    if (Status s = metrics_.start(FLAGS_metrics_listen, std::move(hooks.render_metrics),
                                  std::move(hooks.readiness));
        !s)
      return s;
    log_info("metrics on http://" + FLAGS_metrics_listen + "/metrics");
  }
  if (!FLAGS_admin_token_file.empty()) {
    admin::AdminServerOptions aopt;
    aopt.listen = FLAGS_admin_listen;
    aopt.token_file = FLAGS_admin_token_file;
    aopt.allow_non_loopback = FLAGS_admin_allow_non_loopback;
    aopt.max_body_bytes = size_t{FLAGS_admin_max_body_kb} * 1024;
    if (Status s = admin_.start(aopt, updates, std::move(hooks.admin_view)); !s)
      return make_error("admin API: " + s.error());
    log_info("admin API on http://" + FLAGS_admin_listen + "/v1/status");
  }
  if (!FLAGS_etcd_endpoints.empty()) {
    etcd::EtcdSourceOptions eopt;
    eopt.endpoints = FLAGS_etcd_endpoints;
    eopt.prefix = FLAGS_etcd_prefix;
    eopt.node = node;
    eopt.status_ttl = std::chrono::seconds(FLAGS_etcd_status_ttl);
    etcd_ = std::make_unique<etcd::EtcdSource>(eopt, updates, std::move(hooks.node_status));
    if (Status s = etcd_->start(); !s) return make_error("etcd: " + s.error());
    log_info("etcd: watching " + FLAGS_etcd_prefix + " at " + FLAGS_etcd_endpoints);
  }
  return Ok{};
}

void Services::stop() {
  if (etcd_) etcd_->stop();
  admin_.stop();
  metrics_.stop();
}

}  // namespace exitgw
