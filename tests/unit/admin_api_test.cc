// The admin API over real HTTP on loopback, with a test thread playing the control loop: it
// drains the real UpdateQueue into an in-memory model and publishes AdminViews. Then exitgwctl's
// commands, output and exit codes against the same server.
#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/admin/admin_server.h"
#include "control/admin/peer_json.h"
#include "control/policy/policy.h"
#include "tools/exitgwctl_lib.h"

namespace exitgw::admin {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kKey1 = "xiDQIB2Qx4UzFfqxCiTODnTd2LowLtgAESpFjJNxyQs=";
constexpr std::string_view kKey2 = "4Pa/u/49Pt2PkHMK3mfrbOjMdSSZ0xeO4GW3ECoPoUk=";
constexpr std::string_view kFileKey = "VcAal5QcrW0D1dxHu+oDfuKxh568yEvlvi0his8x9x0=";
constexpr std::string_view kPsk = "xnbDEo95x+Rv7Lvr90X76ISQi0N6DegLBiAH4SuFkR4=";
constexpr std::string_view kToken = "0123456789abcdef-test-token";
constexpr std::string_view kFilePolicy = R"({"grants": []})";
// HuJSON with a comment and trailing commas, as an operator's policy file has them.
constexpr std::string_view kHttpsOnly = R"({
  // Only HTTPS through the exit.
  "grants": [{"src": ["autogroup:member"], "dst": ["autogroup:internet"], "ip": ["tcp:443"]},],
})";
// Line 3, column 12: "ip" must be a list.
constexpr std::string_view kBadPolicy =
    "{\n  \"grants\": [\n    {\"ip\": 7, \"src\": [\"*\"], \"dst\": [\"*\"]},\n  ],\n}\n";

wg::Key key(std::string_view base64) {
  return *wg::key_from_base64(base64);
}

// The control thread's side, as simply as possible: peers by key with their source, the three
// switches, a generation. Applies each update whole or not at all, like the real one must.
class ModelControl {
 public:
  explicit ModelControl(UpdateQueue& queue) : queue_(queue) {
    PeerConfig file_peer;
    file_peer.public_key = key(kFileKey);
    file_peer.allowed_ips = {{(100u << 24) | (64u << 16) | 99u, 32}};
    peers_[file_peer.public_key] = {file_peer, "file"};
    publish();
  }
  ~ModelControl() { pause(); }

  void run() {
    running_ = true;
    thread_ = std::thread([this] {
      while (running_) {
        queue_.drain(
            [this](const Update& u, const std::string& source) { return apply(u, source); });
        std::this_thread::sleep_for(1ms);
      }
    });
  }
  // The control thread stops answering (the queue keeps filling).
  void pause() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }
  std::shared_ptr<const AdminView> view() const {
    std::lock_guard lock(mu_);
    return view_;
  }
  std::vector<std::string> sources_seen() const {
    std::lock_guard lock(mu_);
    return sources_seen_;
  }

 private:
  struct Entry {
    PeerConfig peer;
    std::string source;
  };

  UpdateResult apply(const Update& update, const std::string& source) {
    {
      std::lock_guard lock(mu_);
      sources_seen_.push_back(source);
    }
    UpdateResult r = std::visit([&](const auto& u) { return apply_one(u, source); }, update);
    if (r.ok()) {
      ++generation_;
      last_source_ = source;
      publish();
    }
    r.generation = generation_;
    return r;
  }
  UpdateResult apply_one(const PeerUpsert& u, const std::string& source) {
    const auto it = peers_.find(u.peer.public_key);
    if (it != peers_.end() && it->second.source != source)
      return {UpdateError::kConflict, "the peer belongs to the " + it->second.source, 0};
    std::vector<PeerConfig> candidate;
    for (const auto& [k, e] : peers_)
      if (k != u.peer.public_key) candidate.push_back(e.peer);
    candidate.push_back(u.peer);
    Status valid = validate_peers(candidate);
    if (!valid) return {UpdateError::kConflict, valid.error(), 0};
    peers_[u.peer.public_key] = {u.peer, source};
    return {};
  }
  UpdateResult apply_one(const PeerRemove& u, const std::string& source) {
    const auto it = peers_.find(u.public_key);
    if (it == peers_.end()) return {UpdateError::kNotFound, "no such peer", 0};
    if (it->second.source != source)
      return {UpdateError::kConflict, "the peer belongs to the " + it->second.source, 0};
    peers_.erase(it);
    return {};
  }
  // A whole set (PUT /v1/peers, etcd's load): checked whole as control does, then swapped.
  UpdateResult apply_one(const PeerSet& u, const std::string& source) {
    std::vector<PeerConfig> candidate = u.peers;
    for (const auto& [k, e] : peers_) {
      if (e.source == source) continue;
      for (const PeerConfig& p : u.peers)
        if (p.public_key == k)
          return {UpdateError::kConflict, "the peer belongs to the " + e.source, 0};
      candidate.push_back(e.peer);
    }
    if (Status valid = validate_peers(candidate); !valid)
      return {UpdateError::kConflict, valid.error(), 0};
    std::erase_if(peers_, [&](const auto& kv) { return kv.second.source == source; });
    for (const PeerConfig& p : u.peers) peers_[p.public_key] = {p, source};
    return {};
  }
  UpdateResult apply_one(const ApprovalSet& u, const std::string&) {
    approval_ = u.approved;
    return {};
  }
  // Validated by the real policy parser, as control's ExitPolicy does (it also compiles).
  UpdateResult apply_one(const PolicyReplace& u, const std::string& source) {
    if (!u.text) {
      policy_source_ = "file";
      policy_text_ = kFilePolicy;
      return {};
    }
    auto parsed = policy::parse_policy(*u.text, source + " policy");
    if (!parsed) return {UpdateError::kInvalid, parsed.error(), 0};
    policy_source_ = source;
    policy_text_ = *u.text;
    return {};
  }
  UpdateResult apply_one(const DestinationLogging& u, const std::string&) {
    logging_ = u.on;
    return {};
  }
  UpdateResult apply_one(const Drain& u, const std::string&) {
    drain_ = u.on;
    return {};
  }
  // Parsed and checked by the server already (policy::tailnet_filter_from_json).
  UpdateResult apply_one(const FilterReplace& u, const std::string&) {
    filter_ = u.filter ? std::make_shared<const policy::TailnetFilter>(*u.filter) : nullptr;
    return {};
  }
  UpdateResult apply_one(const TailnetReport& u, const std::string&) {
    tailnet_ = u.health;
    return {};
  }

  void publish() {
    auto v = std::make_shared<AdminView>();
    v->generation = generation_;
    v->last_update_source = last_source_;
    v->last_update_unix_ms = generation_ == 0 ? 0 : 1'700'000'000'000;
    v->approval_override = approval_;
    v->approved = approval_.value_or(false);
    v->approval_reason = approval_ ? "set through the admin API" : "no approval";
    v->destination_logging = logging_;
    v->draining = drain_;
    v->policy_source = filter_ ? "tailnet" : policy_source_;
    v->tailnet_filter = filter_;
    v->tailnet = tailnet_;
    v->policy_text = std::make_shared<const std::string>(policy_text_);
    v->policy_rules = policy_text_.size() % 7 + 1;
    v->policy_classes = 2;
    v->sources["file:peers"] = {true, "", 1'700'000'000'000};
    v->sources["etcd"] = {false, "connection refused", 0};
    for (const auto& [k, e] : peers_) {
      AdminView::Peer p;
      p.public_key = k;
      p.source = e.source;
      p.user = e.peer.user;
      p.tags = e.peer.tags;
      p.allowed_ips = e.peer.allowed_ips;
      p.has_endpoint = e.peer.has_endpoint;
      p.endpoint_ip = e.peer.endpoint_ip;
      p.endpoint_port = e.peer.endpoint_port;
      p.persistent_keepalive = e.peer.persistent_keepalive;
      p.has_preshared_key = e.peer.has_preshared_key;
      p.rx_bytes = 1536;
      v->peers.push_back(std::move(p));
    }
    std::lock_guard lock(mu_);
    view_ = std::move(v);
  }

  UpdateQueue& queue_;
  std::atomic<bool> running_{false};
  std::thread thread_;
  std::map<wg::Key, Entry> peers_;
  std::optional<bool> approval_;
  bool logging_ = false, drain_ = false;
  std::string policy_source_ = "file";
  std::string policy_text_ = std::string(kFilePolicy);
  std::shared_ptr<const policy::TailnetFilter> filter_;
  TailnetHealth tailnet_;
  uint64_t generation_ = 0;
  std::string last_source_;
  mutable std::mutex mu_;
  std::shared_ptr<const AdminView> view_;
  std::vector<std::string> sources_seen_;
};

// A private temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "admin_test.XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, std::string_view content, mode_t mode) const {
    const std::string path = path_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    ::chmod(path.c_str(), mode);
    return path;
  }

 private:
  std::string path_;
};

class AdminApi : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.listen = "127.0.0.1:0";
    options_.token_file = dir_.write("token", std::string(kToken) + "\n", 0600);
    options_.audit_log = false;
    control_.run();
  }
  void TearDown() override {
    server_.stop();
    control_.pause();
  }
  void start() {
    Status s = server_.start(options_, queue_, [this] { return control_.view(); });
    ASSERT_TRUE(s.ok()) << s.error();
  }
  httplib::Client client(std::string_view token = kToken) {
    httplib::Client c("127.0.0.1", server_.port());
    c.set_read_timeout(10, 0);
    if (!token.empty()) c.set_bearer_token_auth(std::string(token));
    return c;
  }
  httplib::Result put_json(const std::string& path, const json& body) {
    return client().Put(path, body.dump(), "application/json");
  }
  httplib::Result post_json(const std::string& path, const json& body) {
    return client().Post(path, body.dump(), "application/json");
  }
  static std::string peer_path(std::string_view k) { return "/v1/peers/" + key_to_url(key(k)); }

  // exitgwctl against this server; returns the exit code, output in out_ and err_.
  int ctl(std::vector<std::string> args,
          std::optional<std::string> env_token = std::string(kToken)) {
    args.insert(args.begin(), {"--server", "http://127.0.0.1:" + std::to_string(server_.port())});
    std::ostringstream out, err;
    const int code = run_ctl(args, CtlEnvironment{std::move(env_token)}, out, err);
    out_ = out.str();
    err_ = err.str();
    return code;
  }

  TempDir dir_;
  AdminServerOptions options_;
  UpdateQueue queue_;
  ModelControl control_{queue_};
  AdminServer server_;
  std::string out_, err_;
};

// Passes if the response has `status` and a JSON {"error": ...} containing `what`.
::testing::AssertionResult is_error(const httplib::Result& res, int status, std::string_view what) {
  if (!res)
    return ::testing::AssertionFailure() << "no response: " << httplib::to_string(res.error());
  if (res->status != status)
    return ::testing::AssertionFailure() << "status " << res->status << ", body " << res->body;
  if (res->get_header_value("Content-Type") != "application/json")
    return ::testing::AssertionFailure()
           << "content type " << res->get_header_value("Content-Type");
  const json body = json::parse(res->body, nullptr, false);
  if (!body.is_object() || !body.contains("error") || !body["error"].is_string())
    return ::testing::AssertionFailure() << "not an error body: " << res->body;
  if (body["error"].get<std::string>().find(what) == std::string::npos)
    return ::testing::AssertionFailure() << "message lacks '" << what << "': " << body["error"];
  return ::testing::AssertionSuccess();
}

json ok_json(const httplib::Result& res) {
  EXPECT_TRUE(res) << httplib::to_string(res.error());
  if (!res) return nullptr;
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  return json::parse(res->body, nullptr, false);
}

TEST_F(AdminApi, StatusReportsThePublishedView) {
  start();
  const json s = ok_json(client().Get("/v1/status"));
  EXPECT_EQ(s["generation"], 0);
  EXPECT_EQ(s["approval"]["approved"], false);
  EXPECT_TRUE(s["approval"]["override"].is_null());
  EXPECT_EQ(s["destination_logging"], false);
  EXPECT_EQ(s["drain"], false);
  EXPECT_EQ(s["peer_count"], 1);
  EXPECT_EQ(s["sources"]["etcd"]["ok"], false);
  EXPECT_EQ(s["sources"]["etcd"]["message"], "connection refused");
  EXPECT_TRUE(s["last_update"].is_null());
}

TEST_F(AdminApi, PutAddsAPeerThatGetAndListShowWithoutItsPresharedKey) {
  start();
  const json body = {{"public_key", kKey2},
                     {"preshared_key", kPsk},
                     {"allowed_ips", {"10.9.0.0/24"}},
                     {"endpoint", "192.0.2.7:51820"},
                     {"persistent_keepalive", 25},
                     {"user", "bob@example.com"},
                     {"tags", {"tag:prod"}}};
  const json put = ok_json(put_json(peer_path(kKey2), body));
  EXPECT_EQ(put["generation"], 1);

  // Standard base64 in the URL works too, percent-encoded or not.
  for (const std::string& path : std::vector<std::string>{
           peer_path(kKey2), "/v1/peers/4Pa%2Fu%2F49Pt2PkHMK3mfrbOjMdSSZ0xeO4GW3ECoPoUk%3D"}) {
    const auto res = client().Get(path);
    const json p = ok_json(res);
    EXPECT_EQ(p["public_key"], kKey2);
    EXPECT_EQ(p["source"], "admin");
    EXPECT_EQ(p["allowed_ips"], json({"10.9.0.0/24"}));
    EXPECT_EQ(p["endpoint"], "192.0.2.7:51820");
    EXPECT_EQ(p["persistent_keepalive"], 25);
    EXPECT_EQ(p["user"], "bob@example.com");
    EXPECT_EQ(p["tags"], json({"tag:prod"}));
    EXPECT_EQ(p["has_preshared_key"], true);
    EXPECT_EQ(res->body.find(kPsk), std::string::npos);
  }
  const auto list = client().Get("/v1/peers");
  const json peers = ok_json(list);
  ASSERT_EQ(peers["peers"].size(), 2u);
  EXPECT_EQ(peers["generation"], 1);
  EXPECT_EQ(list->body.find(kPsk), std::string::npos);
  EXPECT_EQ(control_.sources_seen(), std::vector<std::string>{"admin"});
}

TEST_F(AdminApi, PutReplacesAPeerWhole) {
  start();
  ok_json(put_json(peer_path(kKey2), {{"allowed_ips", {"10.9.0.0/24"}}, {"user", "a@b"}}));
  ok_json(put_json(peer_path(kKey2), {{"allowed_ips", {"10.8.0.0/24"}}}));
  const json p = ok_json(client().Get(peer_path(kKey2)));
  EXPECT_EQ(p["allowed_ips"], json({"10.8.0.0/24"}));
  EXPECT_TRUE(p["user"].is_null());
}

TEST_F(AdminApi, PutPeersReplacesTheAdminSetWholeOrNotAtAll) {
  start();
  ok_json(put_json(peer_path(kKey2), {{"allowed_ips", {"10.9.0.0/24"}}}));
  std::string k3(kKey2);
  k3[0] = k3[0] == 'A' ? 'B' : 'A';
  const json set = {
      {"peers", {{{"public_key", k3}, {"allowed_ips", {"10.7.0.0/24"}}, {"user", "c@d"}}}}};
  const json r = ok_json(put_json("/v1/peers", set));
  EXPECT_EQ(r["generation"], 2);
  // kKey2 (admin) is gone, k3 is in; the file's peer (kKey1) stays.
  EXPECT_TRUE(is_error(client().Get(peer_path(kKey2)), 404, "no peer"));
  EXPECT_EQ(ok_json(client().Get(peer_path(k3)))["user"], "c@d");
  // Bad sets change nothing: a bad peer, a duplicate, a missing key, an overlap.
  const json dup = {{"peers",
                     {{{"public_key", k3}, {"allowed_ips", {"10.6.0.0/24"}}},
                      {{"public_key", k3}, {"allowed_ips", {"10.5.0.0/24"}}}}}};
  EXPECT_TRUE(is_error(put_json("/v1/peers", dup), 400, "appears twice"));
  EXPECT_TRUE(is_error(put_json("/v1/peers", {{"peers", {{{"allowed_ips", {"10.6.0.0/24"}}}}}}),
                       400, "needs a public_key"));
  EXPECT_TRUE(is_error(put_json("/v1/peers", {{"peers", {{{"public_key", k3}, {"color", 1}}}}}),
                       400, "unknown field"));
  EXPECT_TRUE(is_error(put_json("/v1/peers", {{"peer", json::array()}}), 400, "the body must be"));
  const json overlap = {{"peers", {{{"public_key", k3}, {"allowed_ips", {"100.64.0.99/32"}}}}}};
  EXPECT_EQ(put_json("/v1/peers", overlap)->status, 409);
  EXPECT_EQ(ok_json(client().Get("/v1/status"))["generation"], 2);
  EXPECT_EQ(ok_json(client().Get(peer_path(k3)))["allowed_ips"], json({"10.7.0.0/24"}));
}

TEST_F(AdminApi, DeleteRemovesAPeerAndThenSaysNotFound) {
  start();
  ok_json(put_json(peer_path(kKey2), {{"allowed_ips", {"10.9.0.0/24"}}}));
  ok_json(client().Delete(peer_path(kKey2)));
  EXPECT_TRUE(is_error(client().Get(peer_path(kKey2)), 404, "no peer with public key"));
  EXPECT_TRUE(is_error(client().Delete(peer_path(kKey2)), 404, "no such peer"));
}

TEST_F(AdminApi, ApprovalLoggingAndDrainSwitches) {
  start();
  ok_json(post_json("/v1/approval", {{"approved", true}}));
  json s = ok_json(client().Get("/v1/status"));
  EXPECT_EQ(s["approval"]["approved"], true);
  EXPECT_EQ(s["approval"]["override"], true);
  ok_json(post_json("/v1/approval", {{"approved", false}}));
  EXPECT_EQ(ok_json(client().Get("/v1/status"))["approval"]["override"], false);
  ok_json(post_json("/v1/approval", {{"approved", nullptr}}));
  EXPECT_TRUE(ok_json(client().Get("/v1/status"))["approval"]["override"].is_null());

  ok_json(post_json("/v1/logging", {{"destination", true}}));
  ok_json(post_json("/v1/drain", {{"on", true}}));
  s = ok_json(client().Get("/v1/status"));
  EXPECT_EQ(s["destination_logging"], true);
  EXPECT_EQ(s["drain"], true);
  EXPECT_EQ(s["generation"], 5);
  EXPECT_EQ(s["last_update"]["source"], "admin");
  ok_json(post_json("/v1/drain", {{"on", false}}));
  EXPECT_EQ(ok_json(client().Get("/v1/status"))["drain"], false);
}

TEST_F(AdminApi, MissingOrWrongTokenIs401WithAChallenge) {
  start();
  auto none = client("").Get("/v1/status");
  EXPECT_TRUE(is_error(none, 401, "missing 'Authorization: Bearer <token>'"));
  EXPECT_TRUE(none->get_header_value("WWW-Authenticate").starts_with("Bearer"));
  auto wrong = client("0123456789abcdef-test-tokem").Get("/v1/status");
  EXPECT_TRUE(is_error(wrong, 401, "wrong bearer token"));
  EXPECT_TRUE(wrong->get_header_value("WWW-Authenticate").starts_with("Bearer"));
  // Changes are refused before anything reaches the control thread.
  auto put = client("nope").Put(peer_path(kKey2), R"({"allowed_ips":["10.9.0.0/24"]})",
                                "application/json");
  EXPECT_TRUE(is_error(put, 401, "wrong bearer token"));
  EXPECT_TRUE(control_.sources_seen().empty());
  // Basic auth is not a bearer token; the scheme name is case-insensitive.
  httplib::Headers basic = {{"Authorization", "Basic " + std::string(kToken)}};
  EXPECT_TRUE(is_error(client("").Get("/v1/status", basic), 401, "wrong bearer token"));
  httplib::Headers lower = {{"Authorization", "bearer " + std::string(kToken)}};
  ok_json(client("").Get("/v1/status", lower));
}

TEST_F(AdminApi, TokenFileMustBeOwnerOnlyNonEmptyAndLongEnough) {
  options_.token_file = dir_.write("open", std::string(kToken), 0644);
  Status s = server_.start(options_, queue_, [this] { return control_.view(); });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("mode 0644"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("chmod 600 " + options_.token_file), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("--admin_token_file"), std::string::npos) << s.error();

  options_.token_file = dir_.write("group", std::string(kToken), 0640);
  EXPECT_FALSE(server_.start(options_, queue_, [] { return nullptr; }).ok());
  options_.token_file = dir_.write("empty", "\n", 0600);
  s = server_.start(options_, queue_, [] { return nullptr; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("is empty"), std::string::npos) << s.error();
  options_.token_file = dir_.write("short", "fifteen-chars-x", 0600);
  s = server_.start(options_, queue_, [] { return nullptr; });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("15 characters; use at least 16"), std::string::npos) << s.error();
  options_.token_file = "/nonexistent/token";
  EXPECT_FALSE(server_.start(options_, queue_, [] { return nullptr; }).ok());
  options_.token_file = "";
  EXPECT_FALSE(server_.start(options_, queue_, [] { return nullptr; }).ok());
}

TEST_F(AdminApi, NonLoopbackListenIsRefusedUnlessAllowed) {
  options_.listen = "0.0.0.0:0";
  Status s = server_.start(options_, queue_, [this] { return control_.view(); });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("not a loopback address"), std::string::npos) << s.error();
  EXPECT_NE(s.error().find("--admin_allow_non_loopback"), std::string::npos) << s.error();
  options_.allow_non_loopback = true;
  s = server_.start(options_, queue_, [this] { return control_.view(); });
  EXPECT_TRUE(s.ok()) << s.error();
}

TEST_F(AdminApi, UnknownRouteAndUnknownPeerAre404) {
  start();
  EXPECT_TRUE(is_error(client().Get("/v2/status"), 404, "no route for GET /v2/status"));
  EXPECT_TRUE(is_error(client().Get(peer_path(kKey1)), 404, "no peer with public key"));
}

TEST_F(AdminApi, WrongMethodIs405NamingTheAllowedOnes) {
  start();
  auto res = client().Delete("/v1/status");
  EXPECT_TRUE(is_error(res, 405, "DELETE is not allowed on /v1/status (allowed: GET)"));
  EXPECT_EQ(res->get_header_value("Allow"), "GET");
  EXPECT_TRUE(
      is_error(post_json(peer_path(kKey2), json::object()), 405, "allowed: GET, PUT, DELETE"));
  EXPECT_TRUE(is_error(client().Get("/v1/drain"), 405, "allowed: POST"));
}

TEST_F(AdminApi, ConflictWithAnotherSourceIs409) {
  start();
  // The prefix belongs to the file's peer.
  EXPECT_TRUE(is_error(put_json(peer_path(kKey2), {{"allowed_ips", {"100.64.0.99/32"}}}), 409,
                       "100.64.0.99/32 is allowed for both"));
  EXPECT_TRUE(is_error(client().Delete(peer_path(kFileKey)), 409, "belongs to the file"));
}

TEST_F(AdminApi, BodyOverTheLimitIs413) {
  options_.max_body_bytes = 1024;
  start();
  const std::string big = R"({"allowed_ips": [")" + std::string(2000, '1') + R"("]})";
  EXPECT_TRUE(is_error(client().Put(peer_path(kKey2), big, "application/json"), 413, "too large"));
  // The server is still fine afterwards.
  ok_json(client().Get("/v1/status"));
}

TEST_F(AdminApi, BodyThatIsNotJsonContentTypeIs415) {
  start();
  EXPECT_TRUE(is_error(client().Post("/v1/drain", R"({"on": true})", "text/plain"), 415,
                       "Content-Type must be application/json, got 'text/plain'"));
  // Parameters after the media type are fine.
  ok_json(client().Post("/v1/drain", R"({"on": true})", "application/json; charset=utf-8"));
}

TEST_F(AdminApi, MalformedBodiesAre400NamingTheProblem) {
  start();
  const std::string path = peer_path(kKey2);
  EXPECT_TRUE(is_error(client().Put(path, "{", "application/json"), 400, "not valid JSON"));
  EXPECT_TRUE(is_error(put_json(path, {{"allowed_ips", {"10.9.0.0/24"}}, {"name", "x"}}), 400,
                       "unknown field \"name\""));
  EXPECT_TRUE(is_error(put_json(path, {{"allowed_ips", "10.9.0.0/24"}}), 400,
                       "field 'allowed_ips' must be an array of strings, got string"));
  EXPECT_TRUE(is_error(put_json(path, {{"allowed_ips", {"10.0.0.0/4"}}}), 400,
                       "field 'allowed_ips[0]': AllowedIPs '10.0.0.0/4' is shorter than /8"));
  EXPECT_TRUE(is_error(put_json(path, {{"public_key", kKey1}, {"allowed_ips", {"10.9.0.0/24"}}}),
                       400, "is not the key in the URL"));
  EXPECT_TRUE(is_error(
      client().Put("/v1/peers/not-a-key", R"({"allowed_ips":["10.9.0.0/24"]})", "application/json"),
      400, "the key in the URL: PublicKey"));
  EXPECT_TRUE(is_error(client().Get("/v1/peers/not-a-key"), 400, "the key in the URL"));
  EXPECT_TRUE(
      is_error(client().Put(path, std::string(20, '[') + std::string(20, ']'), "application/json"),
               400, "nests deeper than"));
  EXPECT_TRUE(
      is_error(client().Post("/v1/drain", R"({"on": true, "on": false})", "application/json"), 400,
               "appears twice"));
  EXPECT_TRUE(is_error(post_json("/v1/approval", {{"approved", "yes"}}), 400,
                       "field 'approved' must be true, false or null, got string"));
  EXPECT_TRUE(is_error(post_json("/v1/logging", {{"dest", true}}), 400, "unknown field \"dest\""));
  EXPECT_TRUE(control_.sources_seen().empty());  // none of these reached the control thread
}

TEST_F(AdminApi, ControlThreadNotAnsweringIs503WithinTheTimeout) {
  options_.update_timeout = 300ms;
  start();
  control_.pause();
  const auto began = std::chrono::steady_clock::now();
  EXPECT_TRUE(
      is_error(post_json("/v1/drain", {{"on", true}}), 503, "did not answer within 300 ms"));
  const auto took = std::chrono::steady_clock::now() - began;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
  // Reads still work: they only load the published view.
  ok_json(client().Get("/v1/status"));
}

TEST_F(AdminApi, NoPublishedViewYetIs503) {
  Status s = server_.start(options_, queue_, [] { return nullptr; });
  ASSERT_TRUE(s.ok()) << s.error();
  EXPECT_TRUE(is_error(client().Get("/v1/status"), 503, "has not published its state yet"));
  EXPECT_TRUE(is_error(client().Get("/v1/peers"), 503, "has not published"));
}

TEST_F(AdminApi, StopDoesNotWaitForAStuckControlThread) {
  start();  // default 5 s timeout
  control_.pause();
  std::thread request([this] {
    auto res = post_json("/v1/drain", {{"on", true}});
    if (res) {
      EXPECT_EQ(res->status, 503);
    }
  });
  std::this_thread::sleep_for(100ms);
  const auto began = std::chrono::steady_clock::now();
  server_.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - began, 2s);
  request.join();
}

TEST_F(AdminApi, ConcurrentRequestsAllApplyOnce) {
  start();
  constexpr int kThreads = 8, kPerThread = 16;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        PeerConfig p;
        p.public_key[0] = static_cast<uint8_t>(t + 1);
        p.public_key[1] = static_cast<uint8_t>(i + 1);
        p.allowed_ips = {
            {(10u << 24) | static_cast<uint32_t>(t) << 16 | static_cast<uint32_t>(i) << 8, 24}};
        auto res = client().Put("/v1/peers/" + key_to_url(p.public_key),
                                peer_to_request_json(p).dump(), "application/json");
        if (!res || res->status != 200) ++failures;
        auto get = client().Get("/v1/status");
        if (!get || get->status != 200) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  const json s = ok_json(client().Get("/v1/status"));
  EXPECT_EQ(s["peer_count"], 1 + kThreads * kPerThread);
  EXPECT_EQ(s["generation"], kThreads * kPerThread);
}

// exitgwctl

TEST_F(AdminApi, CtlStatusAndPeersPrintTablesOrJson) {
  start();
  EXPECT_EQ(ctl({"status"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("destination logging  off"), std::string::npos) << out_;
  EXPECT_NE(out_.find("source etcd"), std::string::npos) << out_;
  EXPECT_NE(out_.find("FAILING: connection refused"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"peers"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("PUBLIC KEY"), std::string::npos) << out_;
  EXPECT_NE(out_.find(kFileKey), std::string::npos) << out_;
  EXPECT_NE(out_.find("1.5 KiB"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"--json", "peers"}), kCtlOk) << err_;
  const json j = json::parse(out_, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out_;
  EXPECT_EQ(j["peers"][0]["public_key"], kFileKey);
}

TEST_F(AdminApi, CtlPeersSetSendsTheFileWholeAndRefusedSetsExit1) {
  start();
  const std::string good = dir_.write(
      "set.json",
      json{{"peers", {{{"public_key", kKey2}, {"allowed_ips", {"10.9.0.0/24"}}}}}}.dump(), 0600);
  EXPECT_EQ(ctl({"peers", "set", good}), kCtlOk) << err_;
  EXPECT_NE(out_.find("now the set in"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"--json", "peer", "get", std::string(kKey2)}), kCtlOk) << err_;
  const std::string bad = dir_.write("bad.json", R"({"peers": [{"allowed_ips": []}]})", 0600);
  EXPECT_EQ(ctl({"peers", "set", bad}), kCtlRefused);
  EXPECT_NE(err_.find("needs a public_key"), std::string::npos) << err_;
  const std::string not_json = dir_.write("nj.json", "peers: []", 0600);
  EXPECT_EQ(ctl({"peers", "set", not_json}), kCtlUsage);
}

TEST_F(AdminApi, CtlPeerAddGetRemove) {
  start();
  const std::string psk = dir_.write("psk", std::string(kPsk) + "\n", 0600);
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey2), "--allowed-ips", "10.9.0.0/24, 10.10.0.0/16",
                 "--endpoint", "192.0.2.7:51820", "--user=bob@example.com", "--tags", "tag:a,tag:b",
                 "--keepalive", "25", "--preshared-key-file", psk}),
            kCtlOk)
      << err_;
  EXPECT_NE(out_.find("saved (generation 1)"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"--json", "peer", "get", std::string(kKey2)}), kCtlOk) << err_;
  const json p = json::parse(out_);
  EXPECT_EQ(p["allowed_ips"], json({"10.9.0.0/24", "10.10.0.0/16"}));
  EXPECT_EQ(p["tags"], json({"tag:a", "tag:b"}));
  EXPECT_EQ(p["persistent_keepalive"], 25);
  EXPECT_EQ(p["has_preshared_key"], true);
  EXPECT_EQ(ctl({"peer", "get", std::string(kKey2)}), kCtlOk) << err_;
  EXPECT_NE(out_.find("bob@example.com"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"peer", "remove", std::string(kKey2)}), kCtlOk) << err_;
  EXPECT_EQ(ctl({"peer", "remove", std::string(kKey2)}), kCtlRefused);
  EXPECT_NE(err_.find("refused (404)"), std::string::npos) << err_;
}

TEST_F(AdminApi, CtlSwitches) {
  start();
  EXPECT_EQ(ctl({"approve"}), kCtlOk) << err_;
  EXPECT_EQ(ctl({"unapprove"}), kCtlOk) << err_;
  EXPECT_EQ(ctl({"approval", "clear"}), kCtlOk) << err_;
  EXPECT_EQ(ctl({"logging", "on"}), kCtlOk) << err_;
  EXPECT_EQ(ctl({"drain", "on"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("drain on (generation 5)"), std::string::npos) << out_;
  const auto v = control_.view();
  EXPECT_FALSE(v->approval_override.has_value());
  EXPECT_TRUE(v->destination_logging);
  EXPECT_TRUE(v->draining);
}

TEST_F(AdminApi, CtlExitCodes) {
  start();
  // 1: the server refused (bad value, conflict, wrong token), message on stderr.
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey2), "--allowed-ips", "0.0.0.0/0"}), kCtlRefused);
  EXPECT_NE(err_.find("shorter than /8"), std::string::npos) << err_;
  EXPECT_TRUE(out_.empty());
  EXPECT_EQ(ctl({"peer", "remove", std::string(kFileKey)}), kCtlRefused);
  EXPECT_EQ(ctl({"status"}, "wrong-token-wrong-token"), kCtlRefused);
  EXPECT_NE(err_.find("wrong bearer token"), std::string::npos) << err_;
  // 2: usage.
  EXPECT_EQ(ctl({}), kCtlUsage);
  EXPECT_EQ(ctl({"frobnicate"}), kCtlUsage);
  EXPECT_NE(err_.find("unknown command 'frobnicate'"), std::string::npos) << err_;
  EXPECT_EQ(ctl({"drain", "maybe"}), kCtlUsage);
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey2)}), kCtlUsage);
  EXPECT_NE(err_.find("--allowed-ips"), std::string::npos) << err_;
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey2), "--allowed-ips", "10.9.0.0/24", "--keepalive",
                 "soon"}),
            kCtlUsage);
  EXPECT_EQ(ctl({"status", "--user", "x"}), kCtlUsage);
  EXPECT_EQ(ctl({"status", "--bogus"}), kCtlUsage);
  EXPECT_EQ(ctl({"status"}, std::nullopt), kCtlUsage);
  EXPECT_NE(err_.find("EXITGW_TOKEN"), std::string::npos) << err_;
  const std::string open_token = dir_.write("open-token", std::string(kToken), 0644);
  EXPECT_EQ(ctl({"--token-file", open_token, "status"}, std::nullopt), kCtlUsage);
  EXPECT_NE(err_.find("chmod 600"), std::string::npos) << err_;
  EXPECT_EQ(ctl({"--token-file", options_.token_file, "status"}, std::nullopt), kCtlOk) << err_;
  // 3: the control thread does not answer (503), or nothing listens.
  server_.stop();
  options_.update_timeout = 200ms;
  start();
  control_.pause();
  EXPECT_EQ(ctl({"drain", "on"}), kCtlUnavailable);
  EXPECT_NE(err_.find("server failed (503)"), std::string::npos) << err_;
  std::ostringstream out, err;
  EXPECT_EQ(run_ctl({"--server", "http://127.0.0.1:1", "status"}, {std::string(kToken)}, out, err),
            kCtlUnavailable);
  EXPECT_NE(err.str().find("cannot reach"), std::string::npos) << err.str();
}

TEST_F(AdminApi, PolicyPutReplacesGetShowsAndDeleteRestoresTheFilePolicy) {
  start();
  json p = ok_json(client().Get("/v1/policy"));
  EXPECT_EQ(p["source"], "file");
  EXPECT_EQ(p["text"], kFilePolicy);
  EXPECT_TRUE(p["rules"].is_number() && p["classes"].is_number()) << p.dump();

  const json put = ok_json(client().Put("/v1/policy", std::string(kHttpsOnly), "text/plain"));
  EXPECT_EQ(put["generation"], 1);
  p = ok_json(client().Get("/v1/policy"));
  EXPECT_EQ(p["source"], "admin");
  EXPECT_EQ(p["text"], kHttpsOnly);
  EXPECT_EQ(p["generation"], 1);
  EXPECT_EQ(ok_json(client().Get("/v1/status"))["policy"]["source"], "admin");
  // application/hujson with parameters works as well.
  ok_json(client().Put("/v1/policy", std::string(kHttpsOnly), "application/hujson; charset=utf-8"));

  ok_json(client().Delete("/v1/policy"));
  p = ok_json(client().Get("/v1/policy"));
  EXPECT_EQ(p["source"], "file");
  EXPECT_EQ(p["text"], kFilePolicy);
  EXPECT_EQ(p["generation"], 3);
}

TEST_F(AdminApi, PolicyThatDoesNotParseIs400WithLineAndColumnAndChangesNothing) {
  start();
  ok_json(client().Put("/v1/policy", std::string(kHttpsOnly), "text/plain"));
  const uint64_t generation = control_.view()->generation;
  EXPECT_TRUE(is_error(client().Put("/v1/policy", std::string(kBadPolicy), "text/plain"), 400,
                       "admin policy:3:"));
  EXPECT_TRUE(is_error(client().Put("/v1/policy", "", "text/plain"), 400, "admin policy:"));
  const json p = ok_json(client().Get("/v1/policy"));
  EXPECT_EQ(p["source"], "admin");
  EXPECT_EQ(p["text"], kHttpsOnly);
  EXPECT_EQ(control_.view()->generation, generation);
}

TEST_F(AdminApi, PolicyRequestsCheckTokenMediaTypeAndSize) {
  options_.max_body_bytes = 1024;
  start();
  EXPECT_TRUE(is_error(client("").Get("/v1/policy"), 401, "Authorization"));
  EXPECT_TRUE(is_error(
      client("wrong-token-wrong-token").Put("/v1/policy", std::string(kHttpsOnly), "text/plain"),
      401, "wrong bearer token"));
  EXPECT_TRUE(
      is_error(client("wrong-token-wrong-token").Delete("/v1/policy"), 401, "wrong bearer token"));
  EXPECT_TRUE(is_error(client().Put("/v1/policy", std::string(kHttpsOnly), "application/json"), 415,
                       "text/plain or application/hujson"));
  const std::string big = "{\n// " + std::string(2000, 'x') + "\n}";
  EXPECT_TRUE(is_error(client().Put("/v1/policy", big, "text/plain"), 413, "too large"));
  EXPECT_TRUE(is_error(client().Post("/v1/policy", std::string(kHttpsOnly), "text/plain"), 405,
                       "GET, PUT, DELETE"));
  EXPECT_EQ(control_.view()->generation, 0u);
  EXPECT_EQ(control_.view()->policy_source, "file");
}

TEST_F(AdminApi, CtlPolicyShowSetClear) {
  start();
  const std::string good = dir_.write("https.hujson", kHttpsOnly, 0644);
  const std::string bad = dir_.write("bad.hujson", kBadPolicy, 0644);
  EXPECT_EQ(ctl({"policy", "set", good}), kCtlOk) << err_;
  EXPECT_NE(out_.find("in force (generation 1)"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"status"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("admin (" + std::to_string(kHttpsOnly.size() % 7 + 1) + " rules, 2 classes)"),
            std::string::npos)
      << out_;
  EXPECT_EQ(ctl({"policy", "show"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("source   admin"), std::string::npos) << out_;
  EXPECT_NE(out_.find("Only HTTPS through the exit."), std::string::npos) << out_;
  EXPECT_EQ(ctl({"--json", "policy", "show"}), kCtlOk) << err_;
  EXPECT_EQ(json::parse(out_)["text"], kHttpsOnly);

  // Refused by the server: 1, with the parser's position on stderr; nothing changed.
  EXPECT_EQ(ctl({"policy", "set", bad}), kCtlRefused);
  EXPECT_NE(err_.find("refused (400): admin policy:3:"), std::string::npos) << err_;
  EXPECT_EQ(control_.view()->policy_source, "admin");
  // Usage: a file that cannot be read, or wrong words.
  EXPECT_EQ(ctl({"policy", "set", dir_.write("x", "", 0644) + ".missing"}), kCtlUsage);
  EXPECT_NE(err_.find("cannot read policy file"), std::string::npos) << err_;
  EXPECT_EQ(ctl({"policy", "set"}), kCtlUsage);
  EXPECT_EQ(ctl({"policy", "frob"}), kCtlUsage);

  EXPECT_EQ(ctl({"policy", "clear"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("policy override cleared"), std::string::npos) << out_;
  EXPECT_EQ(control_.view()->policy_source, "file");
}

TEST_F(AdminApi, CtlHelpDocumentsEveryCommandAndExitCode) {
  std::ostringstream out, err;
  EXPECT_EQ(run_ctl({"--help"}, {}, out, err), kCtlOk);
  for (const char* word :
       {"status",       "peers",           "peer get",       "peer add",       "peer remove",
        "approve",      "unapprove",       "approval clear", "logging on|off", "drain on|off",
        "policy show",  "policy set FILE", "policy clear",   "filter show",    "filter set FILE",
        "filter clear", "--json",          "--server",       "--token-file",   "EXITGW_TOKEN",
        "Exit codes"}) {
    EXPECT_NE(out.str().find(word), std::string::npos) << word;
  }
}

TEST_F(AdminApi, FilterPutReplacesGetShowsAndDeleteClears) {
  start();
  json f = ok_json(client().Get("/v1/filter"));
  EXPECT_TRUE(f["filter"].is_null());
  EXPECT_EQ(f["policy_source"], "file");
  const json filter = {{"rules",
                        {{{"src", {"100.64.0.1/32"}},
                          {"dst", {{{"prefix", "0.0.0.0/5"}, {"ports", {0, 65535}}}}},
                          {"protocols", json::array()}}}}};
  ok_json(put_json("/v1/filter", filter));
  f = ok_json(client().Get("/v1/filter"));
  EXPECT_EQ(f["filter"], filter);
  EXPECT_EQ(f["policy_source"], "tailnet");
  EXPECT_EQ(ok_json(client().Get("/v1/status"))["policy"]["source"], "tailnet");
  ok_json(client().Delete("/v1/filter"));
  EXPECT_TRUE(ok_json(client().Get("/v1/filter"))["filter"].is_null());
}

TEST_F(AdminApi, BadFilterIs400NamingRuleAndFieldAndChangesNothing) {
  start();
  const json bad = {
      {"rules",
       {{{"src", {"100.64.0.1/32"}}, {"dst", {{{"prefix", "0.0.0.0/0"}, {"ports", {0, 65535}}}}}},
        {{"src", {"100.64.0.1/32"}}, {"dst", {{{"prefix", "0.0.0.0/0"}, {"ports", {9, 1}}}}}}}}};
  EXPECT_TRUE(is_error(put_json("/v1/filter", bad), 400, "rules[1].dst[0].ports"));
  EXPECT_TRUE(is_error(client().Put("/v1/filter", "{}", "text/plain"), 415, "application/json"));
  EXPECT_TRUE(
      is_error(client().Post("/v1/filter", "{}", "application/json"), 405, "GET, PUT, DELETE"));
  EXPECT_EQ(control_.view()->generation, 0u);
  EXPECT_EQ(control_.view()->tailnet_filter, nullptr);
}

TEST_F(AdminApi, TailnetHealthShowsInStatusAndCtl) {
  start();
  EXPECT_EQ(ok_json(client().Get("/v1/status"))["tailnet"]["state"], "none");
  EXPECT_EQ(ctl({"status"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("tailnet: no connector has reported"), std::string::npos) << out_;
  ok_json(put_json("/v1/tailnet", {{"state", "ok"},
                                   {"since_unix_ms", 1'700'000'000'000},
                                   {"last_netmap_unix_ms", 1'700'000'000'000},
                                   {"node_key", "nodekey:00"},
                                   {"login_server", "https://hs.lab"}}));
  EXPECT_EQ(ctl({"status"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("\ntailnet: ok\n"), std::string::npos) << out_;
  ok_json(put_json("/v1/tailnet", {{"state", "stale"},
                                   {"since_unix_ms", 1'700'000'000'000},
                                   {"message", "login server unreachable"}}));
  EXPECT_EQ(ctl({"status"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("tailnet: stale since 2023-11-14T22:13:20Z (login server unreachable)"),
            std::string::npos)
      << out_;
  const json t = ok_json(client().Get("/v1/tailnet"));
  EXPECT_EQ(t["state"], "stale");
  EXPECT_EQ(t["message"], "login server unreachable");
  EXPECT_TRUE(is_error(put_json("/v1/tailnet", {{"state", "none"}}), 400, "field 'state'"));
  EXPECT_TRUE(is_error(put_json("/v1/tailnet", {{"state", "ok"}, {"extra", 1}}), 400,
                       "unknown field \"extra\""));
  EXPECT_TRUE(is_error(put_json("/v1/tailnet", {{"state", "ok"}, {"since_unix_ms", -1}}), 400,
                       "since_unix_ms"));
}

TEST_F(AdminApi, CtlFilterShowSetClear) {
  start();
  const std::string good = dir_.write(
      "filter.json",
      R"({"rules": [{"src": ["100.64.0.0/10"], "dst": [{"prefix": "0.0.0.0/5", "ports": [0, 65535]}]}]})",
      0644);
  const std::string bad = dir_.write("bad.json", R"({"rules": [{"src": [], "dst": []}]})", 0644);
  EXPECT_EQ(ctl({"filter", "show"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("none set"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"filter", "set", good}), kCtlOk) << err_;
  EXPECT_NE(out_.find("tailnet filter from"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"filter", "show"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("1 rules"), std::string::npos) << out_;
  EXPECT_NE(out_.find("100.64.0.0/10"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"filter", "set", bad}), kCtlRefused);
  EXPECT_NE(err_.find("rules[0].src: is empty"), std::string::npos) << err_;
  EXPECT_EQ(ctl({"filter", "frob"}), kCtlUsage);
  EXPECT_EQ(ctl({"filter", "clear"}), kCtlOk) << err_;
  EXPECT_EQ(control_.view()->tailnet_filter, nullptr);
}

}  // namespace
}  // namespace exitgw::admin
