// The exporter's queue, I/O thread, transport (UDP/TCP), in-flight tracking and spool replay.
#include "control/export/exporter.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>

#include "control/export/json_lines.h"
#include "control/export/spool.h"
#include "control/log.h"

namespace exitgw::exporter {

using Clock = std::chrono::steady_clock;

std::string_view collector_state_name(CollectorState s) {
  switch (s) {
    case CollectorState::kDisabled:
      return "disabled";
    case CollectorState::kDown:
      return "down";
    case CollectorState::kProbing:
      return "probing";
    case CollectorState::kUp:
      return "up";
  }
  return "unknown";
}

namespace {

uint64_t unix_ms() {
  return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count());
}

}  // namespace

// Everything the I/O thread owns. Records move: fresh (just encoded) → sent, in flight →
// exported; or → spool → replay → in flight → exported. On a failure, in-flight records and
// the unsent rest of a replayed segment go back to the front of the spool.
class Exporter::Io {
 public:
  Io(const ExporterOptions& o, std::optional<CollectorUrl> url, std::unique_ptr<Spool> spool,
     std::unique_ptr<JsonLinesWriter> json, ExporterCounters& counters)
      : o_(o),
        url_(std::move(url)),
        encoder_(EncoderOptions{o.observation_domain, o.max_message_bytes, o.enterprise_number,
                                o.template_refresh_seconds, o.template_refresh_messages,
                                url_ && url_->transport == Transport::kTcp}),
        spool_(std::move(spool)),
        json_(std::move(json)),
        c_(counters) {
    state_ = url_ ? CollectorState::kDown : CollectorState::kDisabled;
    if (spool_ && !spool_->empty())
      log_info("export spool " + spool_->dir() + " holds " + std::to_string(spool_->records()) +
               " records from before; replaying them first");
    publish();
  }
  ~Io() { close_socket(); }

  void pass(std::vector<Item>& items) {
    const Clock::time_point now = Clock::now();
    std::vector<EncodedRecord> fresh;
    fresh.reserve(items.size());
    const uint64_t logged = unix_ms();
    for (const Item& item : items) {
      if (const auto* n = std::get_if<NatRecord>(&item.record)) {
        if (json_) write_json(nat_json(*n, o_.node_id, logged));
        if (url_) fresh.push_back(encode_nat(*n));
      } else {
        const auto& f = std::get<FlowRecord>(item.record);
        if (json_) write_json(flow_json(f, item.with_destination, o_.node_id, logged));
        if (url_) fresh.push_back(encode_flow(f, item.with_destination));
      }
    }
    if (json_ && !items.empty()) json_->flush();
    if (!url_) return;

    refill_budget(now);
    check_connection(now);
    if (!fresh.empty()) {
      size_t sent = 0;
      // Straight out only when nothing older waits; otherwise behind it, in the spool.
      if (state_ == CollectorState::kUp && spool_->empty() && !replaying_)
        send(fresh, false, &sent);
      to_spool_back(std::span(fresh).subspan(sent));
    }
    replay();
    publish();
  }

  // At shutdown: give in-flight records a last chance to be confirmed, then keep the rest.
  void finish() {
    if (!url_) return;
    const Clock::time_point deadline =
        Clock::now() + std::chrono::milliseconds(std::max<uint32_t>(2 * o_.udp_confirm_ms, 2000));
    while (!in_flight_.empty() && state_ == CollectorState::kUp && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      check_connection(Clock::now());
    }
    requeue_unconfirmed();
    publish();
  }

  bool settled_exported() const {
    return !url_ ||
           (in_flight_.empty() && !replaying_ && spool_->empty() && state_ == CollectorState::kUp);
  }
  bool settled_spooled() const { return !url_ || in_flight_.empty(); }

 private:
  struct InFlight {
    size_t bytes;
    Clock::time_point sent;
    std::vector<EncodedRecord> records;
    bool from_spool;
  };

  void write_json(const std::string& line) {
    if (json_->write(line)) ++c_.json_lines;
  }

  void refill_budget(Clock::time_point now) {
    if (o_.max_messages_per_second == 0) {
      budget_ = SIZE_MAX;
      return;
    }
    const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
    last_refill_ = now;
    const double cap = std::max(1.0, o_.max_messages_per_second / 5.0);
    budget_f_ = std::min(cap, budget_f_ + elapsed * o_.max_messages_per_second);
    budget_ = size_t(budget_f_);
  }

  void spend_budget() {
    if (budget_ != SIZE_MAX) {
      --budget_;
      budget_f_ -= 1.0;
    }
  }

  // ---- transport ----

  void check_connection(Clock::time_point now) {
    if (state_ == CollectorState::kDown && now >= next_retry_) connect(now);
    if (state_ == CollectorState::kProbing) {
      if (const int err = pending_error()) return fail(std::strerror(err), now);
      if (now - probe_sent_ >= std::chrono::milliseconds(o_.udp_confirm_ms)) {
        set_up();
      }
    }
    if (state_ != CollectorState::kUp) return;
    if (url_->transport == Transport::kUdp) {
      if (const int err = pending_error()) return fail(std::strerror(err), now);
      // No ICMP error within udp_confirm_ms of a datagram: it reached a listening collector.
      while (!in_flight_.empty() &&
             now - in_flight_.front().sent >= std::chrono::milliseconds(o_.udp_confirm_ms))
        confirm_front();
    } else {
      if (peer_closed()) return fail("collector closed the connection", now);
      trim_acknowledged(unacknowledged_bytes());
    }
  }

  int pending_error() {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
  }

  // TCP: the collector never sends; readable means FIN or RST.
  bool peer_closed() {
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
    char buf[512];
    const ssize_t r = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR);
  }

  size_t unacknowledged_bytes() {
    int outq = 0;
    if (ioctl(fd_, SIOCOUTQ, &outq) != 0) return SIZE_MAX;  // unknown: keep everything
    return size_t(std::max(outq, 0));
  }

  // TCP: messages whose every byte the peer acknowledged are exported.
  void trim_acknowledged(size_t outq) {
    if (outq == SIZE_MAX) return;
    size_t total = 0;
    for (const InFlight& m : in_flight_) total += m.bytes;
    while (!in_flight_.empty() && total - in_flight_.front().bytes >= outq) {
      total -= in_flight_.front().bytes;
      confirm_front();
    }
  }

  void confirm_front() {
    const InFlight& m = in_flight_.front();
    c_.exported += m.records.size();
    if (m.from_spool) c_.replayed += m.records.size();
    in_flight_.pop_front();
  }

  void connect(Clock::time_point now) {
    next_retry_ = now + std::chrono::milliseconds(o_.retry_ms);
    addrinfo hints{};
    hints.ai_socktype = url_->transport == Transport::kTcp ? SOCK_STREAM : SOCK_DGRAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(url_->port);
    if (const int rc = getaddrinfo(url_->host.c_str(), port.c_str(), &hints, &res); rc != 0)
      return note_down(std::string("cannot resolve ") + url_->host + ": " + gai_strerror(rc));
    std::string error = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      const int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        error = std::strerror(errno);
        continue;
      }
      if (url_->transport == Transport::kTcp ? connect_tcp(fd, ai, &error)
                                             : ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        fd_ = fd;
        break;
      }
      if (url_->transport == Transport::kUdp) error = std::strerror(errno);
      ::close(fd);
    }
    freeaddrinfo(res);
    if (fd_ < 0) return note_down(error);
    encoder_.reset_templates();
    if (url_->transport == Transport::kTcp) return set_up();
    // UDP has no handshake: send the templates and wait udp_confirm_ms for an ICMP error.
    const Message probe = encoder_.templates_only(uint32_t(unix_ms() / 1000));
    if (!transmit(probe.bytes)) return fail(std::strerror(errno), now);
    ++c_.messages_sent;
    state_ = CollectorState::kProbing;
    probe_sent_ = now;
  }

  bool connect_tcp(int fd, const addrinfo* ai, std::string* error) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      *error = std::strerror(errno);
      return false;
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, int(o_.connect_timeout_ms)) <= 0) {
      *error = "connect timed out";
      return false;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      *error = std::strerror(err);
      return false;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{time_t(o_.send_timeout_ms / 1000), suseconds_t(o_.send_timeout_ms % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
  }

  void set_up() {
    state_ = CollectorState::kUp;
    ++c_.connects;
    log_info("export collector " + to_string(*url_) + " up" +
             (spool_->empty()
                  ? std::string()
                  : "; replaying " + std::to_string(spool_->records()) + " spooled records"));
    logged_down_ = false;
  }

  void note_down(const std::string& why) {
    state_ = CollectorState::kDown;
    if (!logged_down_)
      log_warn("export collector " + to_string(*url_) + " unreachable (" + why + "); spooling to " +
               spool_->dir() + ", retrying every " + std::to_string(o_.retry_ms) + " ms");
    logged_down_ = true;
  }

  void close_socket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // The collector went away: what it may not have is spooled again, in order, at the front.
  void fail(const std::string& why, Clock::time_point now) {
    if (url_->transport == Transport::kTcp && fd_ >= 0) trim_acknowledged(unacknowledged_bytes());
    close_socket();
    if (state_ == CollectorState::kUp) ++c_.disconnects;
    next_retry_ = now + std::chrono::milliseconds(o_.retry_ms);
    note_down(why);
    requeue_unconfirmed();
  }

  void requeue_unconfirmed() {
    std::vector<EncodedRecord> back;
    for (InFlight& m : in_flight_) back.insert(back.end(), m.records.begin(), m.records.end());
    in_flight_.clear();
    if (replaying_)
      back.insert(back.end(), replay_.records.begin() + ptrdiff_t(replay_pos_),
                  replay_.records.end());
    if (!back.empty()) {
      if (Status st = spool_->prepend(back); st) {
        c_.spooled += back.size();
      } else {
        c_.dropped_io_error += back.size();
        log_error("export: " + st.error() + "; " + std::to_string(back.size()) + " records lost");
      }
    }
    if (replaying_) {
      if (Status st = spool_->remove(replay_.segment); !st) log_error("export: " + st.error());
      replaying_ = false;
    }
  }

  bool transmit(const std::vector<uint8_t>& bytes) {
    if (url_->transport == Transport::kUdp) {
      last_datagram_ = Clock::now();
      return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT) ==
             ssize_t(bytes.size());
    }
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t w = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      off += size_t(w);
    }
    return true;
  }

  // Sends records[*progress..] as far as the budget goes; *progress advances per message.
  void send(std::span<const EncodedRecord> records, bool from_spool, size_t* progress) {
    const Clock::time_point now = Clock::now();
    while (*progress < records.size() && budget_ > 0 && state_ == CollectorState::kUp) {
      if (url_->transport == Transport::kTcp && peer_closed())
        return fail("collector closed the connection", now);
      // UDP: after a quiet spell the collector may be a new process that never saw the
      // templates (a restart sends no ICMP error unless a datagram arrived while it was down).
      if (url_->transport == Transport::kUdp && o_.template_idle_ms &&
          now - last_datagram_ >= std::chrono::milliseconds(o_.template_idle_ms))
        encoder_.reset_templates();
      std::vector<Message> msgs =
          encoder_.encode(records.subspan(*progress), uint32_t(unix_ms() / 1000), 1);
      Message& m = msgs.front();
      if (!transmit(m.bytes)) return fail(std::strerror(errno), now);
      ++c_.messages_sent;
      spend_budget();
      const auto first = records.begin() + ptrdiff_t(*progress);
      in_flight_.push_back(InFlight{m.bytes.size(), now,
                                    std::vector<EncodedRecord>(first, first + m.record_count),
                                    from_spool});
      *progress += m.record_count;
    }
    if (url_->transport == Transport::kTcp && state_ == CollectorState::kUp)
      trim_acknowledged(unacknowledged_bytes());
  }

  void to_spool_back(std::span<const EncodedRecord> records) {
    if (records.empty()) return;
    if (Status st = spool_->append(records); st) {
      c_.spooled += records.size();
    } else {
      c_.dropped_io_error += records.size();
      log_error("export: " + st.error() + "; " + std::to_string(records.size()) + " records lost");
    }
  }

  void replay() {
    while (state_ == CollectorState::kUp && budget_ > 0 && (replaying_ || !spool_->empty())) {
      if (!replaying_) {
        auto batch = spool_->read_oldest();
        if (!batch) {
          // Unreadable: dropping it is the only way past it.
          log_error("export: " + batch.error() + "; skipping the segment");
          const uint64_t before = spool_->records();
          (void)spool_->remove(spool_->oldest_segment());
          c_.dropped_io_error += before - spool_->records();
          continue;
        }
        replay_ = std::move(*batch);
        replay_pos_ = 0;
        replaying_ = true;
      }
      send(replay_.records, true, &replay_pos_);
      if (!replaying_) break;                           // failed: requeued
      if (replay_pos_ < replay_.records.size()) break;  // out of budget
      if (Status st = spool_->remove(replay_.segment); !st) log_error("export: " + st.error());
      replaying_ = false;
    }
  }

  void publish() {
    c_.state.store(uint8_t(state_));
    c_.sequence.store(encoder_.sequence());
    if (spool_) {
      c_.spool_bytes.store(spool_->bytes());
      c_.spool_records.store(spool_->records());
      c_.dropped_spool_limit.store(spool_->dropped_records());
    }
  }

  const ExporterOptions& o_;
  std::optional<CollectorUrl> url_;
  IpfixEncoder encoder_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<JsonLinesWriter> json_;
  ExporterCounters& c_;
  CollectorState state_;
  int fd_ = -1;
  Clock::time_point next_retry_{}, probe_sent_{}, last_refill_ = Clock::now();
  Clock::time_point last_datagram_{};  // UDP: when the last message went out
  bool logged_down_ = false;
  std::deque<InFlight> in_flight_;
  SpoolBatch replay_;
  size_t replay_pos_ = 0;
  bool replaying_ = false;
  size_t budget_ = 0;
  double budget_f_ = 0;
};

Exporter::Exporter(const ExporterOptions& options)
    : options_(options), destination_logging_(options.destination_logging) {}

Result<std::unique_ptr<Exporter>> Exporter::create(const ExporterOptions& options) {
  std::optional<CollectorUrl> url;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<JsonLinesWriter> json;
  // At least one message of every template and the longest record (the encoder never frames
  // less, so a smaller size could not be kept).
  const size_t min_bytes = min_message_bytes(options.enterprise_number);
  if (options.max_message_bytes < min_bytes || options.max_message_bytes > 65535)
    return make_error("export: message size " + std::to_string(options.max_message_bytes) +
                      " outside " + std::to_string(min_bytes) + "-65535 bytes");
  if (options.queue_capacity == 0) return make_error("export: queue capacity must be > 0");
  if (!options.collector.empty()) {
    auto parsed = parse_collector_url(options.collector);
    if (!parsed) return make_error("export: " + parsed.error());
    url = *parsed;
    if (options.spool_dir.empty())
      return make_error(
          "export: a collector needs a spool directory, so that records "
          "survive its outages");
    auto s = Spool::open(SpoolOptions{options.spool_dir, options.spool_max_bytes,
                                      options.spool_segment_bytes, options.spool_fsync});
    if (!s) return make_error("export: " + s.error());
    spool = std::move(*s);
  }
  if (!options.json_path.empty()) {
    auto j = JsonLinesWriter::open(options.json_path);
    if (!j) return make_error("export: " + j.error());
    json = std::move(*j);
  }
  if (!url && !json)
    return make_error("export: neither a collector nor a JSON path given: nothing to do");
  std::unique_ptr<Exporter> e(new Exporter(options));
  e->io_ = std::make_unique<Io>(e->options_, url, std::move(spool), std::move(json), e->counters_);
  e->queue_.reserve(std::min<size_t>(options.queue_capacity, 4096));
  e->thread_ = std::thread([p = e.get()] { p->run(); });
  return e;
}

Exporter::~Exporter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool Exporter::enqueue(Item&& item) {
  size_t depth;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      ++counters_.dropped_queue_full;
      return false;
    }
    queue_.push_back(std::move(item));
    depth = queue_.size();
  }
  ++counters_.submitted;
  if (depth == options_.queue_capacity / 4) wake_.notify_one();
  return true;
}

bool Exporter::submit_nat_event(const NatRecord& event) {
  return enqueue(Item{event, true});
}

bool Exporter::submit_flow(const FlowRecord& flow) {
  return enqueue(Item{flow, flow.log_destination && destination_logging_.load()});
}

void Exporter::run() {
  std::vector<Item> batch;
  for (;;) {
    bool stopping;
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.flush_ms), [&] {
        return stop_ || queue_.size() >= std::max<size_t>(1, options_.queue_capacity / 4);
      });
      batch.swap(queue_);
      stopping = stop_;
    }
    io_->pass(batch);
    batch.clear();
    if (stopping) {
      io_->finish();
    }
    {
      std::lock_guard lock(mu_);
      ++passes_;
      idle_exported_ = queue_.empty() && io_->settled_exported();
      idle_spooled_ = queue_.empty() && io_->settled_spooled();
    }
    settled_cv_.notify_all();
    if (stopping) break;
  }
}

bool Exporter::wait_settled(std::chrono::milliseconds timeout, bool spooled_is_enough) {
  const auto deadline = Clock::now() + timeout;
  std::unique_lock lock(mu_);
  const uint64_t start = passes_;
  for (;;) {
    if (passes_ > start + 1 && queue_.empty() &&
        (spooled_is_enough ? idle_spooled_ : idle_exported_))
      return true;
    wake_.notify_one();
    if (settled_cv_.wait_until(lock, deadline) == std::cv_status::timeout) return false;
  }
}

}  // namespace exitgw::exporter
