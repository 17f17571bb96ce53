// A small etcd v3 client over the gRPC-JSON gateway (HTTP/1.1 + JSON, cpp-httplib), the one
// transport etcd serves without gRPC: POST /v3/kv/{range,put,deleterange,compaction},
// /v3/lease/{grant,keepalive,revoke} and the streaming POST /v3/watch.
//
// Every unary call tries the endpoints in turn, starting at the last one that answered, and
// moves on when one cannot be reached; an answer with an error (a compacted revision, an unknown
// lease) is returned as is. Calls are safe from any thread: each opens its own connection.
// Plain http only (no TLS, no etcd auth) for now.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/result.h"
#include "control/etcd/etcd_wire.h"

namespace httplib {
class Client;
}

namespace exitgw::etcd {

struct Endpoint {
  std::string host;
  uint16_t port = 0;
  std::string text() const { return "http://" + host + ":" + std::to_string(port); }
};
// "http://127.0.0.1:2379[,http://10.0.0.2:2379...]"; IPv4 literals or host names.
Result<std::vector<Endpoint>> parse_endpoints(std::string_view list);

struct ClientOptions {
  std::vector<Endpoint> endpoints;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{5000};
  // A watch stream silent this long is closed and reported as kIdle (the caller reopens it
  // where it left off): the only way to notice a peer that vanished without a FIN.
  std::chrono::milliseconds watch_idle_timeout{60000};
  // Pages of range_prefix (etcd's reply to one range must fit its message limits).
  int64_t range_page = 1000;
};

struct Lease {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds, as granted
};

struct DeleteResponse {
  int64_t revision = 0;
  int64_t deleted = 0;
};

// How a watch ended. Each ends exactly once, then its thread exits.
struct WatchEnd {
  enum class Kind : uint8_t {
    kStopped,       // Watch::stop() (or destruction)
    kDisconnected,  // unreachable, connection lost, the stream failed or was malformed
    kIdle,          // no byte for watch_idle_timeout: reopen from the last revision
    kCompacted,     // the start revision is compacted: compact_revision is the oldest kept
    kCanceled       // etcd canceled the watch for another reason (message says which)
  };
  Kind kind = Kind::kStopped;
  int64_t compact_revision = 0;
  std::string message;
  std::string endpoint;
};
const char* to_string(WatchEnd::Kind kind);

// One response of the stream: events (possibly none: a progress notification, meaning every
// event up to `revision` has been sent) at header revision `revision`.
struct WatchBatch {
  int64_t revision = 0;
  std::vector<Event> events;
};

struct WatchCallbacks {
  std::function<void(int64_t revision, const std::string& endpoint)> created;
  std::function<void(WatchBatch&&)> batch;
  std::function<void(const WatchEnd&)> ended;
};

struct WatchRequest {
  std::string key;
  std::string range_end;       // empty: just `key`
  int64_t start_revision = 0;  // 0: from now
  bool progress_notify = true;
};

// A running watch: one HTTP stream read on its own thread, which calls the callbacks in order
// (created, batches..., ended). stop() closes the stream and joins; callbacks then have ended.
class Watch {
 public:
  ~Watch();
  void stop();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

 private:
  friend class EtcdClient;
  Watch() = default;
  void run(std::shared_ptr<std::atomic<size_t>> current, std::string body, ClientOptions options,
           WatchCallbacks cb);

  std::mutex mu_;
  httplib::Client* active_ = nullptr;  // guarded by mu_; the stream's client while it runs
  std::atomic<bool> stopping_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

class EtcdClient {
 public:
  explicit EtcdClient(ClientOptions options);

  // Keys in [key, range_end) (range_end empty: just key) at `revision` (0: the newest).
  Result<RangeResponse> range(std::string_view key, std::string_view range_end,
                              int64_t revision = 0, int64_t limit = 0);
  // Every key under `prefix`, read in pages all at one revision (the first page's), so the
  // result is one consistent snapshot; its revision is that revision.
  Result<RangeResponse> range_prefix(std::string_view prefix, int64_t revision = 0);
  // Returns the revision of the put.
  Result<int64_t> put(std::string_view key, std::string_view value, int64_t lease = 0);
  Result<DeleteResponse> del(std::string_view key, std::string_view range_end = {});
  Result<Lease> lease_grant(int64_t ttl_seconds);
  // One keepalive; returns the TTL left. An expired or unknown lease is an error.
  Result<int64_t> lease_keepalive(int64_t id);
  Status lease_revoke(int64_t id);
  // Compacts the key-value history up to `revision` (operators and tests).
  Status compact(int64_t revision, bool physical = true);

  std::unique_ptr<Watch> watch(const WatchRequest& request, WatchCallbacks callbacks);

  const ClientOptions& options() const { return options_; }
  // The endpoint calls start at (the last that answered).
  std::string current_endpoint() const;

 private:
  Result<std::string> post(const char* path, const std::string& body);

  ClientOptions options_;
  // Index into options_.endpoints; shared with running watches, which also move it on.
  std::shared_ptr<std::atomic<size_t>> current_ = std::make_shared<std::atomic<size_t>>(0);
};

}  // namespace exitgw::etcd
