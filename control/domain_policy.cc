// Domain policy: load, compile, publish by RCU.
#include "control/domain_policy.h"

#include <rte_rcu_qsbr.h>

#include "control/log.h"
#include "dataplane/domain/domain_list.h"

namespace exitgw {

DomainPolicy::~DomainPolicy() {
  // Workers are stopped by now; nothing reads the database.
  ctx_.domains.store(nullptr);
}

Status DomainPolicy::load_and_publish() {
  auto list = dp::domain::load_domain_list(path_);
  if (!list) return make_error(list.error());
  auto db = dp::domain::compile(*list);
  if (!db) return make_error(db.error());
  auto next = std::make_unique<dp::domain::DomainDatabase>(std::move(*db));
  rules_ = next->list().rules.size();
  ctx_.domains.store(next.get(), std::memory_order_release);
  if (current_) retired_.push_back(Retired{rte_rcu_qsbr_start(ctx_.rcu), std::move(current_)});
  current_ = std::move(next);
  log_info("domains: " + std::to_string(rules_.load()) + " rules from " + path_);
  return Ok{};
}

Status DomainPolicy::init() {
  if (Status s = watch_.watch(path_); !s) return make_error("--domain_list_file: " + s.error());
  if (Status s = load_and_publish(); !s) return make_error("--domain_list_file: " + s.error());
  return Ok{};
}

void DomainPolicy::tick(uint64_t now_ns) {
  if (watch_.changed()) reload_due_ns_ = now_ns + 200'000'000;
  if (reload_due_ns_ && now_ns >= reload_due_ns_) {
    reload_due_ns_ = 0;
    ++reloads_;
    if (Status s = load_and_publish(); !s) {
      ++reload_errors_;
      log_error("domains: reload rejected, running list unchanged: " + s.error());
    }
  }
  while (!retired_.empty() && rte_rcu_qsbr_check(ctx_.rcu, retired_.front().token, false) == 1)
    retired_.pop_front();
}

std::string DomainPolicy::rule_text(uint32_t i) const {
  if (!current_ || i >= current_->list().rules.size()) return "?";
  return current_->list().rules[i].pattern;
}

}  // namespace exitgw
