// EtcdClient and the wire parsers, against a real etcd on loopback (skipped without one).
#include "control/etcd/etcd_client.h"

#include <gtest/gtest.h>

#include <mutex>
#include <vector>

#include "control/etcd/etcd_wire.h"
#include "tests/support/etcd_process.h"

namespace exitgw::etcd {
namespace {

using testing::EtcdProcess;
using testing::wait_until;

#define REQUIRE_ETCD() \
  if (!testing::etcd_available()) GTEST_SKIP() << "no /usr/bin/etcd (apt-get install etcd-server)"

TEST(EtcdWire, Base64RoundTrip) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    auto d = base64_decode(base64_encode(s));
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(*d, s);
  }
  EXPECT_FALSE(base64_decode("a").has_value());
  EXPECT_FALSE(base64_decode("ab=c").has_value());
  EXPECT_FALSE(base64_decode("ab c").has_value());
  EXPECT_EQ(*base64_decode("YWI"), "ab");  // padding optional
}

TEST(EtcdWire, PrefixRangeEnd) {
  EXPECT_EQ(prefix_range_end("/a/"), "/a0");
  EXPECT_EQ(prefix_range_end(std::string("a\xff", 2)), "b");
  EXPECT_EQ(prefix_range_end(""), std::string(1, '\0'));
}

TEST(EtcdWire, WatchLines) {
  std::vector<WatchResponse> got;
  WatchLineParser p([&](WatchResponse&& r) {
    got.push_back(std::move(r));
    return true;
  });
  const std::string stream =
      R"({"result":{"header":{"revision":"3"},"created":true}})"
      "\n"
      R"({"result":{"header":{"revision":"5"},"events":[{"kv":{"key":"L3AvYQ==","value":"djE=","mod_revision":"4"}},{"type":"DELETE","kv":{"key":"L3AvYg==","mod_revision":"5"}}]}})"
      "\n"
      R"({"result":{"header":{},"canceled":true,"compact_revision":"3"}})"
      "\n";
  // Fed one byte at a time: lines may be split anywhere.
  for (char c : stream) ASSERT_TRUE(p.feed(std::string_view(&c, 1)).ok());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[0].created);
  EXPECT_EQ(got[0].revision, 3);
  ASSERT_EQ(got[1].events.size(), 2u);
  EXPECT_EQ(got[1].events[0].type, Event::Type::kPut);
  EXPECT_EQ(got[1].events[0].kv.key, "/p/a");
  EXPECT_EQ(got[1].events[0].kv.value, "v1");
  EXPECT_EQ(got[1].events[1].type, Event::Type::kDelete);
  EXPECT_EQ(got[1].events[1].kv.mod_revision, 5);
  EXPECT_TRUE(got[2].canceled);
  EXPECT_EQ(got[2].compact_revision, 3);
  EXPECT_FALSE(p.feed("{\"result\":{\"events\":[{\"kv\":{\"key\":\"!!\"}}]}}\n").ok());
  EXPECT_FALSE(p.feed("[1]\n").ok());
  auto err = parse_watch_response(R"({"error":{"grpc_code":14,"message":"unavailable"}})");
  ASSERT_TRUE(err.ok());
  EXPECT_TRUE(err->error);
  EXPECT_EQ(err->message, "unavailable");
}

TEST(EtcdEndpoints, Parse) {
  auto e = parse_endpoints("http://127.0.0.1:2379, http://etcd-2:2380/");
  ASSERT_TRUE(e.ok()) << e.error();
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[1].host, "etcd-2");
  EXPECT_EQ((*e)[1].port, 2380);
  EXPECT_FALSE(parse_endpoints("https://a:1").ok());
  EXPECT_FALSE(parse_endpoints("http://a").ok());
  EXPECT_FALSE(parse_endpoints("http://a:0").ok());
  EXPECT_FALSE(parse_endpoints("").ok());
}

TEST(EtcdClient, KvLeaseAndPaging) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  ClientOptions o = etcd.client_options();
  o.range_page = 2;
  EtcdClient c(o);
  int64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    auto r = c.put("/t/k" + std::to_string(i), "v" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_GT(*r, last);
    last = *r;
  }
  ASSERT_TRUE(c.put("/u/other", "x").ok());
  auto all = c.range_prefix("/t/");
  ASSERT_TRUE(all.ok()) << all.error();
  ASSERT_EQ(all->kvs.size(), 5u);  // read in three pages, at one revision
  EXPECT_EQ(all->revision, last + 1);
  EXPECT_EQ(all->kvs[4].value, "v4");
  // A range at an older revision sees the older state.
  auto old = c.range_prefix("/t/", last - 2);
  ASSERT_TRUE(old.ok()) << old.error();
  EXPECT_EQ(old->kvs.size(), 3u);
  auto d = c.del("/t/k0");
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->deleted, 1);
  auto future = c.range("/t/", "/t0", last + 100);
  ASSERT_FALSE(future.ok());
  EXPECT_NE(future.error().find("future revision"), std::string::npos) << future.error();

  auto lease = c.lease_grant(5);
  ASSERT_TRUE(lease.ok()) << lease.error();
  ASSERT_TRUE(c.put("/s/n", "alive", lease->id).ok());
  auto ka = c.lease_keepalive(lease->id);
  ASSERT_TRUE(ka.ok()) << ka.error();
  EXPECT_GT(*ka, 0);
  auto kv = c.range("/s/n", "");
  ASSERT_TRUE(kv.ok());
  ASSERT_EQ(kv->kvs.size(), 1u);
  EXPECT_EQ(kv->kvs[0].lease, lease->id);
  ASSERT_TRUE(c.lease_revoke(lease->id).ok());
  EXPECT_TRUE(c.range("/s/n", "")->kvs.empty());  // revoking deletes the lease's keys
  EXPECT_FALSE(c.lease_keepalive(lease->id).ok());
  EXPECT_FALSE(c.put("/s/n", "x", 12345).ok());  // unknown lease
}

struct Recorder {
  std::mutex mu;
  std::vector<int64_t> created;
  std::vector<Event> events;
  std::vector<WatchEnd> ends;
  WatchCallbacks callbacks() {
    WatchCallbacks cb;
    cb.created = [this](int64_t rev, const std::string&) {
      std::lock_guard l(mu);
      created.push_back(rev);
    };
    cb.batch = [this](WatchBatch&& b) {
      std::lock_guard l(mu);
      for (auto& e : b.events) events.push_back(std::move(e));
    };
    cb.ended = [this](const WatchEnd& e) {
      std::lock_guard l(mu);
      ends.push_back(e);
    };
    return cb;
  }
  size_t n_events() {
    std::lock_guard l(mu);
    return events.size();
  }
  size_t n_ends() {
    std::lock_guard l(mu);
    return ends.size();
  }
};

TEST(EtcdClient, WatchEventsCompactionAndDisconnect) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  EtcdClient c(etcd.client_options());
  const int64_t r1 = *c.put("/w/a", "1");
  const int64_t r2 = *c.put("/w/b", "2");
  ASSERT_TRUE(c.put("/x/outside", "3").ok());

  // From r1: both existing puts, then live ones, nothing outside the range.
  Recorder rec;
  auto w = c.watch(WatchRequest{"/w/", prefix_range_end("/w/"), r1, true}, rec.callbacks());
  ASSERT_TRUE(wait_until([&] { return rec.n_events() == 2; }));
  ASSERT_TRUE(c.del("/w/a").ok());
  ASSERT_TRUE(wait_until([&] { return rec.n_events() == 3; }));
  {
    std::lock_guard l(rec.mu);
    EXPECT_EQ(rec.events[0].kv.mod_revision, r1);
    EXPECT_EQ(rec.events[1].kv.mod_revision, r2);
    EXPECT_EQ(rec.events[2].type, Event::Type::kDelete);
    EXPECT_EQ(rec.events[2].kv.key, "/w/a");
  }
  // etcd killed: a disconnect, reported once.
  etcd.kill9();
  ASSERT_TRUE(wait_until([&] { return rec.n_ends() == 1; }));
  EXPECT_EQ(rec.ends[0].kind, WatchEnd::Kind::kDisconnected);
  w->stop();
  EXPECT_EQ(rec.n_ends(), 1u);

  // A compacted start revision: canceled with the compact revision.
  ASSERT_TRUE(etcd.start());
  const int64_t now = *c.put("/w/c", "4");
  ASSERT_TRUE(c.compact(now).ok());
  Recorder rec2;
  auto w2 = c.watch(WatchRequest{"/w/", prefix_range_end("/w/"), r1, true}, rec2.callbacks());
  ASSERT_TRUE(wait_until([&] { return rec2.n_ends() == 1; }));
  EXPECT_EQ(rec2.ends[0].kind, WatchEnd::Kind::kCompacted);
  EXPECT_EQ(rec2.ends[0].compact_revision, now);

  // stop() on a live, silent stream returns promptly with kStopped.
  Recorder rec3;
  auto w3 = c.watch(WatchRequest{"/w/", prefix_range_end("/w/"), 0, true}, rec3.callbacks());
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard l(rec3.mu);
    return !rec3.created.empty();
  }));
  w3->stop();
  ASSERT_EQ(rec3.n_ends(), 1u);
  EXPECT_EQ(rec3.ends[0].kind, WatchEnd::Kind::kStopped);
}

TEST(EtcdClient, WatchIdleTimeout) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  ClientOptions o = etcd.client_options();
  o.watch_idle_timeout = std::chrono::milliseconds(500);
  EtcdClient c(o);
  Recorder rec;
  auto w = c.watch(WatchRequest{"/w/", prefix_range_end("/w/"), 0, true}, rec.callbacks());
  ASSERT_TRUE(wait_until([&] { return rec.n_ends() == 1; }, std::chrono::seconds(5)));
  EXPECT_EQ(rec.ends[0].kind, WatchEnd::Kind::kIdle) << rec.ends[0].message;
}

TEST(EtcdClient, UnreachableEndpointFallsOver) {
  REQUIRE_ETCD();
  EtcdProcess etcd;
  ASSERT_TRUE(etcd.start());
  ClientOptions o = etcd.client_options();
  const uint16_t dead = testing::free_port();
  o.endpoints.insert(o.endpoints.begin(), Endpoint{"127.0.0.1", dead});
  EtcdClient c(o);
  auto r = c.put("/k", "v");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(c.current_endpoint(), etcd.endpoint());
}

}  // namespace
}  // namespace exitgw::etcd
