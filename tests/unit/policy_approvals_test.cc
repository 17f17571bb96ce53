// Approvals file: the documented example, comments, and every error naming file:line.
#include "control/policy/approvals.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace exitgw::policy {
namespace {

TEST(PolicyApprovals, ExampleFileApprovesTheExitNode) {
  std::ifstream in(std::string(EXITGW_SOURCE_DIR) + "/conf/approvals.conf");
  std::stringstream ss;
  ss << in.rdbuf();
  auto a = parse_approvals(ss.str(), "conf/approvals.conf");
  ASSERT_TRUE(a.ok()) << a.error();
  ASSERT_TRUE(a->exit_node.has_value());
  EXPECT_TRUE(*a->exit_node);
}

TEST(PolicyApprovals, UnapprovedCommentsCrlfAndBlankLines) {
  auto a = parse_approvals("# header\r\n\r\n  exit-node\tunapproved   # revoked\r\n", "f");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_FALSE(*a->exit_node);
  EXPECT_EQ(a->exit_node_line, 3);
}

TEST(PolicyApprovals, EmptyFileSaysNothing) {
  auto a = parse_approvals("", "f");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->exit_node.has_value());
}

TEST(PolicyApprovals, ErrorsNameTheLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"exit-node approved\nroute 10.0.0.0/8 approved\n", "f:2: unknown approval \"route\""},
      {"\nexit-node yes\n", "f:2: write \"exit-node approved\""},
      {"exit-node approved extra\n", "f:1: write"},
      {"exit-node\n", "f:1: write"},
      {"exit-node approved\nexit-node unapproved\n", "f:2: exit-node is already set on line 1"},
  };
  for (const auto& [text, expected] : cases) {
    auto a = parse_approvals(text, "f");
    ASSERT_FALSE(a.ok()) << text;
    EXPECT_EQ(a.error().rfind(expected, 0), 0u) << a.error();
  }
  EXPECT_FALSE(parse_approvals(std::string("exit-node approved\0", 19), "f").ok());
  EXPECT_FALSE(parse_approvals(std::string(kApprovalsMaxBytes + 1, '#'), "f").ok());
}

}  // namespace
}  // namespace exitgw::policy
