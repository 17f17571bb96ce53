// The IPv6 exit-policy stage (exit_policy6) on a real worker with a real rte_acl context built
// from a compiled policy: approval first, the upper-layer protocol and port found behind
// extension headers, ports only in first fragments, allowed packets compacted in order, denied
// ones dropped as kPolicyDenied, and each verdict counted in the worker's row of the one rule
// counter list both families share.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <rte_mbuf.h>
#include <rte_ring.h>

#include "control/policy/acl_classifier.h"
#include "control/policy/compile.h"
#include "control/policy/prefix.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"
#include "tests/support/eal_environment.h"

namespace exitgw {
namespace {

EXITGW_EAL_ENVIRONMENT("exit_policy6_stage_test", 128);

using Bytes = std::vector<uint8_t>;

constexpr uint8_t kHopByHop = 0;
constexpr uint8_t kFragment = 44;
constexpr uint8_t kDestOptions = 60;

// An inner IPv6 packet to `dst`: `ext` extension headers (next-header values, each 8 bytes;
// a Fragment header with `frag_offset` in 8-byte units), then `proto` with an 8-byte header
// whose destination port is `port`.
Bytes ipv6_packet(const char* dst, uint8_t proto, uint16_t port, std::vector<uint8_t> ext = {},
                  uint16_t frag_offset = 0) {
  Bytes p(40);
  p[0] = 0x60;
  const auto addr = policy::parse_prefix6(dst)->prefix.addr;
  std::memcpy(&p[24], addr.data(), 16);
  const auto src = policy::parse_prefix6("fd7a:115c:a1e0::1")->prefix.addr;
  std::memcpy(&p[8], src.data(), 16);
  ext.push_back(proto);
  p[6] = ext[0];
  for (size_t i = 0; i + 1 < ext.size(); ++i) {
    uint8_t h[8] = {ext[i + 1], 0, 0, 0, 0, 0, 0, 0};
    if (ext[i] == kFragment) {
      h[2] = static_cast<uint8_t>(frag_offset >> 5);
      h[3] = static_cast<uint8_t>((frag_offset << 3) | 1);  // more fragments follow
      h[7] = 9;                                             // identification
    }
    p.insert(p.end(), h, h + 8);
  }
  uint8_t l4[20] = {0x30, 0x39, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
  p.insert(p.end(), l4, l4 + (proto == IPPROTO_TCP ? 20 : 8));
  const size_t payload = p.size() - 40;
  p[4] = static_cast<uint8_t>(payload >> 8);
  p[5] = static_cast<uint8_t>(payload);
  return p;
}

class ExitPolicy6Stage : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string tag = std::to_string(getpid()) + "_" + std::to_string(serial_++);
    pool_ = rte_pktmbuf_pool_create(("ep6_pool" + tag).c_str(), 511, 0, sizeof(dp::PacketMeta),
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ASSERT_NE(pool_, nullptr);
    ctx_.n_workers = 2;
    for (unsigned w = 0; w < 2; ++w) {
      ctx_.workers[w].events = rte_ring_create_elem(("ep6_ev" + tag + std::to_string(w)).c_str(),
                                                    sizeof(dp::Event), 1024, SOCKET_ID_ANY, 0);
      ASSERT_NE(ctx_.workers[w].events, nullptr);
      workers_.push_back(std::make_unique<dp::Worker>(ctx_, w));
    }
  }
  void TearDown() override {
    ctx_.policy.store(nullptr);
    workers_.clear();
    for (unsigned w = 0; w < 2; ++w) rte_ring_free(ctx_.workers[w].events);
    rte_mempool_free(pool_);
  }

  // Compiles `text` for a member peer in slot 3 (and a tagged one in slot 4) and publishes it.
  void publish(const char* text, bool approved = true) {
    auto policy = policy::parse_policy(text, "p");
    ASSERT_TRUE(policy.ok()) << policy.error();
    policy::PolicyPeer member, tagged;
    member.slot = 3;
    member.user = "alice@x.com";
    member.addresses = {{0x64400003, 32}};
    tagged.slot = 4;
    tagged.user = "bob@x.com";
    tagged.tags = {"tag:srv"};
    tagged.addresses = {{0x64400004, 32}};
    policy::NodeIdentity node;
    node.own_addresses6 = {policy::parse_prefix6("2a01:4f8::1")->prefix.addr};
    auto compiled =
        policy::compile_policy(*policy, std::vector<policy::PolicyPeer>{member, tagged}, node, {});
    ASSERT_TRUE(compiled.ok()) << compiled.error();
    auto snap = policy::build_snapshot(*compiled);
    ASSERT_TRUE(snap.ok()) << snap.error();
    snapshot_ = std::move(*snap);
    const auto n_rules = static_cast<uint32_t>(snapshot_->rule_names.size());
    hits_ = std::make_unique<dp::Counter[]>(size_t{n_rules} * ctx_.n_workers);
    view_.acl = snapshot_->classifier.context();
    view_.acl6 = snapshot_->classifier6.context();
    view_.class_by_slot = snapshot_->class_by_slot.data();
    view_.n_slots = static_cast<uint32_t>(snapshot_->class_by_slot.size());
    view_.n_rules = n_rules;
    view_.exit_approved = approved;
    view_.rule_hits = hits_.get();
    ctx_.policy.store(&view_);
  }

  // One burst from `slot` through worker `w`'s stage: the passed packets' indices in the input.
  std::vector<size_t> run(unsigned w, const std::vector<Bytes>& packets, uint32_t slot = 3) {
    std::vector<rte_mbuf*> mbufs;
    for (const Bytes& p : packets) {
      rte_mbuf* m = rte_pktmbuf_alloc(pool_);
      EXPECT_NE(m, nullptr);
      if (m == nullptr) break;
      std::memcpy(rte_pktmbuf_append(m, uint16_t(p.size())), p.data(), p.size());
      dp::meta(m)->in_port = 0;
      dp::meta(m)->peer_slot = slot;
      mbufs.push_back(m);
    }
    const std::vector<rte_mbuf*> sent = mbufs;
    const uint16_t passed = dp::exit_policy6(*workers_[w], mbufs.data(), uint16_t(mbufs.size()));
    std::vector<size_t> out;
    for (uint16_t i = 0; i < passed; ++i)
      out.push_back(size_t(std::find(sent.begin(), sent.end(), mbufs[i]) - sent.begin()));
    rte_pktmbuf_free_bulk(mbufs.data(), passed);
    workers_[w]->flush();
    return out;
  }

  uint64_t dropped(unsigned w, dp::DropReason r) {
    return workers_[w]->counters().drops[0][static_cast<size_t>(r)].get();
  }
  uint64_t hits(unsigned w, const std::string& rule) {
    for (uint32_t i = 0; i < view_.n_rules; ++i)
      if (snapshot_->rule_names[i] == rule) return hits_[size_t{w} * view_.n_rules + i].get();
    ADD_FAILURE() << "no rule " << rule;
    return 0;
  }

  static inline unsigned serial_ = 0;
  dp::DataplaneContext ctx_;
  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<dp::Worker>> workers_;
  std::unique_ptr<policy::PolicySnapshot> snapshot_;
  std::unique_ptr<dp::Counter[]> hits_;
  dp::PolicyView view_;
};

TEST_F(ExitPolicy6Stage, UnapprovedNodeDropsEveryPacketBeforeClassifying) {
  publish(policy::kDefaultPolicyText.data(), false);
  EXPECT_TRUE(run(0, {ipv6_packet("2606:4700::1111", IPPROTO_TCP, 443),
                      ipv6_packet("2606:4700::1111", IPPROTO_UDP, 53)})
                  .empty());
  EXPECT_EQ(dropped(0, dp::DropReason::kExitNotApproved), 2u);
  EXPECT_EQ(hits(0, "grants[0]"), 0u);
}

TEST_F(ExitPolicy6Stage, AllowedPacketsContinueInOrderAndDeniedOnesAreDroppedAndCounted) {
  publish(policy::kDefaultPolicyText.data());
  const std::vector<size_t> passed =
      run(1, {ipv6_packet("fe80::1", IPPROTO_UDP, 53),                 // link-local
              ipv6_packet("2606:4700::1111", IPPROTO_TCP, 443),        // allowed
              ipv6_packet("2001:db8::5", IPPROTO_TCP, 443),            // documentation
              ipv6_packet("2606:4700::1111", 58, 0),                   // ICMPv6, allowed
              ipv6_packet("2a01:4f8::1", IPPROTO_UDP, 53),             // the gateway
              ipv6_packet("::1", IPPROTO_TCP, 22),                     // loopback
              ipv6_packet("2001:4860:4860::8888", IPPROTO_UDP, 53)});  // allowed
  EXPECT_EQ(passed, (std::vector<size_t>{1, 3, 6}));
  EXPECT_EQ(dropped(1, dp::DropReason::kPolicyDenied), 4u);
  EXPECT_EQ(hits(1, "grants[0]"), 3u);
  EXPECT_EQ(hits(1, "builtin:link-local"), 1u);
  EXPECT_EQ(hits(1, "builtin:documentation"), 1u);
  EXPECT_EQ(hits(1, "builtin:gateway-address"), 1u);
  EXPECT_EQ(hits(1, "builtin:loopback"), 1u);
  // Only worker 1's row counted.
  EXPECT_EQ(hits(0, "grants[0]"), 0u);
  // The tagged peer's class has no grant: the default deny, in both families' one list.
  EXPECT_TRUE(run(0, {ipv6_packet("2606:4700::1111", IPPROTO_TCP, 443)}, 4).empty());
  EXPECT_TRUE(run(0, {ipv6_packet("2606:4700::1111", IPPROTO_TCP, 443)}, 999).empty());
  EXPECT_EQ(hits(0, "default-deny"), 2u);
  EXPECT_EQ(dropped(0, dp::DropReason::kPolicyDenied), 2u);
}

TEST_F(ExitPolicy6Stage, PortIsReadBehindExtensionHeadersAndOnlyInTheFirstFragment) {
  publish(R"({"grants": [{"src": ["autogroup:member"], "dst": ["2606:4700::/32"],
                           "ip": ["tcp:443", "udp:53"]}]})");
  const std::vector<size_t> passed =
      run(0, {ipv6_packet("2606:4700::1", IPPROTO_TCP, 443, {kHopByHop, kDestOptions}),  // allowed
              ipv6_packet("2606:4700::1", IPPROTO_TCP, 80, {kDestOptions}),  // wrong port
              ipv6_packet("2606:4700::1", IPPROTO_UDP, 53, {kFragment}, 0),  // first fragment
              ipv6_packet("2606:4700::1", IPPROTO_UDP, 53, {kFragment}, 8),  // later: no port
              ipv6_packet("2606:4700::1", IPPROTO_UDP, 443),                 // udp 443 not granted
              ipv6_packet("2607::1", IPPROTO_TCP, 443)});                    // outside the prefix
  EXPECT_EQ(passed, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(hits(0, "grants[0]"), 2u);
  EXPECT_EQ(hits(0, "default-deny"), 4u);
}

TEST_F(ExitPolicy6Stage, NoPublishedPolicyDropsAsNotApproved) {
  EXPECT_TRUE(run(0, {ipv6_packet("2606:4700::1111", IPPROTO_TCP, 443)}).empty());
  EXPECT_EQ(dropped(0, dp::DropReason::kExitNotApproved), 1u);
}

}  // namespace
}  // namespace exitgw
