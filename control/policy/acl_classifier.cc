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
RTE_ACL_RULE_DEF(AclRuleV6, kAclFieldCountV6);

// rte_acl_create returns an existing context of the same name, so each build needs a fresh one.
std::atomic<uint32_t> g_context_serial{0};

// The fields both layouts share: priority, result, protocol, class, port range, reserved.
template <typename AclRule, typename Rule>
AclRule acl_rule_common(const Rule& r, uint32_t priority, unsigned proto_field,
                        unsigned class_field, unsigned port_field, unsigned reserved_field) {
  AclRule rule{};
  rule.data.category_mask = 1;
  rule.data.priority = static_cast<int32_t>(priority);
  rule.data.userdata = acl_result_encode(r.rule_index, r.action == RuleAction::kAllow);
  rule.field[proto_field].value.u8 = r.proto;
  rule.field[proto_field].mask_range.u8 = r.proto == kProtoAny ? 0 : 0xff;
  rule.field[class_field].value.u32 = r.any_class ? 0 : r.class_id;
  rule.field[class_field].mask_range.u32 = r.any_class ? 0 : 0xffffffff;
  rule.field[port_field].value.u16 = r.port_lo;
  rule.field[port_field].mask_range.u16 = r.port_hi;
  rule.field[reserved_field].value.u16 = 0;
  rule.field[reserved_field].mask_range.u16 = 0;
  return rule;
}

AclRuleV4 to_acl_rule(const CompiledRule& r, uint32_t priority) {
  AclRuleV4 rule = acl_rule_common<AclRuleV4>(r, priority, kAclFieldProto, kAclFieldClass,
                                              kAclFieldDstPort, kAclFieldReserved);
  rule.field[kAclFieldDst].value.u32 = r.dst.addr & r.dst.mask();
  rule.field[kAclFieldDst].mask_range.u32 = r.dst.len;
  return rule;
}

AclRuleV6 to_acl_rule(const CompiledRule6& r, uint32_t priority) {
  AclRuleV6 rule = acl_rule_common<AclRuleV6>(r, priority, kAcl6FieldProto, kAcl6FieldClass,
                                              kAcl6FieldDstPort, kAcl6FieldReserved);
  // Four 32-bit words, host order, each with its share of the prefix length.
  const Ipv6Prefix dst = canonical(r.dst);
  for (unsigned i = 0; i < 4; ++i) {
    const uint8_t* b = dst.addr.data() + 4 * i;
    rule.field[kAcl6FieldDst0 + i].value.u32 =
        uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
    const unsigned bits = dst.len > 32 * i ? dst.len - 32 * i : 0;
    rule.field[kAcl6FieldDst0 + i].mask_range.u32 = bits > 32 ? 32 : bits;
  }
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

template <typename AclRule, typename Rule, size_t kFields>
Result<AclClassifier> AclClassifier::build_family(std::span<const Rule> rules,
                                                  const rte_acl_field_def (&defs)[kFields]) {
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
  param.rule_size = RTE_ACL_RULE_SZ(kFields);
  param.max_rule_num = static_cast<uint32_t>(rules.size());
  out.ctx_ = rte_acl_create(&param);
  if (out.ctx_ == nullptr) {
    return make_error(std::string("rte_acl_create: ") + rte_strerror(rte_errno));
  }
  // `out` frees the context on every error return below.
  try {
    std::vector<AclRule> acl_rules;
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
    config.num_fields = kFields;
    std::memcpy(config.defs, defs, sizeof defs);
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

Result<AclClassifier> AclClassifier::build(std::span<const CompiledRule> rules) {
  return build_family<AclRuleV4>(rules, kAclFieldDefsV4);
}

Result<AclClassifier> AclClassifier::build(std::span<const CompiledRule6> rules) {
  return build_family<AclRuleV6>(rules, kAclFieldDefsV6);
}

void AclClassifier::classify(const uint8_t** data, uint32_t* results, uint32_t n) const noexcept {
  if (ctx_ == nullptr) [[unlikely]] {
    for (uint32_t i = 0; i < n; ++i) results[i] = 0;
    return;
  }
  rte_acl_classify(ctx_, data, results, n, 1);
}

Result<std::unique_ptr<PolicySnapshot>> build_snapshot(const CompiledPolicy& compiled) {
  // Both families in one snapshot: published together, never one newer than the other.
  Result<AclClassifier> classifier = AclClassifier::build(compiled.rules);
  if (!classifier) return make_error(classifier.error());
  Result<AclClassifier> classifier6 = AclClassifier::build(compiled.rules6);
  if (!classifier6) return make_error("IPv6: " + classifier6.error());
  try {
    auto snapshot = std::make_unique<PolicySnapshot>();
    snapshot->classifier = std::move(classifier.value());
    snapshot->classifier6 = std::move(classifier6.value());
    snapshot->class_by_slot = compiled.class_by_slot;
    snapshot->exit_approved = compiled.exit.approved;
    snapshot->rule_names = compiled.rule_names;
    return snapshot;
  } catch (const std::exception& e) {
    return make_error(std::string("building policy snapshot: ") + e.what());
  }
}

}  // namespace exitgw::policy
