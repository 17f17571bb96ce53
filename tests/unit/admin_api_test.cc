// The admin API over real HTTP on loopback, with a test thread playing the control loop: it
// drains the real UpdateQueue into an in-memory model and publishes AdminViews. Then exitgwctl's
// commands, output and exit codes against the same server.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
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
#include "control/metrics.h"
#include "control/peer_update.h"
#include "control/policy/policy.h"
#include "tools/exitgwctl_lib.h"
#include "tests/support/test_files.h"

namespace exitgw::admin {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kKey1 = "xiDQIB2Qx4UzFfqxCiTODnTd2LowLtgAESpFjJNxyQs=";
constexpr std::string_view kKey2 = "4Pa/u/49Pt2PkHMK3mfrbOjMdSSZ0xeO4GW3ECoPoUk=";
constexpr std::string_view kFileKey = "VcAal5QcrW0D1dxHu+oDfuKxh568yEvlvi0his8x9x0=";
constexpr std::string_view kPsk = "xnbDEo95x+Rv7Lvr90X76ISQi0N6DegLBiAH4SuFkR4=";
// The gateway's own key in the model.
constexpr std::string_view kSelfKey = "QFaRpRv+ee8EZ0IhrJ2CuBQBLO9ROdwuE7ssWqWqgUo=";
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

// The model gateway: tunnel 10.0.0.1/24, internet 192.0.2.1/24, NAT pool 198.51.100.0/28.
GatewaySelf model_self() {
  GatewaySelf self;
  self.public_key = key(kSelfKey);
  self.interfaces = {{(10u << 24) | 1u, 24}, {(192u << 24) | (2u << 8) | 1u, 24}};
  self.nat_pool = {{(198u << 24) | (51u << 16) | (100u << 8), 28}};
  return self;
}

// The control thread's side, as simply as possible: peers by source, the three switches, a
// generation. Applies each update whole or not at all, like the real one must; peer updates
// are checked by the real plan_peer_update, so their status codes are the gateway's.
class ModelControl {
 public:
  explicit ModelControl(UpdateQueue& queue) : queue_(queue) {
    PeerConfig file_peer;
    file_peer.public_key = key(kFileKey);
    file_peer.allowed_ips = {{(100u << 24) | (64u << 16) | 99u, 32}};
    peers_["file"] = {file_peer};
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
  // The gateway the peer updates are checked against (model_self() unless a test says).
  void set_self(GatewaySelf self) {
    std::lock_guard lock(mu_);
    self_ = std::move(self);
  }

 private:
  UpdateResult apply(const Update& update, const std::string& source) {
    {
      std::lock_guard lock(mu_);
      sources_seen_.push_back(source);
    }
    UpdateResult r;
    if (std::holds_alternative<PeerUpsert>(update) || std::holds_alternative<PeerRemove>(update) ||
        std::holds_alternative<PeerSet>(update)) {
      PeerPlan plan = plan_peer_update(peers_, update, source, self());
      r = plan.refusal;
      if (r.ok()) peers_[source] = std::move(plan.peers);
    } else {
      r = std::visit([&](const auto& u) { return apply_one(u, source); }, update);
    }
    // Health is shown, never configuration: a TailnetReport is not a new generation nor the
    // last update (Gateway::apply_update).
    if (r.ok() && std::holds_alternative<TailnetReport>(update)) {
      publish();
    } else if (r.ok()) {
      ++generation_;
      last_source_ = source;
      publish();
    }
    r.generation = generation_;
    return r;
  }
  GatewaySelf self() const {
    std::lock_guard lock(mu_);
    return self_;
  }
  template <typename PeerUpdate>
  UpdateResult apply_one(const PeerUpdate&, const std::string&) {
    return {};  // handled above
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
    for (const auto& [source, list] : peers_)
      for (const PeerConfig& peer : list) {
        AdminView::Peer p;
        p.public_key = peer.public_key;
        p.source = source;
        p.user = peer.user;
        p.tags = peer.tags;
        p.allowed_ips = peer.allowed_ips;
        p.allowed_ips6 = peer.allowed_ips6;
        if (peer.has_endpoint) p.endpoint = peer_endpoint_text(peer);
        p.persistent_keepalive = peer.persistent_keepalive;
        p.has_preshared_key = peer.has_preshared_key;
        p.rx_bytes = 1536;
        v->peers.push_back(std::move(p));
      }
    std::lock_guard lock(mu_);
    view_ = std::move(v);
  }

  UpdateQueue& queue_;
  std::atomic<bool> running_{false};
  std::thread thread_;
  PeersBySource peers_;
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
  GatewaySelf self_ = model_self();
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
    test::write_file(path, content, mode);
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

// A raw TCP connection to a listener, for requests no well-behaved client sends.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return connected_; }
  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // What the server sends until it closes (or resets), or `timeout` passes.
  std::string receive_all(std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string out;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      timeval tv{0, 100'000};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_;
  bool connected_ = false;
};

// The status code of a raw response ("HTTP/1.1 400 ..."), 0 when there is none.
int status_code(std::string_view response) {
  if (response.size() < 12 || response.substr(0, 9) != "HTTP/1.1 ") return 0;
  return std::stoi(std::string(response.substr(9, 3)));
}

std::string raw_exchange(uint16_t port, std::string_view request) {
  RawConnection c(port);
  EXPECT_TRUE(c.connected());
  c.send(request);
  return c.receive_all();
}

std::string chunked(std::string_view body, size_t piece) {
  std::string out;
  for (size_t i = 0; i < body.size(); i += piece) {
    const std::string_view part = body.substr(i, piece);
    char size[16];
    std::snprintf(size, sizeof(size), "%zx\r\n", part.size());
    out += size + std::string(part) + "\r\n";
  }
  return out + "0\r\n\r\n";
}

uint64_t refused(const http::ListenerCounters& c, http::Refusal reason) {
  return c.refused[static_cast<size_t>(reason)].load();
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

TEST_F(AdminApi, AnIpv6EndpointIsTakenAndShownInCanonicalForm) {
  start();
  const json body = {{"allowed_ips", {"10.9.0.0/24"}}, {"endpoint", "[2001:DB8:0::7]:51820"}};
  ok_json(put_json(peer_path(kKey2), body));
  const json p = ok_json(client().Get(peer_path(kKey2)));
  EXPECT_EQ(p["endpoint"], "[2001:db8::7]:51820");
  EXPECT_TRUE(p["current_endpoint"].is_null());  // the unit test's view has no runtime state
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
  EXPECT_TRUE(is_error(client().Delete(peer_path(kKey2)), 404, "no peer"));
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
  EXPECT_TRUE(is_error(client().Delete(peer_path(kFileKey)), 409, "belongs to source file"));
}

TEST_F(AdminApi, AnIPv6PrefixAnotherPeerHoldsIs409LikeAnIPv4One) {
  start();
  ok_json(put_json(peer_path(kKey2), {{"allowed_ips", {"10.9.0.0/24", "fd7a:115c:a1e0::5/128"}}}));
  // The same prefix spelled otherwise, from the tailnet source and from the admin source.
  EXPECT_TRUE(is_error(
      put_json("/v1/tailnet/peers",
               {{"peers", {{{"public_key", kKey1}, {"allowed_ips", {"FD7A:115C:A1E0:0::5"}}}}}}),
      409, "AllowedIPs fd7a:115c:a1e0::5/128 is allowed for both"));
  EXPECT_TRUE(is_error(put_json(peer_path(kKey1), {{"allowed_ips", {"fd7a:115c:a1e0::5/128"}}}),
                       409, "; a prefix may belong to one peer only"));
  // The running peers are unchanged.
  EXPECT_TRUE(is_error(client().Get(peer_path(kKey1)), 404, "no peer"));
  EXPECT_EQ(ok_json(client().Get(peer_path(kKey2)))["allowed_ips"],
            json({"10.9.0.0/24", "fd7a:115c:a1e0::5/128"}));
}

TEST_F(AdminApi, AllowedIpsShowIPv4FirstThenIPv6InCanonicalText) {
  start();
  ok_json(put_json(
      peer_path(kKey2),
      {{"allowed_ips", {"2001:DB8:0:0:1::/80", "10.9.0.0/24", "fd7a:115c:a1e0:0:0:0:0:2"}}}));
  const json shown = {"10.9.0.0/24", "2001:db8:0:0:1::/80", "fd7a:115c:a1e0::2/128"};
  EXPECT_EQ(ok_json(client().Get(peer_path(kKey2)))["allowed_ips"], shown);
  bool listed = false;
  const json list = ok_json(client().Get("/v1/peers"));
  for (const json& p : list["peers"]) {
    if (p["public_key"].get<std::string>() != kKey2) continue;
    EXPECT_EQ(p["allowed_ips"], shown);
    listed = true;
  }
  EXPECT_TRUE(listed);
  // The tailnet source takes IPv6 too, and a peer with IPv6 only.
  ok_json(put_json("/v1/tailnet/peers",
                   {{"peers", {{{"public_key", kKey1}, {"allowed_ips", {"fd7a:115c:a1e0::7"}}}}}}));
  EXPECT_EQ(ok_json(client().Get(peer_path(kKey1)))["allowed_ips"],
            json({"fd7a:115c:a1e0::7/128"}));
}

TEST_F(AdminApi, BadIPv6AllowedIpsAre400NamingTheProblem) {
  start();
  const std::string path = peer_path(kKey2);
  const std::pair<const char*, const char*> cases[] = {
      {"fd7a::1/64",
       "field 'allowed_ips[1]': AllowedIPs 'fd7a::1/64' has host bits set: write "
       "fd7a::/64"},
      {"::/0", "field 'allowed_ips[1]': AllowedIPs '::/0' is shorter than /16"},
      {"fe80::/64", "AllowedIPs 'fe80::/64' is link-local (fe80::/10)"},
      {"ff02::1", "AllowedIPs 'ff02::1/128' is multicast (ff00::/8)"},
      {"::1", "AllowedIPs '::1/128' holds the loopback address ::1"},
      {"::/128", "AllowedIPs '::/128' holds the unspecified address ::"},
      {"fd7a::/200", "AllowedIPs 'fd7a::/200': prefix length 200 is larger than 128"},
      {"fd7a::g", "AllowedIPs 'fd7a::g': 'fd7a::g' is not an IPv6 address"},
  };
  for (const auto& [prefix, why] : cases)
    EXPECT_TRUE(is_error(put_json(path, {{"allowed_ips", {"10.9.0.0/24", prefix}}}), 400, why))
        << prefix;
  EXPECT_TRUE(is_error(client().Get(path), 404, "no peer"));
}

// The connector's peers (PUT /v1/tailnet/peers) are the "tailnet" source: an operator's PUT
// /v1/peers or exitgwctl never removes or changes them, and the connector's set never removes
// the operator's peers.
TEST_F(AdminApi, TailnetPeersAreASourceOfTheirOwn) {
  start();
  const json tailnet = {
      {"peers", {{{"public_key", kKey1}, {"allowed_ips", {"100.64.0.5/32"}}, {"user", "a@b"}}}}};
  ok_json(put_json("/v1/tailnet/peers", tailnet));
  ok_json(put_json("/v1/peers",
                   {{"peers", {{{"public_key", kKey2}, {"allowed_ips", {"10.9.0.0/24"}}}}}}));
  // The operator's set left the tailnet's peer alone, and GET /v1/tailnet/peers shows only it.
  const json mine = ok_json(client().Get("/v1/tailnet/peers"));
  ASSERT_EQ(mine["peers"].size(), 1u) << mine.dump();
  EXPECT_EQ(mine["peers"][0]["public_key"], kKey1);
  EXPECT_EQ(mine["peers"][0]["source"], "tailnet");
  EXPECT_EQ(mine["peers"][0]["allowed_ips"], json({"100.64.0.5/32"}));
  EXPECT_EQ(ok_json(client().Get("/v1/peers"))["peers"].size(), 3u);  // file, admin, tailnet
  // The tailnet's peer cannot be changed, removed or taken over through the admin source.
  EXPECT_TRUE(is_error(put_json(peer_path(kKey1), {{"allowed_ips", {"100.64.0.5/32"}}}), 409,
                       "belongs to source tailnet"));
  EXPECT_TRUE(is_error(client().Delete(peer_path(kKey1)), 409, "belongs to source tailnet"));
  EXPECT_TRUE(
      is_error(put_json("/v1/peers",
                        {{"peers", {{{"public_key", kKey1}, {"allowed_ips", {"10.8.0.0/24"}}}}}}),
               409, "belongs to source tailnet"));
  EXPECT_EQ(ctl({"peer", "remove", std::string(kKey1)}), kCtlRefused);
  EXPECT_NE(err_.find("belongs to source tailnet"), std::string::npos) << err_;
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey1), "--allowed-ips", "10.8.0.0/24"}), kCtlRefused);
  // And the other way round: the connector cannot take the operator's peer or its addresses.
  EXPECT_TRUE(
      is_error(put_json("/v1/tailnet/peers",
                        {{"peers", {{{"public_key", kKey2}, {"allowed_ips", {"100.64.0.6/32"}}}}}}),
               409, "belongs to source admin"));
  EXPECT_EQ(put_json("/v1/tailnet/peers",
                     {{"peers", {{{"public_key", kKey1}, {"allowed_ips", {"10.9.0.0/24"}}}}}})
                ->status,
            409);
  // An empty tailnet set removes only the tailnet's peers.
  ok_json(put_json("/v1/tailnet/peers", {{"peers", json::array()}}));
  EXPECT_EQ(ok_json(client().Get("/v1/tailnet/peers"))["peers"], json::array());
  EXPECT_EQ(ok_json(client().Get(peer_path(kKey2)))["source"], "admin");
  EXPECT_EQ(ok_json(client().Get(peer_path(kFileKey)))["source"], "file");
  EXPECT_TRUE(
      is_error(put_json("/v1/tailnet/peers", {{"peer", json::array()}}), 400, "the body must be"));
  EXPECT_TRUE(is_error(client().Delete("/v1/tailnet/peers"), 405, "allowed: GET, PUT"));
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

TEST_F(AdminApi, CtlPeerAddTakesIPv6AllowedIpsAndPeersShowThem) {
  start();
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey2), "--allowed-ips",
                 "FD7A:115C:A1E0::2/128,10.9.0.0/24"}),
            kCtlOk)
      << err_;
  EXPECT_EQ(ctl({"peers"}), kCtlOk) << err_;
  EXPECT_NE(out_.find("10.9.0.0/24,fd7a:115c:a1e0::2/128"), std::string::npos) << out_;
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey1), "--allowed-ips", "fe80::/64"}), kCtlRefused);
  EXPECT_NE(err_.find("link-local"), std::string::npos) << err_;
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
  ok_json(client().Post("/v1/drain", R"({"on": false})", "application/json"));
  const json before = ok_json(client().Get("/v1/status"));
  const json reply = ok_json(put_json("/v1/tailnet", {{"state", "ok"},
                                                      {"since_unix_ms", 1'700'000'000'000},
                                                      {"last_netmap_unix_ms", 1'700'000'000'000},
                                                      {"node_key", "nodekey:00"},
                                                      {"login_server", "https://hs.lab"}}));
  // Health is not configuration: the generation and the last update stay, as in the Gateway.
  const json after = ok_json(client().Get("/v1/status"));
  EXPECT_EQ(reply["generation"], before["generation"]);
  EXPECT_EQ(after["generation"], before["generation"]);
  EXPECT_EQ(after["last_update"], before["last_update"]);
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

TEST_F(AdminApi, TailnetAddressesAreCanonicalAndBadOnesRefused) {
  start();
  ok_json(
      put_json("/v1/tailnet",
               {{"state", "ok"}, {"addresses", {"100.64.0.1/32", "fd7a:115c:a1e0:0::0001/128"}}}));
  EXPECT_EQ(ok_json(client().Get("/v1/tailnet"))["addresses"],
            json({"100.64.0.1", "fd7a:115c:a1e0::1"}));
  const std::vector<std::pair<json, std::string>> bad = {
      {json({"100.64.0.0/10"}), "is not a host address"},
      {json({"100.64.0.256"}), "is not an IPv4 or IPv6 address"},
      {json({"fd7a::1/64"}), "is not a host address"},
      {json({1}), "is not an address string"},
      {json("100.64.0.1"), "must be an array"},
      {json(std::vector<std::string>(9, "100.64.0.1")), "at most 8"},
  };
  for (const auto& [value, want] : bad)
    EXPECT_TRUE(
        is_error(put_json("/v1/tailnet", {{"state", "ok"}, {"addresses", value}}), 400, want))
        << value.dump();
  // A refused report changes nothing.
  EXPECT_EQ(ok_json(client().Get("/v1/tailnet"))["addresses"],
            json({"100.64.0.1", "fd7a:115c:a1e0::1"}));
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

// HTTP: strict framing, limits whatever the encoding, auth before the body, slow clients.

TEST_F(AdminApi, AmbiguousOrMalformedRequestsAre400AndReachNothing) {
  start();
  const std::string auth = "Authorization: Bearer " + std::string(kToken) + "\r\n";
  const std::string body(kHttpsOnly);
  const std::string n = std::to_string(body.size());
  const std::string put =
      "PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n" + auth;
  const std::string get = "GET /v1/status HTTP/1.1\r\nHost: x\r\n";
  const std::string nul_token =
      "Authorization: Bearer " + std::string(kToken) + std::string(1, '\0') + "x\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"two different Content-Lengths",
       put + "Content-Length: " + n + "\r\nContent-Length: " + std::to_string(body.size() + 1) +
           "\r\n\r\n" + body + " "},
      {"Content-Length: +N", put + "Content-Length: +" + n + "\r\n\r\n" + body},
      {"Content-Length: Nabc", put + "Content-Length: " + n + "abc\r\n\r\n" + body},
      {"xchunked with a Content-Length",
       put + "Transfer-Encoding: xchunked\r\nContent-Length: " + n + "\r\n\r\n" + body},
      {"chunked with a Content-Length",
       put + "Transfer-Encoding: chunked\r\nContent-Length: " + n + "\r\n\r\n" + chunked(body, 64)},
      {"a list of codings", put + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(body, 64)},
      {"a chunk extension",
       put + "Transfer-Encoding: chunked\r\n\r\n5;x=1\r\n{\"a\":\r\n0\r\n\r\n"},
      {"a chunk size with a sign",
       put + "Transfer-Encoding: chunked\r\n\r\n+5\r\n{\"a\":\r\n0\r\n\r\n"},
      {"a trailer", put + "Transfer-Encoding: chunked\r\n\r\n" +
                        chunked(body, 64).substr(0, chunked(body, 64).size() - 2) +
                        "X-T: 1\r\n\r\n"},
      {"a NUL inside the bearer token", get + nul_token + "\r\n"},
      {"a control byte in a header", get + auth +
                                         "X-Note: a\x01"
                                         "b\r\n\r\n"},
      {"bare LF line ends",
       "GET /v1/status HTTP/1.1\nHost: x\nAuthorization: Bearer " + std::string(kToken) + "\n\n"},
      {"a folded header", get + auth + "X-A: 1\r\n b\r\n\r\n"},
      {"a space before the colon", "GET /v1/status HTTP/1.1\r\nHost : x\r\n" + auth + "\r\n"},
      {"no Host", "GET /v1/status HTTP/1.1\r\n" + auth + "\r\n"},
      {"two Authorization headers", get + auth + auth + "\r\n"},
      {"an absolute target", "GET http://x/v1/status HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"},
      {"HTTP/1.2", "GET /v1/status HTTP/1.2\r\nHost: x\r\n" + auth + "\r\n"},
  };
  for (const auto& [name, request] : cases) {
    const std::string response = raw_exchange(server_.port(), request);
    EXPECT_EQ(status_code(response), 400) << name << ": " << response;
    EXPECT_NE(response.find("Connection: close"), std::string::npos) << name;
    EXPECT_NE(response.find("{\"error\":"), std::string::npos) << name << ": " << response;
  }
  EXPECT_TRUE(control_.sources_seen().empty());  // nothing reached the control thread
  EXPECT_EQ(control_.view()->policy_source, "file");
  EXPECT_EQ(refused(server_.counters(), http::Refusal::kMalformed), cases.size());
  // A Content-Encoding (a compressed body could expand without bound) is 415, unread.
  EXPECT_EQ(status_code(raw_exchange(
                server_.port(), put + "Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd")),
            415);
  // The same request, well-formed, is applied: the cases failed on their framing only.
  EXPECT_EQ(
      status_code(raw_exchange(server_.port(), put + "Content-Length: " + n + "\r\n\r\n" + body)),
      200);
  EXPECT_EQ(control_.view()->policy_source, "admin");
}

TEST_F(AdminApi, ChunkedBodiesHaveTheSameLimitAsOthers) {
  options_.max_body_bytes = 1024;
  start();
  const std::string head =
      "PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
      "Authorization: Bearer " +
      std::string(kToken) + "\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string big = "{\n// " + std::string(2000, 'x') + "\n}";
  const std::string refused_big = raw_exchange(server_.port(), head + chunked(big, 100));
  EXPECT_EQ(status_code(refused_big), 413) << refused_big;
  EXPECT_NE(refused_big.find("too large"), std::string::npos) << refused_big;
  EXPECT_EQ(control_.view()->generation, 0u);
  // One chunk announcing more than the limit is refused before its data is read.
  EXPECT_EQ(status_code(raw_exchange(server_.port(), head + "100000\r\n")), 413);
  // Within the limit, chunked is as good as Content-Length.
  const std::string ok = raw_exchange(server_.port(), head + chunked(kHttpsOnly, 50));
  EXPECT_EQ(status_code(ok), 200) << ok;
  EXPECT_EQ(control_.view()->policy_source, "admin");
  EXPECT_EQ(refused(server_.counters(), http::Refusal::kBodyTooLarge), 2u);
}

TEST_F(AdminApi, UnauthenticatedHugeChunkedUploadIsRefusedBeforeItsBodyIsRead) {
  start();
  RawConnection c(server_.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(
      c.send("PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
             "Transfer-Encoding: chunked\r\n\r\n"));
  constexpr uint64_t kAttempt = 300ull << 20;
  std::atomic<uint64_t> sent{0};
  std::thread sender([&] {
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
    while (sent < kAttempt && c.send(chunk)) sent += chunk.size();
  });
  const auto began = std::chrono::steady_clock::now();
  const std::string response = c.receive_all(10s);
  sender.join();  // ends when the server closes the connection
  EXPECT_EQ(status_code(response), 401) << response.substr(0, 200);
  EXPECT_NE(response.find("missing 'Authorization: Bearer <token>'"), std::string::npos);
  // What the client could push before the close is what the socket buffers hold, not 300 MB.
  EXPECT_LT(sent.load(), 48ull << 20);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 5s);
  EXPECT_EQ(refused(server_.counters(), http::Refusal::kUnauthorized), 1u);
  // The server is fine afterwards.
  ok_json(client().Get("/v1/status"));
}

TEST_F(AdminApi, SlowClientsNeverHoldBackOtherRequests) {
  options_.head_timeout = 2500ms;
  start();
  MetricsServer metrics;
  ASSERT_TRUE(metrics
                  .start(
                      "127.0.0.1:0", [] { return std::string("# nothing\n"); },
                      [] {
                        return Readiness{true, ""};
                      })
                  .ok());
  // Ten slow clients on each listener, each sending its head one byte a second.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 10; ++i) {
    slow.push_back(std::make_unique<RawConnection>(server_.port()));
    slow.push_back(std::make_unique<RawConnection>(metrics.port()));
  }
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    const std::string head = "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t i = 0; i < head.size() && !done; ++i) {
      for (auto& c : slow) c->send(head.substr(i, 1));
      for (int t = 0; t < 10 && !done; ++t) std::this_thread::sleep_for(100ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  for (int round = 0; round < 3; ++round) {
    auto began = std::chrono::steady_clock::now();
    ok_json(client().Get("/v1/status"));
    EXPECT_LT(std::chrono::steady_clock::now() - began, 1s) << "admin, round " << round;
    began = std::chrono::steady_clock::now();
    httplib::Client m("127.0.0.1", metrics.port());
    auto ready = m.Get("/readyz");
    ASSERT_TRUE(ready) << httplib::to_string(ready.error());
    EXPECT_EQ(ready->status, 200);
    EXPECT_LT(std::chrono::steady_clock::now() - began, 1s) << "readyz, round " << round;
    std::this_thread::sleep_for(300ms);
  }
  // exitgwctl too.
  EXPECT_EQ(ctl({"status"}), kCtlOk) << err_;
  // Past the head timeout each slow client got 408 and was closed.
  for (auto& c : slow) {
    const std::string r = c->receive_all(4s);
    EXPECT_EQ(status_code(r), 408) << r;
  }
  done = true;
  trickle.join();
  EXPECT_EQ(refused(server_.counters(), http::Refusal::kTimeout), 10u);
  EXPECT_EQ(refused(metrics.counters(), http::Refusal::kTimeout), 10u);
}

TEST_F(AdminApi, MetricsListenerServesOnlyGetAndHeadOfItsPaths) {
  MetricsServer metrics;
  ASSERT_TRUE(metrics
                  .start(
                      "127.0.0.1:0", [] { return std::string("exitgw_up 1\n"); },
                      [] {
                        return Readiness{true, ""};
                      })
                  .ok());
  const uint16_t port = metrics.port();
  // A 200 MB POST is answered on its head: nothing of the body is waited for.
  const auto began = std::chrono::steady_clock::now();
  const std::string post = raw_exchange(
      port, "POST /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n0123456789");
  EXPECT_EQ(status_code(post), 405) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos) << post;
  EXPECT_LT(std::chrono::steady_clock::now() - began, 2s);
  EXPECT_EQ(status_code(raw_exchange(port,
                                     "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")),
            405);
  EXPECT_EQ(status_code(raw_exchange(port, "PUT /healthz HTTP/1.1\r\nHost: x\r\n\r\n")), 405);
  EXPECT_EQ(status_code(raw_exchange(port, "DELETE /readyz HTTP/1.1\r\nHost: x\r\n\r\n")), 405);
  EXPECT_EQ(status_code(raw_exchange(port, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")), 404);
  EXPECT_EQ(status_code(raw_exchange(
                port, "GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")),
            413);
  EXPECT_EQ(status_code(raw_exchange(port,
                                     "GET /readyz HTTP/1.1\r\nHost: x\r\n"
                                     "Content-Length: 1\r\nContent-Length: 2\r\n\r\n")),
            400);
  const std::string head = raw_exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_code(head), 200) << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  const std::string get = raw_exchange(port, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_code(get), 200) << get;
  EXPECT_NE(get.find("exitgw_up 1"), std::string::npos);
  httplib::Client client("127.0.0.1", port);
  auto ready = client.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->body, "ready\n");
  const auto& c = metrics.counters();
  EXPECT_EQ(refused(c, http::Refusal::kMethodNotAllowed), 4u);
  EXPECT_EQ(refused(c, http::Refusal::kNotFound), 1u);
  EXPECT_EQ(refused(c, http::Refusal::kBodyTooLarge), 1u);
  EXPECT_EQ(refused(c, http::Refusal::kMalformed), 1u);
  EXPECT_EQ(c.requests.load(), 3u);
}

// The gateway itself, and one status per kind of refusal.

TEST_F(AdminApi, PeersThatAreTheGatewayAre400OnEveryEndpoint) {
  start();
  const auto put_one = [&](const json& peer) { return put_json(peer_path(kKey2), peer); };
  const auto put_set = [&](json peer) {
    peer["public_key"] = kKey2;
    return put_json("/v1/peers", {{"peers", {peer}}});
  };
  const json own_key = {{"allowed_ips", {"10.9.0.0/24"}}};
  EXPECT_TRUE(is_error(put_json(peer_path(kSelfKey), own_key), 400, "the gateway's own key"));
  json own_key_in_set = own_key;
  own_key_in_set["public_key"] = kSelfKey;
  EXPECT_TRUE(
      is_error(put_json("/v1/peers", {{"peers", {own_key_in_set}}}), 400, "the gateway's own key"));
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"255.255.255.255:51820", "the broadcast address"},
      {"224.0.0.5:51820", "a multicast address"},
      {"239.1.2.3:51820", "a multicast address"},
      {"0.0.0.0:51820", "unspecified"},
      {"127.0.0.1:51820", "loopback"},
      {"10.0.0.1:51820", "the gateway's own address"},
      {"192.0.2.1:51820", "the gateway's own address"},
      {"10.0.0.255:51820", "the broadcast address of the gateway's subnet 10.0.0.0/24"},
      {"198.51.100.7:4000", "the gateway's own NAT pool"},
      {"[ff02::1]:51820", "multicast"},
      {"[::1]:51820", "::1"},
  };
  for (const auto& [endpoint, why] : endpoints) {
    const json peer = {{"allowed_ips", {"10.9.0.0/24"}}, {"endpoint", endpoint}};
    EXPECT_TRUE(is_error(put_one(peer), 400, why)) << endpoint;
    EXPECT_TRUE(is_error(put_set(peer), 400, why)) << endpoint;
  }
  EXPECT_EQ(ctl({"peer", "add", std::string(kKey2), "--allowed-ips", "10.9.0.0/24", "--endpoint",
                 "255.255.255.255:51820"}),
            kCtlRefused);
  EXPECT_NE(err_.find("refused (400)"), std::string::npos) << err_;
  EXPECT_EQ(control_.view()->generation, 0u);
  // A neighbour of those is an ordinary endpoint.
  ok_json(put_one({{"allowed_ips", {"10.9.0.0/24"}}, {"endpoint", "10.0.0.2:51820"}}));
}

// An IPv6 endpoint inside the gateway's IPv6 NAT pool is the gateway, as an IPv4 one in its NAT
// pool is, with either --nat6_mode: NPTv6 translates to a /48 or shorter prefix, stateful NAT66
// to addresses or /112../128 ranges. Their neighbours just outside are ordinary endpoints.
TEST_F(AdminApi, Ipv6EndpointsInTheGatewaysIpv6NatPoolAre400OnEveryEndpoint) {
  const auto prefix6 = [](const char* text) {
    auto p = parse_ipv6_prefix(text);
    EXPECT_TRUE(p.ok()) << text;
    return *p;
  };
  const struct {
    const char* mode;
    std::vector<Ipv6Prefix> pool6;
    std::vector<std::string> inside, outside;
  } modes[] = {
      {"nptv6",
       {prefix6("2001:db8:a00::/48")},
       {"[2001:db8:a00::1]:51820", "[2001:db8:a00:ffff:ffff:ffff:ffff:ffff]:4000"},
       {"[2001:db8:a01::1]:51820", "[2001:db8:9ff:ffff::1]:51820"}},
      {"stateful",
       {prefix6("2001:db8:100::/120"), prefix6("2001:db8:100:1::7/128")},
       {"[2001:db8:100::]:51820", "[2001:db8:100::ff]:4000", "[2001:db8:100:1::7]:51820"},
       {"[2001:db8:100::100]:51820", "[2001:db8:100:1::8]:51820"}},
  };
  start();
  uint64_t generation = 0;
  for (const auto& m : modes) {
    GatewaySelf self = model_self();
    self.nat_pool6 = m.pool6;
    control_.set_self(self);
    for (const std::string& endpoint : m.inside) {
      const json peer = {{"allowed_ips", {"10.9.0.0/24"}}, {"endpoint", endpoint}};
      json in_set = peer;
      in_set["public_key"] = kKey2;
      EXPECT_TRUE(is_error(put_json(peer_path(kKey2), peer), 400, "in the gateway's own NAT pool"))
          << m.mode << " " << endpoint;
      EXPECT_TRUE(is_error(put_json("/v1/peers", {{"peers", {in_set}}}), 400,
                           "in the gateway's own NAT pool"))
          << m.mode << " " << endpoint;
      EXPECT_EQ(ctl({"peer", "add", std::string(kKey2), "--allowed-ips", "10.9.0.0/24",
                     "--endpoint", endpoint}),
                kCtlRefused)
          << m.mode << " " << endpoint;
      EXPECT_NE(err_.find("in the gateway's own NAT pool"), std::string::npos) << err_;
      EXPECT_EQ(control_.view()->generation, generation) << m.mode << " " << endpoint;
    }
    for (const std::string& endpoint : m.outside) {
      ok_json(
          put_json(peer_path(kKey2), {{"allowed_ips", {"10.9.0.0/24"}}, {"endpoint", endpoint}}));
      EXPECT_EQ(control_.view()->generation, ++generation) << m.mode << " " << endpoint;
    }
  }
}

TEST_F(AdminApi, EachKindOfRefusalHasOneStatusOnEveryEndpoint) {
  start();
  // An allowed IP another peer holds: 409 on the single and the whole-set endpoint.
  const json clash = {{"allowed_ips", {"100.64.0.99/32"}}};
  EXPECT_TRUE(is_error(put_json(peer_path(kKey2), clash), 409, "is allowed for both"));
  json clash_in_set = clash;
  clash_in_set["public_key"] = kKey2;
  EXPECT_TRUE(
      is_error(put_json("/v1/peers", {{"peers", {clash_in_set}}}), 409, "is allowed for both"));
  // Two peers of one set sharing a prefix is the same clash.
  const json twins = {{"peers",
                       {{{"public_key", kKey1}, {"allowed_ips", {"10.9.0.0/24"}}},
                        {{"public_key", kKey2}, {"allowed_ips", {"10.9.0.0/24"}}}}}};
  EXPECT_TRUE(is_error(put_json("/v1/peers", twins), 409, "is allowed for both"));
  // A key another source owns: 409 everywhere.
  EXPECT_TRUE(is_error(put_json(peer_path(kFileKey), {{"allowed_ips", {"10.9.0.0/24"}}}), 409,
                       "belongs to source file"));
  EXPECT_TRUE(is_error(
      put_json("/v1/peers",
               {{"peers", {{{"public_key", kFileKey}, {"allowed_ips", {"10.9.0.0/24"}}}}}}),
      409, "belongs to source file"));
  EXPECT_TRUE(is_error(client().Delete(peer_path(kFileKey)), 409, "belongs to source file"));
  // A bad value: 400 everywhere.
  const json short_prefix = {{"allowed_ips", {"10.0.0.0/4"}}};
  EXPECT_TRUE(is_error(put_json(peer_path(kKey2), short_prefix), 400, "shorter than /8"));
  json short_in_set = short_prefix;
  short_in_set["public_key"] = kKey2;
  EXPECT_TRUE(is_error(put_json("/v1/peers", {{"peers", {short_in_set}}}), 400, "shorter than /8"));
  EXPECT_EQ(control_.view()->generation, 0u);
}

TEST_F(AdminApi, EveryRefusalIsCountedByReason) {
  start();
  EXPECT_EQ(client("").Get("/v1/status")->status, 401);
  EXPECT_EQ(client("wrong-token-wrong-token").Get("/v1/status")->status, 401);
  EXPECT_EQ(client("wrong-token-wrong-token").Delete("/v1/policy")->status, 401);
  EXPECT_EQ(put_json(peer_path(kKey2), {{"allowed_ips", {"100.64.0.99/32"}}})->status, 409);
  EXPECT_EQ(client().Put(peer_path(kKey2), "{", "application/json")->status, 400);
  EXPECT_EQ(client().Get(peer_path(kKey1))->status, 404);
  EXPECT_EQ(client().Post("/v1/drain", "{}", "text/plain")->status, 415);
  EXPECT_EQ(client().Post("/v1/status", "{}", "application/json")->status, 405);
  ok_json(client().Get("/v1/status"));
  const auto& c = server_.counters();
  EXPECT_EQ(refused(c, http::Refusal::kUnauthorized), 3u);
  EXPECT_EQ(refused(c, http::Refusal::kConflict), 1u);
  EXPECT_EQ(refused(c, http::Refusal::kInvalid), 1u);
  EXPECT_EQ(refused(c, http::Refusal::kNotFound), 1u);
  EXPECT_EQ(refused(c, http::Refusal::kUnsupportedMedia), 1u);
  EXPECT_EQ(refused(c, http::Refusal::kMethodNotAllowed), 1u);
  EXPECT_EQ(c.requests.load(), 6u);  // the 401s never reached a handler
  MetricFamilies mf(Labels{});
  add_listener_metrics(mf, "admin", c);
  const std::string text = serialize(mf.take());
  EXPECT_NE(
      text.find(R"(exitgw_http_requests_refused_total{listener="admin",reason="unauthorized"} 3)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(exitgw_http_requests_refused_total{listener="admin",reason="timeout"} 0)"),
            std::string::npos)
      << text;
}

// exitgwctl reads its files with a bound: no device, FIFO or directory, nothing past 16 MiB.
TEST(ExitgwctlFiles, PolicyAndPeersSetRefuseWhatIsNotASmallRegularFile) {
  TempDir dir;
  const std::string fifo = dir.write("fifo", "", 0600) + ".fifo";
  ASSERT_NO_FATAL_FAILURE(test::make_fifo(fifo));
  const std::string big = dir.write("big", "", 0600);
  std::filesystem::resize_file(big, (16u << 20) + 1);
  const std::string directory = std::filesystem::path(big).parent_path().string();
  const std::vector<std::pair<std::string, std::string>> files = {
      {"/dev/zero", "is a character device, not a regular file"},
      {fifo, "is a FIFO, not a regular file"},
      {directory, "is a directory, not a regular file"},
      {big, "has 16777217 bytes, more than the 16777216 allowed"},
  };
  for (const auto& [path, why] : files) {
    for (const char* what : {"policy", "peers"}) {
      // In a child with a deadline and a memory cap, so a reader without a bound fails the
      // test instead of taking the machine down.
      int pipe_fds[2];
      ASSERT_EQ(::pipe(pipe_fds), 0);
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(pipe_fds[0]);
        ::alarm(5);
#if !defined(__SANITIZE_ADDRESS__)
        const rlimit cap{1u << 30, 1u << 30};
        ::setrlimit(RLIMIT_AS, &cap);
#endif
        std::ostringstream out, err;
        const int code = run_ctl({"--server", "http://127.0.0.1:1", std::string(what), "set", path},
                                 CtlEnvironment{std::string(kToken)}, out, err);
        const std::string text = std::to_string(code) + " " + err.str();
        (void)!::write(pipe_fds[1], text.data(), text.size());
        ::_exit(0);
      }
      ::close(pipe_fds[1]);
      std::string text;
      char buf[512];
      ssize_t n;
      while ((n = ::read(pipe_fds[0], buf, sizeof(buf))) > 0) text.append(buf, n);
      ::close(pipe_fds[0]);
      int status = 0;
      ::waitpid(pid, &status, 0);
      EXPECT_TRUE(WIFEXITED(status)) << what << " set " << path << ": killed by a signal";
      EXPECT_EQ(text.substr(0, 2), std::to_string(kCtlUsage) + " ") << what << " set " << path;
      EXPECT_NE(text.find(why), std::string::npos) << what << " set " << path << ": " << text;
    }
  }
}

}  // namespace
}  // namespace exitgw::admin
