// The HTTP listener for /metrics, /healthz and /readyz, and helpers to build metric families
// that carry the region and node labels on every series.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <prometheus/metric_family.h>

#include "common/result.h"

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

// Runs its own thread; the callbacks are invoked there and must only read shared atomics.
class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  Status start(const std::string& listen, std::function<std::string()> render,
               std::function<Readiness()> ready);
  void stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

std::string serialize(const std::vector<prometheus::MetricFamily>& families);

}  // namespace exitgw
