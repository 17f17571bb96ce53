// The typed updates every source produces (files, the admin API, etcd) and the queue that
// carries them to the control thread, the only place that validates and applies them.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "control/peers_config.h"
#include "control/policy/tailnet_filter.h"
#include "control/tailnet_health.h"
#include "control/wg/crypto.h"

namespace exitgw {

struct PeerUpsert {
  PeerConfig peer;
};
struct PeerRemove {
  wg::Key public_key;
};
// The source's whole peer set at once (an etcd initial load or re-list after a compaction):
// applied whole or not at all.
struct PeerSet {
  std::vector<PeerConfig> peers;
};
// approved: true/false set the approval (as 'exit-node approved|unapproved' in the approvals
// file would); nullopt clears it (back to the approvals file and autoApprovers).
struct ApprovalSet {
  std::optional<bool> approved;
};
struct DestinationLogging {
  bool on = false;
};
// The whole exit policy from the admin API or etcd: `text` is HuJSON in the policy file's format
// (control/policy/), parsed and compiled with the current peers before anything is published;
// nullopt clears the override (back to --policy_file, or the default policy without one).
struct PolicyReplace {
  std::optional<std::string> text;
};
// The tailnet's packet filter for this node (exitgw-connector, PUT /v1/filter), parsed and
// checked; compiled with the current peers before anything is published. While set it replaces
// the HuJSON policy's verdict; nullopt clears it.
struct FilterReplace {
  std::optional<policy::TailnetFilter> filter;
};
// The connector's health (PUT /v1/tailnet). Not configuration: it changes no generation.
struct TailnetReport {
  TailnetHealth health;
};
// Drain: stop taking new sessions (handshakes are refused) so a node can leave a fleet.
struct Drain {
  bool on = false;
};

using Update = std::variant<PeerUpsert, PeerRemove, PeerSet, ApprovalSet, PolicyReplace,
                            DestinationLogging, Drain, FilterReplace, TailnetReport>;

enum class UpdateError : uint8_t {
  kNone,
  kInvalid,     // the update is malformed or violates a rule (message says which)
  kNotFound,    // removing a peer that does not exist in this source
  kConflict,    // e.g. the key or an allowed IP belongs to a peer from another source
  kUnavailable  // the control thread did not answer in time
};

struct UpdateResult {
  UpdateError error = UpdateError::kNone;
  std::string message;
  uint64_t generation = 0;  // the running generation after the update (applied or not)
  bool ok() const { return error == UpdateError::kNone; }
};

// Many producers (HTTP threads, the etcd watcher), one consumer (the control loop).
class UpdateQueue {
 public:
  std::future<UpdateResult> submit(Update update, std::string source) {
    Item item{std::move(update), std::move(source), {}};
    auto fut = item.done.get_future();
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(item));
    }
    return fut;
  }
  // Control thread: applies queued updates in order and fulfils each promise. `apply` returns
  // the result, or nullopt when the update was accepted but is not in force yet (its classifier
  // is building): the queue then keeps its promise and applies nothing more until finish().
  template <typename Apply>
  void drain(Apply&& apply) {
    while (!in_flight_) {
      Item item;
      {
        std::lock_guard lock(mu_);
        if (items_.empty()) return;
        item = std::move(items_.front());
        items_.pop_front();
      }
      std::optional<UpdateResult> r = apply(item.update, item.source);
      if (!r) {
        in_flight_ = std::move(item);
        return;
      }
      item.done.set_value(std::move(*r));
    }
  }
  // The update in flight, if any (control thread).
  bool in_flight() const { return in_flight_.has_value(); }
  const std::string* in_flight_source() const { return in_flight_ ? &in_flight_->source : nullptr; }
  // Fulfils the update in flight; drain() goes on with the next.
  void finish(UpdateResult r) {
    if (!in_flight_) return;
    in_flight_->done.set_value(std::move(r));
    in_flight_.reset();
  }

 private:
  struct Item {
    Update update;
    std::string source;
    std::promise<UpdateResult> done;
  };
  std::mutex mu_;
  std::deque<Item> items_;
  std::optional<Item> in_flight_;  // control thread only
};

}  // namespace exitgw
