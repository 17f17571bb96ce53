// Exit approval and policy on the control thread: reads the policy and approvals files
// (watched, bounded), compiles them with the current peers, publishes a PolicyView to the
// workers by pointer swap and frees the old one after an RCU grace period. A bad input is
// rejected whole and the running policy stays.
//
// Compiling (validation, classes, rules) is fast and runs on the control thread; building an
// rte_acl classifier can take seconds and runs on a builder thread while the running one
// serves. A change that leaves the rules as they are (a peer of an identity that has other
// peers, an approval) needs no build: it is published at once with the running classifier.
// While a build for changed peers is in progress, a removed or changed peer's slot loses its
// class at once (a reused slot never runs under the previous peer's class) and a new peer's
// traffic waits for the build.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "control/background_build.h"
#include "control/bounded_file.h"
#include "control/policy/acl_classifier.h"
#include "control/policy/approvals.h"
#include "control/policy/compile.h"
#include "control/policy/policy.h"
#include "control/policy/tailnet_filter.h"
#include "common/dataplane_context.h"

namespace exitgw {

struct ExitPolicyOptions {
  std::string policy_file;     // empty: the default policy (every member may use the exit)
  std::string approvals_file;  // empty: approval only through autoApprovers
  bool advertised = true;
  std::string node_user;
  std::vector<std::string> node_tags;
  std::vector<uint32_t> own_addresses;                  // host order: never an exit destination
  std::vector<std::array<uint8_t, 16>> own_addresses6;  // never an exit destination
};

// Where the running policy came from: an override (PolicyReplace) from the admin API or etcd
// wins over --policy_file, which wins over the built-in default.
inline constexpr std::string_view kPolicySourceDefault = "default";
inline constexpr std::string_view kPolicySourceFile = "file";
// The tailnet's packet filter (FilterReplace) wins over both while it is set.
inline constexpr std::string_view kPolicySourceTailnet = "tailnet";

// What the metrics thread reads (rebuilt by the control thread, swapped whole).
struct PolicyStatus {
  bool approved = false;
  std::string approval_reason;
  std::vector<std::pair<std::string, uint64_t>> rule_hits;  // by rule name, monotonic
  size_t rules = 0, classes = 0;
  std::string source;  // "default", "file", or the override's update source ("admin", "etcd")
  // The running policy's text: the override's, the file's, or the default policy's.
  // Shared, not copied, each time the status is rebuilt.
  std::shared_ptr<const std::string> text;
  std::shared_ptr<const policy::TailnetFilter> tailnet_filter;  // null: none set
};

class ExitPolicy {
 public:
  ExitPolicy(dp::DataplaneContext& ctx, ExitPolicyOptions opt);
  ~ExitPolicy();

  // Called once a change accepted by a set_* method is in force (Ok), or when its classifier
  // could not be built (the error; the change was undone). It may be called before the set_*
  // method returns, when no build was needed.
  using Done = std::function<void(Status)>;

  // Reads the files and publishes the first policy (built here: nothing runs yet); a bad file
  // fails start-up.
  Status init(std::vector<policy::PolicyPeer> peers);
  // Peers changed (added, removed, identity): recompiled with the same inputs.
  void set_peers(std::vector<policy::PolicyPeer> peers);
  // An approval set through the admin API or etcd: overrides the approvals file until
  // cleared (nullopt).
  Status set_approval_override(std::optional<bool> approved, Done done = {});
  std::optional<bool> approval_override() const { return override_; }
  // A whole policy (HuJSON text) from the admin API or etcd, `origin` being that source: parsed
  // and compiled with the current peers, then published; it replaces the policy file's until
  // cleared (nullopt). A bad text changes nothing and the error names it (line:column). While
  // it is set, file reloads are still parsed and compiled (errors are reported) but do not
  // replace it. While a tailnet filter is set the text is compiled to check it, then stored.
  Status set_policy_override(std::optional<std::string> text, const std::string& origin,
                             Done done = {});
  bool has_policy_override() const { return policy_override_.has_value(); }
  // The tailnet's compiled packet filter (FilterReplace): compiled with the current peers and
  // published; while set it replaces the HuJSON policy (override or file) as the verdict, the
  // built-in egress safety and approval still apply. nullopt clears it. A filter that does not
  // compile changes nothing.
  Status set_tailnet_filter(std::optional<policy::TailnetFilter> filter, Done done = {});
  // The set_* methods return an error when the change is refused (nothing changed, `done` is
  // never called); Ok when it was accepted: in force already, or building.
  // File watches, deferred frees, the status for metrics; call every ~100 ms.
  void tick(uint64_t now_ns);
  // Publishes a classifier the builder thread has finished; cheap, call every loop iteration.
  void publish_finished_build();

  std::shared_ptr<const PolicyStatus> status() const { return status_.load(); }
  // File reloads that finished: refused, or published (by their own build or by an immediate
  // one that included them). A reload whose classifier is still building is not counted yet.
  uint64_t reloads() const { return reloads_; }
  uint64_t reload_errors() const { return reload_errors_; }
  // Reloads that replaced the running files' policy and approvals (the generation advances
  // only for these).
  uint64_t reloads_applied() const { return reloads_ - reload_errors_; }
  // Classifier builds that failed (out of DPDK memory): the changes they carried were refused
  // (a file reload among them is counted in reload_errors too).
  uint64_t build_errors() const { return build_errors_; }
  // True while a classifier is being built on the builder thread (not yet published).
  bool build_pending() const { return builder_.pending(); }
  // How long the builder thread took to build each classifier (exitgw_build_seconds).
  BuildDurations build_durations() const { return builder_.durations(); }
  // Changes published without a classifier build (the running one serves the new classes).
  uint64_t builds_skipped() const { return builds_skipped_; }
  // True when the builder thread runs nothing, not even a superseded build.
  bool builder_idle() const { return builder_.idle(); }
  // Why the latest policy/approvals file reload was refused; empty when it applied (control
  // thread only).
  const std::string& last_reload_error() const { return last_reload_error_; }

 private:
  // Where a compiled policy came from, as the status shows it once it is published.
  struct Origin {
    std::string source;
    std::shared_ptr<const std::string> text;
    std::shared_ptr<const policy::TailnetFilter> tailnet_filter;
  };
  // What the classifier was compiled from: its peers and their classes, shared by the views
  // that reuse it.
  struct Classifier {
    std::shared_ptr<const policy::PolicySnapshot> snapshot;
    std::shared_ptr<const std::vector<policy::CompiledRule>> rules;
    std::shared_ptr<const std::vector<policy::CompiledRule6>> rules6;
    std::shared_ptr<const std::vector<policy::PolicyPeer>> peers;
  };
  struct Published {
    Classifier classifier;
    std::vector<uint32_t> class_by_slot;  // what the workers read (may deny changed peers)
    std::unique_ptr<dp::Counter[]> hits;
    dp::PolicyView view;
    Origin origin;
  };
  // What a compile or build hands to publish().
  struct Built {
    Classifier classifier;
    std::vector<uint32_t> class_by_slot;
    bool approved = false;
    std::string approval_reason;
    size_t classes = 0;
    Origin origin;
  };
  // A set_* change waiting for its build: how to report it and how to undo it if it fails.
  struct PendingChange {
    Done done;
    std::function<void()> undo;
  };
  // The files' parsed inputs, kept to restore them when a reload's build fails.
  struct FileInputs {
    policy::Policy policy;
    std::shared_ptr<const std::string> text;
    policy::Approvals approvals;
  };
  Status load_files();
  Origin origin() const;
  void restore_files(FileInputs inputs);
  // Compiles the running inputs to rules and classes: the validation (fast, control thread).
  Result<policy::CompiledPolicy> compile() const { return compile(running_policy()); }
  Result<policy::CompiledPolicy> compile(const policy::Policy& p) const;
  // A HuJSON policy hidden by what is in force (the tailnet filter, or an override over the
  // file's) is compiled too, only to check it: it must be able to take over when that is
  // cleared.
  Status check_hidden_policy(const policy::Policy& p) const;
  // Builds the rte_acl classifier of `compiled` (slow for large policies; any thread).
  static Result<Built> build(std::shared_ptr<const policy::CompiledPolicy> compiled,
                             std::shared_ptr<const std::vector<policy::PolicyPeer>> peers,
                             Origin origin);
  // The compiled state as a view of the running classifier, when its rules are the running ones.
  std::optional<Built> reuse(const policy::CompiledPolicy& compiled) const;
  void publish(Built built);
  // Publishes the running classifier with the slots of peers that changed since it was
  // compiled denied (class 0), when there are such slots.
  void publish_interim();
  // Compiles the running inputs; publishes at once when no classifier build is needed, else
  // publishes an interim view and builds on the builder thread (publish_finished_build()
  // publishes it). `change` (if any) is settled when the state it belongs to is in force.
  Status compile_and_apply(std::optional<PendingChange> change);
  // The state that includes every pending change and file reload is in force (or failed).
  void settle(const Status& result);
  void publish_status();

  dp::DataplaneContext& ctx_;
  ExitPolicyOptions opt_;
  // The policy to compile: the override when one is set, else the file's (or the default).
  const policy::Policy& running_policy() const {
    return tailnet_ ? tailnet_->policy : hujson_policy();
  }
  // The HuJSON policy: what decides while no tailnet filter is set.
  const policy::Policy& hujson_policy() const {
    return policy_override_ ? policy_override_->policy : policy_;
  }

  policy::Policy policy_;  // from --policy_file, or the default policy
  std::shared_ptr<const std::string> policy_file_text_;  // or the default policy's text
  struct PolicyOverride {
    policy::Policy policy;
    std::shared_ptr<const std::string> text;
    std::string origin;  // the update source that set it
  };
  std::optional<PolicyOverride> policy_override_;
  struct TailnetOverride {
    policy::Policy policy;
    std::shared_ptr<const policy::TailnetFilter> filter;
    std::shared_ptr<const std::string> text;  // the filter as JSON, for GET /v1/policy
  };
  std::optional<TailnetOverride> tailnet_;
  size_t classes_ = 0;  // of the running snapshot
  policy::Approvals approvals_;
  std::vector<policy::PolicyPeer> peers_;
  std::unique_ptr<Published> current_;
  struct Retired {
    uint64_t token;
    std::unique_ptr<Published> published;
  };
  std::deque<Retired> retired_;
  std::map<std::string, uint64_t> retired_hits_;  // counts of rules in freed snapshots
  StableFileWatch policy_watch_, approvals_watch_;
  BackgroundBuild<Built> builder_;
  std::vector<PendingChange> pending_changes_;  // in the build in progress, oldest first
  // The files' inputs from before the reload whose classifier is building (none: no reload is).
  std::optional<FileInputs> reload_in_build_;
  // Read by the metrics thread.
  std::atomic<uint64_t> reloads_{0}, reload_errors_{0}, build_errors_{0}, builds_skipped_{0};
  std::string last_reload_error_;
  bool last_approved_ = false;
  std::optional<bool> override_;
  std::string approval_reason_;
  std::atomic<std::shared_ptr<const PolicyStatus>> status_;
};

}  // namespace exitgw
