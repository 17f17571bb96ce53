// rte_acl context construction from compiled rules; one context per snapshot, never edited
// after build (rte_acl contexts are not safe to change while classifying).
#include "control/policy/acl_classifier.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

#include <rte_acl.h>
#include <rte_errno.h>

namespace exitgw::policy {
namespace {

RTE_ACL_RULE_DEF(AclRuleV4, kAclFieldCountV4);

// rte_acl_create returns an existing context of the same name, so each build needs a fresh one.
std::atomic<uint32_t> g_context_serial{0};

AclRuleV4 to_acl_rule(const CompiledRule& r, uint32_t priority) {
  AclRuleV4 rule{};
  rule.data.category_mask = 1;
  rule.data.priority = static_cast<int32_t>(priority);
  rule.data.userdata = acl_result_encode(r.rule_index, r.action == RuleAction::kAllow);
  rule.field[kAclFieldProto].value.u8 = r.proto;
  rule.field[kAclFieldProto].mask_range.u8 = r.proto == kProtoAny ? 0 : 0xff;
  rule.field[kAclFieldClass].value.u32 = r.any_class ? 0 : r.class_id;
  rule.field[kAclFieldClass].mask_range.u32 = r.any_class ? 0 : 0xffffffff;
  rule.field[kAclFieldDst].value.u32 = r.dst.addr & r.dst.mask();
  rule.field[kAclFieldDst].mask_range.u32 = r.dst.len;
  rule.field[kAclFieldDstPort].value.u16 = r.port_lo;
  rule.field[kAclFieldDstPort].mask_range.u16 = r.port_hi;
  rule.field[kAclFieldReserved].value.u16 = 0;
  rule.field[kAclFieldReserved].mask_range.u16 = 0;
  return rule;
}

}  // namespace

AclClassifier::AclClassifier(AclClassifier&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)), rule_count_(std::exchange(other.rule_count_, 0)) {}

AclClassifier& AclClassifier::operator=(AclClassifier&& other) noexcept {
  if (this != &other) {
    if (ctx_ != nullptr) rte_acl_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
    rule_count_ = std::exchange(other.rule_count_, 0);
  }
  return *this;
}

AclClassifier::~AclClassifier() {
  if (ctx_ != nullptr) rte_acl_free(ctx_);
}

Result<AclClassifier> AclClassifier::build(std::span<const CompiledRule> rules) {
  AclClassifier out;
  if (rules.empty()) return out;
  if (rules.size() > kMaxCompiledRules) {
    return make_error("too many classifier rules: " + std::to_string(rules.size()));
  }
  char name[RTE_ACL_NAMESIZE];
  std::snprintf(name, sizeof name, "exitgw_policy_%u", g_context_serial.fetch_add(1));
  rte_acl_param param{};
  param.name = name;
  param.socket_id = SOCKET_ID_ANY;
  param.rule_size = RTE_ACL_RULE_SZ(kAclFieldCountV4);
  param.max_rule_num = static_cast<uint32_t>(rules.size());
  out.ctx_ = rte_acl_create(&param);
  if (out.ctx_ == nullptr) {
    return make_error(std::string("rte_acl_create: ") + rte_strerror(rte_errno));
  }
  // `out` frees the context on every error return below.
  try {
    std::vector<AclRuleV4> acl_rules;
    acl_rules.reserve(rules.size());
    for (size_t i = 0; i < rules.size(); ++i) {
      if (rules[i].rule_index == 0 || rules[i].rule_index > (UINT32_MAX >> 1)) {
        return make_error("rule " + std::to_string(i) + ": counter index out of range");
      }
      acl_rules.push_back(to_acl_rule(rules[i], static_cast<uint32_t>(rules.size() - i)));
    }
    int rc = rte_acl_add_rules(out.ctx_, reinterpret_cast<const rte_acl_rule*>(acl_rules.data()),
                               static_cast<uint32_t>(acl_rules.size()));
    if (rc != 0) return make_error(std::string("rte_acl_add_rules: ") + std::strerror(-rc));
    rte_acl_config config{};
    config.num_categories = 1;
    config.num_fields = kAclFieldCountV4;
    std::memcpy(config.defs, kAclFieldDefsV4, sizeof kAclFieldDefsV4);
    rc = rte_acl_build(out.ctx_, &config);
    if (rc != 0) {
      return make_error("rte_acl_build (" + std::to_string(rules.size()) +
                        " rules): " + std::strerror(-rc));
    }
  } catch (const std::exception& e) {
    return make_error(std::string("building classifier: ") + e.what());
  }
  out.rule_count_ = rules.size();
  return out;
}

void AclClassifier::classify(const uint8_t** data, uint32_t* results, uint32_t n) const noexcept {
  if (ctx_ == nullptr) [[unlikely]] {
    for (uint32_t i = 0; i < n; ++i) results[i] = 0;
    return;
  }
  rte_acl_classify(ctx_, data, results, n, 1);
}

Result<std::unique_ptr<PolicySnapshot>> build_snapshot(const CompiledPolicy& compiled) {
  Result<AclClassifier> classifier = AclClassifier::build(compiled.rules);
  if (!classifier) return make_error(classifier.error());
  try {
    auto snapshot = std::make_unique<PolicySnapshot>();
    snapshot->classifier = std::move(classifier.value());
    snapshot->class_by_slot = compiled.class_by_slot;
    snapshot->exit_approved = compiled.exit.approved;
    snapshot->rule_names = compiled.rule_names;
    return snapshot;
  } catch (const std::exception& e) {
    return make_error(std::string("building policy snapshot: ") + e.what());
  }
}

}  // namespace exitgw::policy
