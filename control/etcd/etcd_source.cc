// The etcd update source; see etcd_source.h.
#include "control/etcd/etcd_source.h"

#include <algorithm>
#include <set>
#include <utility>

#include "control/admin/peer_json.h"
#include "control/log.h"

namespace exitgw::etcd {
namespace {

// A peer's JSON is a few hundred bytes; far larger is a mistake, not a peer.
constexpr size_t kMaxPeerValueBytes = 64 * 1024;
// Watch batches waiting for the source thread; beyond this the stream is not read (TCP backs
// etcd off) until control catches up.
constexpr size_t kMaxQueuedItems = 256;

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A peer's allowed prefixes of both families as canonical text, which names each one once.
std::vector<std::string> prefix_texts(const PeerConfig& peer) {
  std::vector<std::string> out;
  for (const Ipv4Prefix& p : peer.allowed_ips) out.push_back(format_allowed_ip(p));
  for (const Ipv6Prefix& p : peer.allowed_ips6) out.push_back(format_allowed_ip(p));
  return out;
}

// Printable for logs: etcd keys are bytes.
std::string shown(std::string_view key) {
  std::string out;
  for (char c : key.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out += c;
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  if (key.size() > 200) out += "...";
  return out;
}

}  // namespace

std::string status_json(const NodeStatus& s, int64_t unix_ms, const EtcdHealth* health) {
  nlohmann::json j = {{"generation", s.generation},
                      {"peers", s.peers},
                      {"load", s.load},
                      {"healthy", s.healthy},
                      {"unix_ms", unix_ms}};
  if (health) {
    j["revision"] = health->revision;
    j["events"] = health->events;
    j["loads"] = health->loads;
    j["stale_events_skipped"] = health->stale_events_skipped;
    j["updates_rejected"] = health->updates_rejected;
  }
  return j.dump();
}

std::string EtcdKeys::peer(const wg::Key& key) const {
  return peers() + admin::key_to_url(key);
}

Result<PeerConfig> peer_from_etcd(std::string_view name, std::string_view value) {
  auto key = admin::key_from_url(name);
  if (!key) return make_error("key name: " + key.error());
  if (admin::key_to_url(*key) != name)
    return make_error("key name is not the canonical base64url of the public key (expected " +
                      admin::key_to_url(*key) + ")");
  if (value.size() > kMaxPeerValueBytes)
    return make_error("value longer than " + std::to_string(kMaxPeerValueBytes) + " bytes");
  auto json = admin::parse_request_json(value);
  if (!json) return make_error(json.error());
  auto peer = admin::peer_from_json(*json, &*key);
  if (!peer) return make_error(peer.error());
  return std::move(*peer);
}

Result<bool> approval_from_etcd(std::string_view value) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
    value.remove_prefix(1);
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
    value.remove_suffix(1);
  if (value == "approved") return true;
  if (value == "unapproved") return false;
  return make_error("approval must be \"approved\" or \"unapproved\", got \"" +
                    shown(value.substr(0, 64)) + "\"");
}

EtcdSource::EtcdSource(EtcdSourceOptions options, UpdateQueue& queue, StatusCallback status)
    : options_(std::move(options)), queue_(queue), status_cb_(std::move(status)) {}

EtcdSource::~EtcdSource() {
  stop();
}

Status EtcdSource::start() {
  if (thread_.joinable()) return make_error("etcd source already started");
  auto endpoints = parse_endpoints(options_.endpoints);
  if (!endpoints) return make_error("--etcd_endpoints: " + endpoints.error());
  if (options_.prefix.empty() || options_.prefix.back() != '/')
    return make_error("--etcd_prefix: must end in '/', e.g. /exitgw/<region>/");
  if (options_.node.empty() || options_.node.find('/') != std::string::npos)
    return make_error("etcd: the node name must be non-empty and hold no '/'");
  keys_ = EtcdKeys{options_.prefix, options_.node};
  peers_prefix_ = keys_.peers();
  ClientOptions co;
  co.endpoints = std::move(*endpoints);
  co.connect_timeout = options_.connect_timeout;
  co.request_timeout = options_.request_timeout;
  co.watch_idle_timeout = options_.watch_idle_timeout;
  co.range_page = options_.range_page;
  client_ = std::make_unique<EtcdClient>(std::move(co));
  {
    std::lock_guard lock(health_mu_);
    health_.running = true;
    health_.endpoint = client_->current_endpoint();
  }
  stopping_ = false;
  thread_ = std::thread(&EtcdSource::run, this);
  if (status_cb_ && options_.status_ttl.count() > 0)
    status_thread_ = std::thread(&EtcdSource::status_loop, this);
  log_info("etcd: source started, endpoints " + options_.endpoints + ", prefix " + options_.prefix +
           ", node " + options_.node);
  return Ok{};
}

void EtcdSource::stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  q_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (status_thread_.joinable()) status_thread_.join();
  std::lock_guard lock(health_mu_);
  health_.running = false;
  health_.connected = false;
}

EtcdHealth EtcdSource::health() const {
  std::lock_guard lock(health_mu_);
  EtcdHealth h = health_;
  h.bad_entries_total = bad_.size();
  for (const auto& [key, entry] : bad_) {
    if (h.bad_entries.size() >= kMaxBadShown) break;
    h.bad_entries.push_back(entry);
  }
  return h;
}

bool EtcdSource::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(stop_mu_);
  return !stop_cv_.wait_for(lock, d, [this] { return stopping_.load(); });
}

std::chrono::milliseconds EtcdSource::next_backoff() {
  // initial * 2^attempt, capped, then a random point in its upper half (the jitter keeps a
  // fleet that lost etcd together from coming back in lockstep).
  const int shift = std::min(backoff_attempt_++, 20);
  const int64_t cap = std::max<int64_t>(1, options_.backoff_max.count());
  const int64_t full = std::min<int64_t>(cap, options_.backoff_initial.count() << shift);
  const int64_t half = std::max<int64_t>(1, full / 2);
  return std::chrono::milliseconds(half + static_cast<int64_t>(rng_() % (half + 1)));
}

void EtcdSource::set_error(const std::string& message) {
  std::lock_guard lock(health_mu_);
  health_.last_error = message;
  health_.last_error_unix_ms = unix_ms_now();
}

void EtcdSource::set_connected(bool connected, const std::string& endpoint) {
  std::lock_guard lock(health_mu_);
  health_.connected = connected;
  if (!endpoint.empty()) health_.endpoint = endpoint;
}

void EtcdSource::set_bad(const std::string& key, std::string reason, int64_t revision) {
  log_warn("etcd: " + shown(key) + " (revision " + std::to_string(revision) +
           ") refused: " + reason);
  std::lock_guard lock(health_mu_);
  bad_[key] = EtcdBadEntry{shown(key), std::move(reason), revision};
}

void EtcdSource::clear_bad(const std::string& key) {
  std::lock_guard lock(health_mu_);
  bad_.erase(key);
}

std::optional<UpdateResult> EtcdSource::submit(Update update) {
  auto fut = queue_.submit(std::move(update), options_.source);
  while (fut.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready)
    if (stopping_) return std::nullopt;
  return fut.get();
}

void EtcdSource::count_result(const UpdateResult& r, const std::string& key, int64_t revision) {
  {
    std::lock_guard lock(health_mu_);
    if (r.ok())
      ++health_.updates_applied;
    else
      ++health_.updates_rejected;
  }
  if (r.ok())
    clear_bad(key);
  else
    set_bad(key, "update rejected: " + r.message, revision);
}

void EtcdSource::push(Item item) {
  std::unique_lock lock(q_mu_);
  q_cv_.wait(lock, [this] { return q_.size() < kMaxQueuedItems || stopping_ || discard_; });
  if (discard_) return;  // the source has left this watch
  q_.push_back(std::move(item));
  lock.unlock();
  q_cv_.notify_all();
}

Result<int64_t> EtcdSource::load() {
  auto range = client_->range_prefix(keys_.peers());
  if (!range) return make_error(range.error());
  const int64_t rev = range->revision;
  auto approval = client_->range(keys_.approval(), "", rev);
  if (!approval) return make_error(approval.error());
  auto policy = client_->range(keys_.policy(), "", rev);
  if (!policy) return make_error(policy.error());
  set_connected(true, client_->current_endpoint());

  std::map<std::string, EtcdBadEntry> bad;
  std::map<std::string, PeerConfig> applied;
  std::vector<PeerConfig> peers;
  std::map<std::string, std::string> prefix_owner;  // allowed prefix (canonical text) -> key
  const std::string peers_prefix = keys_.peers();
  for (const KeyValue& kv : range->kvs) {
    const std::string_view name = std::string_view(kv.key).substr(peers_prefix.size());
    auto peer = peer_from_etcd(name, kv.value);
    std::string reason;
    if (!peer) {
      reason = peer.error();
    } else {
      for (const std::string& p : prefix_texts(*peer)) {
        const auto it = prefix_owner.find(p);
        if (it != prefix_owner.end()) {
          reason = "AllowedIPs " + p + " already belongs to " + shown(it->second);
          break;
        }
      }
    }
    if (!reason.empty()) {
      log_warn("etcd: " + shown(kv.key) + " (revision " + std::to_string(kv.mod_revision) +
               ") skipped: " + reason);
      bad[kv.key] = EtcdBadEntry{shown(kv.key), reason, kv.mod_revision};
      continue;
    }
    for (std::string& p : prefix_texts(*peer)) prefix_owner[std::move(p)] = kv.key;
    applied[kv.key] = *peer;
    peers.push_back(std::move(*peer));
  }
  const size_t n_peers = peers.size();
  auto result = submit(PeerSet{std::move(peers)});
  if (!result) return make_error("stopping");
  {
    std::lock_guard lock(health_mu_);
    if (result->ok())
      ++health_.updates_applied;
    else
      ++health_.updates_rejected;
  }
  if (!result->ok())
    return make_error("the peer set from etcd (" + std::to_string(n_peers) + " peers at revision " +
                      std::to_string(rev) + ") was rejected: " + result->message);
  applied_ = std::move(applied);
  log_info("etcd: loaded " + std::to_string(n_peers) + " peers at revision " + std::to_string(rev) +
           (bad.empty() ? "" : ", skipped " + std::to_string(bad.size())));

  // The approval, read at the same revision.
  bool send_approval = false;  // whether to send an ApprovalSet, with `want`
  std::optional<bool> want;
  const std::string approval_key = keys_.approval();
  if (!approval->kvs.empty()) {
    const KeyValue& kv = approval->kvs.front();
    auto v = approval_from_etcd(kv.value);
    if (v) {
      send_approval = true;
      want = *v;
    } else {
      bad[kv.key] = EtcdBadEntry{shown(kv.key), v.error(), kv.mod_revision};
    }
  } else if (approval_set_) {
    send_approval = true;  // deleted while we were not watching: clear it
  }
  {
    std::lock_guard lock(health_mu_);
    bad_ = bad;
    health_.updates_rejected += bad.size();  // each skipped value counts as a refused update
    ++health_.loads;
    health_.loaded = true;
    health_.revision = rev;
  }
  if (send_approval) {
    auto r = submit(ApprovalSet{want});
    if (!r) return make_error("stopping");
    count_result(*r, approval_key, rev);
    if (r->ok()) {
      approval_ = want;
      approval_set_ = want.has_value();
    }
  }
  // The policy, read at the same revision: a refused one is reported, the running one stays.
  if (!policy->kvs.empty() || policy_set_) {
    std::optional<std::string> text;
    if (!policy->kvs.empty()) text = policy->kvs.front().value;
    const int64_t policy_rev = policy->kvs.empty() ? rev : policy->kvs.front().mod_revision;
    const bool clearing = !text;
    auto r = submit(PolicyReplace{std::move(text)});
    if (!r) return make_error("stopping");
    count_result(*r, keys_.policy(), policy_rev);
    if (r->ok()) policy_set_ = !clearing;
  }
  return rev;
}

bool EtcdSource::handle_peer_event(const Event& ev, std::string_view name) {
  const std::string& key = ev.kv.key;
  const int64_t rev = ev.kv.mod_revision;
  if (ev.type == Event::Type::kDelete) {
    clear_bad(key);
    const auto it = applied_.find(key);
    if (it == applied_.end()) return true;  // never applied (it was refused): nothing to undo
    auto r = submit(PeerRemove{it->second.public_key});
    if (!r) return false;
    if (r->ok() || r->error == UpdateError::kNotFound) {
      applied_.erase(it);
      if (!r->ok()) {  // already gone: the state is what etcd says
        log_info("etcd: " + shown(key) + " deleted; the peer was already gone");
        return true;
      }
    }
    count_result(*r, key, rev);
    return true;
  }
  auto peer = peer_from_etcd(name, ev.kv.value);
  if (!peer) {
    {
      std::lock_guard lock(health_mu_);
      ++health_.updates_rejected;
    }
    set_bad(key,
            peer.error() + (applied_.count(key) ? " (the peer keeps its last good settings)" : ""),
            rev);
    return true;
  }
  PeerConfig config = *peer;
  auto r = submit(PeerUpsert{std::move(*peer)});
  if (!r) return false;
  if (r->ok()) applied_[key] = std::move(config);
  count_result(*r, key, rev);
  return true;
}

bool EtcdSource::handle_approval_event(const Event& ev) {
  const std::string& key = ev.kv.key;
  std::optional<bool> want;
  if (ev.type == Event::Type::kPut) {
    auto v = approval_from_etcd(ev.kv.value);
    if (!v) {
      {
        std::lock_guard lock(health_mu_);
        ++health_.updates_rejected;
      }
      set_bad(key, v.error(), ev.kv.mod_revision);
      return true;
    }
    want = *v;
  }
  auto r = submit(ApprovalSet{want});
  if (!r) return false;
  if (r->ok()) {
    approval_ = want;
    approval_set_ = want.has_value();
  }
  count_result(*r, key, ev.kv.mod_revision);
  return true;
}

bool EtcdSource::handle_policy_event(const Event& ev) {
  std::optional<std::string> text;
  if (ev.type == Event::Type::kPut) text = ev.kv.value;
  const bool clearing = !text;
  if (clearing && !policy_set_) {
    // etcd's policy was never in force (it was refused): nothing of etcd's to clear, and an
    // override from another source (the admin API) is not etcd's to remove.
    clear_bad(ev.kv.key);
    return true;
  }
  auto r = submit(PolicyReplace{std::move(text)});
  if (!r) return false;
  if (r->ok()) policy_set_ = !clearing;
  count_result(*r, ev.kv.key, ev.kv.mod_revision);
  return true;
}

bool EtcdSource::is_peer_key(const std::string& key) const {
  return key.size() > peers_prefix_.size() &&
         key.compare(0, peers_prefix_.size(), peers_prefix_) == 0;
}

bool EtcdSource::handle_peer_run(const std::vector<const Event*>& run) {
  const auto name_of = [this](const Event& ev) {
    return std::string_view(ev.kv.key).substr(peers_prefix_.size());
  };
  const auto one_by_one = [&] {
    for (const Event* ev : run)
      if (!handle_peer_event(*ev, name_of(*ev))) return false;
    return true;
  };
  if (options_.coalesce_min_events == 0 || run.size() < options_.coalesce_min_events)
    return one_by_one();
  // The source's peers as applied, with the run's changes on top. A value refused here is
  // reported as the event-by-event path reports it, and changes nothing.
  std::map<std::string, PeerConfig> next = applied_;
  struct Refused {
    std::string reason;
    int64_t revision;
  };
  std::map<std::string, Refused> refused;  // key -> its last refused value, if still current
  std::set<std::string> touched;           // keys whose current value is good (or deleted)
  uint64_t refused_events = 0;
  for (const Event* ev : run) {
    const std::string& key = ev->kv.key;
    if (ev->type == Event::Type::kDelete) {
      next.erase(key);
      refused.erase(key);
      touched.insert(key);
      continue;
    }
    auto peer = peer_from_etcd(name_of(*ev), ev->kv.value);
    if (!peer) {
      ++refused_events;
      touched.erase(key);
      refused[key] = Refused{
          peer.error() + (next.count(key) ? " (the peer keeps its last good settings)" : ""),
          ev->kv.mod_revision};
      continue;
    }
    next[key] = std::move(*peer);
    refused.erase(key);
    touched.insert(key);
  }
  std::vector<PeerConfig> peers;
  peers.reserve(next.size());
  for (const auto& [key, peer] : next) peers.push_back(peer);
  auto r = submit(PeerSet{std::move(peers)});
  if (!r) return false;
  if (!r->ok()) {
    log_warn("etcd: " + std::to_string(run.size()) + " peer events as one set refused (" +
             r->message + "); applying them one by one");
    return one_by_one();
  }
  applied_ = std::move(next);
  {
    std::lock_guard lock(health_mu_);
    ++health_.updates_applied;
    ++health_.coalesced_sets;
    health_.updates_rejected += refused_events;
  }
  for (const std::string& key : touched) clear_bad(key);
  for (auto& [key, bad] : refused) set_bad(key, std::move(bad.reason), bad.revision);
  log_info("etcd: " + std::to_string(run.size()) + " peer events applied as one set (" +
           std::to_string(applied_.size()) + " peers)");
  return true;
}

bool EtcdSource::handle_event(const Event& ev) {
  if (is_peer_key(ev.kv.key))
    return handle_peer_event(ev, std::string_view(ev.kv.key).substr(peers_prefix_.size()));
  if (ev.kv.key == keys_.approval()) return handle_approval_event(ev);
  if (ev.kv.key == keys_.policy()) return handle_policy_event(ev);
  return true;  // another node's approval, or a key this layout does not define
}

void EtcdSource::run() {
  bool need_load = true;
  while (!stopping_) {
    if (need_load) {
      auto rev = load();
      if (stopping_) break;
      if (!rev) {
        set_error("load: " + rev.error());
        set_connected(false, "");
        const auto wait = next_backoff();
        log_warn("etcd: load failed (" + rev.error() + "); retrying in " +
                 std::to_string(wait.count()) + " ms");
        if (!sleep_for(wait)) break;
        continue;
      }
      revision_ = *rev;
      need_load = false;
    }

    {
      std::lock_guard lock(q_mu_);
      q_.clear();
      discard_ = false;
    }
    WatchRequest req{keys_.watch_begin(), keys_.watch_end(), revision_ + 1, true};
    WatchCallbacks cb;
    cb.created = [this](int64_t revision, const std::string& endpoint) {
      push(Item{Item::Kind::kCreated, WatchBatch{revision, {}}, endpoint, {}});
    };
    cb.batch = [this](WatchBatch&& b) { push(Item{Item::Kind::kBatch, std::move(b), {}, {}}); };
    cb.ended = [this](const WatchEnd& end) { push(Item{Item::Kind::kEnd, {}, {}, end}); };
    std::unique_ptr<Watch> watch = client_->watch(req, std::move(cb));

    WatchEnd end;
    bool relist = false;
    for (;;) {
      Item item;
      {
        std::unique_lock lock(q_mu_);
        q_cv_.wait(lock, [this] { return !q_.empty() || stopping_; });
        if (stopping_) break;
        item = std::move(q_.front());
        q_.pop_front();
      }
      q_cv_.notify_all();
      if (item.kind == Item::Kind::kEnd) {
        end = item.end;
        break;
      }
      if (item.kind == Item::Kind::kCreated) {
        set_connected(true, item.endpoint);
        backoff_attempt_ = 0;
        if (item.batch.revision < revision_) {
          // etcd is behind what was already applied (restored from an older backup, or a
          // different cluster): nothing it streams can be trusted to line up; load again.
          set_error("etcd revision " + std::to_string(item.batch.revision) + " is behind " +
                    std::to_string(revision_) + ": reloading");
          relist = true;
          break;
        }
        continue;
      }
      // A batch: events above the revision handled so far, in order. Events of one revision
      // (a transaction) come in one batch, so `revision_` only moves between revisions. Batches
      // already waiting are taken too, so a backlog can be applied as a few large updates.
      std::vector<WatchBatch> batches;
      batches.push_back(std::move(item.batch));
      {
        std::lock_guard lock(q_mu_);
        while (!q_.empty() && q_.front().kind == Item::Kind::kBatch) {
          batches.push_back(std::move(q_.front().batch));
          q_.pop_front();
        }
      }
      q_cv_.notify_all();
      const int64_t floor = revision_;
      int64_t top = floor;
      bool stopped = false;
      uint64_t handled = 0, stale = 0;
      std::vector<const Event*> run;  // consecutive peer events not yet handled
      const auto flush = [&] {
        const bool ok = run.empty() || handle_peer_run(run);
        run.clear();
        return ok;
      };
      for (const WatchBatch& batch : batches) {
        for (const Event& ev : batch.events) {
          if (ev.kv.mod_revision <= floor) {
            ++stale;
            continue;
          }
          ++handled;
          top = std::max(top, ev.kv.mod_revision);
          if (is_peer_key(ev.kv.key)) {
            run.push_back(&ev);
            continue;
          }
          if (!flush() || !handle_event(ev)) {
            stopped = true;
            break;
          }
        }
        if (stopped) break;
        if (batch.events.empty()) top = std::max(top, batch.revision);  // progress
      }
      if (!stopped && !flush()) stopped = true;
      {
        std::lock_guard lock(health_mu_);
        health_.stale_events_skipped += stale;
        health_.events += handled;
      }
      if (stopped) break;
      revision_ = top;
      std::lock_guard lock(health_mu_);
      health_.revision = revision_;
    }
    {
      std::lock_guard lock(q_mu_);
      discard_ = true;  // unblocks a watch thread waiting for room, so stop() can join it
      q_.clear();
    }
    q_cv_.notify_all();
    watch->stop();
    if (stopping_) break;
    if (relist) {
      need_load = true;
      continue;
    }
    switch (end.kind) {
      case WatchEnd::Kind::kStopped:
        break;
      case WatchEnd::Kind::kIdle:
        log_info("etcd: watch idle (" + end.message + "); reopening at revision " +
                 std::to_string(revision_ + 1));
        break;
      case WatchEnd::Kind::kCompacted: {
        log_warn("etcd: revision " + std::to_string(revision_ + 1) + " is compacted (" +
                 end.message + "); reloading");
        std::lock_guard lock(health_mu_);
        ++health_.compactions;
        need_load = true;
        break;
      }
      case WatchEnd::Kind::kDisconnected:
      case WatchEnd::Kind::kCanceled: {
        set_error("watch: " + end.message);
        set_connected(false, "");
        {
          std::lock_guard lock(health_mu_);
          ++health_.reconnects;
        }
        const auto wait = next_backoff();
        log_warn("etcd: watch " + std::string(to_string(end.kind)) + " (" + end.message +
                 "); resuming at revision " + std::to_string(revision_ + 1) + " in " +
                 std::to_string(wait.count()) + " ms");
        if (!sleep_for(wait)) return;
        break;
      }
    }
  }
}

void EtcdSource::status_loop() {
  const auto interval = options_.status_interval.count() > 0
                            ? options_.status_interval
                            : std::chrono::milliseconds(options_.status_ttl) / 3;
  const std::string key = keys_.status();
  int64_t lease = 0;
  const auto fail = [&](const std::string& what) {
    std::lock_guard lock(health_mu_);
    ++health_.status_errors;
    health_.status_error = what;
  };
  bool first = true;
  while (first || sleep_for(interval)) {
    first = false;
    if (lease != 0) {
      // A lease etcd no longer knows (it expired while we could not reach etcd, or etcd lost
      // its data) is granted anew; a transport failure keeps it and tries again.
      auto ka = client_->lease_keepalive(lease);
      if (!ka) {
        fail("keepalive: " + ka.error());
        if (ka.error().find("expired or unknown") == std::string::npos) continue;
        log_warn("etcd: status lease " + std::to_string(lease) + " lost; granting a new one");
        lease = 0;
      }
    }
    if (lease == 0) {
      auto granted = client_->lease_grant(options_.status_ttl.count());
      if (!granted) {
        fail("lease grant: " + granted.error());
        continue;
      }
      lease = granted->id;
      std::lock_guard lock(health_mu_);
      health_.status_lease = lease;
    }
    const EtcdHealth h = health();
    auto put = client_->put(key, status_json(status_cb_(), unix_ms_now(), &h), lease);
    if (!put) {
      fail("put: " + put.error());
      if (put.error().find("lease not found") != std::string::npos) lease = 0;
      continue;
    }
    std::lock_guard lock(health_mu_);
    ++health_.status_writes;
  }
  if (lease != 0 && options_.revoke_status_on_stop) {
    if (Status s = client_->lease_revoke(lease); !s)
      log_warn("etcd: revoking the status lease: " + s.error());
  }
  std::lock_guard lock(health_mu_);
  health_.status_lease = 0;
}

}  // namespace exitgw::etcd
