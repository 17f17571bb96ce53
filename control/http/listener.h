// The HTTP listener both the admin API and the metrics endpoint run on: one event-loop thread
// owns every socket and reads requests with the strict RequestParser, a small pool of workers
// runs the handlers (cpp-httplib routes) on complete requests held in memory.
//
// Why not httplib's own listener: Debian 12's cpp-httplib 0.11.4 is a compiled library whose
// request reading cannot be bounded from outside. It reads request and header lines of any
// length and any number of headers, gives a chunked body no limit, decompresses gzip/brotli
// bodies without one, parses "Content-Length: +13" and "13abc" as 13, takes the first of two
// Content-Lengths, treats "Transfer-Encoding: xchunked" as absent, reads a body before any
// handler can look at the token, and holds one of its worker threads per connection for as
// long as a client keeps sending a byte before each 5 s read timeout. Its hooks
// (set_pre_routing_handler, set_payload_max_length, set_read_timeout) run only after that
// reading. So the head and body are read here, bounded in size and in time, without ever
// blocking a thread on a client; httplib only routes a request that is already complete and
// unambiguous (Server::process_request over an in-memory stream) and writes the response into
// memory, which the event loop sends.
//
// One request per connection (every response says Connection: close), so nothing a client
// sends after a request can be read as another one.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "control/http/request_parser.h"

namespace httplib {
class Server;
}

namespace exitgw::http {

struct ListenerOptions {
  std::string name;  // "admin", "metrics": the counters' label and log lines
  std::string host;
  uint16_t port = 0;  // 0: any free port (see port())
  Limits limits;
  size_t max_body_bytes = 0;  // 0: requests take no body
  // From accept to the end of the head, and from there to the end of the body: a client that
  // is slower gets 408 and is closed, whatever it trickles.
  std::chrono::milliseconds head_timeout{5000};
  std::chrono::milliseconds body_timeout{10000};
  std::chrono::milliseconds write_timeout{5000};
  // Open connections at most; a new one beyond that closes the one that has been reading
  // longest (slow clients lose their place, fast ones finish in time).
  size_t max_connections = 64;
  size_t workers = 2;
  size_t max_queued = 64;  // complete requests waiting for a worker; more get 503
  // The error body for refusals the listener answers itself: content type and body.
  std::function<std::pair<std::string, std::string>(int status, std::string_view message)>
      error_body;
};

// Decides on a complete head before any body is read (authentication, method and path
// checks): nullopt admits it. Runs on the event-loop thread: it must be quick and not block.
using Admit = std::function<std::optional<Refused>(const RequestHead& head)>;
// Called on the event-loop thread for each refusal the listener answered itself.
using RefusalLog =
    std::function<void(const RequestHead& head, const std::string& remote, int status)>;

// Counted since start, read by the metrics renderer from any thread.
struct ListenerCounters {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Refusal::kCount)> refused{};
  std::atomic<uint64_t> requests{0};  // answered by a handler, whatever the status
  std::atomic<uint64_t> connections{0};
};

class Listener {
 public:
  Listener();
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // Binds and starts the loop and the workers. `routes` handles admitted requests (its
  // handlers, error handler and logger as for a listening httplib::Server) and must outlive
  // the listener.
  Status start(const ListenerOptions& options, httplib::Server& routes, Admit admit,
               RefusalLog log = nullptr);
  // Closes every connection and joins the threads; handlers still running are waited for.
  void stop();
  uint16_t port() const { return port_; }
  const ListenerCounters& counters() const { return counters_; }

 private:
  struct Connection;
  struct Job;
  struct Done;
  void loop();
  void work();
  void accept_all();
  void on_readable(Connection& c);
  void on_request_ready(Connection& c);
  void refuse(Connection& c, const Refused& r);
  void respond(Connection& c, std::string bytes);
  void flush(Connection& c);
  void linger(Connection& c);
  void close(uint64_t id);
  void expire(std::chrono::steady_clock::time_point now);
  void collect_done();
  void watch(Connection& c, uint32_t events);
  void pause_accept(bool paused);

  ListenerOptions options_;
  httplib::Server* routes_ = nullptr;
  Admit admit_;
  RefusalLog log_;
  ListenerCounters counters_;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread loop_thread_;
  std::vector<std::thread> workers_;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;  // loop thread only
  std::chrono::steady_clock::time_point accept_paused_until_{};  // out of descriptors: retry then

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;
  std::mutex done_mu_;
  std::vector<Done> done_;
};

}  // namespace exitgw::http
