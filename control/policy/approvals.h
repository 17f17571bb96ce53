// The approvals file: what the control service (or an operator) approved for this node.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "common/result.h"

namespace exitgw::policy {

inline constexpr size_t kApprovalsMaxBytes = 64 * 1024;

struct Approvals {
  // Unset: the file says nothing (auto-approval may still approve). false: explicitly
  // unapproved, which also overrides autoApprovers (an operator's revocation must stick).
  std::optional<bool> exit_node;
  int exit_node_line = 0;
};

// Lines "exit-node approved" / "exit-node unapproved"; '#' starts a comment; blank lines
// ignored. Errors read "origin:line: problem". An empty file approves nothing.
Result<Approvals> parse_approvals(std::string_view text, std::string_view origin);

}  // namespace exitgw::policy
