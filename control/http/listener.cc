// The listener's event loop (epoll, non-blocking sockets, deadlines) and its worker pool.
#include "control/http/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "control/log.h"

namespace exitgw::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint64_t kListenId = UINT64_MAX;
constexpr uint64_t kWakeId = UINT64_MAX - 1;
// After the response, what the client still sends is read and dropped for a moment so that
// closing does not reset the connection before the client has read the answer (a lingering
// close, as nginx does), but never much of it: a refused upload is not read.
constexpr auto kLingerTime = std::chrono::milliseconds(500);
constexpr size_t kLingerBytes = 256 * 1024;
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kReadPerEvent = 64 * 1024;  // then the other connections get their turn

// An in-memory httplib::Stream: the complete request to read, the response written to a string.
class MemoryStream final : public httplib::Stream {
 public:
  MemoryStream(const std::string& request, std::string remote_ip, int remote_port,
               std::string local_ip, int local_port)
      : in_(request),
        remote_ip_(std::move(remote_ip)),
        local_ip_(std::move(local_ip)),
        remote_port_(remote_port),
        local_port_(local_port) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = remote_ip_;
    port = remote_port_;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = local_ip_;
    port = local_port_;
  }
  // No socket: httplib must not select() on one (nor refuse one past FD_SETSIZE).
  socket_t socket() const override { return INVALID_SOCKET; }
  std::string& output() { return out_; }

 private:
  const std::string& in_;
  size_t pos_ = 0;
  std::string out_;
  std::string remote_ip_, local_ip_;
  int remote_port_, local_port_;
};

// httplib's process_request is protected: reached through a derived class, as its own
// listener does, with one request per connection.
struct Routing : httplib::Server {
  static void run(httplib::Server& routes, httplib::Stream& stream) {
    bool closed = false;
    (routes.*(&Routing::process_request))(stream, true, closed, nullptr);
  }
};

std::string address_text(const sockaddr_storage& sa, int& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    ::inet_ntop(AF_INET, &in.sin_addr, buf, sizeof(buf));
    port = ntohs(in.sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof(buf));
    port = ntohs(in6.sin6_port);
  }
  return buf;
}

const char* status_text(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

int status_of_response(std::string_view response) {
  // "HTTP/1.1 200 OK": httplib always writes this shape.
  if (response.size() < 12) return 500;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (response[i] < '0' || response[i] > '9') return 500;
    status = status * 10 + (response[i] - '0');
  }
  return status;
}

}  // namespace

struct Listener::Connection {
  enum class Phase : uint8_t { kReading, kHandling, kWriting, kLingering };
  uint64_t id = 0;
  int fd = -1;
  Phase phase = Phase::kReading;
  RequestParser parser;
  Clock::time_point accepted;
  Clock::time_point deadline;
  std::string out;  // the bytes being written (100 Continue, then the response)
  size_t out_pos = 0;
  bool respond_after_out = false;  // out holds the final response: linger once it is sent
  size_t lingered = 0;
  bool watched = true;  // still registered with epoll
  uint32_t events = 0;
  std::string remote_ip, local_ip;
  int remote_port = 0, local_port = 0;

  explicit Connection(const Limits& limits) : parser(limits) {}
  std::string remote() const { return remote_ip + ":" + std::to_string(remote_port); }
};

struct Listener::Job {
  uint64_t id;
  std::string request;
  std::string remote_ip, local_ip;
  int remote_port, local_port;
};

struct Listener::Done {
  uint64_t id;
  std::string response;
};

Listener::Listener() = default;
Listener::~Listener() {
  stop();
}

Status Listener::start(const ListenerOptions& options, httplib::Server& routes, Admit admit,
                       RefusalLog log) {
  if (loop_thread_.joinable()) return make_error("the " + options.name + " listener is running");
  options_ = options;
  if (options_.workers == 0) options_.workers = 1;
  if (options_.max_connections == 0) options_.max_connections = 1;
  routes_ = &routes;
  admit_ = std::move(admit);
  log_ = std::move(log);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(options_.port);
  if (int rc = ::getaddrinfo(options_.host.c_str(), port_text.c_str(), &hints, &found); rc != 0)
    return make_error("cannot resolve " + options_.host + ": " + ::gai_strerror(rc));
  int err = 0;
  for (addrinfo* ai = found; ai != nullptr && listen_fd_ < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 128) != 0) {
      err = errno;
      ::close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  ::freeaddrinfo(found);
  if (listen_fd_ < 0)
    return make_error("cannot listen on " + options_.host + ":" + port_text + ": " +
                      std::strerror(err));
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  int port = 0;
  address_text(bound, port);
  port_ = static_cast<uint16_t>(port);

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    const std::string why = std::strerror(errno);
    stop();
    return make_error("cannot start the " + options_.name + " listener: " + why);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenId;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.u64 = kWakeId;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);

  stopping_ = false;
  for (size_t i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { work(); });
  loop_thread_ = std::thread([this] { loop(); });
  return Ok{};
}

void Listener::stop() {
  {
    std::lock_guard lock(jobs_mu_);  // so no worker misses the wake-up between check and wait
    stopping_ = true;
  }
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
  if (loop_thread_.joinable()) loop_thread_.join();
  jobs_cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  jobs_.clear();
  done_.clear();
  for (auto& [id, c] : connections_) ::close(c->fd);
  connections_.clear();
  for (int* fd : {&listen_fd_, &epoll_fd_, &wake_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void Listener::work() {
  while (true) {
    Job job;
    {
      std::unique_lock lock(jobs_mu_);
      jobs_cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    std::string response;
    try {
      MemoryStream stream(job.request, job.remote_ip, job.remote_port, job.local_ip,
                          job.local_port);
      Routing::run(*routes_, stream);
      response = std::move(stream.output());
    } catch (...) {
      response.clear();
    }
    if (response.empty()) {
      constexpr std::string_view kBody = "internal error while handling the request\n";
      response =
          "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
          "Connection: close\r\nContent-Length: " +
          std::to_string(kBody.size()) + "\r\n\r\n" + std::string(kBody);
    }
    const int status = status_of_response(response);
    counters_.requests.fetch_add(1, std::memory_order_relaxed);
    if (status >= 400)
      counters_.refused[static_cast<size_t>(refusal_of_status(status))].fetch_add(
          1, std::memory_order_relaxed);
    {
      std::lock_guard lock(done_mu_);
      done_.push_back(Done{job.id, std::move(response)});
    }
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
}

void Listener::watch(Connection& c, uint32_t events) {
  if (!c.watched || c.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = c.id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.events = events;
}

void Listener::pause_accept(bool paused) {
  epoll_event ev{};
  ev.events = paused ? 0u : static_cast<uint32_t>(EPOLLIN);
  ev.data.u64 = kListenId;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &ev);
  accept_paused_until_ =
      paused ? Clock::now() + std::chrono::milliseconds(100) : Clock::time_point{};
}

void Listener::close(uint64_t id) {
  const auto it = connections_.find(id);
  if (it == connections_.end()) return;
  ::close(it->second->fd);  // also leaves the epoll set
  connections_.erase(it);
}

void Listener::accept_all() {
  while (true) {
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        log_warn(options_.name + " listener: cannot accept (" + std::strerror(errno) +
                 "); pausing 100 ms");
        pause_accept(true);
      }
      return;
    }
    counters_.connections.fetch_add(1, std::memory_order_relaxed);
    // A response may go out in more than one write: without this, a client's delayed ACK holds
    // the rest back about 40 ms (Nagle).
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connections_.size() >= options_.max_connections) {
      // Make room: the connection reading longest goes (a slow client), else this one.
      Connection* oldest = nullptr;
      for (auto& [id, c] : connections_)
        if ((c->phase == Connection::Phase::kReading ||
             c->phase == Connection::Phase::kLingering) &&
            (oldest == nullptr || c->accepted < oldest->accepted))
          oldest = c.get();
      if (oldest == nullptr) {
        counters_.refused[static_cast<size_t>(Refusal::kOverloaded)].fetch_add(1);
        ::close(fd);
        continue;
      }
      if (oldest->phase == Connection::Phase::kReading)
        counters_.refused[static_cast<size_t>(Refusal::kEvicted)].fetch_add(1);
      close(oldest->id);
    }
    auto c = std::make_unique<Connection>(options_.limits);
    c->id = next_id_++;
    c->fd = fd;
    c->accepted = Clock::now();
    c->deadline = c->accepted + options_.head_timeout;
    c->remote_ip = address_text(peer, c->remote_port);
    sockaddr_storage local{};
    len = sizeof(local);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
    c->local_ip = address_text(local, c->local_port);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c->id;
    c->events = ev.events;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
    connections_.emplace(c->id, std::move(c));
  }
}

void Listener::refuse(Connection& c, const Refused& r) {
  counters_.refused[static_cast<size_t>(r.reason)].fetch_add(1, std::memory_order_relaxed);
  if (log_) log_(c.parser.head(), c.remote(), r.status);
  auto [type, body] = options_.error_body ? options_.error_body(r.status, r.message)
                                          : std::pair{std::string("text/plain"), r.message + "\n"};
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + status_text(r.status) +
                    "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\nConnection: close\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += "\r\n";
  if (c.parser.head().method != "HEAD") out += body;
  respond(c, std::move(out));
}

void Listener::respond(Connection& c, std::string bytes) {
  if (!c.watched) {  // dropped from epoll while its handler ran (the client half-closed)
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
    c.events = ev.events;
    c.watched = true;
  }
  c.phase = Connection::Phase::kWriting;
  c.deadline = Clock::now() + options_.write_timeout;
  c.out.erase(0, c.out_pos);  // a 100 Continue not yet sent still goes first
  c.out_pos = 0;
  c.out += bytes;
  c.respond_after_out = true;
  flush(c);
}

void Listener::flush(Connection& c) {
  while (c.out_pos < c.out.size()) {
    const ssize_t n =
        ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch(c, c.phase == Connection::Phase::kReading ? EPOLLIN | EPOLLRDHUP | EPOLLOUT : EPOLLOUT);
      return;
    }
    if (n <= 0) return close(c.id);
    c.out_pos += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_pos = 0;
  if (!c.respond_after_out) {
    watch(c, EPOLLIN | EPOLLRDHUP);
    return;
  }
  ::shutdown(c.fd, SHUT_WR);
  c.phase = Connection::Phase::kLingering;
  c.deadline = Clock::now() + kLingerTime;
  watch(c, EPOLLIN | EPOLLRDHUP);
  linger(c);
}

void Listener::linger(Connection& c) {
  char buf[kReadChunk];
  while (true) {
    const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return close(c.id);
    c.lingered += static_cast<size_t>(n);
    if (c.lingered > kLingerBytes) return close(c.id);
  }
}

void Listener::on_readable(Connection& c) {
  char buf[kReadChunk];
  size_t taken = 0;
  while (c.phase == Connection::Phase::kReading && taken < kReadPerEvent) {
    const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return close(c.id);  // the client went away before its request was complete
    taken += static_cast<size_t>(n);
    std::string_view bytes(buf, static_cast<size_t>(n));
    while (c.phase == Connection::Phase::kReading) {
      bytes.remove_prefix(c.parser.feed(bytes));
      RequestParser& p = c.parser;
      if (p.state() == RequestParser::State::kHeadDone) {
        if (admit_) {
          if (auto refused = admit_(p.head())) return refuse(c, *refused);
        }
        p.begin_body(options_.max_body_bytes);
        c.deadline = Clock::now() + options_.body_timeout;
        if (p.state() == RequestParser::State::kBody && p.head().expect_continue) {
          c.out += "HTTP/1.1 100 Continue\r\n\r\n";
          const uint64_t id = c.id;  // flush() may close and free `c` (a reset client)
          flush(c);
          if (connections_.count(id) == 0) return;
        }
        continue;
      }
      if (p.state() == RequestParser::State::kRefused) return refuse(c, p.refused());
      if (p.state() == RequestParser::State::kDone) return on_request_ready(c);
      if (bytes.empty()) break;
    }
  }
}

void Listener::on_request_ready(Connection& c) {
  std::unique_lock lock(jobs_mu_);
  if (jobs_.size() >= options_.max_queued) {
    lock.unlock();
    return refuse(c, Refused{503,
                             "too many requests are waiting; retry",
                             Refusal::kOverloaded,
                             {{"Retry-After", "1"}}});
  }
  c.phase = Connection::Phase::kHandling;
  watch(c, EPOLLRDHUP);
  jobs_.push_back(Job{c.id, c.parser.canonical_request(), c.remote_ip, c.local_ip, c.remote_port,
                      c.local_port});
  lock.unlock();
  jobs_cv_.notify_one();
}

void Listener::collect_done() {
  std::vector<Done> done;
  {
    std::lock_guard lock(done_mu_);
    done.swap(done_);
  }
  for (Done& d : done) {
    const auto it = connections_.find(d.id);
    if (it != connections_.end()) respond(*it->second, std::move(d.response));
  }
}

void Listener::expire(Clock::time_point now) {
  if (accept_paused_until_ != Clock::time_point{} && now >= accept_paused_until_)
    pause_accept(false);
  std::vector<uint64_t> due;
  for (auto& [id, c] : connections_)
    if (c->phase != Connection::Phase::kHandling && now >= c->deadline) due.push_back(id);
  for (uint64_t id : due) {
    Connection& c = *connections_.at(id);
    if (c.phase == Connection::Phase::kReading)
      refuse(c, Refused{408, "the request was not complete in time", Refusal::kTimeout, {}});
    else
      close(id);
  }
}

void Listener::loop() {
  std::array<epoll_event, 64> events{};
  while (!stopping_) {
    const auto now = Clock::now();
    auto next = now + std::chrono::seconds(1);
    for (auto& [id, c] : connections_)
      if (c->phase != Connection::Phase::kHandling) next = std::min(next, c->deadline);
    if (accept_paused_until_ != Clock::time_point{}) next = std::min(next, accept_paused_until_);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count() + 1;
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                               static_cast<int>(std::max<int64_t>(wait, 0)));
    for (int i = 0; i < n && !stopping_; ++i) {
      const uint64_t id = events[i].data.u64;
      const uint32_t ev = events[i].events;
      if (id == kListenId) {
        accept_all();
        continue;
      }
      if (id == kWakeId) {
        uint64_t count = 0;
        (void)!::read(wake_fd_, &count, sizeof(count));
        collect_done();
        continue;
      }
      const auto it = connections_.find(id);
      if (it == connections_.end()) continue;
      Connection& c = *it->second;
      switch (c.phase) {
        case Connection::Phase::kReading:
          if (ev & EPOLLERR) {
            close(id);
          } else {
            if ((ev & EPOLLOUT) && !c.out.empty()) flush(c);
            if (connections_.count(id) != 0 && (ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)))
              on_readable(c);
          }
          break;
        case Connection::Phase::kHandling:
          // The client is gone or half-closed: nothing to read while the handler runs, and a
          // level-triggered hang-up would wake the loop for ever; the answer is still sent.
          if (ev & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
            c.watched = false;
          }
          break;
        case Connection::Phase::kWriting:
          if (ev & (EPOLLERR | EPOLLHUP))
            close(id);
          else if (ev & EPOLLOUT)
            flush(c);
          break;
        case Connection::Phase::kLingering:
          linger(c);
          break;
      }
    }
    expire(Clock::now());
  }
}

}  // namespace exitgw::http
