// etcd v3 over the JSON gateway; see etcd_client.h.
#include "control/etcd/etcd_client.h"

#include <httplib.h>

#include <charconv>

namespace exitgw::etcd {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";
// A range of a big region is tens of MB at most; beyond this something is wrong.
constexpr size_t kMaxReplyBytes = 256 * 1024 * 1024;

void set_timeouts(httplib::Client& cli, const ClientOptions& o, std::chrono::milliseconds read) {
  cli.set_connection_timeout(o.connect_timeout);
  cli.set_read_timeout(read);
  cli.set_write_timeout(o.request_timeout);
  cli.set_keep_alive(false);
}

std::string str(int64_t v) {
  return std::to_string(v);
}

Result<json> parse_reply(const std::string& body, const char* what) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error(std::string(what) + ": reply is not a JSON object");
  return j;
}

Result<int64_t> reply_revision(const json& j, const char* what) {
  const auto h = j.find("header");
  if (h == j.end() || !h->is_object())
    return make_error(std::string(what) + ": reply has no header");
  auto rev = json_int64(*h, "revision");
  if (!rev) return make_error(std::string(what) + ": " + rev.error());
  return *rev;
}

}  // namespace

const char* to_string(WatchEnd::Kind kind) {
  switch (kind) {
    case WatchEnd::Kind::kStopped:
      return "stopped";
    case WatchEnd::Kind::kDisconnected:
      return "disconnected";
    case WatchEnd::Kind::kIdle:
      return "idle";
    case WatchEnd::Kind::kCompacted:
      return "compacted";
    case WatchEnd::Kind::kCanceled:
      return "canceled";
  }
  return "?";
}

Result<std::vector<Endpoint>> parse_endpoints(std::string_view list) {
  std::vector<Endpoint> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view item = list.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    start = comma + 1;
    if (item.empty()) continue;
    const std::string shown = "'" + std::string(item.substr(0, 100)) + "'";
    constexpr std::string_view kScheme = "http://";
    if (item.substr(0, kScheme.size()) != kScheme)
      return make_error("etcd endpoint " + shown + ": must start with http:// (no TLS support)");
    item.remove_prefix(kScheme.size());
    if (!item.empty() && item.back() == '/') item.remove_suffix(1);
    const size_t colon = item.rfind(':');
    if (colon == std::string_view::npos || colon == 0)
      return make_error("etcd endpoint " + shown + ": expected http://host:port");
    const std::string_view host = item.substr(0, colon);
    const std::string_view port_text = item.substr(colon + 1);
    for (char c : host)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-'))
        return make_error("etcd endpoint " + shown + ": bad host");
    unsigned port = 0;
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
        port > 65535)
      return make_error("etcd endpoint " + shown + ": bad port");
    out.push_back(Endpoint{std::string(host), static_cast<uint16_t>(port)});
  }
  if (out.empty()) return make_error("no etcd endpoint given");
  return out;
}

EtcdClient::EtcdClient(ClientOptions options) : options_(std::move(options)) {}

std::string EtcdClient::current_endpoint() const {
  if (options_.endpoints.empty()) return "";
  return options_.endpoints[current_->load() % options_.endpoints.size()].text();
}

Result<std::string> EtcdClient::post(const char* path, const std::string& body) {
  const size_t n = options_.endpoints.size();
  if (n == 0) return make_error("no etcd endpoint configured");
  const size_t start = current_->load();
  std::string errors;
  for (size_t i = 0; i < n; ++i) {
    const size_t idx = (start + i) % n;
    const Endpoint& ep = options_.endpoints[idx];
    httplib::Client cli(ep.host, ep.port);
    set_timeouts(cli, options_, options_.request_timeout);
    // The gateway sends errors chunked with gRPC trailers, which cpp-httplib 0.11 fails to
    // read after the body: the status and body are taken as they arrive, so such a reply still
    // counts as etcd's answer (not an unreachable endpoint).
    int status = 0;
    std::string reply;
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body;
    req.headers.emplace("Content-Type", kJson);
    req.response_handler = [&](const httplib::Response& res) {
      status = res.status;
      return true;
    };
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
      if (reply.size() + len > kMaxReplyBytes) return false;
      reply.append(data, len);
      return true;
    };
    auto res = cli.send(req);
    const bool answered = res || (status != 0 && status != 200 && !reply.empty());
    if (!answered) {
      if (!errors.empty()) errors += "; ";
      errors += ep.text() + ": " +
                (reply.size() >= kMaxReplyBytes ? std::string("reply too large")
                                                : httplib::to_string(res.error()));
      continue;
    }
    current_->store(idx);
    if (status != 200)
      return make_error(ep.text() + std::string(path) + ": HTTP " + std::to_string(status) + ": " +
                        gateway_error_text(reply));
    return reply;
  }
  return make_error("no etcd endpoint answered " + std::string(path) + " (" + errors + ")");
}

Result<RangeResponse> EtcdClient::range(std::string_view key, std::string_view range_end,
                                        int64_t revision, int64_t limit) {
  json req = {{"key", base64_encode(key)}};
  if (!range_end.empty()) req["range_end"] = base64_encode(range_end);
  if (revision > 0) req["revision"] = str(revision);
  if (limit > 0) req["limit"] = str(limit);
  auto body = post("/v3/kv/range", req.dump());
  if (!body) return make_error(body.error());
  return parse_range_response(*body);
}

Result<RangeResponse> EtcdClient::range_prefix(std::string_view prefix, int64_t revision) {
  RangeResponse all;
  std::string key(prefix);
  const std::string end = prefix_range_end(prefix);
  const int64_t page = options_.range_page > 0 ? options_.range_page : 1000;
  for (;;) {
    auto r = range(key, end, revision, page);
    if (!r) return make_error(r.error());
    // The first page's header is the revision every later page is read at.
    if (revision == 0) revision = r->revision;
    for (KeyValue& kv : r->kvs) all.kvs.push_back(std::move(kv));
    if (!r->more || r->kvs.empty()) break;
    key = all.kvs.back().key + '\0';
  }
  all.revision = revision;
  all.count = static_cast<int64_t>(all.kvs.size());
  return all;
}

Result<int64_t> EtcdClient::put(std::string_view key, std::string_view value, int64_t lease) {
  json req = {{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) req["lease"] = str(lease);
  auto body = post("/v3/kv/put", req.dump());
  if (!body) return make_error(body.error());
  auto j = parse_reply(*body, "put");
  if (!j) return make_error(j.error());
  return reply_revision(*j, "put");
}

Result<DeleteResponse> EtcdClient::del(std::string_view key, std::string_view range_end) {
  json req = {{"key", base64_encode(key)}};
  if (!range_end.empty()) req["range_end"] = base64_encode(range_end);
  auto body = post("/v3/kv/deleterange", req.dump());
  if (!body) return make_error(body.error());
  auto j = parse_reply(*body, "delete");
  if (!j) return make_error(j.error());
  DeleteResponse d;
  auto rev = reply_revision(*j, "delete");
  if (!rev) return make_error(rev.error());
  d.revision = *rev;
  auto deleted = json_int64(*j, "deleted");
  if (!deleted) return make_error("delete: " + deleted.error());
  d.deleted = *deleted;
  return d;
}

Result<Lease> EtcdClient::lease_grant(int64_t ttl_seconds) {
  json req = {{"TTL", str(ttl_seconds)}, {"ID", "0"}};
  auto body = post("/v3/lease/grant", req.dump());
  if (!body) return make_error(body.error());
  auto j = parse_reply(*body, "lease grant");
  if (!j) return make_error(j.error());
  if (auto e = j->find("error"); e != j->end() && e->is_string() && !e->get<std::string>().empty())
    return make_error("lease grant: " + e->get<std::string>());
  Lease lease;
  auto id = json_int64(*j, "ID");
  auto ttl = json_int64(*j, "TTL");
  if (!id || !ttl || *id == 0) return make_error("lease grant: reply without ID/TTL");
  lease.id = *id;
  lease.ttl = *ttl;
  return lease;
}

Result<int64_t> EtcdClient::lease_keepalive(int64_t id) {
  json req = {{"ID", str(id)}};
  auto body = post("/v3/lease/keepalive", req.dump());
  if (!body) return make_error(body.error());
  // A stream of one message: {"result": {...}} (or {"error": ...}).
  const size_t nl = body->find('\n');
  auto j = parse_reply(body->substr(0, nl), "lease keepalive");
  if (!j) return make_error(j.error());
  const auto result = j->find("result");
  if (result == j->end() || !result->is_object())
    return make_error("lease keepalive: " + gateway_error_text(*body));
  auto ttl = json_int64(*result, "TTL");
  if (!ttl) return make_error("lease keepalive: " + ttl.error());
  if (*ttl <= 0) return make_error("lease " + str(id) + " expired or unknown");
  return *ttl;
}

Status EtcdClient::lease_revoke(int64_t id) {
  json req = {{"ID", str(id)}};
  auto body = post("/v3/lease/revoke", req.dump());
  if (!body) return make_error(body.error());
  return Ok{};
}

Status EtcdClient::compact(int64_t revision, bool physical) {
  json req = {{"revision", str(revision)}, {"physical", physical}};
  auto body = post("/v3/kv/compaction", req.dump());
  if (!body) return make_error(body.error());
  return Ok{};
}

std::unique_ptr<Watch> EtcdClient::watch(const WatchRequest& request, WatchCallbacks callbacks) {
  json create = {{"key", base64_encode(request.key)}};
  if (!request.range_end.empty()) create["range_end"] = base64_encode(request.range_end);
  if (request.start_revision > 0) create["start_revision"] = str(request.start_revision);
  if (request.progress_notify) create["progress_notify"] = true;
  json req = {{"create_request", create}};
  std::unique_ptr<Watch> w(new Watch());
  w->thread_ =
      std::thread(&Watch::run, w.get(), current_, req.dump(), options_, std::move(callbacks));
  return w;
}

Watch::~Watch() {
  stop();
}

void Watch::stop() {
  stopping_ = true;
  // Closing the socket wakes a read; a stream that was still connecting is closed on the next
  // pass, once it exists.
  while (!finished_) {
    {
      std::lock_guard lock(mu_);
      if (active_ != nullptr) active_->stop();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (thread_.joinable()) thread_.join();
}

void Watch::run(std::shared_ptr<std::atomic<size_t>> current, std::string body,
                ClientOptions options, WatchCallbacks cb) {
  WatchEnd end;
  end.kind = WatchEnd::Kind::kDisconnected;
  const size_t n = options.endpoints.size();
  const size_t start = current->load();
  for (size_t i = 0; i < n && !stopping_; ++i) {
    const size_t idx = (start + i) % n;
    const Endpoint& ep = options.endpoints[idx];
    end.endpoint = ep.text();
    httplib::Client cli(ep.host, ep.port);
    set_timeouts(cli, options, options.watch_idle_timeout);
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
      active_ = &cli;
    }
    int status = 0;
    std::string error_body;
    bool got_bytes = false;
    bool ended_by_message = false;
    std::string parse_error;
    Clock::time_point last_byte = Clock::now();
    WatchLineParser parser([&](WatchResponse&& r) -> bool {
      if (r.error) {
        end.kind = WatchEnd::Kind::kDisconnected;
        end.message = "watch stream error: " + r.message;
        ended_by_message = true;
        return false;
      }
      if (r.canceled) {
        end.kind = r.compact_revision > 0 ? WatchEnd::Kind::kCompacted : WatchEnd::Kind::kCanceled;
        end.compact_revision = r.compact_revision;
        end.message = r.compact_revision > 0
                          ? "revision compacted (oldest kept " + str(r.compact_revision) + ")"
                          : "watch canceled: " + r.message;
        ended_by_message = true;
        return false;
      }
      if (r.created) {
        if (cb.created) cb.created(r.revision, ep.text());
        if (r.events.empty()) return !stopping_;
      }
      if (cb.batch) cb.batch(WatchBatch{r.revision, std::move(r.events)});
      return !stopping_;
    });
    httplib::Request req;
    req.method = "POST";
    req.path = "/v3/watch";
    req.body = body;
    req.headers.emplace("Content-Type", kJson);
    req.response_handler = [&](const httplib::Response& res) {
      status = res.status;
      return true;
    };
    req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) -> bool {
      got_bytes = true;
      last_byte = Clock::now();
      if (status != 200) {
        if (error_body.size() < 4096) error_body.append(data, std::min<size_t>(len, 4096));
        return true;
      }
      auto fed = parser.feed(std::string_view(data, len));
      if (!fed) {
        parse_error = fed.error();
        return false;
      }
      return *fed && !stopping_;
    };
    auto res = cli.send(req);
    {
      std::lock_guard lock(mu_);
      active_ = nullptr;
    }
    if (stopping_) break;
    if (ended_by_message) {
      current->store(idx);
      break;
    }
    if (!parse_error.empty()) {
      end.kind = WatchEnd::Kind::kDisconnected;
      end.message = parse_error;
      break;
    }
    if (status != 0 && status != 200) {
      end.kind = WatchEnd::Kind::kDisconnected;
      end.message = "watch: HTTP " + std::to_string(status) + ": " + gateway_error_text(error_body);
      break;
    }
    if (!res && res.error() == httplib::Error::Connection && !got_bytes) {
      end.kind = WatchEnd::Kind::kDisconnected;
      end.message = ep.text() + ": cannot connect";
      continue;  // the next endpoint
    }
    current->store(idx);
    const auto silent = Clock::now() - last_byte;
    if (!res && res.error() == httplib::Error::Read && status == 200 &&
        silent >= options.watch_idle_timeout * 9 / 10) {
      end.kind = WatchEnd::Kind::kIdle;
      end.message =
          "no data for " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(silent).count()) + " s";
    } else {
      end.kind = WatchEnd::Kind::kDisconnected;
      end.message = res ? std::string("watch stream closed by etcd")
                        : "watch stream lost: " + httplib::to_string(res.error());
    }
    break;
  }
  if (stopping_) {
    end.kind = WatchEnd::Kind::kStopped;
    end.message = "stopped";
  }
  if (cb.ended) cb.ended(end);
  finished_ = true;
}

}  // namespace exitgw::etcd
