// /metrics, /healthz and /readyz over cpp-httplib; text format from prometheus-cpp.
#include "control/metrics.h"

#include <cassert>
#include <limits>

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include "control/net_parse.h"

namespace exitgw {

prometheus::MetricFamily& MetricFamilies::family(const std::string& name, const std::string& help,
                                                 prometheus::MetricType type) {
  for (auto& f : families_)
    if (f.name == name) return f;
  families_.push_back(prometheus::MetricFamily{name, help, type, {}});
  return families_.back();
}

prometheus::ClientMetric& MetricFamilies::sample(prometheus::MetricFamily& f,
                                                 const Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  for (const auto& [k, v] : constant_) m.label.push_back({k, v});
  f.metric.push_back(std::move(m));
  return f.metric.back();
}

void MetricFamilies::counter(prometheus::MetricFamily& f, const Labels& labels, double value) {
  sample(f, labels).counter.value = value;
}

void MetricFamilies::gauge(prometheus::MetricFamily& f, const Labels& labels, double value) {
  sample(f, labels).gauge.value = value;
}

void MetricFamilies::histogram(prometheus::MetricFamily& f, const Labels& labels,
                               std::span<const double> bounds, std::span<const uint64_t> counts,
                               double sum) {
  assert(counts.size() == bounds.size() + 1);
  auto& h = sample(f, labels).histogram;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    h.bucket.push_back(
        {cumulative, i < bounds.size() ? bounds[i] : std::numeric_limits<double>::infinity()});
  }
  h.sample_count = cumulative;
  h.sample_sum = sum;
}

std::string serialize(const std::vector<prometheus::MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}

MetricsServer::MetricsServer() = default;
MetricsServer::~MetricsServer() {
  stop();
}

Status MetricsServer::start(const std::string& listen, std::function<std::string()> render,
                            std::function<Readiness()> ready) {
  auto hp = parse_host_port(listen);
  if (!hp) return make_error("--metrics_listen: " + hp.error());
  routes_ = std::make_unique<httplib::Server>();
  routes_->Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  routes_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  routes_->Get("/readyz", [ready](const httplib::Request&, httplib::Response& res) {
    const Readiness r = ready();
    res.status = r.ready ? 200 : 503;
    res.set_content(r.ready ? "ready\n" : r.reason + "\n", "text/plain");
  });
  http::ListenerOptions options;
  options.name = "metrics";
  options.host = hp->host;
  options.port = static_cast<uint16_t>(hp->port);
  options.max_body_bytes = 0;
  options.workers = 2;
  const auto admit = [](const http::RequestHead& head) -> std::optional<http::Refused> {
    if (head.method != "GET" && head.method != "HEAD")
      return http::Refused{405,
                           "only GET and HEAD are served here",
                           http::Refusal::kMethodNotAllowed,
                           {{"Allow", "GET, HEAD"}}};
    const std::string_view path = head.path();
    if (path != "/metrics" && path != "/healthz" && path != "/readyz")
      return http::Refused{
          404, "no such path (/metrics, /healthz, /readyz)", http::Refusal::kNotFound, {}};
    return std::nullopt;
  };
  if (Status s = listener_.start(options, *routes_, admit); !s)
    return make_error("--metrics_listen: " + s.error() + " (address in use or not local?)");
  return Ok{};
}

void MetricsServer::stop() {
  listener_.stop();
  routes_.reset();
}

void add_listener_metrics(MetricFamilies& mf, std::string_view listener,
                          const http::ListenerCounters& counters) {
  auto& requests = mf.family("exitgw_http_requests_total",
                             "HTTP requests answered by a handler, by listener (admin, metrics)",
                             prometheus::MetricType::Counter);
  auto& refused = mf.family("exitgw_http_requests_refused_total",
                            "HTTP requests refused (4xx/5xx, or closed unanswered), by listener "
                            "and reason",
                            prometheus::MetricType::Counter);
  auto& connections =
      mf.family("exitgw_http_connections_total", "TCP connections accepted, by listener",
                prometheus::MetricType::Counter);
  const std::string name(listener);
  mf.counter(requests, {{"listener", name}}, double(counters.requests.load()));
  mf.counter(connections, {{"listener", name}}, double(counters.connections.load()));
  for (size_t r = 0; r < counters.refused.size(); ++r)
    mf.counter(refused, {{"listener", name}, {"reason", std::string(http::kRefusalNames[r])}},
               double(counters.refused[r].load()));
}

}  // namespace exitgw
