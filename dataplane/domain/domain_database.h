// A domain list compiled into one Hyperscan block-mode database, the per-worker scratch that
// scanning needs, and match(): the name -> verdict lookup a worker runs per flow.
//
// Ownership: control calls compile() and publishes the DomainDatabase (immutable from then
// on, so any number of workers may scan it at once). Each worker owns one DomainScratch and
// is the only thread that touches it. The one mutable part of a published database is its
// per-rule match counters: one row per worker, written only by that worker (no atomics
// shared across workers), read by control; they live and die with the database, so a count
// always belongs to the rule list it was counted against.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/result.h"
#include "common/counters.h"
#include "dataplane/domain/domain_list.h"

struct hs_database;
struct hs_scratch;

namespace exitgw::dp::domain {

class DomainScratch;

inline constexpr uint32_t kNoRule = ~uint32_t{0};

struct Verdict {
  Action action = Action::kNone;
  uint32_t rule = kNoRule;  // index into the list; kNoRule when action is kNone
  friend bool operator==(const Verdict&, const Verdict&) = default;
};

class DomainDatabase {
 public:
  DomainDatabase(DomainDatabase&&) noexcept = default;
  DomainDatabase& operator=(DomainDatabase&&) noexcept = default;
  ~DomainDatabase();

  const DomainList& list() const noexcept { return list_; }
  size_t rule_count() const noexcept { return list_.rules.size(); }
  const DomainRule& rule(uint32_t index) const noexcept { return list_.rules[index]; }
  // Bytes Hyperscan holds for the compiled patterns (0 for an empty list).
  size_t database_bytes() const noexcept;
  // Bytes one worker's scratch needs.
  size_t scratch_bytes() const noexcept;

  // Unique per compiled database in this process (never reused, unlike an address): how a
  // worker tells a newly published database from the one its scratch was prepared for.
  uint64_t serial() const noexcept { return serial_; }

  // Workers this database keeps match counters for (compile()'s `workers`).
  unsigned counter_workers() const noexcept { return workers_; }
  // Worker `worker` counts one match of rule `rule` (the verdict's deciding rule). Only that
  // worker may call it for its row; a worker index beyond counter_workers() is not counted.
  void count_match(unsigned worker, uint32_t rule) const noexcept {
    if (worker < workers_ && rule < list_.rules.size()) [[likely]]
      counter(worker, rule).add();
  }
  // Matches of `rule` counted by one worker, and summed over every worker.
  uint64_t rule_matches(unsigned worker, uint32_t rule) const noexcept {
    return worker < workers_ && rule < list_.rules.size() ? counter(worker, rule).get() : 0;
  }
  uint64_t rule_matches(uint32_t rule) const noexcept {
    uint64_t sum = 0;
    for (unsigned w = 0; w < workers_; ++w) sum += rule_matches(w, rule);
    return sum;
  }

 private:
  friend Result<DomainDatabase> compile(const DomainList& list, unsigned workers);
  friend class DomainScratch;
  friend Verdict match(const DomainDatabase&, DomainScratch&, std::string_view) noexcept;
  struct FreeDatabase {
    void operator()(hs_database* db) const noexcept;
  };
  struct FreeScratch {
    void operator()(hs_scratch* s) const noexcept;
  };
  DomainDatabase() = default;
  // Hyperscan's match callback (match_event_handler).
  static int on_match(unsigned int id, unsigned long long from, unsigned long long to,
                      unsigned int flags, void* context) noexcept;

  std::unique_ptr<hs_database, FreeDatabase> db_;       // null when the list is empty
  std::unique_ptr<hs_scratch, FreeScratch> prototype_;  // what workers clone
  // What the match callback needs of each rule, by rule index.
  struct RuleInfo {
    Action action;
    MatchKind kind;
    uint16_t length;  // exact/suffix: the domain's length
  };
  std::unique_ptr<RuleInfo[]> info_;
  struct MatchState;
  uint32_t first_block_ = kNoRule;  // the rule no other match can beat: scanning stops there
  DomainList list_;
  // Rule r of worker w is counter r % 8 of line w * row_ / 8 + r / 8; row_ is the rule count
  // rounded up to whole cache lines, so two workers never write the same line.
  struct alignas(64) CounterLine {
    Counter counters[8];
  };
  static_assert(sizeof(CounterLine) == 64);
  Counter& counter(unsigned worker, uint32_t rule) const noexcept {
    const size_t i = size_t{worker} * row_ + rule;
    return matches_[i / 8].counters[i % 8];
  }
  std::unique_ptr<CounterLine[]> matches_;
  size_t row_ = 0;
  unsigned workers_ = 0;
  uint64_t serial_ = 0;
};

// Builds the database, the rule index as each pattern's id, all caseless. Exact and suffix
// domains go in as plain literals and match() checks where a hit lies (at the end; at the
// start too for exact, after a dot or at the start for suffix): Hyperscan compiles 100k
// literals in seconds but the same as ^d$ / (^|\.)d$ regexes in minutes. Regexes go in as
// written, single-match. Errors name the offending rule's origin:line. Keeps per-rule match
// counters for `workers` workers (indices 0 .. workers - 1).
Result<DomainDatabase> compile(const DomainList& list, unsigned workers = 1);

// A worker's Hyperscan scratch. Created once at worker start (a clone of the database's
// prototype), so scanning never allocates.
class alignas(64) DomainScratch {
 public:
  static Result<DomainScratch> create(const DomainDatabase& db);
  DomainScratch(DomainScratch&&) noexcept = default;
  DomainScratch& operator=(DomainScratch&&) noexcept = default;
  ~DomainScratch();

  // Grows this scratch so it also fits `db`. The owning worker calls it when it picks up a
  // newly published database, before its first match() against it; this is the one place a
  // worker allocates, once per database generation, and only when the new one needs more.
  Status prepare(const DomainDatabase& db);

  // Scans that failed (a scratch not prepared for the database): counted, matched nothing.
  uint64_t scan_errors() const noexcept { return scan_errors_; }

 private:
  friend Verdict match(const DomainDatabase&, DomainScratch&, std::string_view) noexcept;
  DomainScratch() = default;

  std::unique_ptr<hs_scratch, DomainDatabase::FreeScratch> hs_;
  uint64_t scan_errors_ = 0;
};

// The verdict for one name (as the extractors write it: lowercase, no trailing dot). Block
// beats log; among matches of the same action the lowest rule index wins.
Verdict match(const DomainDatabase& db, DomainScratch& scratch, std::string_view name) noexcept;

}  // namespace exitgw::dp::domain
