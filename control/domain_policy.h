// Domain policy on the control thread: watches the domain list and has it read (bounded), parsed
// and compiled into one Hyperscan database on a builder thread (the running database serves
// meanwhile), publishes the result to the workers by pointer swap and frees the old one after an
// RCU grace period. A bad list is rejected whole and the running one stays. Sums the workers'
// per-rule match counters into a status the metrics thread reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/result.h"
#include "control/background_build.h"
#include "control/bounded_file.h"
#include "common/dataplane_context.h"
#include "dataplane/domain/domain_database.h"

namespace exitgw {

// Matches of one domain rule, summed over workers and over every list generation that had
// the same rule (index, pattern, action): monotonic, as a Prometheus counter must be.
struct DomainRuleMatches {
  uint32_t rule = 0;  // index in the list (0-based, in file order)
  std::string pattern;
  dp::domain::Action action = dp::domain::Action::kNone;
  uint64_t matches = 0;
};

// What the metrics thread reads (rebuilt by the control thread, swapped whole). Only rules
// that matched at least once are listed, so a list of 100k rules costs no more series than
// the rules that ever fired.
struct DomainStatus {
  std::vector<DomainRuleMatches> rules;  // by (rule, pattern, action)
};

class DomainPolicy {
 public:
  DomainPolicy(dp::DataplaneContext& ctx, std::string path) : ctx_(ctx), path_(std::move(path)) {}
  ~DomainPolicy();
  // Loads and compiles the list on the calling thread (start-up); a bad list fails start-up.
  Status init();
  // Starts a reload when the file has changed and stood still; publishes a finished build.
  void tick(uint64_t now_ns);
  // Publishes a database the builder thread has finished; cheap, call every loop iteration.
  void publish_finished_build();
  size_t rules() const { return rules_.load(); }
  uint64_t reloads() const { return reloads_.load(); }
  uint64_t reload_errors() const { return reload_errors_.load(); }
  // Reloads that replaced the running list (the generation advances only for these).
  uint64_t reloads_applied() const { return reloads_.load() - reload_errors_.load(); }
  // Why the latest reload was refused; empty when it applied (control thread only).
  const std::string& last_reload_error() const { return last_reload_error_; }
  // True while a reload is being compiled on the builder thread.
  bool build_pending() const { return builder_.pending(); }
  // How long the builder thread took to compile each list (exitgw_build_seconds).
  BuildDurations build_durations() const { return builder_.durations(); }
  // The pattern of rule i of the running list, for logs (control thread only).
  std::string rule_text(uint32_t i) const;
  // Per-rule match counts as of the last tick (or load); never null after init().
  std::shared_ptr<const DomainStatus> status() const { return status_.load(); }
  // Rebuilds status() now (control thread only; tick() does it at most once a second).
  void publish_status();

 private:
  // The list at `path`, read with a bound and parsed (no compile); on any thread.
  static Result<dp::domain::DomainList> load(const std::string& path);
  void publish(dp::domain::DomainDatabase db);
  void reject(const std::string& why);
  using RuleKey = std::tuple<uint32_t, std::string, dp::domain::Action>;
  // Adds the nonzero per-rule counts of `db` (summed over workers) into `into`.
  static void add_counts(const dp::domain::DomainDatabase& db, std::map<RuleKey, uint64_t>& into);

  dp::DataplaneContext& ctx_;
  std::string path_;
  std::unique_ptr<dp::domain::DomainDatabase> current_;
  struct Retired {
    uint64_t token;
    std::unique_ptr<dp::domain::DomainDatabase> db;
  };
  std::deque<Retired> retired_;
  std::map<RuleKey, uint64_t> retired_matches_;  // counts of databases already freed
  StableFileWatch watch_;
  BackgroundBuild<dp::domain::DomainDatabase> builder_;
  std::string last_reload_error_;
  uint64_t status_due_ns_ = 0;
  std::atomic<size_t> rules_{0};
  std::atomic<uint64_t> reloads_{0}, reload_errors_{0};
  std::atomic<std::shared_ptr<const DomainStatus>> status_{std::make_shared<DomainStatus>()};
};

}  // namespace exitgw
