// Exit policy: load, compile, publish by RCU, count.
#include "control/exit_policy.h"

#include <rte_rcu_qsbr.h>

#include "control/bounded_file.h"
#include "control/log.h"
#include "control/policy/hujson.h"

namespace exitgw {

ExitPolicy::ExitPolicy(dp::DataplaneContext& ctx, ExitPolicyOptions opt)
    : ctx_(ctx), opt_(std::move(opt)) {}

ExitPolicy::~ExitPolicy() {
  // Workers are stopped by now; nothing reads the views.
  ctx_.policy.store(nullptr);
}

Status ExitPolicy::load_files() {
  policy::Policy parsed = policy::default_policy();
  auto file_text = std::make_shared<const std::string>(policy::kDefaultPolicyText);
  if (!opt_.policy_file.empty()) {
    auto text = read_bounded_file(opt_.policy_file, "policy file", policy::kHujsonMaxBytes);
    if (!text) return make_error("--policy_file: " + text.error());
    auto p = policy::parse_policy(*text, opt_.policy_file);
    if (!p) return make_error(p.error());
    parsed = std::move(*p);
    file_text = std::make_shared<const std::string>(std::move(*text));
  }
  policy::Approvals approvals;
  if (!opt_.approvals_file.empty()) {
    auto text =
        read_bounded_file(opt_.approvals_file, "approvals file", policy::kApprovalsMaxBytes);
    if (!text) return make_error("--approvals_file: " + text.error());
    auto a = policy::parse_approvals(*text, opt_.approvals_file);
    if (!a) return make_error(a.error());
    approvals = *a;
  }
  // Validated whole: only now replace what runs.
  policy_ = std::move(parsed);
  policy_file_text_ = std::move(file_text);
  approvals_ = approvals;
  for (const std::string& note : policy_.notes) log_info("policy: " + note);
  if (policy_override_)
    log_info("policy: the " + policy_override_->origin +
             " policy override stays in force over the file's policy (clear it to use the file)");
  return Ok{};
}

Result<policy::CompiledPolicy> ExitPolicy::compile(const policy::Policy& p) const {
  policy::NodeIdentity node;
  node.user = opt_.node_user;
  node.tags = opt_.node_tags;
  node.exit_advertised = opt_.advertised;
  node.own_addresses = opt_.own_addresses;
  node.own_addresses6 = opt_.own_addresses6;
  policy::Approvals approvals = approvals_;
  if (override_) approvals.exit_node = *override_;
  return policy::compile_policy(p, peers_, node, approvals);
}

Status ExitPolicy::check_hidden_policy(const policy::Policy& p) const {
  if (&p == &running_policy()) return Ok{};  // compiled anyway when it is published
  auto compiled = compile(p);
  if (!compiled) return make_error(compiled.error());
  return Ok{};
}

ExitPolicy::Origin ExitPolicy::origin() const {
  if (tailnet_) return Origin{std::string(kPolicySourceTailnet), tailnet_->text, tailnet_->filter};
  if (policy_override_) return Origin{policy_override_->origin, policy_override_->text, nullptr};
  return Origin{std::string(opt_.policy_file.empty() ? kPolicySourceDefault : kPolicySourceFile),
                policy_file_text_, nullptr};
}

void ExitPolicy::restore_files(FileInputs inputs) {
  policy_ = std::move(inputs.policy);
  policy_file_text_ = std::move(inputs.text);
  approvals_ = std::move(inputs.approvals);
}

Result<ExitPolicy::Built> ExitPolicy::build(
    std::shared_ptr<const policy::CompiledPolicy> compiled,
    std::shared_ptr<const std::vector<policy::PolicyPeer>> peers, Origin origin) {
  auto snapshot = policy::build_snapshot(*compiled);
  if (!snapshot) return make_error(snapshot.error());
  Built b;
  b.classifier.snapshot = std::shared_ptr<const policy::PolicySnapshot>(std::move(*snapshot));
  b.classifier.rules = std::shared_ptr<const std::vector<policy::CompiledRule>>(
      compiled, &compiled->rules);  // shares the compiled policy's lifetime
  b.classifier.rules6 =
      std::shared_ptr<const std::vector<policy::CompiledRule6>>(compiled, &compiled->rules6);
  b.classifier.peers = std::move(peers);
  b.class_by_slot = compiled->class_by_slot;
  b.approved = compiled->exit.approved;
  b.approval_reason = compiled->exit.reason;
  b.classes = compiled->class_count;
  b.origin = std::move(origin);
  return b;
}

std::optional<ExitPolicy::Built> ExitPolicy::reuse(const policy::CompiledPolicy& compiled) const {
  if (!current_) return std::nullopt;
  const Classifier& running = current_->classifier;
  if (*running.rules != compiled.rules || *running.rules6 != compiled.rules6 ||
      running.snapshot->rule_names != compiled.rule_names)
    return std::nullopt;
  Built b;
  b.classifier.snapshot = running.snapshot;
  b.classifier.rules = running.rules;
  b.classifier.rules6 = running.rules6;
  b.classifier.peers = std::make_shared<const std::vector<policy::PolicyPeer>>(peers_);
  b.class_by_slot = compiled.class_by_slot;
  b.approved = compiled.exit.approved;
  b.approval_reason = compiled.exit.reason;
  b.classes = compiled.class_count;
  b.origin = origin();
  return b;
}

void ExitPolicy::publish(Built built) {
  auto pub = std::make_unique<Published>();
  pub->classifier = std::move(built.classifier);
  pub->class_by_slot = std::move(built.class_by_slot);
  const policy::PolicySnapshot& snap = *pub->classifier.snapshot;
  const auto n_rules = static_cast<uint32_t>(snap.rule_names.size());
  pub->hits = std::make_unique<dp::Counter[]>(size_t{n_rules} * ctx_.n_workers);
  pub->view.acl = snap.classifier.context();
  pub->view.acl6 = snap.classifier6.context();
  pub->view.class_by_slot = pub->class_by_slot.data();
  pub->view.n_slots = static_cast<uint32_t>(pub->class_by_slot.size());
  pub->view.n_rules = n_rules;
  pub->view.exit_approved = built.approved;
  pub->view.rule_hits = pub->hits.get();
  pub->origin = std::move(built.origin);
  if (built.approved != last_approved_ || !current_)
    log_info(std::string("policy: exit node ") +
             (built.approved ? "approved" : "NOT approved, forwarding nothing") + " (" +
             built.approval_reason + ")");
  const bool same_classifier =
      current_ && current_->classifier.snapshot == pub->classifier.snapshot;
  last_approved_ = built.approved;
  approval_reason_ = std::move(built.approval_reason);
  classes_ = built.classes;
  ctx_.policy.store(&pub->view, std::memory_order_release);
  if (current_)
    retired_.push_back(Retired{ctx_.rcu ? rte_rcu_qsbr_start(ctx_.rcu) : 0, std::move(current_)});
  current_ = std::move(pub);
  if (!same_classifier)
    log_info("policy: " + std::to_string(current_->classifier.rules->size()) + " IPv4 and " +
             std::to_string(current_->classifier.rules6->size()) + " IPv6 rules in " +
             std::to_string(built.classes) + " classes for " + std::to_string(peers_.size()) +
             " peers");
  publish_status();
}

void ExitPolicy::publish_interim() {
  if (!current_) return;
  const Classifier& running = current_->classifier;
  std::vector<uint32_t> classes = running.snapshot->class_by_slot;
  std::map<uint32_t, const policy::PolicyPeer*> now;
  for (const policy::PolicyPeer& p : peers_) now.emplace(p.slot, &p);
  for (const policy::PolicyPeer& was : *running.peers) {
    auto it = now.find(was.slot);
    if ((it == now.end() || !(*it->second == was)) && was.slot < classes.size())
      classes[was.slot] = policy::kNoAccessClass;
  }
  if (classes == current_->class_by_slot) return;
  Built b;
  b.classifier = running;
  b.class_by_slot = std::move(classes);
  b.approved = current_->view.exit_approved;
  b.approval_reason = approval_reason_;
  b.classes = classes_;
  b.origin = current_->origin;
  publish(std::move(b));
}

void ExitPolicy::settle(const Status& result) {
  std::vector<PendingChange> changes = std::move(pending_changes_);
  pending_changes_.clear();
  std::optional<FileInputs> before = std::move(reload_in_build_);
  reload_in_build_.reset();
  if (!result) {
    // Refused whole: the changes are undone, newest first, and the files' inputs come back.
    for (auto it = changes.rbegin(); it != changes.rend(); ++it)
      if (it->undo) it->undo();
    if (before) restore_files(std::move(*before));
  }
  if (before) {
    ++reloads_;
    if (result) {
      last_reload_error_.clear();
    } else {
      ++reload_errors_;
      last_reload_error_ = result.error();
      log_error("policy: reload rejected, running policy unchanged: " + result.error());
    }
  }
  for (PendingChange& c : changes)
    if (c.done) c.done(result);
}

Status ExitPolicy::compile_and_apply(std::optional<PendingChange> change) {
  auto compiled = compile();
  if (!compiled) return make_error(compiled.error());
  if (change) pending_changes_.push_back(std::move(*change));
  if (auto same = reuse(*compiled)) {
    // This state is the newest: a build still running must not land after it.
    builder_.cancel();
    ++builds_skipped_;
    publish(std::move(*same));
    settle(Ok{});
    return Ok{};
  }
  publish_interim();
  // Validated: only the rte_acl build is left, and it runs on the builder thread; the running
  // classifier serves until publish_finished_build() publishes the result.
  auto shared = std::make_shared<const policy::CompiledPolicy>(std::move(*compiled));
  auto peers = std::make_shared<const std::vector<policy::PolicyPeer>>(peers_);
  builder_.submit([shared, peers, origin = origin()] { return build(shared, peers, origin); });
  return Ok{};
}

Status ExitPolicy::init(std::vector<policy::PolicyPeer> peers) {
  peers_ = std::move(peers);
  if (!opt_.policy_file.empty())
    if (Status s = policy_watch_.watch(opt_.policy_file); !s)
      return make_error("--policy_file: " + s.error());
  if (!opt_.approvals_file.empty())
    if (Status s = approvals_watch_.watch(opt_.approvals_file); !s)
      return make_error("--approvals_file: " + s.error());
  if (Status s = load_files(); !s) return s;
  auto compiled = compile();
  if (!compiled) return make_error(compiled.error());
  auto built = build(std::make_shared<const policy::CompiledPolicy>(std::move(*compiled)),
                     std::make_shared<const std::vector<policy::PolicyPeer>>(peers_), origin());
  if (!built) return make_error(built.error());
  publish(std::move(*built));
  return Ok{};
}

void ExitPolicy::set_peers(std::vector<policy::PolicyPeer> peers) {
  peers_ = std::move(peers);
  if (Status s = compile_and_apply(std::nullopt); !s) {
    // The running classifier stays; peers that changed lose their class until a compile works.
    publish_interim();
    log_error("policy: not recompiled for the new peers, running policy kept: " + s.error());
  }
}

Status ExitPolicy::set_approval_override(std::optional<bool> approved, Done done) {
  const std::optional<bool> old = override_;
  override_ = approved;
  if (Status s =
          compile_and_apply(PendingChange{std::move(done), [this, old] { override_ = old; }});
      !s) {
    override_ = old;
    return s;
  }
  return Ok{};
}

Status ExitPolicy::set_policy_override(std::optional<std::string> text, const std::string& origin,
                                       Done done) {
  std::optional<PolicyOverride> next;
  if (text) {
    auto parsed = policy::parse_policy(*text, origin + " policy");
    if (!parsed) return make_error(parsed.error());
    next = PolicyOverride{std::move(*parsed), std::make_shared<const std::string>(std::move(*text)),
                          origin};
  }
  auto old = std::make_shared<std::optional<PolicyOverride>>(std::move(policy_override_));
  policy_override_ = std::move(next);
  // Under a tailnet filter nothing in force changes: the HuJSON policy is checked and stored.
  Status s = check_hidden_policy(hujson_policy());
  if (s && tailnet_ && done) done(Ok{});
  if (s && !tailnet_)
    s = compile_and_apply(
        PendingChange{std::move(done), [this, old] { policy_override_ = std::move(*old); }});
  if (!s) {
    policy_override_ = std::move(*old);
    return make_error(text ? s.error()
                           : "cannot clear the policy override: the file's policy does not "
                             "compile: " +
                                 s.error());
  }
  const std::string file = opt_.policy_file.empty() ? std::string("the default policy")
                                                    : "--policy_file " + opt_.policy_file;
  const std::string state =
      tailnet_ ? "stored; the tailnet filter stays in force" : std::string("in force");
  if (policy_override_) {
    for (const std::string& note : policy_override_->policy.notes) log_info("policy: " + note);
    log_info("policy: the " + origin + " policy is " + state + " (overrides " + file + ")");
  } else {
    log_info("policy: override cleared; " + file + " is " + state);
  }
  return Ok{};
}

void ExitPolicy::publish_finished_build() {
  auto done = builder_.take();
  if (!done) return;
  if (done->result) {
    publish(std::move(*done->result));
    settle(Ok{});
    return;
  }
  // Validation passed; only the classifier build failed (out of DPDK memory).
  ++build_errors_;
  const std::string error = "classifier build failed: " + done->result.error();
  settle(make_error(error));
  log_error("policy: " + error + "; the running classifier stays");
}

Status ExitPolicy::set_tailnet_filter(std::optional<policy::TailnetFilter> filter, Done done) {
  const bool setting = filter.has_value();
  std::optional<TailnetOverride> next;
  if (filter) {
    auto shared = std::make_shared<const policy::TailnetFilter>(std::move(*filter));
    next = TailnetOverride{
        policy::policy_from_tailnet_filter(*shared), shared,
        std::make_shared<const std::string>(policy::tailnet_filter_to_json(*shared).dump(2))};
  }
  auto old = std::make_shared<std::optional<TailnetOverride>>(std::move(tailnet_));
  tailnet_ = std::move(next);
  if (Status s = compile_and_apply(
          PendingChange{std::move(done), [this, old] { tailnet_ = std::move(*old); }});
      !s) {
    tailnet_ = std::move(*old);
    return make_error((setting ? "the tailnet filter does not compile: "
                               : "cannot clear the tailnet filter: the HuJSON policy does not "
                                 "compile: ") +
                      s.error());
  }
  log_info(tailnet_ ? "policy: the tailnet's packet filter is in force (" +
                          std::to_string(tailnet_->filter->rules.size()) + " rules)"
                    : std::string("policy: tailnet filter cleared; the HuJSON policy is in force"));
  return Ok{};
}

void ExitPolicy::tick(uint64_t now_ns) {
  // A build submitted below is taken at a later call, never in the same one.
  publish_finished_build();
  // Each watch says "due" once its file has stood still (a writer may not have finished).
  const bool p = policy_watch_.due(now_ns);
  const bool a = approvals_watch_.due(now_ns);
  if (p || a) {
    // A bad file changes nothing: the inputs before it come back.
    FileInputs before{policy_, policy_file_text_, approvals_};
    Status s = load_files();
    if (s) s = check_hidden_policy(policy_);
    // Counted when the state that includes it is published (or its build fails); a newer
    // reload replaces the build but keeps the inputs from before the first.
    const bool first = !reload_in_build_;
    if (s && first) reload_in_build_ = before;
    if (s) s = compile_and_apply(std::nullopt);
    if (!s) {
      if (first) reload_in_build_.reset();
      ++reloads_;
      ++reload_errors_;
      restore_files(std::move(before));
      last_reload_error_ = s.error();
      log_error("policy: reload rejected, running policy unchanged: " + s.error());
    }
  }
  while (!retired_.empty() && rte_rcu_qsbr_check(ctx_.rcu, retired_.front().token, false) == 1) {
    Published& old = *retired_.front().published;
    for (uint32_t r = 0; r < old.view.n_rules; ++r) {
      uint64_t sum = 0;
      for (unsigned w = 0; w < ctx_.n_workers; ++w) sum += old.hits[w * old.view.n_rules + r].get();
      retired_hits_[old.classifier.snapshot->rule_names[r]] += sum;
    }
    retired_.pop_front();
  }
  publish_status();
}

void ExitPolicy::publish_status() {
  auto st = std::make_shared<PolicyStatus>();
  std::map<std::string, uint64_t> hits = retired_hits_;
  // Views not yet freed still count (their workers may have counted until the swap).
  auto add = [&](const Published& pub) {
    for (uint32_t r = 0; r < pub.view.n_rules; ++r) {
      uint64_t sum = 0;
      for (unsigned w = 0; w < ctx_.n_workers; ++w) sum += pub.hits[w * pub.view.n_rules + r].get();
      hits[pub.classifier.snapshot->rule_names[r]] += sum;
    }
  };
  for (const Retired& r : retired_) add(*r.published);
  if (current_) {
    add(*current_);
    st->approved = current_->view.exit_approved;
    st->approval_reason = approval_reason_;
    st->rules = current_->view.n_rules;
    st->classes = classes_;
    // What is in force, not what is still building.
    st->source = current_->origin.source;
    st->text = current_->origin.text;
    st->tailnet_filter = current_->origin.tailnet_filter;
  }
  st->rule_hits.assign(hits.begin(), hits.end());
  status_.store(std::move(st));
}

}  // namespace exitgw
