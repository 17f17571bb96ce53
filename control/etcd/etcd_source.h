// The etcd update source: a region's peers and policy and this node's approval, read from etcd v3
// and turned into the same typed updates as the files and the admin API (source "etcd"), plus this
// node's status written back under a lease so the fleet can see who is alive.
//
// Key layout, under a prefix P that ends in '/' (--etcd_prefix, e.g. "/exitgw/eu-west/"):
//   P peers/<public key, base64url without padding>  ->  a peer, as the admin API's peer JSON
//       {"public_key","preshared_key"?,"allowed_ips":[...],"endpoint"?,"persistent_keepalive"?,
//        "user"?,"tags"?} (admin::peer_from_json); public_key, if given, must match the key name.
//   P nodes/<node>/approval  ->  "approved" | "unapproved"; absent = no override from etcd.
//   P policy  ->  the region's exit policy, HuJSON as in --policy_file (control/policy/);
//       put -> PolicyReplace{text} (overrides the file's policy), delete/absent -> cleared.
//   P status/<node>  <-  written by the node under a lease (TTL --etcd_status_ttl, kept alive):
//       {"generation","peers","load","healthy","unix_ms"}; gone once the node stops or dies.
//
// What it does, on its own threads (it never touches control state: it only submits updates to
// the UpdateQueue and waits for each result before the next, so updates apply in etcd's order):
// - Load: one consistent range (paged, at one revision R) over P peers/ -> ONE PeerSet; the
//   approval key read at R -> ApprovalSet; the policy key read at R -> PolicyReplace (absent
//   after etcd had set one: cleared). A bad key or value (not base64url of a key, JSON the
//   peer rules refuse, an AllowedIPs prefix another etcd peer already claims) is skipped, logged
//   and reported by key in health().bad_entries; every good peer is applied. A policy control
//   refuses (parse or compile error) is reported the same way; the running policy stays. A PeerSet
//   control rejects (e.g. a key another source owns) fails the load, which is retried with backoff.
// - Watch [P nodes/, P policy\0) from R+1 (the status keys are outside it): PUT peers/k ->
//   PeerUpsert, DELETE -> PeerRemove, the approval key -> ApprovalSet (DELETE -> clear), the
//   policy key -> PolicyReplace (DELETE -> clear).
//   A bad value during the watch is rejected like any bad update: the running peer stays.
// - Bulk: a run of at least `coalesce_min_events` consecutive peer events (one large
//   transaction, or the backlog that piled up while control was busy or the node was stopped)
//   becomes ONE PeerSet (the source's peers as applied, with the run's changes on top): one
//   validation, one publication, instead of one full peer-table rebuild per event. If control
//   refuses the combined set, the run is applied event by event, so the good events land and
//   the bad ones are reported by key, exactly as without coalescing.
// - Disconnects: retry with capped, jittered exponential backoff, resuming at (last revision
//   applied + 1), so nothing is missed or applied twice; progress notifications advance that
//   revision when nothing under the prefix changes. A compacted start revision (or an etcd whose
//   revision went backwards) -> load again (a new PeerSet), then watch from its revision.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "control/etcd/etcd_client.h"
#include "control/updates.h"

namespace exitgw::etcd {

// The fields control provides for the status key; unix_ms is added when it is written.
struct NodeStatus {
  uint64_t generation = 0;
  uint64_t peers = 0;
  double load = 0;  // worker busy ratio, 0..1
  bool healthy = true;
};
struct EtcdHealth;
// With `health`, the source's progress too ("revision": every change up to it handled,
// "events", "loads", "stale_events_skipped"), so the control service can see how far each node
// has applied the region and compare nodes.
std::string status_json(const NodeStatus& status, int64_t unix_ms,
                        const EtcdHealth* health = nullptr);

// The keys of the layout above.
struct EtcdKeys {
  std::string prefix;  // ends in '/'
  std::string node;
  std::string peers() const { return prefix + "peers/"; }
  std::string peer(const wg::Key& key) const;
  std::string approval() const { return prefix + "nodes/" + node + "/approval"; }
  std::string policy() const { return prefix + "policy"; }
  std::string status() const { return prefix + "status/" + node; }
  // The watched range [prefix + "nodes/", prefix + "policy\0"): approvals, peers and the policy
  // key itself (the range ends just after it), not status.
  std::string watch_begin() const { return prefix + "nodes/"; }
  std::string watch_end() const { return prefix + "policy" + std::string(1, '\0'); }
};

// A peer value read from etcd under `key` (P peers/<name>): the name must be the canonical
// base64url of the public key, the value the admin API's peer JSON for that key.
Result<PeerConfig> peer_from_etcd(std::string_view name, std::string_view value);
// "approved" -> true, "unapproved" -> false (surrounding whitespace ignored).
Result<bool> approval_from_etcd(std::string_view value);

struct EtcdSourceOptions {
  std::string endpoints = "http://127.0.0.1:2379";  // --etcd_endpoints
  std::string prefix;                               // --etcd_prefix, ends in '/'
  std::string node;                                 // --node
  std::chrono::seconds status_ttl{10};              // --etcd_status_ttl; 0: no status key
  std::chrono::milliseconds status_interval{0};     // 0: status_ttl / 3
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{5000};
  std::chrono::milliseconds watch_idle_timeout{60000};
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{10000};
  int64_t range_page = 1000;
  bool revoke_status_on_stop = true;  // false: the key lives out its TTL (as after a crash)
  std::string source = "etcd";        // the UpdateQueue source name
  // A run of at least this many consecutive peer events is applied as one PeerSet; 0: never
  // (one update per event).
  size_t coalesce_min_events = 8;
};

struct EtcdBadEntry {
  std::string key;
  std::string reason;
  int64_t revision = 0;  // the revision of the value refused
};

// A copy taken under a lock: consistent with itself, cheap enough for /metrics and the admin view.
struct EtcdHealth {
  bool running = false;
  bool connected = false;  // the last request or watch reached etcd
  bool loaded = false;     // a peer set from etcd is applied
  std::string endpoint;    // the endpoint last used
  std::string last_error;  // empty until something fails; kept after recovery
  int64_t last_error_unix_ms = 0;
  int64_t revision = 0;  // every change up to this etcd revision has been handled
  uint64_t updates_applied = 0;
  uint64_t updates_rejected = 0;          // by control, or refused here as bad values
  uint64_t loads = 0;                     // initial load + re-lists
  uint64_t compactions = 0;               // re-lists forced by compaction
  uint64_t reconnects = 0;                // watch streams reopened after a failure
  uint64_t stale_events_skipped = 0;      // events at or below `revision` (should stay 0)
  uint64_t events = 0;                    // watch events handled, each exactly once
  uint64_t coalesced_sets = 0;            // runs of peer events applied as one PeerSet
  size_t bad_entries_total = 0;           // keys whose current value is refused
  std::vector<EtcdBadEntry> bad_entries;  // the first kMaxBadShown of them, by key
  int64_t status_lease = 0;               // 0: none held
  uint64_t status_writes = 0;
  uint64_t status_errors = 0;
  std::string status_error;  // the last status write-back failure
};

class EtcdSource {
 public:
  static constexpr size_t kMaxBadShown = 32;
  using StatusCallback = std::function<NodeStatus()>;  // called on the status thread

  // `status` may be empty (no status key is written then). Nothing starts until start().
  EtcdSource(EtcdSourceOptions options, UpdateQueue& queue, StatusCallback status);
  ~EtcdSource();
  EtcdSource(const EtcdSource&) = delete;
  EtcdSource& operator=(const EtcdSource&) = delete;

  // Checks the options (endpoints, prefix, node) and starts the threads; does not wait for
  // etcd (an unreachable etcd is retried and reported in health()).
  Status start();
  // Stops the watch and the threads; revokes the status lease if so configured. Idempotent.
  void stop();

  EtcdHealth health() const;
  const EtcdKeys& keys() const { return keys_; }

 private:
  struct Item {
    enum class Kind : uint8_t { kCreated, kBatch, kEnd } kind;
    WatchBatch batch;  // kBatch; kCreated: batch.revision is the header revision
    std::string endpoint;
    WatchEnd end;
  };

  void run();
  void status_loop();
  // Load: range + PeerSet + approval; the revision read at.
  Result<int64_t> load();
  // Handles one event; returns false when stopping.
  bool handle_event(const Event& ev);
  bool handle_peer_event(const Event& ev, std::string_view name);
  bool is_peer_key(const std::string& key) const;
  bool handle_approval_event(const Event& ev);
  bool handle_policy_event(const Event& ev);
  // Handles a run of peer events (in order): as one PeerSet when long enough and control takes
  // it, else event by event. Returns false when stopping.
  bool handle_peer_run(const std::vector<const Event*>& run);
  // Submits one update and waits for its result; nullopt when stopping.
  std::optional<UpdateResult> submit(Update update);
  void count_result(const UpdateResult& r, const std::string& key, int64_t revision);
  void set_bad(const std::string& key, std::string reason, int64_t revision);
  void clear_bad(const std::string& key);
  void set_error(const std::string& message);
  void set_connected(bool connected, const std::string& endpoint);
  // Waits `d` or until stop(); false when stopping.
  bool sleep_for(std::chrono::milliseconds d);
  std::chrono::milliseconds next_backoff();
  void push(Item item);

  EtcdSourceOptions options_;
  UpdateQueue& queue_;
  StatusCallback status_cb_;
  EtcdKeys keys_;
  std::string peers_prefix_;  // keys_.peers()
  std::unique_ptr<EtcdClient> client_;

  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  std::thread thread_;
  std::thread status_thread_;

  // The watch thread -> the source thread.
  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<Item> q_;
  bool discard_ = false;  // guarded by q_mu_: drop what the current watch still delivers

  // Source-thread state.
  int64_t revision_ = 0;                       // handled up to here
  std::map<std::string, PeerConfig> applied_;  // peer key name -> the peer as applied
  std::optional<bool> approval_;               // the approval etcd last set (nullopt: none)
  bool approval_set_ = false;                  // whether etcd has set one that is in force
  bool policy_set_ = false;  // whether a policy from etcd is in force (to clear on delete)
  int backoff_attempt_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};

  mutable std::mutex health_mu_;
  EtcdHealth health_;
  std::map<std::string, EtcdBadEntry> bad_;  // guarded by health_mu_
};

}  // namespace exitgw::etcd
