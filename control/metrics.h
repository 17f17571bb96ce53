// The HTTP listener for /metrics, /healthz and /readyz, and helpers to build metric families
// that carry the region and node labels on every series.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include "common/result.h"
#include "control/http/listener.h"

namespace httplib {
class Server;
}

namespace exitgw {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Collects families with the node's constant labels appended to every sample.
class MetricFamilies {
 public:
  explicit MetricFamilies(Labels constant) : constant_(std::move(constant)) {}
  prometheus::MetricFamily& family(const std::string& name, const std::string& help,
                                   prometheus::MetricType type);
  void counter(prometheus::MetricFamily& f, const Labels& labels, double value);
  void gauge(prometheus::MetricFamily& f, const Labels& labels, double value);
  // `counts` holds one count per bucket (not cumulative), bounds.size() + 1 of them: +Inf last.
  void histogram(prometheus::MetricFamily& f, const Labels& labels, std::span<const double> bounds,
                 std::span<const uint64_t> counts, double sum);
  std::vector<prometheus::MetricFamily> take() {
    return {std::make_move_iterator(families_.begin()), std::make_move_iterator(families_.end())};
  }

 private:
  prometheus::ClientMetric& sample(prometheus::MetricFamily& f, const Labels& labels);
  Labels constant_;
  std::deque<prometheus::MetricFamily> families_;  // a deque: family() references stay valid
};

struct Readiness {
  bool ready;
  std::string reason;
};

// Serves GET and HEAD of /metrics, /healthz and /readyz, and nothing else (405 for another
// method, 404 for another path, 413 for any body, none of it read), on the strict
// http::Listener. The callbacks run on its worker threads and must only read shared atomics.
class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  Status start(const std::string& listen, std::function<std::string()> render,
               std::function<Readiness()> ready);
  void stop();
  uint16_t port() const { return listener_.port(); }
  const http::ListenerCounters& counters() const { return listener_.counters(); }

 private:
  std::unique_ptr<httplib::Server> routes_;
  http::Listener listener_;
};

// exitgw_http_requests_total{listener}, exitgw_http_connections_total{listener} and
// exitgw_http_requests_refused_total{listener,reason} (every reason, zeros too) for one listener.
void add_listener_metrics(MetricFamilies& mf, std::string_view listener,
                          const http::ListenerCounters& counters);

std::string serialize(const std::vector<prometheus::MetricFamily>& families);

}  // namespace exitgw
