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
#include "control/admin/tailnet_api.h"
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

  // On the request head, before any body is read: a missing or wrong token is 401 at once.
  std::optional<http::Refused> admit(const http::RequestHead& head) const {
    const std::string* authorization = head.find("Authorization");
    if (authorization == nullptr)
      return http::Refused{401,
                           "missing 'Authorization: Bearer <token>' header",
                           http::Refusal::kUnauthorized,
                           {{"WWW-Authenticate", R"(Bearer realm="exitgw-admin")"}}};
    if (!token.accepts(*authorization))
      return http::Refused{
          401,
          "wrong bearer token",
          http::Refusal::kUnauthorized,
          {{"WWW-Authenticate", R"(Bearer realm="exitgw-admin", error="invalid_token")"}}};
    return std::nullopt;
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
  UpdateResult submit(Update update, std::string_view source) const {
    auto done = updates->submit(std::move(update), std::string(source));
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

  void reply_update(httplib::Response& res, Update update,
                    std::string_view source = kAdminSource) const {
    const UpdateResult result = submit(std::move(update), source);
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

  void get_tailnet_peers(const httplib::Request&, httplib::Response& res) const {
    if (auto v = current_view(res)) reply_json(res, peers_json(*v, kTailnetSource));
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

  // A source's whole peer set at once ({"peers": [peer, ...]}, each with its public_key):
  // every peer parsed and the set validated before anything applies; the source's peers not in
  // it are removed. PUT /v1/peers is the admin source's, PUT /v1/tailnet/peers the tailnet's.
  void put_peers(const httplib::Request& req, httplib::Response& res) const {
    put_peer_set(req, res, kAdminSource);
  }
  void put_tailnet_peers(const httplib::Request& req, httplib::Response& res) const {
    put_peer_set(req, res, kTailnetSource);
  }
  void put_peer_set(const httplib::Request& req, httplib::Response& res,
                    std::string_view source) const {
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
    reply_update(res, std::move(set), source);
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

  // One line per request that changes something or is refused before its handler.
  void audit(std::string_view method, std::string_view path, std::string_view remote,
             int status) const {
    if (!options.audit_log) return;
    if (method == "GET" && status < 400) return;
    log_info("admin API: " + printable(method.empty() ? "?" : method) + " " +
             printable(path.empty() ? "?" : path) + " from " + printable(remote) + " -> " +
             std::to_string(status));
  }
};

AdminServer::AdminServer() = default;
AdminServer::~AdminServer() {
  stop();
}

Status AdminServer::start(const AdminServerOptions& options, UpdateQueue& updates,
                          ViewSource view) {
  if (routes_) return make_error("the admin API is already running");
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
  // The listener has read the body within the limit already; this only backs it up.
  server->set_payload_max_length(options.max_body_bytes);

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
  const auto put_filter = [h](const httplib::Request& req, httplib::Response& res) {
    const auto body = h->json_body(req, res);
    if (!body) return;
    auto filter = policy::tailnet_filter_from_json(*body);
    if (!filter) return reply_error(res, 400, filter.error());
    h->reply_update(res, FilterReplace{std::move(*filter)});
  };
  const auto put_tailnet = [h](const httplib::Request& req, httplib::Response& res) {
    const auto body = h->json_body(req, res);
    if (!body) return;
    auto health = tailnet_health_from_json(*body);
    if (!health) return reply_error(res, 400, health.error());
    h->reply_update(res, TailnetReport{std::move(*health)});
  };
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const std::array<Route, 10> routes = {{
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
      {"/v1/filter",
       [h](const httplib::Request&, httplib::Response& res) {
         if (auto v = h->current_view(res)) reply_json(res, filter_json(*v));
       },
       nullptr, put_filter,
       [h](const httplib::Request&, httplib::Response& res) {
         h->reply_update(res, FilterReplace{std::nullopt});
       }},
      {"/v1/tailnet",
       [h, now_ms](const httplib::Request&, httplib::Response& res) {
         if (auto v = h->current_view(res))
           reply_json(res, tailnet_health_json(v->tailnet, now_ms()));
       },
       nullptr, put_tailnet, nullptr},
      {"/v1/tailnet/peers", bind(&Handlers::get_tailnet_peers), nullptr,
       bind(&Handlers::put_tailnet_peers), nullptr},
  }};
  for (const Route& route : routes) {
    std::string allow;
    for (const auto& [name, handler] :
         {std::pair{"GET", &route.get}, std::pair{"POST", &route.post},
          std::pair{"PUT", &route.put}, std::pair{"DELETE", &route.del}}) {
      if (*handler) allow += (allow.empty() ? "" : ", ") + std::string(name);
    }
    const auto wrap = [allow](const Handler& handler) -> httplib::Server::Handler {
      return [allow, handler](const httplib::Request& req, httplib::Response& res) {
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
  server->set_logger([h](const httplib::Request& req, const httplib::Response& res) {
    h->audit(req.method, req.path, req.remote_addr, res.status);
  });

  http::ListenerOptions lo;
  lo.name = "admin";
  lo.host = hp->host;
  lo.port = static_cast<uint16_t>(hp->port);
  lo.max_body_bytes = options.max_body_bytes;
  lo.head_timeout = options.head_timeout;
  lo.body_timeout = options.body_timeout;
  // Handlers may wait up to update_timeout for the control thread; reads do not, and with
  // this many workers a few stuck writes leave them room.
  lo.workers = 8;
  lo.error_body = [](int, std::string_view message) {
    return std::pair{std::string("application/json"), error_body(message)};
  };
  Status s = listener_.start(
      lo, *server, [h](const http::RequestHead& head) { return h->admit(head); },
      [h](const http::RequestHead& head, const std::string& remote, int status) {
        h->audit(head.method, head.path(), remote, status);
      });
  if (!s) {
    handlers_.reset();
    return make_error("--admin_listen: " + s.error() + " (address in use or not local?)");
  }
  routes_ = std::move(server);
  return Ok{};
}

void AdminServer::stop() {
  if (handlers_) handlers_->stopping.store(true, std::memory_order_relaxed);
  listener_.stop();
  routes_.reset();
  handlers_.reset();
}

}  // namespace exitgw::admin
