// /metrics, /healthz and /readyz over cpp-httplib; text format from prometheus-cpp.
#include "control/metrics.h"

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
  server_ = std::make_unique<httplib::Server>();
  // Headers and body go out as separate writes: without this a keep-alive scraper's delayed
  // ACK holds each answer back about 40 ms (Nagle).
  server_->set_tcp_nodelay(true);
  server_->Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server_->Get("/readyz", [ready](const httplib::Request&, httplib::Response& res) {
    const Readiness r = ready();
    res.status = r.ready ? 200 : 503;
    res.set_content(r.ready ? "ready\n" : r.reason + "\n", "text/plain");
  });
  if (!server_->bind_to_port(hp->host.c_str(), hp->port))
    return make_error("--metrics_listen: cannot listen on " + listen +
                      " (address in use or not local?)");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return Ok{};
}

void MetricsServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace exitgw
