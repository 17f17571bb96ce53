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
  // allow). On failure nothing is left allocated.
  static Result<AclClassifier> build(std::span<const CompiledRule> rules);

  // One rte_acl_classify call for the burst; data[i] points at an AclKeyV4.
  void classify(const uint8_t** data, uint32_t* results, uint32_t n) const noexcept;
  // The context itself, for workers that call rte_acl_classify directly.
  const rte_acl_ctx* context() const noexcept { return ctx_; }

  size_t rule_count() const noexcept { return rule_count_; }

 private:
  rte_acl_ctx* ctx_ = nullptr;
  size_t rule_count_ = 0;
};

// What a worker needs to enforce exit policy. Immutable once published: control swaps the
// pointer and reclaims the old snapshot after an RCU grace period.
struct PolicySnapshot {
  AclClassifier classifier;
  std::vector<uint32_t> class_by_slot;
  bool exit_approved = false;
  std::vector<std::string> rule_names;  // counter labels, indexed by acl_result_counter()

  uint32_t class_of(uint32_t slot) const noexcept {
    return slot < class_by_slot.size() ? class_by_slot[slot] : kNoAccessClass;
  }
};

Result<std::unique_ptr<PolicySnapshot>> build_snapshot(const CompiledPolicy& compiled);

}  // namespace exitgw::policy
