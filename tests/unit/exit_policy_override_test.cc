// ExitPolicy's policy override (PolicyReplace from the admin API or etcd): a good text is
// parsed, compiled and published, and the workers' classifier follows it; a bad one changes
// nothing and its error names the line and column; clearing goes back to the file (or the
// default policy); while an override is set, file reloads are parsed but do not replace it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <rte_acl.h>
#include <rte_eal.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "common/acl_layout.h"
#include "control/exit_policy.h"
#include "tests/support/eal_environment.h"
#include "tests/support/test_files.h"

namespace exitgw {
namespace {

constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint32_t kInternetIp = 0x5db8d822;  // 93.184.216.34: an internet destination

// Members may use the exit for TCP 443 only: UDP to the internet is denied.
constexpr std::string_view kTcp443Only = R"({
  // Only HTTPS through the exit.
  "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["tcp:443"]}],
})";
// Everything for members, with a rule more than the default (so the rule count tells them apart).
constexpr std::string_view kFileAllowsAll = R"({
  "grants": [
    {"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["*"]},
    {"src": ["autogroup:member"], "dst": ["198.51.100.0/24"], "ip": ["*"]},
  ],
})";

EXITGW_EAL_ENVIRONMENT("exit_policy_override_test", 128);

class ExitPolicyOverride : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.n_workers = 1;
    ctx_.rcu = static_cast<rte_rcu_qsbr*>(
        rte_zmalloc("policyupd_rcu", rte_rcu_qsbr_get_memsize(1), RTE_CACHE_LINE_SIZE));
    ASSERT_NE(ctx_.rcu, nullptr);
    ASSERT_EQ(rte_rcu_qsbr_init(ctx_.rcu, 1), 0);
    dir_ = std::filesystem::temp_directory_path() /
           ("exitgw-policyupd-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    approvals_ = (dir_ / "approvals.conf").string();
    test::write_file(approvals_, "exit-node approved\n");
  }
  void TearDown() override {
    policy_.reset();
    rte_free(ctx_.rcu);
    std::filesystem::remove_all(dir_);
  }

  void start(const std::string& policy_file = "") {
    ExitPolicyOptions opt;
    opt.policy_file = policy_file;
    opt.approvals_file = approvals_;
    policy_ = std::make_unique<ExitPolicy>(ctx_, opt);
    std::vector<policy::PolicyPeer> peers = {
        {0, "alice@example.com", {}, {Ipv4Prefix{0x64400001, 32}}}};
    ASSERT_TRUE(policy_->init(std::move(peers)));
  }

  // What a worker decides for peer slot 0 with the view published now.
  bool allows(uint8_t proto, uint16_t port) const {
    const dp::PolicyView* view = ctx_.policy.load(std::memory_order_acquire);
    if (view == nullptr || !view->exit_approved) return false;
    policy::AclKeyV4 key;
    policy::fill_acl_key_v4(key, view->class_by_slot[0], proto, rte_cpu_to_be_32(kInternetIp),
                            rte_cpu_to_be_16(port));
    const uint8_t* data[1] = {reinterpret_cast<const uint8_t*>(&key)};
    uint32_t result = 0;
    if (view->acl != nullptr) rte_acl_classify(view->acl, data, &result, 1, 1);
    return policy::acl_result_allows(result);
  }

  // The same on the IPv6 classifier of the same view, to 2606:4700::1111.
  bool allows6(uint8_t proto, uint16_t port) const {
    const dp::PolicyView* view = ctx_.policy.load(std::memory_order_acquire);
    if (view == nullptr || !view->exit_approved) return false;
    const uint8_t dst[16] = {0x26, 0x06, 0x47, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11};
    policy::AclKeyV6 key;
    policy::fill_acl_key_v6(key, view->class_by_slot[0], proto, dst, rte_cpu_to_be_16(port));
    const uint8_t* data[1] = {reinterpret_cast<const uint8_t*>(&key)};
    uint32_t result = 0;
    if (view->acl6 != nullptr) rte_acl_classify(view->acl6, data, &result, 1, 1);
    return policy::acl_result_allows(result);
  }

  // Publishes builds as they finish until none is pending.
  void settle() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (policy_->build_pending() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      policy_->publish_finished_build();
    }
  }
  // A set_* call's result once what it accepted is in force (its classifier built).
  ::testing::AssertionResult in_force(const Status& accepted) {
    if (!accepted) return ::testing::AssertionFailure() << accepted.error();
    settle();
    if (policy_->build_pending()) return ::testing::AssertionFailure() << "still building";
    return ::testing::AssertionSuccess();
  }

  // The file watch settles 200 ms after a change: tick until the reload count moves.
  void tick_until_reloaded() {
    const uint64_t before = policy_->reloads();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (policy_->reloads() == before && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      policy_->tick(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count()));
    }
    ASSERT_NE(policy_->reloads(), before) << "the policy file was not reloaded";
  }

  // Ticks until a file reload was read and its classifier build submitted (not yet taken: a
  // build is taken at the next call at the earliest).
  void tick_until_building() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!policy_->build_pending() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      policy_->tick(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now().time_since_epoch())
                                              .count()));
    }
    ASSERT_TRUE(policy_->build_pending()) << "no build was started";
  }

  dp::DataplaneContext ctx_;
  std::unique_ptr<ExitPolicy> policy_;
  std::filesystem::path dir_;
  std::string approvals_;
};

TEST_F(ExitPolicyOverride, OverrideReplacesTheDefaultPolicyAndClearingRestoresIt) {
  start();
  EXPECT_EQ(policy_->status()->source, "default");
  EXPECT_EQ(*policy_->status()->text, policy::kDefaultPolicyText);
  EXPECT_TRUE(allows(kProtoUdp, 7));

  ASSERT_TRUE(in_force(policy_->set_policy_override(std::string(kTcp443Only), "admin")));
  EXPECT_TRUE(policy_->has_policy_override());
  EXPECT_EQ(policy_->status()->source, "admin");
  EXPECT_EQ(*policy_->status()->text, kTcp443Only);
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_TRUE(allows(kProtoTcp, 443));
  EXPECT_FALSE(allows(kProtoTcp, 80));

  ASSERT_TRUE(in_force(policy_->set_policy_override(std::nullopt, "admin")));
  EXPECT_FALSE(policy_->has_policy_override());
  EXPECT_EQ(policy_->status()->source, "default");
  EXPECT_TRUE(allows(kProtoUdp, 7));
}

TEST_F(ExitPolicyOverride, EachPublishedViewCarriesBothFamiliesOfTheSamePolicy) {
  start();
  const dp::PolicyView* first = ctx_.policy.load();
  ASSERT_NE(first->acl6, nullptr);
  EXPECT_TRUE(allows6(kProtoUdp, 7));
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::string(kTcp443Only), "admin")));
  // The override's IPv6 rules came with its IPv4 rules, in the same view.
  EXPECT_NE(ctx_.policy.load(), first);
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_FALSE(allows6(kProtoUdp, 7));
  EXPECT_TRUE(allows6(kProtoTcp, 443));
  EXPECT_FALSE(allows6(kProtoTcp, 80));
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::nullopt, "admin")));
  EXPECT_TRUE(allows6(kProtoUdp, 7));
  // One rule list: the grant's counter and the IPv6 safety ranges' are in the same status.
  bool grant = false, nat64 = false;
  for (const auto& [name, hits] : policy_->status()->rule_hits) {
    grant |= name == "grants[0]";
    nat64 |= name == "builtin:nat64";
  }
  EXPECT_TRUE(grant);
  EXPECT_TRUE(nat64);
}

TEST_F(ExitPolicyOverride, BadTextIsRejectedWithItsLineAndColumnAndChangesNothing) {
  start();
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::string(kTcp443Only), "etcd")));
  const dp::PolicyView* before = ctx_.policy.load();
  const size_t rules_before = policy_->status()->rules;

  // Line 3 has a grant whose "ip" is not a list.
  const std::string bad =
      "{\n  \"grants\": [\n    {\"src\": [\"autogroup:member\"], \"dst\": "
      "[\"autogroup:internet\"], \"ip\": 7},\n  ],\n}\n";
  const Status s = policy_->set_policy_override(bad, "admin");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("admin policy:3:"), std::string::npos) << s.error();

  const Status syntax = policy_->set_policy_override("{\"grants\": [}", "admin");
  ASSERT_FALSE(syntax);
  EXPECT_NE(syntax.error().find("admin policy:1:"), std::string::npos) << syntax.error();

  EXPECT_EQ(ctx_.policy.load(), before) << "a bad policy published something";
  EXPECT_EQ(policy_->status()->source, "etcd");
  EXPECT_EQ(*policy_->status()->text, kTcp443Only);
  EXPECT_EQ(policy_->status()->rules, rules_before);
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_TRUE(allows(kProtoTcp, 443));
}

TEST_F(ExitPolicyOverride, FileReloadsAreParsedButDoNotReplaceTheOverrideUntilCleared) {
  const std::string file = (dir_ / "policy.hujson").string();
  test::write_file(file, kFileAllowsAll);
  start(file);
  EXPECT_EQ(policy_->status()->source, "file");
  EXPECT_EQ(*policy_->status()->text, kFileAllowsAll);
  EXPECT_TRUE(allows(kProtoUdp, 7));

  ASSERT_TRUE(in_force(policy_->set_policy_override(std::string(kTcp443Only), "admin")));
  EXPECT_FALSE(allows(kProtoUdp, 7));

  // A good new file: parsed and counted as a reload, but the override stays in force.
  const std::string new_file =
      R"({"grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["udp:7"]}]})";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  test::write_file(file, new_file);
  tick_until_reloaded();
  EXPECT_EQ(policy_->reload_errors(), 0u);
  EXPECT_EQ(policy_->status()->source, "admin");
  EXPECT_EQ(*policy_->status()->text, kTcp443Only);
  EXPECT_FALSE(allows(kProtoUdp, 7));

  // A bad file is reported as a rejected reload; the override still runs.
  test::write_file(file, "{\"grants\": [");
  tick_until_reloaded();
  EXPECT_EQ(policy_->reload_errors(), 1u);
  EXPECT_EQ(policy_->status()->source, "admin");
  EXPECT_TRUE(allows(kProtoTcp, 443));

  // Fixed again, then cleared: the file's latest good policy runs.
  test::write_file(file, new_file);
  tick_until_reloaded();
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::nullopt, "admin")));
  EXPECT_EQ(policy_->status()->source, "file");
  EXPECT_EQ(*policy_->status()->text, new_file);
  EXPECT_NE(policy_->status()->rules, 0u);
  EXPECT_TRUE(allows(kProtoUdp, 7));
  EXPECT_FALSE(allows(kProtoTcp, 443));
}

// A rejected file reload is counted as rejected, never as applied (the gateway advances the
// configuration generation by reloads_applied()), and the running policy stays.
TEST_F(ExitPolicyOverride, ARejectedFileReloadIsNotCountedAsApplied) {
  const std::string file = (dir_ / "policy.hujson").string();
  test::write_file(file, kTcp443Only);
  start(file);
  const dp::PolicyView* before = ctx_.policy.load();
  test::write_file(file, "{\"grants\": [");
  tick_until_reloaded();
  EXPECT_EQ(policy_->reload_errors(), 1u);
  EXPECT_EQ(policy_->reloads_applied(), 0u);
  EXPECT_EQ(ctx_.policy.load(), before);
  std::filesystem::remove(file);
  std::filesystem::create_directory(file);  // a directory in its place: refused, not emptied
  tick_until_reloaded();
  EXPECT_EQ(policy_->reload_errors(), 2u);
  EXPECT_NE(policy_->last_reload_error().find("is a directory, not a regular file"),
            std::string::npos)
      << policy_->last_reload_error();
  EXPECT_EQ(policy_->reloads_applied(), 0u);
  EXPECT_TRUE(allows(kProtoTcp, 443));
  EXPECT_FALSE(allows(kProtoUdp, 7));
}

// A file reload builds the classifier on the builder thread: the running view serves until a
// later call publishes the new one, and only then is the reload counted as applied (the
// generation follows reloads_applied()) and its text shown as the running policy.
TEST_F(ExitPolicyOverride, AFileReloadBuildsOnTheBuilderAndTheRunningViewServesMeanwhile) {
  const std::string file = (dir_ / "policy.hujson").string();
  test::write_file(file, kTcp443Only);
  start(file);
  const dp::PolicyView* before = ctx_.policy.load();
  test::write_file(file, kFileAllowsAll);
  tick_until_building();
  // The tick that read the file submitted the build; it is taken at a later call at the
  // earliest, so the old view still decides.
  EXPECT_EQ(ctx_.policy.load(), before) << "published in the tick that started the build";
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_EQ(policy_->reloads(), 0u) << "counted before its build was published";
  EXPECT_EQ(policy_->reloads_applied(), 0u);
  EXPECT_EQ(*policy_->status()->text, kTcp443Only) << "shows a text not yet in force";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ctx_.policy.load() == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    policy_->publish_finished_build();
  }
  ASSERT_NE(ctx_.policy.load(), before);
  EXPECT_FALSE(policy_->build_pending());
  EXPECT_TRUE(allows(kProtoUdp, 7));
  EXPECT_EQ(policy_->reloads_applied(), 1u);
  EXPECT_EQ(policy_->reload_errors(), 0u);
  EXPECT_EQ(*policy_->status()->text, kFileAllowsAll);
}

// An admin update published at once supersedes a file reload still building: the older build
// never lands over it.
TEST_F(ExitPolicyOverride, AnImmediateUpdateSupersedesABuildInProgress) {
  const std::string file = (dir_ / "policy.hujson").string();
  test::write_file(file, kTcp443Only);
  start(file);
  test::write_file(file, kFileAllowsAll);
  tick_until_building();
  const uint64_t skipped = policy_->builds_skipped();
  // The override's rules are the running classifier's: published at once, no build.
  ASSERT_TRUE(policy_->set_policy_override(std::string(kTcp443Only), "admin"));
  EXPECT_EQ(policy_->builds_skipped(), skipped + 1);
  EXPECT_FALSE(policy_->build_pending());
  // The file's reload is part of the state just published: applied, though not in force.
  EXPECT_EQ(policy_->reloads_applied(), 1u);
  const dp::PolicyView* published = ctx_.policy.load();
  // Wait for the superseded build to finish, however long it takes: only then could it land.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!policy_->builder_idle() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_TRUE(policy_->builder_idle()) << "the superseded build never finished";
  for (int i = 0; i < 5; ++i) policy_->publish_finished_build();
  EXPECT_EQ(ctx_.policy.load(), published);
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_TRUE(allows(kProtoTcp, 443));
  // Cleared: the file's reloaded policy (validated, built at once now) runs.
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::nullopt, "admin")));
  EXPECT_TRUE(allows(kProtoUdp, 7));
}

TEST_F(ExitPolicyOverride, TailnetFilterWinsOverTheHujsonOverrideAndClearingRestoresIt) {
  start();
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::string(kTcp443Only), "admin")));
  // The tailnet grants peer 0 (100.64.0.1) UDP 7 only: the HuJSON override no longer decides.
  policy::TailnetFilter filter;
  filter.rules.push_back({{Ipv4Prefix{0x64400001, 32}}, {{Ipv4Prefix{0, 0}, 7, 7}}, {kProtoUdp}});
  ASSERT_TRUE(in_force(policy_->set_tailnet_filter(filter)));
  EXPECT_EQ(policy_->status()->source, "tailnet");
  ASSERT_NE(policy_->status()->tailnet_filter, nullptr);
  EXPECT_EQ(policy_->status()->tailnet_filter->rules.size(), 1u);
  EXPECT_NE(policy_->status()->text->find("\"ports\""), std::string::npos);
  EXPECT_TRUE(allows(kProtoUdp, 7));
  EXPECT_FALSE(allows(kProtoTcp, 443));
  // Peers change: the filter is recompiled with them, still in force.
  policy_->set_peers({{0, "", {}, {Ipv4Prefix{0x64400002, 32}}}});
  settle();
  EXPECT_FALSE(allows(kProtoUdp, 7));
  policy_->set_peers({{0, "alice@example.com", {}, {Ipv4Prefix{0x64400001, 32}}}});
  settle();
  EXPECT_TRUE(allows(kProtoUdp, 7));

  ASSERT_TRUE(in_force(policy_->set_tailnet_filter(std::nullopt)));
  EXPECT_EQ(policy_->status()->source, "admin");
  EXPECT_EQ(policy_->status()->tailnet_filter, nullptr);
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_TRUE(allows(kProtoTcp, 443));
}

// A policy that parses but does not compile: two grants of 300 destinations x 200 ports each
// come to 120000 classifier rules, more than kMaxCompiledRules.
std::string policy_over_the_rule_limit() {
  std::string text = "{\"grants\": [";
  for (int g = 0; g < 2; ++g) {
    text += "{\"src\": [\"autogroup:member\"], \"dst\": [";
    for (int d = 0; d < 300; ++d)
      text += "\"44." + std::to_string(d / 200) + "." + std::to_string(d % 200) + ".1/32\",";
    text += "], \"ip\": [";
    for (int port = 0; port < 200; ++port)
      text += "\"tcp:" + std::to_string(2 * port + 2 + 1000 * g) + "\",";
    text += "]},";
  }
  return text + "]}";
}

// While the tailnet filter decides, a HuJSON policy (override or file) is still compiled to
// check it: one that does not compile is refused, so clearing the filter later never fails.
TEST_F(ExitPolicyOverride, UnderATailnetFilterAHujsonPolicyThatDoesNotCompileIsRefused) {
  const std::string file = (dir_ / "policy.hujson").string();
  test::write_file(file, kFileAllowsAll);
  start(file);
  policy::TailnetFilter filter;
  filter.rules.push_back({{Ipv4Prefix{0x64400001, 32}}, {{Ipv4Prefix{0, 0}, 7, 7}}, {kProtoUdp}});
  ASSERT_TRUE(in_force(policy_->set_tailnet_filter(filter)));
  const dp::PolicyView* before = ctx_.policy.load();

  const Status s = policy_->set_policy_override(policy_over_the_rule_limit(), "admin");
  ASSERT_FALSE(s) << "an override that does not compile was accepted";
  EXPECT_NE(s.error().find("classifier rules"), std::string::npos) << s.error();
  EXPECT_FALSE(policy_->has_policy_override());

  test::write_file(file, policy_over_the_rule_limit());
  tick_until_reloaded();
  EXPECT_EQ(policy_->reload_errors(), 1u);
  EXPECT_NE(policy_->last_reload_error().find("classifier rules"), std::string::npos)
      << policy_->last_reload_error();
  EXPECT_EQ(ctx_.policy.load(), before);
  EXPECT_EQ(policy_->status()->source, "tailnet");

  // A good override is stored without replacing the filter, and takes over when it is cleared.
  ASSERT_TRUE(in_force(policy_->set_policy_override(std::string(kTcp443Only), "admin")));
  EXPECT_EQ(ctx_.policy.load(), before);
  EXPECT_TRUE(allows(kProtoUdp, 7));
  ASSERT_TRUE(in_force(policy_->set_tailnet_filter(std::nullopt)));
  EXPECT_EQ(policy_->status()->source, "admin");
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_TRUE(allows(kProtoTcp, 443));
}

// An admin or etcd policy whose rules differ is built on the builder thread: accepted at once,
// the running classifier serves until the build is published, and only then is the change
// reported in force (the gateway answers the update then).
TEST_F(ExitPolicyOverride, AnOverrideThatNeedsABuildIsInForceOnlyOnceBuilt) {
  start();
  const dp::PolicyView* before = ctx_.policy.load();
  std::optional<Status> done;
  ASSERT_TRUE(policy_->set_policy_override(std::string(kTcp443Only), "admin",
                                           [&](Status s) { done = std::move(s); }));
  EXPECT_TRUE(policy_->build_pending());
  EXPECT_FALSE(done.has_value()) << "reported in force before its classifier was built";
  EXPECT_EQ(ctx_.policy.load(), before) << "published before the build";
  EXPECT_TRUE(allows(kProtoUdp, 7)) << "the running policy stopped serving";
  settle();
  ASSERT_TRUE(done.has_value());
  EXPECT_TRUE(*done);
  EXPECT_NE(ctx_.policy.load(), before);
  EXPECT_FALSE(allows(kProtoUdp, 7));
  EXPECT_TRUE(allows(kProtoTcp, 443));
  EXPECT_EQ(policy_->status()->source, "admin");
}

// An approval changes no rule: the running classifier serves it, published before the call
// returns.
TEST_F(ExitPolicyOverride, AnApprovalIsPublishedAtOnceWithoutABuild) {
  start();
  const uint64_t skipped = policy_->builds_skipped();
  std::optional<Status> done;
  ASSERT_TRUE(policy_->set_approval_override(false, [&](Status s) { done = std::move(s); }));
  ASSERT_TRUE(done.has_value());
  EXPECT_TRUE(*done);
  EXPECT_FALSE(policy_->build_pending());
  EXPECT_EQ(policy_->builds_skipped(), skipped + 1);
  EXPECT_FALSE(ctx_.policy.load()->exit_approved);
  EXPECT_FALSE(allows(kProtoUdp, 7));
}

// A peer with the identity of a running class gets that class at once (no build); a peer of a
// new identity waits for the build, and a removed peer's slot, reused by the newcomer, never
// serves under the removed peer's grants meanwhile.
TEST_F(ExitPolicyOverride, PeerChangesNeverLeaveAReusedSlotWithTheOldPeersClass) {
  const std::string file = (dir_ / "policy.hujson").string();
  // alice may use the exit; bob may not (and nobody else).
  test::write_file(file, R"({
    "grants": [{"src": ["alice@example.com"], "dst": ["autogroup:internet"], "ip": ["*"]}],
  })");
  start(file);
  ASSERT_TRUE(allows(kProtoUdp, 7));  // slot 0: alice

  // A second alice device at slot 1: the same class, no build.
  const uint64_t skipped = policy_->builds_skipped();
  policy_->set_peers({{0, "alice@example.com", {}, {Ipv4Prefix{0x64400001, 32}}},
                      {1, "alice@example.com", {}, {Ipv4Prefix{0x64400003, 32}}}});
  EXPECT_FALSE(policy_->build_pending());
  EXPECT_EQ(policy_->builds_skipped(), skipped + 1);
  const dp::PolicyView* view = ctx_.policy.load();
  ASSERT_GT(view->n_slots, 1u);
  EXPECT_EQ(view->class_by_slot[1], view->class_by_slot[0]);

  // Both alice devices leave; bob takes slot 0. The rules change (alice's class is gone), so a
  // build runs, and meanwhile slot 0 must not keep alice's class.
  policy_->set_peers({{0, "bob@example.com", {}, {Ipv4Prefix{0x64400002, 32}}}});
  EXPECT_TRUE(policy_->build_pending());
  EXPECT_FALSE(allows(kProtoUdp, 7)) << "bob served under alice's grants while building";
  settle();
  EXPECT_FALSE(allows(kProtoUdp, 7));

  // alice comes back at slot 0: a new class again, allowed once built.
  policy_->set_peers({{0, "alice@example.com", {}, {Ipv4Prefix{0x64400001, 32}}}});
  settle();
  EXPECT_TRUE(allows(kProtoUdp, 7));
}

}  // namespace
}  // namespace exitgw
