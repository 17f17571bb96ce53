// The compiled exit policy as an rte_acl context, and the immutable snapshot control publishes
// to the workers.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/acl_layout.h"
#include "control/policy/compile.h"

struct rte_acl_ctx;

namespace exitgw::policy {

// Owns one built rte_acl context (or none: every packet gets result 0). Built on the control
// thread; classify() is read-only and safe from any number of workers at once. Needs EAL.
class AclClassifier {
 public:
  AclClassifier() = default;
  AclClassifier(AclClassifier&& other) noexcept;
  AclClassifier& operator=(AclClassifier&& other) noexcept;
  AclClassifier(const AclClassifier&) = delete;
  AclClassifier& operator=(const AclClassifier&) = delete;
  ~AclClassifier();

  // Priority follows rule order (first rule wins); userdata = acl_result_encode(rule_index,
  // allow). On failure nothing is left allocated. No rules: no context (rte_acl cannot build
  // an empty one), and every packet gets result 0, the default deny.
  static Result<AclClassifier> build(std::span<const CompiledRule> rules);
  // The IPv6 context (AclKeyV6 keys).
  static Result<AclClassifier> build(std::span<const CompiledRule6> rules);

  // One rte_acl_classify call for the burst; data[i] points at the family's key.
  void classify(const uint8_t** data, uint32_t* results, uint32_t n) const noexcept;
  // The context itself, for workers that call rte_acl_classify directly.
  // Null when built from no rules: the caller's default deny.
  const rte_acl_ctx* context() const noexcept { return ctx_; }

  size_t rule_count() const noexcept { return rule_count_; }

 private:
  template <typename AclRule, typename Rule, size_t kFields>
  static Result<AclClassifier> build_family(std::span<const Rule> rules,
                                            const rte_acl_field_def (&defs)[kFields]);

  rte_acl_ctx* ctx_ = nullptr;
  size_t rule_count_ = 0;
};

// What a worker needs to enforce exit policy. Immutable once published: control swaps the
// pointer and reclaims the old snapshot after an RCU grace period.
struct PolicySnapshot {
  AclClassifier classifier;   // IPv4
  AclClassifier classifier6;  // IPv6, same class ids and rule_names
  std::vector<uint32_t> class_by_slot;
  bool exit_approved = false;
  // Counter labels, indexed by acl_result_counter() of either classifier.
  std::vector<std::string> rule_names;

  uint32_t class_of(uint32_t slot) const noexcept {
    return slot < class_by_slot.size() ? class_by_slot[slot] : kNoAccessClass;
  }
};

Result<std::unique_ptr<PolicySnapshot>> build_snapshot(const CompiledPolicy& compiled);

}  // namespace exitgw::policy
