// The admin HTTP API on loopback: bearer-token auth, JSON in and out, changes as typed updates
// through the UpdateQueue, reads from the AdminView the control thread publishes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "control/admin/admin_view.h"
#include "control/admin/bearer_token.h"
#include "control/http/listener.h"
#include "control/updates.h"

namespace httplib {
class Server;
}

namespace exitgw::admin {

// The `source` every update from the admin API carries, but for the connector's peer set
// (PUT /v1/tailnet/peers), which is a source of its own: an operator's peers and the
// tailnet's never replace each other, and a peer of one cannot be changed through the other.
inline constexpr std::string_view kAdminSource = "admin";
inline constexpr std::string_view kTailnetSource = "tailnet";

struct AdminServerOptions {
  std::string listen = "127.0.0.1:9551";  // HOST:PORT; port 0 takes a free port (see port())
  std::string token_file;                 // required; owner-only, >= kMinTokenChars
  bool allow_non_loopback = false;        // refuse any host but 127.0.0.0/8, ::1, localhost
  std::chrono::milliseconds update_timeout{5000};  // then 503: the control thread is stuck
  size_t max_body_bytes = 64 * 1024;               // larger bodies get 413, however they are framed
  // How long a client may take to send its request head, then its body (408 after that).
  std::chrono::milliseconds head_timeout{5000};
  std::chrono::milliseconds body_timeout{10000};
  bool audit_log = true;  // one stderr line per request that changes something or fails auth
};

// The control thread's current state, or null before it has published one (503). Called on HTTP
// threads: it must only load a published pointer (e.g. std::atomic<std::shared_ptr<...>>).
using ViewSource = std::function<std::shared_ptr<const AdminView>()>;

// Runs on the strict http::Listener: the token is checked on the request head, before a byte
// of body is read (an unauthenticated upload costs nothing but its head). Handlers run on the
// listener's workers and never touch control state: they submit updates and wait, bounded, for
// the control thread's answer.
class AdminServer {
 public:
  AdminServer();
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Reads the token, binds, and starts serving; `updates` must outlive the server. Errors name
  // the flag (--admin_listen, --admin_token_file) and how to fix it.
  Status start(const AdminServerOptions& options, UpdateQueue& updates, ViewSource view);
  // Stops listening; requests waiting for the control thread give up with 503 at once.
  void stop();
  uint16_t port() const { return listener_.port(); }
  // Requests answered and refused (401s among them), by reason; valid after stop() too.
  const http::ListenerCounters& counters() const { return listener_.counters(); }

 private:
  struct Handlers;

  std::unique_ptr<httplib::Server> routes_;
  std::unique_ptr<Handlers> handlers_;
  http::Listener listener_;
};

}  // namespace exitgw::admin
