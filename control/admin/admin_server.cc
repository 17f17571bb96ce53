// The admin API's routes over cpp-httplib: auth, content checks, JSON, and the update round trip.
#include "control/admin/admin_server.h"

#include <httplib.h>

#include <array>
#include <exception>
#include <future>
#include <set>
#include <utility>

#include "control/admin/peer_json.h"
#include "control/admin/secret_file.h"
#include "control/log.h"
#include "control/net_parse.h"

namespace exitgw::admin {

namespace {

using nlohmann::json;

constexpr std::string_view kPeerPath = R"(/v1/peers/(.+))";

bool is_loopback(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  auto ip = parse_ipv4(host);
  return ip.ok() && (*ip >> 24) == 127;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 400:
      return "the request is malformed";
    case 401:
      return "missing or wrong bearer token";
    case 404:
      return "no such resource";
    case 405:
      return "method not allowed";
    case 413:
      return "the request body is too large";
    case 414:
      return "the request URI is too long";
    case 415:
      return "unsupported media type";
    case 503:
      return "the service is unavailable";
    default:
      return "the request failed";
  }
}

void reply_error(httplib::Response& res, int status, std::string_view message) {
  res.status = status;
  res.set_content(error_body(message), "application/json");
}

void reply_json(httplib::Response& res, const json& body) {
  res.status = 200;
  res.set_content(dump(body), "application/json");
}

int status_of(UpdateError error) {
  switch (error) {
    case UpdateError::kNone:
      return 200;
    case UpdateError::kInvalid:
      return 400;
    case UpdateError::kNotFound:
      return 404;
    case UpdateError::kConflict:
      return 409;
    case UpdateError::kUnavailable:
      return 503;
  }
  return 500;
}

// Request paths are percent-decoded by httplib, so they can hold any byte: escaped before they
// reach a log line or a message.
std::string printable(std::string_view s) {
  constexpr size_t kMaxShown = 200;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  if (s.size() > kMaxShown) out += "...";
  return out;
}

// Whether a Content-Type header names `media_type` (parameters such as charset ignored).
bool has_media_type(std::string_view content_type, std::string_view media_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  if (content_type.size() != media_type.size()) return false;
  for (size_t i = 0; i < media_type.size(); ++i) {
    const char c = content_type[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != media_type[i])
      return false;
  }
  return true;
}

bool is_json_media_type(std::string_view content_type) {
  return has_media_type(content_type, "application/json");
}

}  // namespace

// The state request handlers share; httplib calls them on its worker threads.
struct AdminServer::Handlers {
  AdminServerOptions options;
  BearerToken token;
  UpdateQueue* updates = nullptr;
  ViewSource view;
  std::atomic<bool> stopping{false};

  Handlers(AdminServerOptions o, std::string_view t, UpdateQueue& u, ViewSource v)
      : options(std::move(o)), token(t), updates(&u), view(std::move(v)) {}

  bool authorized(const httplib::Request& req, httplib::Response& res) const {
    if (!req.has_header("Authorization")) {
      res.set_header("WWW-Authenticate", R"(Bearer realm="exitgw-admin")");
      reply_error(res, 401, "missing 'Authorization: Bearer <token>' header");
      return false;
    }
    if (!token.accepts(req.get_header_value("Authorization"))) {
      res.set_header("WWW-Authenticate", R"(Bearer realm="exitgw-admin", error="invalid_token")");
      reply_error(res, 401, "wrong bearer token");
      return false;
    }
    return true;
  }

  // The body of a request that must carry JSON; null after replying with the error.
  std::optional<json> json_body(const httplib::Request& req, httplib::Response& res) const {
    const std::string type = req.get_header_value("Content-Type");
    if (!is_json_media_type(type)) {
      reply_error(res, 415,
                  "Content-Type must be application/json, got " +
                      (type.empty() ? std::string("none") : "'" + printable(type) + "'"));
      return std::nullopt;
    }
    auto body = parse_request_json(req.body);
    if (!body) {
      reply_error(res, 400, body.error());
      return std::nullopt;
    }
    return std::move(*body);
  }

  std::shared_ptr<const AdminView> current_view(httplib::Response& res) const {
    auto v = view();
    if (!v) reply_error(res, 503, "the control thread has not published its state yet; retry");
    return v;
  }

  // Submits an update and waits for the control thread, polling so stop() need not wait out the
  // timeout. On timeout the update stays queued and may still apply: the message says so.
  UpdateResult submit(Update update) const {
    auto done = updates->submit(std::move(update), std::string(kAdminSource));
    const auto deadline = std::chrono::steady_clock::now() + options.update_timeout;
    constexpr auto kPoll = std::chrono::milliseconds(20);
    while (done.wait_for(kPoll) != std::future_status::ready) {
      if (stopping.load(std::memory_order_relaxed) ||
          std::chrono::steady_clock::now() >= deadline) {
        return {UpdateError::kUnavailable,
                "the control thread did not answer within " +
                    std::to_string(options.update_timeout.count()) +
                    " ms; the update is still queued and may apply later: check the state "
                    "before retrying",
                0};
      }
    }
    return done.get();
  }

  void reply_update(httplib::Response& res, Update update) const {
    const UpdateResult result = submit(std::move(update));
    if (!result.ok()) {
      reply_error(res, status_of(result.error), result.message);
      return;
    }
    json body = {{"generation", result.generation}};
    if (!result.message.empty()) body["message"] = result.message;
    reply_json(res, body);
  }

  std::optional<wg::Key> url_key(const httplib::Request& req, httplib::Response& res) const {
    auto key = key_from_url(req.matches[1].str());
    if (!key) {
      reply_error(res, 400, "the key in the URL: " + key.error());
      return std::nullopt;
    }
    return *key;
  }

  void get_status(const httplib::Request&, httplib::Response& res) const {
    if (auto v = current_view(res)) reply_json(res, status_json(*v));
  }

  void get_peers(const httplib::Request&, httplib::Response& res) const {
    if (auto v = current_view(res)) reply_json(res, peers_json(*v));
  }

  void get_peer(const httplib::Request& req, httplib::Response& res) const {
    const auto key = url_key(req, res);
    if (!key) return;
    const auto v = current_view(res);
    if (!v) return;
    for (const AdminView::Peer& peer : v->peers) {
      if (peer.public_key == *key) return reply_json(res, peer_view_json(peer));
    }
    reply_error(res, 404, "no peer with public key " + wg::key_to_base64(*key));
  }

  void put_peer(const httplib::Request& req, httplib::Response& res) const {
    const auto key = url_key(req, res);
    if (!key) return;
    const auto body = json_body(req, res);
    if (!body) return;
    auto peer = peer_from_json(*body, &*key);
    if (!peer) return reply_error(res, 400, peer.error());
    reply_update(res, PeerUpsert{std::move(*peer)});
  }

  // The admin source's whole peer set at once ({"peers": [peer, ...]}, each with its
  // public_key): every peer parsed and the set validated before anything applies; the admin
  // peers not in it are removed.
  void put_peers(const httplib::Request& req, httplib::Response& res) const {
    const auto body = json_body(req, res);
    if (!body) return;
    if (!body->is_object() || body->size() != 1 || !body->contains("peers") ||
        !(*body)["peers"].is_array())
      return reply_error(res, 400, "the body must be {\"peers\": [peer, ...]} and nothing else");
    PeerSet set;
    std::set<wg::Key> seen;
    const json& peers = (*body)["peers"];
    set.peers.reserve(peers.size());
    for (size_t i = 0; i < peers.size(); ++i) {
      if (!peers[i].is_object() || !peers[i].contains("public_key"))
        return reply_error(res, 400, "peers[" + std::to_string(i) + "]: needs a public_key");
      auto peer = peer_from_json(peers[i], nullptr);
      if (!peer) return reply_error(res, 400, "peers[" + std::to_string(i) + "]: " + peer.error());
      if (!seen.insert(peer->public_key).second)
        return reply_error(res, 400,
                           "peers[" + std::to_string(i) + "]: public key " +
                               wg::key_to_base64(peer->public_key) + " appears twice");
      set.peers.push_back(std::move(*peer));
    }
    reply_update(res, std::move(set));
  }

  void delete_peer(const httplib::Request& req, httplib::Response& res) const {
    const auto key = url_key(req, res);
    if (key) reply_update(res, PeerRemove{*key});
  }

  void get_policy(const httplib::Request&, httplib::Response& res) const {
    if (auto v = current_view(res)) reply_json(res, policy_json(*v));
  }

  // The body is the policy itself, HuJSON as in --policy_file (comments and trailing commas
  // allowed), so an operator can PUT the file as it is. Control parses and compiles it; its
  // error (with line:column) comes back as 400.
  void put_policy(const httplib::Request& req, httplib::Response& res) const {
    const std::string type = req.get_header_value("Content-Type");
    if (!has_media_type(type, "text/plain") && !has_media_type(type, "application/hujson")) {
      return reply_error(res, 415,
                         "Content-Type must be text/plain or application/hujson (the policy's "
                         "HuJSON text), got " +
                             (type.empty() ? std::string("none") : "'" + printable(type) + "'"));
    }
    reply_update(res, PolicyReplace{req.body});
  }

  void delete_policy(const httplib::Request&, httplib::Response& res) const {
    reply_update(res, PolicyReplace{std::nullopt});
  }

  // POST bodies of one flag: {"approved": ...}, {"destination": ...}, {"on": ...}.
  template <typename MakeUpdate>
  void post_flag(const httplib::Request& req, httplib::Response& res, std::string_view field,
                 bool nullable, MakeUpdate&& make) const {
    const auto body = json_body(req, res);
    if (!body) return;
    auto flag = flag_from_json(*body, field, nullable);
    if (!flag) return reply_error(res, 400, flag.error());
    reply_update(res, make(*flag));
  }

  void audit(const httplib::Request& req, const httplib::Response& res) const {
    if (!options.audit_log) return;
    if (req.method == "GET" && res.status != 401) return;
    log_info("admin API: " + printable(req.method) + " " + printable(req.path) + " from " +
             printable(req.remote_addr) + " -> " + std::to_string(res.status));
  }
};

AdminServer::AdminServer() = default;
AdminServer::~AdminServer() {
  stop();
}

Status AdminServer::start(const AdminServerOptions& options, UpdateQueue& updates,
                          ViewSource view) {
  if (server_) return make_error("the admin API is already running");
  auto hp = parse_host_port(options.listen);
  if (!hp) return make_error("--admin_listen: " + hp.error());
  if (!options.allow_non_loopback && !is_loopback(hp->host)) {
    return make_error("--admin_listen: " + hp->host +
                      " is not a loopback address; the admin API changes peers and must stay on "
                      "the host (127.0.0.1, ::1 or localhost). To serve it elsewhere anyway, "
                      "pass --admin_allow_non_loopback and put TLS in front of it");
  }
  if (options.token_file.empty()) {
    return make_error(
        "--admin_token_file is required to serve the admin API: create one with "
        "`openssl rand -hex 32 > FILE; chmod 600 FILE`");
  }
  auto token = read_token_file(options.token_file);
  if (!token) return make_error("--admin_token_file: " + token.error());
  handlers_ = std::make_unique<Handlers>(options, *token, updates, std::move(view));
  wg::secure_zero(token->data(), token->size());

  auto server = std::make_unique<httplib::Server>();
  Handlers* h = handlers_.get();
  server->set_payload_max_length(options.max_body_bytes);
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  // httplib writes a response's headers and body separately: with Nagle on, a keep-alive
  // client's delayed ACK holds the body back about 40 ms per request.
  server->set_tcp_nodelay(true);

  // Every route answers every method: the allowed ones run their handler after auth, the
  // others get 405 with an Allow header, so a wrong method is not mistaken for a wrong path.
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  struct Route {
    std::string pattern;
    Handler get, post, put, del;
  };
  const auto bind = [h](auto member) -> Handler {
    return [h, member](const httplib::Request& req, httplib::Response& res) {
      (h->*member)(req, res);
    };
  };
  const std::array<Route, 7> routes = {{
      {"/v1/status", bind(&Handlers::get_status), nullptr, nullptr, nullptr},
      {"/v1/peers", bind(&Handlers::get_peers), nullptr, bind(&Handlers::put_peers), nullptr},
      {std::string(kPeerPath), bind(&Handlers::get_peer), nullptr, bind(&Handlers::put_peer),
       bind(&Handlers::delete_peer)},
      {"/v1/policy", bind(&Handlers::get_policy), nullptr, bind(&Handlers::put_policy),
       bind(&Handlers::delete_policy)},
      {"/v1/approval", nullptr,
       [h](const httplib::Request& req, httplib::Response& res) {
         h->post_flag(req, res, "approved", true,
                      [](std::optional<bool> on) { return Update{ApprovalSet{on}}; });
       },
       nullptr, nullptr},
      {"/v1/logging", nullptr,
       [h](const httplib::Request& req, httplib::Response& res) {
         h->post_flag(req, res, "destination", false,
                      [](std::optional<bool> on) { return Update{DestinationLogging{*on}}; });
       },
       nullptr, nullptr},
      {"/v1/drain", nullptr,
       [h](const httplib::Request& req, httplib::Response& res) {
         h->post_flag(req, res, "on", false,
                      [](std::optional<bool> on) { return Update{Drain{*on}}; });
       },
       nullptr, nullptr},
  }};
  for (const Route& route : routes) {
    std::string allow;
    for (const auto& [name, handler] :
         {std::pair{"GET", &route.get}, std::pair{"POST", &route.post},
          std::pair{"PUT", &route.put}, std::pair{"DELETE", &route.del}}) {
      if (*handler) allow += (allow.empty() ? "" : ", ") + std::string(name);
    }
    const auto wrap = [h, allow](const Handler& handler) -> httplib::Server::Handler {
      return [h, allow, handler](const httplib::Request& req, httplib::Response& res) {
        if (!h->authorized(req, res)) return;
        if (!handler) {
          res.set_header("Allow", allow);
          return reply_error(res, 405,
                             printable(req.method) + " is not allowed on " + printable(req.path) +
                                 " (allowed: " + allow + ")");
        }
        handler(req, res);
      };
    };
    server->Get(route.pattern, wrap(route.get));
    server->Post(route.pattern, wrap(route.post));
    server->Put(route.pattern, wrap(route.put));
    server->Delete(route.pattern, wrap(route.del));
    server->Patch(route.pattern, wrap(nullptr));
    server->Options(route.pattern, wrap(nullptr));
  }
  // Whatever httplib answers itself (no route, body too large, bad request line) still gets a
  // JSON error body; responses our handlers wrote pass through untouched.
  server->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string message = reason_phrase(res.status);
        if (res.status == 404)
          message = "no route for " + printable(req.method) + " " + printable(req.path) +
                    " (the API lives under /v1/)";
        reply_error(res, res.status, message);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        reply_error(res, 500, "internal error while handling the request");
      });
  server->set_logger(
      [h](const httplib::Request& req, const httplib::Response& res) { h->audit(req, res); });

  int port = hp->port;
  if (port == 0) {
    port = server->bind_to_any_port(hp->host.c_str());
    if (port <= 0) port = -1;
  } else if (!server->bind_to_port(hp->host.c_str(), port)) {
    port = -1;
  }
  if (port < 0) {
    handlers_.reset();
    return make_error("--admin_listen: cannot listen on " + options.listen +
                      " (address in use or not local?)");
  }
  port_ = static_cast<uint16_t>(port);
  server_ = std::move(server);
  listener_done_ = false;
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    listener_done_ = true;
  });
  // httplib's stop() does nothing until the listener thread has marked itself running, so a
  // stop() right after start() would leave that thread in accept() for ever: wait for it.
  while (!server_->is_running() && !listener_done_)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return Ok{};
}

void AdminServer::stop() {
  if (handlers_) handlers_->stopping.store(true, std::memory_order_relaxed);
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
  handlers_.reset();
}

}  // namespace exitgw::admin
