// Domain policy: load, compile, publish by RCU, sum the per-rule match counters.
#include "control/domain_policy.h"

#include <rte_rcu_qsbr.h>

#include <algorithm>

#include "control/log.h"
#include "dataplane/domain/domain_list.h"

namespace exitgw {

DomainPolicy::~DomainPolicy() {
  // Workers are stopped by now; nothing reads the database.
  ctx_.domains.store(nullptr);
}

Result<dp::domain::DomainList> DomainPolicy::load(const std::string& path) {
  auto text = read_bounded_file(path, "domain list file", dp::domain::kMaxListBytes);
  if (!text) return make_error(text.error());
  return dp::domain::parse_domain_list(*text, path);
}

void DomainPolicy::publish(dp::domain::DomainDatabase db) {
  auto next = std::make_unique<dp::domain::DomainDatabase>(std::move(db));
  rules_ = next->list().rules.size();
  ctx_.domains.store(next.get(), std::memory_order_release);
  if (current_) retired_.push_back(Retired{rte_rcu_qsbr_start(ctx_.rcu), std::move(current_)});
  current_ = std::move(next);
  log_info("domains: " + std::to_string(rules_.load()) + " rules from " + path_);
  publish_status();
}

void DomainPolicy::reject(const std::string& why) {
  ++reload_errors_;
  last_reload_error_ = why;
  log_error("domains: reload rejected, running list unchanged: " + why);
}

Status DomainPolicy::init() {
  if (Status s = watch_.watch(path_); !s) return make_error("--domain_list_file: " + s.error());
  auto list = load(path_);
  if (!list) return make_error("--domain_list_file: " + list.error());
  // One counter row per worker; at least one so a context without workers still compiles.
  auto db = dp::domain::compile(*list, std::max(1u, ctx_.n_workers));
  if (!db) return make_error("--domain_list_file: " + db.error());
  publish(std::move(*db));
  return Ok{};
}

void DomainPolicy::publish_finished_build() {
  // A reload counts once its build is done (a build superseded by a newer file does not).
  if (auto done = builder_.take()) {
    ++reloads_;
    if (done->result) {
      last_reload_error_.clear();
      publish(std::move(*done->result));
    } else {
      reject(done->result.error());
    }
  }
}

void DomainPolicy::tick(uint64_t now_ns) {
  // A build submitted below is taken at a later call, never in the same one.
  publish_finished_build();
  if (watch_.due(now_ns)) {
    // Reading and parsing a list of millions of rules takes seconds too: all on the builder. A
    // bad newest file supersedes an older build, which never lands after it.
    const unsigned workers = std::max(1u, ctx_.n_workers);
    builder_.submit([path = path_, workers]() -> Result<dp::domain::DomainDatabase> {
      auto list = load(path);
      if (!list) return make_error(list.error());
      return dp::domain::compile(*list, workers);
    });
  }
  bool freed = false;
  while (!retired_.empty() && rte_rcu_qsbr_check(ctx_.rcu, retired_.front().token, false) == 1) {
    // No worker reads it any more, so its counts are final.
    add_counts(*retired_.front().db, retired_matches_);
    retired_.pop_front();
    freed = true;
  }
  // Summing walks rules x workers counters: once a second is fresh enough for a scrape.
  if (freed || now_ns >= status_due_ns_) {
    status_due_ns_ = now_ns + 1'000'000'000;
    publish_status();
  }
}

void DomainPolicy::add_counts(const dp::domain::DomainDatabase& db,
                              std::map<RuleKey, uint64_t>& into) {
  for (uint32_t r = 0; r < db.rule_count(); ++r) {
    const uint64_t n = db.rule_matches(r);
    if (n == 0) continue;
    const dp::domain::DomainRule& rule = db.rule(r);
    into[RuleKey{r, rule.pattern, rule.action}] += n;
  }
}

void DomainPolicy::publish_status() {
  std::map<RuleKey, uint64_t> counts = retired_matches_;
  // Databases not yet freed still count (workers may have counted until the swap).
  for (const Retired& r : retired_) add_counts(*r.db, counts);
  if (current_) add_counts(*current_, counts);
  auto status = std::make_shared<DomainStatus>();
  status->rules.reserve(counts.size());
  for (const auto& [key, n] : counts) {
    status->rules.push_back(
        DomainRuleMatches{std::get<0>(key), std::get<1>(key), std::get<2>(key), n});
  }
  status_.store(std::move(status));
}

std::string DomainPolicy::rule_text(uint32_t i) const {
  if (!current_ || i >= current_->list().rules.size()) return "?";
  return current_->list().rules[i].pattern;
}

}  // namespace exitgw
