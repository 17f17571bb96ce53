// EtcdSource against a real etcd on loopback (skipped without one). A fake control thread
// drains the UpdateQueue and keeps the state the updates describe, so a test can compare it
// with etcd's content and count exactly which updates arrived, in which order.
#include "control/etcd/etcd_source.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "control/admin/peer_json.h"
#include "tests/support/etcd_process.h"
#include "control/policy/policy.h"

namespace exitgw::etcd {
namespace {

using testing::EtcdProcess;
using testing::wait_until;
using namespace std::chrono_literals;

#define REQUIRE_ETCD() \
  if (!testing::etcd_available()) GTEST_SKIP() << "no /usr/bin/etcd (apt-get install etcd-server)"

PeerConfig make_peer(int i, int variant = 0) {
  PeerConfig p;
  p.public_key.fill(0);
  p.public_key[0] = static_cast<uint8_t>(1 + i % 250);
  p.public_key[1] = static_cast<uint8_t>(i / 250);
  p.public_key[2] = 0x42;
  p.allowed_ips.push_back(Ipv4Prefix{(10u << 24) | (uint32_t(i) << 8), 24});
  p.persistent_keepalive = static_cast<uint16_t>(variant);
  return p;
}
std::string peer_value(const PeerConfig& p) {
  return admin::peer_to_request_json(p).dump();
}
std::string url(const PeerConfig& p) {
  return admin::key_to_url(p.public_key);
}

// Applies updates as control would (validated whole), records each as a line.
class FakeControl {
 public:
  FakeControl() : thread_([this] { loop(); }) {}
  ~FakeControl() {
    {
      std::lock_guard l(mu_);
      stop_ = true;
      paused_ = false;
    }
    cv_.notify_all();
    thread_.join();
  }
  UpdateQueue& queue() { return queue_; }
  void pause() {
    std::lock_guard l(mu_);
    paused_ = true;
  }
  void resume() {
    {
      std::lock_guard l(mu_);
      paused_ = false;
    }
    cv_.notify_all();
  }
  bool waiting_in_apply() {
    std::lock_guard l(mu_);
    return in_apply_paused_;
  }
  std::vector<std::string> log() {
    std::lock_guard l(mu_);
    return log_;
  }
  size_t log_size() {
    std::lock_guard l(mu_);
    return log_.size();
  }
  std::map<std::string, std::string> peers() {  // url key -> request JSON
    std::lock_guard l(mu_);
    std::map<std::string, std::string> out;
    for (const auto& [k, p] : peers_) out[admin::key_to_url(k)] = peer_value(p);
    return out;
  }
  std::optional<bool> approval() {
    std::lock_guard l(mu_);
    return approval_;
  }
  std::optional<std::string> policy() {
    std::lock_guard l(mu_);
    return policy_;
  }

 private:
  void loop() {
    std::unique_lock l(mu_);
    while (!stop_) {
      l.unlock();
      queue_.drain([this](const Update& u, const std::string& source) {
        EXPECT_EQ(source, "etcd");
        return apply(u);
      });
      l.lock();
      cv_.wait_for(l, 2ms, [this] { return stop_; });
    }
  }
  UpdateResult apply(const Update& u) {
    std::unique_lock l(mu_);
    in_apply_paused_ = paused_;
    cv_.wait(l, [this] { return !paused_; });
    in_apply_paused_ = false;
    UpdateResult r;
    std::map<wg::Key, PeerConfig> next = peers_;
    std::string line;
    if (const auto* up = std::get_if<PeerUpsert>(&u)) {
      next[up->peer.public_key] = up->peer;
      line = "upsert " + admin::key_to_url(up->peer.public_key) + " " +
             std::to_string(up->peer.persistent_keepalive);
    } else if (const auto* rm = std::get_if<PeerRemove>(&u)) {
      line = "remove " + admin::key_to_url(rm->public_key);
      if (next.erase(rm->public_key) == 0) {
        r.error = UpdateError::kNotFound;
        r.message = "no such peer";
      }
    } else if (const auto* set = std::get_if<PeerSet>(&u)) {
      next.clear();
      for (const auto& p : set->peers) next[p.public_key] = p;
      line = "set " + std::to_string(set->peers.size());
    } else if (const auto* ap = std::get_if<ApprovalSet>(&u)) {
      line = std::string("approval ") + (!ap->approved   ? "clear"
                                         : *ap->approved ? "approved"
                                                         : "unapproved");
      approval_ = ap->approved;
    } else if (const auto* pr = std::get_if<PolicyReplace>(&u)) {
      // The real parser, as control's ExitPolicy (which also compiles) would refuse it.
      line = pr->text ? "policy set" : "policy clear";
      if (pr->text) {
        auto parsed = policy::parse_policy(*pr->text, "etcd policy");
        if (!parsed) {
          r.error = UpdateError::kInvalid;
          r.message = parsed.error();
        }
      }
      if (r.ok()) policy_ = pr->text;
    }
    if (r.ok()) {
      std::vector<PeerConfig> all;
      for (const auto& [k, p] : next) all.push_back(p);
      if (Status s = validate_peers(all); !s) {
        r.error = UpdateError::kInvalid;
        r.message = s.error();
      }
    }
    if (r.ok()) peers_ = std::move(next);
    log_.push_back(line + (r.ok() ? "" : " REJECTED"));
    return r;
  }

  UpdateQueue queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool paused_ = false;
  bool in_apply_paused_ = false;
  std::vector<std::string> log_;
  std::map<wg::Key, PeerConfig> peers_;
  std::optional<bool> approval_;
  std::optional<std::string> policy_;
  std::thread thread_;
};

constexpr const char* kPrefix = "/exitgw/test-region/";

EtcdSourceOptions options_for(const EtcdProcess& etcd, std::string node = "node-a") {
  EtcdSourceOptions o;
  o.endpoints = etcd.endpoint();
  o.prefix = kPrefix;
  o.node = std::move(node);
  o.status_ttl = 0s;  // no status key unless a test asks
  o.backoff_initial = 100ms;
  o.backoff_max = 1000ms;
  o.connect_timeout = 300ms;
  o.request_timeout = 2000ms;
  o.range_page = 2;           // exercise paging
  o.coalesce_min_events = 0;  // one update per event, so tests can list them; see Coalesce*
  return o;
}

// etcd's peers under the prefix, as url key -> value.
std::map<std::string, std::string> etcd_peers(EtcdClient& c) {
  std::map<std::string, std::string> out;
  auto r = c.range_prefix(std::string(kPrefix) + "peers/");
  EXPECT_TRUE(r.ok());
  if (!r.ok()) return out;
  for (const auto& kv : r->kvs) out[kv.key.substr(std::string(kPrefix).size() + 6)] = kv.value;
  return out;
}

int64_t etcd_revision(EtcdClient& c) {
  auto r = c.range("probe", "");
  return r.ok() ? r->revision : -1;
}

TEST(EtcdSource, OptionsChecked) {
  FakeControl control;
  EtcdSourceOptions o;
  o.endpoints = "http://127.0.0.1:1";
  o.prefix = "/no-slash";
  o.node = "n";
  EXPECT_FALSE(EtcdSource(o, control.queue(), nullptr).start().ok());
  o.prefix = "/p/";
  o.node = "a/b";
  EXPECT_FALSE(EtcdSource(o, control.queue(), nullptr).start().ok());
  o.node = "n";
  o.endpoints = "127.0.0.1:2379";
  EXPECT_FALSE(EtcdSource(o, control.queue(), nullptr).start().ok());
}

TEST(EtcdSource, PeerFromEtcdRules) {
  const PeerConfig p = make_peer(1);
  EXPECT_TRUE(peer_from_etcd(url(p), peer_value(p)).ok());
  // The name must be the canonical base64url of the key the value names.
  EXPECT_FALSE(peer_from_etcd(url(make_peer(2)), peer_value(p)).ok());
  EXPECT_FALSE(peer_from_etcd(wg::key_to_base64(p.public_key), peer_value(p)).ok());
  EXPECT_FALSE(peer_from_etcd(url(p), "{").ok());
  EXPECT_FALSE(peer_from_etcd(url(p), R"({"allowed_ips":["10.0.0.0/4"]})").ok());
  EXPECT_TRUE(peer_from_etcd(url(p), R"({"allowed_ips":["10.9.0.0/16"]})").ok());
  EXPECT_EQ(*approval_from_etcd(" approved\n"), true);
  EXPECT_EQ(*approval_from_etcd("unapproved"), false);
  EXPECT_FALSE(approval_from_etcd("yes").ok());
}

TEST(EtcdSource, PeerFromEtcdTakesIPv6AllowedIpsUnderTheSameRules) {
  const PeerConfig p = make_peer(1);
  auto both = peer_from_etcd(url(p), R"({"allowed_ips":["10.9.0.0/16","FD7A:115C:A1E0::1"]})");
  ASSERT_TRUE(both.ok()) << both.error();
  ASSERT_EQ(both->allowed_ips6.size(), 1u);
  EXPECT_EQ(format_allowed_ip(both->allowed_ips6[0]), "fd7a:115c:a1e0::1/128");
  EXPECT_TRUE(peer_from_etcd(url(p), R"({"allowed_ips":["fd7a:115c:a1e0::1/128"]})").ok());
  auto bad = peer_from_etcd(url(p), R"({"allowed_ips":["fe80::/64"]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("link-local"), std::string::npos) << bad.error();
}

TEST(EtcdSource, InitialLoadSkipsAnEntryWhoseIPv6PrefixAnotherEntryHolds) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  PeerConfig first = make_peer(1), second = make_peer(2);
  first.allowed_ips6.push_back(Ipv6Prefix{{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0}, 48});
  ASSERT_TRUE(c.put(peers + url(first), peer_value(first)).ok());
  // The same prefix in another spelling, beside a prefix of its own.
  ASSERT_TRUE(
      c.put(peers + url(second), R"({"allowed_ips":["10.99.0.0/16","FD7A:115C:A1E0:0::/48"]})")
          .ok());
  FakeControl control;
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return source.health().loaded && control.log_size() >= 1; }));
  EXPECT_EQ(control.log().front(), "set 1");
  const auto running = control.peers();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running.begin()->first, url(first));
  EXPECT_NE(running.begin()->second.find("fd7a:115c:a1e0::/48"), std::string::npos)
      << running.begin()->second;
  const EtcdHealth h = source.health();
  ASSERT_EQ(h.bad_entries.size(), 1u);
  EXPECT_NE(h.bad_entries[0].reason.find("AllowedIPs fd7a:115c:a1e0::/48 already belongs to"),
            std::string::npos)
      << h.bad_entries[0].reason;
}

TEST(EtcdSource, InitialLoadIsOnePeerSetAndSkipsBadEntries) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
  // Bad: JSON the rules refuse; a name that is no key; an AllowedIPs prefix peer 0 already has.
  ASSERT_TRUE(c.put(peers + url(make_peer(10)), R"({"allowed_ips":["10.1.0.0/4"]})").ok());
  ASSERT_TRUE(c.put(peers + "not-a-key", peer_value(make_peer(11))).ok());
  PeerConfig dup = make_peer(12);
  dup.allowed_ips = make_peer(0).allowed_ips;
  ASSERT_TRUE(c.put(peers + url(dup), peer_value(dup)).ok());
  ASSERT_TRUE(c.put(std::string(kPrefix) + "nodes/node-a/approval", "approved").ok());
  ASSERT_TRUE(c.put(std::string(kPrefix) + "nodes/node-b/approval", "unapproved").ok());

  FakeControl control;
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() >= 2; }));
  EXPECT_EQ(control.log(), (std::vector<std::string>{"set 5", "approval approved"}));
  ASSERT_TRUE(wait_until([&] {
    const EtcdHealth x = source.health();
    return x.loaded && x.bad_entries_total == 3u;
  }));
  EtcdHealth h = source.health();
  EXPECT_TRUE(h.loaded);
  EXPECT_TRUE(h.connected);
  EXPECT_EQ(h.revision, etcd_revision(c));
  EXPECT_EQ(h.bad_entries_total, 3u);
  ASSERT_EQ(h.bad_entries.size(), 3u);
  std::map<std::string, std::string> bad;
  for (const auto& b : h.bad_entries) bad[b.key] = b.reason;
  EXPECT_NE(bad[peers + url(make_peer(10))].find("AllowedIPs"), std::string::npos);
  EXPECT_NE(bad[peers + "not-a-key"].find("key name"), std::string::npos);
  EXPECT_NE(bad[peers + url(dup)].find("already belongs to"), std::string::npos);
  EXPECT_EQ(control.peers().size(), 5u);

  // Fixing a bad entry in etcd clears it and applies it.
  ASSERT_TRUE(c.put(peers + url(make_peer(10)), peer_value(make_peer(10))).ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 3; }));
  EXPECT_EQ(control.log().back(), "upsert " + url(make_peer(10)) + " 0");
  // The source updates its health after control answers: wait for it, don't race it.
  EXPECT_TRUE(wait_until([&] { return source.health().bad_entries_total == 2u; }));
}

TEST(EtcdSource, WatchAppliesChangesInOrder) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  const std::string approval = std::string(kPrefix) + "nodes/node-a/approval";
  FakeControl control;
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 1 && source.health().connected; }));
  const PeerConfig a = make_peer(1), b = make_peer(2);
  ASSERT_TRUE(c.put(peers + url(a), peer_value(a)).ok());
  ASSERT_TRUE(c.put(peers + url(b), peer_value(b)).ok());
  ASSERT_TRUE(c.put(peers + url(a), peer_value(make_peer(1, 25))).ok());
  ASSERT_TRUE(c.del(peers + url(b)).ok());
  ASSERT_TRUE(c.put(approval, "unapproved").ok());
  ASSERT_TRUE(c.put(std::string(kPrefix) + "nodes/node-b/approval", "approved").ok());  // not ours
  ASSERT_TRUE(c.put(std::string(kPrefix) + "status/node-b", "{}").ok());  // outside the watch
  ASSERT_TRUE(c.put(peers + url(b), "garbage").ok());                     // refused, reported
  ASSERT_TRUE(c.del(approval).ok());
  ASSERT_TRUE(c.del(peers + url(b)).ok());  // the refused key: nothing to remove
  ASSERT_TRUE(c.put(approval, "approved").ok());
  const int64_t last = etcd_revision(c);
  ASSERT_TRUE(wait_until([&] { return source.health().revision == last; }));
  EXPECT_EQ(control.log(), (std::vector<std::string>{
                               "set 0",
                               "upsert " + url(a) + " 0",
                               "upsert " + url(b) + " 0",
                               "upsert " + url(a) + " 25",
                               "remove " + url(b),
                               "approval unapproved",
                               "approval clear",
                               "approval approved",
                           }));
  const EtcdHealth h = source.health();
  EXPECT_EQ(h.updates_applied, 8u);
  EXPECT_EQ(h.updates_rejected, 1u);
  EXPECT_EQ(h.bad_entries_total, 0u);  // the refused key was deleted since
  EXPECT_EQ(h.stale_events_skipped, 0u);
  EXPECT_EQ(control.approval(), std::optional<bool>(true));
  EXPECT_EQ(control.peers(), etcd_peers(c));
}

TEST(EtcdSource, PolicyKeyIsLoadedWatchedAndClearedAndABadValueKeepsTheRunningPolicy) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string key = std::string(kPrefix) + "policy";
  const std::string first = R"({
  // HTTPS only through the exit
  "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["tcp:443"]}],
})";
  const std::string second = R"({"grants": []})";
  ASSERT_TRUE(c.put(key, first).ok());
  // A key just past the policy key (inside no range the layout defines) changes nothing.
  ASSERT_TRUE(c.put(key + "/extra", second).ok());

  FakeControl control;
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() >= 2 && source.health().loaded; }));
  EXPECT_EQ(control.log(), (std::vector<std::string>{"set 0", "policy set"}));
  EXPECT_EQ(control.policy(), first);

  // A value the parser refuses: reported by key with the line and column; the policy stays.
  ASSERT_TRUE(c.put(key, "{\n  \"grants\": [\n    {\"ip\": 7}\n  ]\n}").ok());
  ASSERT_TRUE(wait_until([&] { return source.health().bad_entries_total == 1u; }));
  EtcdHealth h = source.health();
  ASSERT_EQ(h.bad_entries.size(), 1u);
  EXPECT_EQ(h.bad_entries[0].key, key);
  EXPECT_NE(h.bad_entries[0].reason.find("update rejected: etcd policy:3:"), std::string::npos)
      << h.bad_entries[0].reason;
  EXPECT_EQ(control.policy(), first);

  // A good value replaces it and clears the report; a delete clears the override.
  ASSERT_TRUE(c.put(key, second).ok());
  ASSERT_TRUE(wait_until([&] { return control.policy() == second; }));
  EXPECT_TRUE(wait_until([&] { return source.health().bad_entries_total == 0u; }));
  ASSERT_TRUE(c.put(key + "/extra", first).ok());
  ASSERT_TRUE(c.del(key).ok());
  const int64_t last = etcd_revision(c);
  ASSERT_TRUE(wait_until([&] { return source.health().revision == last; }));
  EXPECT_EQ(control.log(), (std::vector<std::string>{"set 0", "policy set", "policy set REJECTED",
                                                     "policy set", "policy clear"}));
  EXPECT_EQ(control.policy(), std::nullopt);

  // Only a bad value ever: refused, and its deletion clears nothing (etcd set no policy).
  ASSERT_TRUE(c.put(key, "not json").ok());
  ASSERT_TRUE(wait_until([&] { return source.health().bad_entries_total == 1u; }));
  ASSERT_TRUE(c.del(key).ok());
  const int64_t end = etcd_revision(c);
  ASSERT_TRUE(wait_until([&] { return source.health().revision == end; }));
  EXPECT_EQ(control.log().size(), 6u);
  EXPECT_EQ(control.log().back(), "policy set REJECTED");
  EXPECT_EQ(source.health().bad_entries_total, 0u);
}

TEST(EtcdSource, EtcdRestartLosesNothingAndRepeatsNothing) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  FakeControl control;
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return source.health().connected && control.log_size() == 1; }));
  std::vector<std::string> expected = {"set 0"};
  // Written just before the kill: committed, maybe not yet streamed.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
    expected.push_back("upsert " + url(make_peer(i)) + " 0");
  }
  etcd.kill9();
  ASSERT_TRUE(wait_until([&] { return !source.health().connected; }));
  ASSERT_TRUE(etcd.start());
  // Deterministically behind: control holds the source on the next update while etcd dies
  // and comes back and more is written; the dead stream never carried that, so the source
  // must fetch it by resuming at the right revision.
  ASSERT_TRUE(wait_until([&] { return source.health().connected; }));
  control.pause();
  ASSERT_TRUE(c.put(peers + url(make_peer(10)), peer_value(make_peer(10))).ok());
  expected.push_back("upsert " + url(make_peer(10)) + " 0");
  ASSERT_TRUE(wait_until([&] { return control.waiting_in_apply(); }));
  etcd.kill9();
  ASSERT_TRUE(etcd.start());
  for (int i = 11; i < 20; ++i) {
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
    expected.push_back("upsert " + url(make_peer(i)) + " 0");
  }
  for (int i = 0; i < 20; i += 4) {
    ASSERT_TRUE(c.del(peers + url(make_peer(i))).ok());
    expected.push_back("remove " + url(make_peer(i)));
  }
  control.resume();
  // And once more, mid-stream, once the source has caught up.
  const int64_t mid = etcd_revision(c);
  ASSERT_TRUE(wait_until([&] { return source.health().revision == mid; }, 30s));
  etcd.kill9();
  ASSERT_TRUE(etcd.start());
  for (int i = 1; i < 20; i += 4) {
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i, 7))).ok());
    expected.push_back("upsert " + url(make_peer(i)) + " 7");
  }
  const int64_t last = etcd_revision(c);
  ASSERT_TRUE(wait_until([&] { return source.health().revision == last; }, 30s));
  // One update per etcd revision after the load (revision 1): none missed, none twice.
  EXPECT_EQ(control.log(), expected);
  EXPECT_EQ(static_cast<int64_t>(control.log_size()) - 1, last - 1);
  const EtcdHealth h = source.health();
  EXPECT_GE(h.reconnects, 3u);
  EXPECT_EQ(h.loads, 1u);
  EXPECT_EQ(h.stale_events_skipped, 0u);
  EXPECT_TRUE(h.connected);
  EXPECT_FALSE(h.last_error.empty());
  EXPECT_EQ(control.peers(), etcd_peers(c));
}

TEST(EtcdSource, CompactionBehindTheWatcherReloads) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
  FakeControl control;
  control.pause();  // the source reads at R, then waits for control to take its PeerSet
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.waiting_in_apply(); }));
  // Meanwhile etcd moves on and compacts away what the watch would start from.
  ASSERT_TRUE(c.del(peers + url(make_peer(0))).ok());
  for (int i = 3; i < 6; ++i)
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
  const int64_t now = etcd_revision(c);
  ASSERT_TRUE(c.compact(now).ok());
  control.resume();
  ASSERT_TRUE(wait_until([&] { return source.health().loads == 2 && control.log_size() == 2; }));
  EXPECT_EQ(control.log(), (std::vector<std::string>{"set 3", "set 5"}));
  EXPECT_EQ(source.health().compactions, 1u);
  EXPECT_EQ(source.health().revision, now);
  EXPECT_EQ(control.peers(), etcd_peers(c));
  // And the watch carries on from there.
  ASSERT_TRUE(c.del(peers + url(make_peer(5))).ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 3; }));
  EXPECT_EQ(control.log().back(), "remove " + url(make_peer(5)));
}

TEST(EtcdSource, StatusKeyLivesOnItsLease) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  FakeControl control;
  EtcdSourceOptions o = options_for(etcd);
  o.status_ttl = 3s;
  o.status_interval = 300ms;
  o.revoke_status_on_stop = false;  // as after a crash: the key must expire by itself
  std::atomic<uint64_t> generation{7};
  auto source = std::make_unique<EtcdSource>(o, control.queue(), [&] {
    return NodeStatus{generation.load(), 3, 0.25, true};
  });
  ASSERT_TRUE(source->start().ok());
  const std::string key = std::string(kPrefix) + "status/node-a";
  ASSERT_TRUE(wait_until([&] { return !c.range(key, "")->kvs.empty(); }));
  auto kv = c.range(key, "")->kvs.at(0);
  EXPECT_NE(kv.lease, 0);
  EXPECT_EQ(kv.lease, source->health().status_lease);
  auto j = nlohmann::json::parse(kv.value);
  EXPECT_EQ(j["generation"], 7);
  EXPECT_EQ(j["peers"], 3);
  EXPECT_EQ(j["load"], 0.25);
  EXPECT_EQ(j["healthy"], true);
  EXPECT_GT(j["unix_ms"].get<int64_t>(), 1600000000000);
  // Updated in place.
  generation = 8;
  ASSERT_TRUE(wait_until([&] {
    auto r = c.range(key, "");
    return !r->kvs.empty() && nlohmann::json::parse(r->kvs[0].value)["generation"] == 8;
  }));
  // The lease lost (revoked behind its back): a new one is granted and the key comes back.
  const int64_t old_lease = kv.lease;
  ASSERT_TRUE(c.lease_revoke(old_lease).ok());
  ASSERT_TRUE(wait_until([&] {
    auto r = c.range(key, "");
    return !r->kvs.empty() && r->kvs[0].lease != old_lease;
  }));
  // etcd restarted: still there afterwards.
  etcd.kill9();
  ASSERT_TRUE(etcd.start());
  std::this_thread::sleep_for(4s);  // longer than the TTL
  EXPECT_FALSE(c.range(key, "")->kvs.empty());
  // Stopped without revoking: present now, gone once the TTL runs out.
  source->stop();
  EXPECT_FALSE(c.range(key, "")->kvs.empty());
  ASSERT_TRUE(wait_until([&] { return c.range(key, "")->kvs.empty(); }, 10s));
  source.reset();

  // A clean stop revokes at once.
  o.revoke_status_on_stop = true;
  EtcdSource clean(o, control.queue(), [] { return NodeStatus{}; });
  ASSERT_TRUE(clean.start().ok());
  ASSERT_TRUE(wait_until([&] { return !c.range(key, "")->kvs.empty(); }));
  clean.stop();
  EXPECT_TRUE(c.range(key, "")->kvs.empty());
}

TEST(EtcdSource, TwoNodesConvergeOnOnePeerSet) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  FakeControl control_a, control_b;
  EtcdSource a(options_for(etcd, "node-a"), control_a.queue(), nullptr);
  ASSERT_TRUE(a.start().ok());
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
    if (i % 3 == 0) {
      ASSERT_TRUE(c.del(peers + url(make_peer(i / 2))).ok());
    }
  }
  // The second node joins mid-way: its load plus its watch reach the same set.
  EtcdSource b(options_for(etcd, "node-b"), control_b.queue(), nullptr);
  ASSERT_TRUE(b.start().ok());
  for (int i = 30; i < 60; ++i) {
    ASSERT_TRUE(c.put(peers + url(make_peer(i % 40)), peer_value(make_peer(i % 40, i))).ok());
    if (i % 5 == 0) {
      ASSERT_TRUE(c.del(peers + url(make_peer(i % 7))).ok());
    }
  }
  const int64_t last = etcd_revision(c);
  ASSERT_TRUE(
      wait_until([&] { return a.health().revision == last && b.health().revision == last; }, 30s));
  const auto want = etcd_peers(c);
  EXPECT_EQ(control_a.peers(), want);
  EXPECT_EQ(control_b.peers(), want);
  EXPECT_FALSE(want.empty());
}

TEST(EtcdSource, BadValuesDuringTheWatchAreRefusedByKeyAndChangeNothing) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  FakeControl control;
  EtcdSource source(options_for(etcd), control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 1 && source.health().connected; }));
  const PeerConfig a = make_peer(1), b = make_peer(2);
  ASSERT_TRUE(c.put(peers + url(a), peer_value(a)).ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 2; }));
  const auto before = control.peers();
  // Each of these is refused with its key and reason; the running peer keeps its settings.
  nlohmann::json unknown = nlohmann::json::parse(peer_value(make_peer(1, 5)));
  unknown["nickname"] = "x";
  ASSERT_TRUE(c.put(peers + url(a), unknown.dump()).ok());  // unknown field
  ASSERT_TRUE(c.put(peers + url(a), R"({"allowed_ips":[")" + std::string(70000, '1') + R"("]})")
                  .ok());                                  // oversized value
  ASSERT_TRUE(c.put(peers + "AAAA", peer_value(b)).ok());  // a name that is no key
  ASSERT_TRUE(c.put(peers + url(b), peer_value(a)).ok());  // the value names another key
  PeerConfig thief = b;
  thief.allowed_ips = a.allowed_ips;
  ASSERT_TRUE(
      c.put(peers + url(thief), peer_value(thief)).ok());  // a's allowed IPs: control says no
  const int64_t last = etcd_revision(c);
  ASSERT_TRUE(wait_until([&] { return source.health().revision == last; }));
  EXPECT_EQ(control.peers(), before);
  // Only the overlap reached control (the others are refused before it), and was refused there.
  EXPECT_EQ(control.log().size(), 3u);
  EXPECT_EQ(control.log().back(), "upsert " + url(thief) + " 0 REJECTED");
  const EtcdHealth h = source.health();
  EXPECT_EQ(h.updates_rejected, 5u);
  std::map<std::string, std::string> bad;
  for (const auto& e : h.bad_entries) bad[e.key] = e.reason;
  ASSERT_EQ(bad.size(), 3u);  // a's last refusal, the nameless key, b's last refusal
  EXPECT_NE(bad[peers + url(a)].find("longer than 65536 bytes"), std::string::npos)
      << bad[peers + url(a)];
  EXPECT_NE(bad[peers + url(a)].find("keeps its last good settings"), std::string::npos);
  EXPECT_NE(bad[peers + "AAAA"].find("key name"), std::string::npos) << bad[peers + "AAAA"];
  EXPECT_NE(bad[peers + url(b)].find("is allowed for both"), std::string::npos)
      << bad[peers + url(b)];
  // The unknown field was refused by name (its log line); a good value clears a's entry.
  ASSERT_TRUE(c.put(peers + url(a), peer_value(make_peer(1, 5))).ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 4; }));
  EXPECT_TRUE(wait_until([&] { return source.health().bad_entries_total == 2u; }));
}

TEST(EtcdSource, UnknownFieldInAPeerValueIsRefusedByName) {
  const PeerConfig p = make_peer(1);
  nlohmann::json j = nlohmann::json::parse(peer_value(p));
  j["nickname"] = "x";
  auto r = peer_from_etcd(url(p), j.dump());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("unknown field \"nickname\""), std::string::npos) << r.error();
}

TEST(EtcdSource, BacklogOfPeerEventsAppliesAsOneSetInOrderWithApprovals) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  const std::string approval = std::string(kPrefix) + "nodes/node-a/approval";
  FakeControl control;
  EtcdSourceOptions o = options_for(etcd);
  o.coalesce_min_events = 4;
  EtcdSource source(o, control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 1 && source.health().connected; }));
  const int64_t loaded_at = source.health().revision;
  // Control is busy with peer 0 while a backlog piles up behind it.
  control.pause();
  ASSERT_TRUE(c.put(peers + url(make_peer(0)), peer_value(make_peer(0))).ok());
  ASSERT_TRUE(wait_until([&] { return control.waiting_in_apply(); }));
  for (int i = 1; i <= 20; ++i)
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i))).ok());
  ASSERT_TRUE(c.del(peers + url(make_peer(1))).ok());
  ASSERT_TRUE(c.del(peers + url(make_peer(2))).ok());
  ASSERT_TRUE(c.put(peers + url(make_peer(3)), "garbage").ok());  // peer 3 keeps its settings
  ASSERT_TRUE(c.put(approval, "unapproved").ok());                // splits the run in two
  for (int i = 21; i <= 25; ++i)
    ASSERT_TRUE(c.put(peers + url(make_peer(i)), peer_value(make_peer(i, 9))).ok());
  const int64_t last = etcd_revision(c);
  std::this_thread::sleep_for(500ms);  // let the watch stream deliver the backlog
  control.resume();
  ASSERT_TRUE(wait_until([&] { return source.health().revision == last; }, 20s));
  // Where the stream split the backlog depends on timing; what is fixed is that the peer
  // events before the approval applied in order before it, those after it after it, and runs
  // of 4 or more were each one PeerSet.
  const auto log = control.log();
  ASSERT_GE(log.size(), 4u);
  EXPECT_EQ(log[0], "set 0");
  EXPECT_EQ(log[1], "upsert " + url(make_peer(0)) + " 0");
  const auto approval_at = std::find(log.begin(), log.end(), "approval unapproved");
  ASSERT_NE(approval_at, log.end());
  EXPECT_EQ(*std::prev(approval_at), "set 19");  // 0, 3..20: peer 3 as first written
  EXPECT_EQ(log.back(), "set 24");
  const EtcdHealth h = source.health();
  EXPECT_GE(h.coalesced_sets, 2u);
  EXPECT_EQ(h.events, static_cast<uint64_t>(last - loaded_at));  // every event once
  EXPECT_EQ(h.stale_events_skipped, 0u);
  EXPECT_EQ(h.bad_entries_total, 1u);
  EXPECT_EQ(control.approval(), std::optional<bool>(false));
  auto want = etcd_peers(c);
  want[url(make_peer(3))] = peer_value(make_peer(3));  // the refused value did not apply
  EXPECT_EQ(control.peers(), want);
}

TEST(EtcdSource, CoalescedRunRefusedByControlIsAppliedEventByEvent) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const std::string peers = std::string(kPrefix) + "peers/";
  FakeControl control;
  EtcdSourceOptions o = options_for(etcd);
  o.coalesce_min_events = 2;
  EtcdSource source(o, control.queue(), nullptr);
  ASSERT_TRUE(source.start().ok());
  ASSERT_TRUE(wait_until([&] { return control.log_size() == 1 && source.health().connected; }));
  control.pause();
  ASSERT_TRUE(c.put(peers + url(make_peer(0)), peer_value(make_peer(0))).ok());
  ASSERT_TRUE(wait_until([&] { return control.waiting_in_apply(); }));
  // Peer 2 claims peer 1's allowed IPs: control refuses any set that holds both.
  PeerConfig thief = make_peer(2);
  thief.allowed_ips = make_peer(1).allowed_ips;
  ASSERT_TRUE(c.put(peers + url(make_peer(1)), peer_value(make_peer(1))).ok());
  ASSERT_TRUE(c.put(peers + url(thief), peer_value(thief)).ok());
  ASSERT_TRUE(c.put(peers + url(make_peer(3)), peer_value(make_peer(3))).ok());
  const int64_t last = etcd_revision(c);
  std::this_thread::sleep_for(500ms);
  control.resume();
  ASSERT_TRUE(wait_until([&] { return source.health().revision == last; }, 20s));
  EXPECT_EQ(control.log(), (std::vector<std::string>{
                               "set 0",
                               "upsert " + url(make_peer(0)) + " 0",
                               "set 4 REJECTED",
                               "upsert " + url(make_peer(1)) + " 0",
                               "upsert " + url(thief) + " 0 REJECTED",
                               "upsert " + url(make_peer(3)) + " 0",
                           }));
  const EtcdHealth h = source.health();
  EXPECT_EQ(h.coalesced_sets, 0u);
  ASSERT_EQ(h.bad_entries.size(), 1u);
  EXPECT_EQ(h.bad_entries[0].key, peers + url(thief));
  auto want = etcd_peers(c);
  want.erase(url(thief));
  EXPECT_EQ(control.peers(), want);
}

}  // namespace
}  // namespace exitgw::etcd
