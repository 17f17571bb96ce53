// exitgwctl: parses a command, makes one admin API request, prints the answer for a person (or
// the API's JSON with --json), and maps the outcome to an exit code.
#include "tools/exitgwctl_lib.h"

#include <httplib.h>

#include <charconv>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "common/result.h"
#include "control/admin/secret_file.h"

namespace exitgw::admin {

namespace {

using nlohmann::json;

constexpr std::string_view kDefaultServer = "http://127.0.0.1:9551";

constexpr std::string_view kHelp = R"(exitgwctl: manage an exitgw gateway through its admin API.

Usage: exitgwctl [OPTIONS] COMMAND [ARGS]

Options (anywhere on the line; --name=value also works):
  --server URL            admin API address (default http://127.0.0.1:9551, the daemon's
                          --admin_listen)
  --token-file PATH       file holding the bearer token (the daemon's --admin_token_file); it
                          must be owner-only (chmod 600). Without it, $EXITGW_TOKEN is used.
  --json                  print the API's JSON instead of tables
  -h, --help              this text

Commands:
  status                  generation, last update, approval, logging, drain, policy source,
                          source health, and the tailnet connector's state
  peers                   every peer: key, source, user, allowed IPs, endpoint, handshake, bytes
  peers set FILE          replace every peer the admin API added with the set in FILE
                          ({"peers": [peer, ...]}, each as `peer add` would send it, with its
                          public_key); checked whole, a bad set changes nothing
  peer get KEY            one peer
  peer add KEY --allowed-ips A[,B...] [--endpoint IP:PORT|[IPv6]:PORT] [--user USER] [--tags T1[,T2...]]
           [--keepalive SECONDS] [--preshared-key-file PATH]
                          add the peer, or replace it whole if the admin API added it before
  peer remove KEY         remove a peer the admin API added
  approve                 set this node's exit approval to approved
  unapprove               set it to unapproved (overrides autoApprovers)
  approval clear          drop the override: the approvals file and autoApprovers decide again
  logging on|off          destination logging
  drain on|off            refuse new handshakes so the node can leave a fleet
  policy show             the running exit policy: its source (default, file, admin, etcd),
                          rules, classes and text
  policy set FILE         replace the exit policy with FILE (HuJSON, as --policy_file); it
                          overrides the policy file until cleared. A bad policy changes nothing
  policy clear            drop the override: --policy_file (or the default policy) again
  filter show             the tailnet's packet filter (exitgw-connector sets it), if one is set
  filter set FILE         replace it with FILE ({"rules": [{"src": [...], "dst": [{"prefix",
                          "ports": [lo, hi]}], "protocols": [...]}]}); while set it decides
                          instead of the HuJSON policy. A bad filter changes nothing
  filter clear            drop it: the HuJSON policy decides again

KEY is a WireGuard public key as `wg pubkey` prints it (base64url also works).
Peer rules are the peers file's: allowed IPs IPv4 /8 or IPv6 /16 or longer without host bits,
tags tag:<name>.

Exit codes:
  0  done
  1  the server refused the request (4xx: bad value, unknown peer, conflict, bad token);
     its message is on stderr
  2  usage error, or the token or preshared key file cannot be used
  3  the server cannot be reached, or it failed (5xx, e.g. the control thread is stuck)

exitgwctl never reads standard input.
)";

// A command line that cannot run: the exit code and what to tell the user.
struct Failure {
  int code;
  std::string message;
};

struct Options {
  std::string server = std::string(kDefaultServer);
  std::string token_file;
  bool json = false;
  bool help = false;
  // Only for `peer add`.
  std::map<std::string, std::string> peer;
  std::vector<std::string> words;  // the command and its positional arguments
};

// Options that take a value, and whether only `peer add` accepts them.
const std::map<std::string_view, bool>& valued_options() {
  static const std::map<std::string_view, bool> kOptions = {
      {"--server", false},     {"--token-file", false},
      {"--allowed-ips", true}, {"--endpoint", true},
      {"--user", true},        {"--tags", true},
      {"--keepalive", true},   {"--preshared-key-file", true},
  };
  return kOptions;
}

std::optional<Failure> parse_args(const std::vector<std::string>& args, Options& o) {
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_done || arg.size() < 2 || arg[0] != '-') {
      o.words.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      o.help = true;
      continue;
    }
    if (arg == "--json") {
      o.json = true;
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const auto known = valued_options().find(name);
    if (known == valued_options().end())
      return Failure{kCtlUsage, "unknown option " + name + " (see --help)"};
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Failure{kCtlUsage, name + " needs a value"};
    }
    if (name == "--server") {
      o.server = value;
    } else if (name == "--token-file") {
      o.token_file = value;
    } else {
      if (o.peer.count(name) != 0) return Failure{kCtlUsage, name + " is given twice"};
      o.peer[name] = value;
    }
  }
  return std::nullopt;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    const size_t comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    out.emplace_back(item);
    if (comma == std::string_view::npos) return out;
    s = s.substr(comma + 1);
  }
}

// A key for the URL path: base64url, so '/' and '+' need no escaping; anything else unusual is
// percent-encoded and left for the server to refuse.
std::string key_path(std::string_view key) {
  std::string out = "/v1/peers/";
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : key) {
    if (c == '=') continue;
    if (c == '+') c = '-';
    if (c == '/') c = '_';
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '_';
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[static_cast<unsigned char>(c) & 15];
    }
  }
  return out;
}

std::string format_time(const json& unix_ms) {
  if (!unix_ms.is_number_integer()) return "never";
  const time_t seconds = static_cast<time_t>(unix_ms.get<int64_t>() / 1000);
  tm t{};
  gmtime_r(&seconds, &t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

std::string format_bytes(const json& bytes) {
  if (!bytes.is_number()) return "-";
  double v = bytes.get<double>();
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), unit == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::string text_of(const json& j, std::string_view fallback = "-") {
  if (j.is_string())
    return j.get<std::string>().empty() ? std::string(fallback) : j.get<std::string>();
  if (j.is_null()) return std::string(fallback);
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  return j.dump();
}

std::string joined(const json& list) {
  if (!list.is_array() || list.empty()) return "-";
  std::string out;
  for (const json& item : list) out += (out.empty() ? "" : ",") + text_of(item);
  return out;
}

std::string on_off(const json& j) {
  return j.is_boolean() && j.get<bool>() ? "on" : "off";
}

// Left-aligned columns, two spaces apart.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size());
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

// "tailnet: ok", "tailnet: stale since <UTC time> (<message>)", or no connector at all.
std::string tailnet_line(const json& t) {
  const std::string state = t.value("state", "none");
  if (state == "none") return "tailnet: no connector has reported";
  std::string line = "tailnet: " + state;
  if (state != "ok") {
    const json since = t.value("since_unix_ms", json());
    if (since.is_number_integer()) line += " since " + format_time(since);
    const std::string message = t.value("message", "");
    if (!message.empty()) line += " (" + message + ")";
  }
  return line;
}

void print_status(std::ostream& out, const json& s) {
  const json& approval = s.value("approval", json::object());
  std::string approval_text = approval.value("approved", false) ? "approved" : "not approved";
  const json override_value = approval.value("override", json());
  approval_text +=
      override_value.is_boolean()
          ? (override_value.get<bool>() ? " (override: approved)" : " (override: unapproved)")
          : " (no override)";
  const std::string reason = approval.value("reason", "");
  if (!reason.empty()) approval_text += ": " + reason;
  const json last = s.value("last_update", json());
  std::vector<std::vector<std::string>> rows = {
      {"generation", text_of(s.value("generation", json()))},
      {"last update", last.is_object() ? text_of(last.value("source", json())) + " at " +
                                             format_time(last.value("unix_ms", json()))
                                       : "never"},
      {"exit approval", approval_text},
      {"destination logging", on_off(s.value("destination_logging", json()))},
      {"drain", on_off(s.value("drain", json()))},
      {"peers", text_of(s.value("peer_count", json()))},
  };
  if (const json policy = s.value("policy", json()); policy.is_object()) {
    rows.push_back({"policy", text_of(policy.value("source", json())) + " (" +
                                  text_of(policy.value("rules", json())) + " rules, " +
                                  text_of(policy.value("classes", json())) + " classes)"});
  }
  const json sources = s.value("sources", json::object());
  for (const auto& [name, health] : sources.items()) {
    const bool ok = health.value("ok", false);
    std::string text = ok ? "ok" : "FAILING";
    const std::string message = health.value("message", "");
    if (!message.empty()) text += ": " + message;
    text += " (last ok " + format_time(health.value("last_ok_unix_ms", json())) + ")";
    rows.push_back({"source " + name, text});
  }
  print_table(out, rows);
  if (const json t = s.value("tailnet", json()); t.is_object()) out << tailnet_line(t) << "\n";
}

std::vector<std::string> peer_row(const json& p) {
  return {text_of(p.value("public_key", json())), text_of(p.value("source", json())),
          text_of(p.value("user", json())), joined(p.value("allowed_ips", json())),
          // Where the gateway sends now, else the configured endpoint.
          text_of(p.value("current_endpoint", json()).is_string() ? p["current_endpoint"]
                                                                  : p.value("endpoint", json())),
          format_time(p.value("last_handshake_unix_ms", json())),
          format_bytes(p.value("rx_bytes", json())), format_bytes(p.value("tx_bytes", json()))};
}

void print_peers(std::ostream& out, const json& body) {
  const json peers = body.value("peers", json::array());
  if (peers.empty()) {
    out << "no peers\n";
    return;
  }
  std::vector<std::vector<std::string>> rows = {
      {"PUBLIC KEY", "SOURCE", "USER", "ALLOWED IPS", "ENDPOINT", "LAST HANDSHAKE", "RX", "TX"}};
  for (const json& p : peers) rows.push_back(peer_row(p));
  print_table(out, rows);
}

void print_peer(std::ostream& out, const json& p) {
  print_table(out, {
                       {"public key", text_of(p.value("public_key", json()))},
                       {"source", text_of(p.value("source", json()))},
                       {"user", text_of(p.value("user", json()))},
                       {"tags", joined(p.value("tags", json()))},
                       {"allowed ips", joined(p.value("allowed_ips", json()))},
                       {"endpoint", text_of(p.value("endpoint", json()))},
                       {"current endpoint", text_of(p.value("current_endpoint", json()))},
                       {"keepalive", text_of(p.value("persistent_keepalive", json()))},
                       {"preshared key", text_of(p.value("has_preshared_key", json()))},
                       {"last handshake", format_time(p.value("last_handshake_unix_ms", json()))},
                       {"rx", format_bytes(p.value("rx_bytes", json()))},
                       {"tx", format_bytes(p.value("tx_bytes", json()))},
                   });
}

void print_policy(std::ostream& out, const json& p) {
  print_table(out, {
                       {"source", text_of(p.value("source", json()))},
                       {"rules", text_of(p.value("rules", json()))},
                       {"classes", text_of(p.value("classes", json()))},
                   });
  std::string text = p.value("text", "");
  if (!text.empty()) {
    if (text.back() != '\n') text += '\n';
    out << "\n" << text;
  }
}

void print_filter(std::ostream& out, const json& f) {
  const json filter = f.value("filter", json());
  print_table(out, {
                       {"policy source", text_of(f.value("policy_source", json()))},
                       {"tailnet filter",
                        filter.is_object()
                            ? std::to_string(filter.value("rules", json::array()).size()) + " rules"
                            : std::string("none set")},
                       {"compiled", text_of(f.value("rules", json())) + " rules, " +
                                        text_of(f.value("classes", json())) + " classes"},
                   });
  if (filter.is_object()) out << "\n" << filter.dump(2) << "\n";
}

// One API call: the method, path and body, and how to print a successful answer.
struct Request {
  std::string method;
  std::string path;
  std::optional<json> body;
  std::function<void(std::ostream&, const json&)> print;
  std::optional<std::string> text;  // a HuJSON body sent as is (policy set), instead of `body`
};

// A file for `policy set` or `peers set`: a regular file (not /dev/zero, a FIFO or a directory)
// of at most kMaxBytes, read with that bound; the server enforces its own, smaller, limit.
Result<std::string> read_whole_file(const std::string& path, const std::string& what) {
  constexpr size_t kMaxBytes = 16 * 1024 * 1024;
  return read_regular_file(path, what, kMaxBytes);
}

std::function<void(std::ostream&, const json&)> say(std::string what) {
  return [what](std::ostream& out, const json& body) {
    out << what << " (generation " << text_of(body.value("generation", json())) << ")\n";
  };
}

Result<json> peer_add_body(const std::string& key, const Options& o) {
  const auto get = [&o](const char* name) -> const std::string* {
    const auto it = o.peer.find(name);
    return it == o.peer.end() ? nullptr : &it->second;
  };
  const std::string* allowed = get("--allowed-ips");
  if (allowed == nullptr) return make_error("peer add needs --allowed-ips A[,B...]");
  json body = {{"public_key", key}, {"allowed_ips", split_list(*allowed)}};
  if (const std::string* v = get("--endpoint")) body["endpoint"] = *v;
  if (const std::string* v = get("--user")) body["user"] = *v;
  if (const std::string* v = get("--tags")) body["tags"] = split_list(*v);
  if (const std::string* v = get("--keepalive")) {
    unsigned seconds = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), seconds);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size() || seconds > 65535)
      return make_error("--keepalive '" + *v + "' is not a number of seconds from 0 to 65535");
    body["persistent_keepalive"] = seconds;
  }
  if (const std::string* v = get("--preshared-key-file")) {
    auto psk = read_secret_file(*v, "preshared key file", 128);
    if (!psk) return make_error(psk.error());
    body["preshared_key"] = *psk;
  }
  return body;
}

// Turns the command words into one request, or a usage failure.
Result<Request> build_request(const Options& o) {
  const std::vector<std::string>& w = o.words;
  const auto usage = [](const std::string& message) { return make_error(message); };
  const auto want = [&](size_t n, const char* shape) -> std::optional<Error> {
    if (w.size() != n) return Error{std::string("usage: exitgwctl ") + shape};
    return std::nullopt;
  };
  const auto on_off_arg = [&](const std::string& word) -> std::optional<bool> {
    if (word == "on") return true;
    if (word == "off") return false;
    return std::nullopt;
  };
  if (w.empty()) return usage("no command given (see --help)");
  const std::string& cmd = w[0];
  const bool is_peer_add = cmd == "peer" && w.size() >= 2 && w[1] == "add";
  if (!is_peer_add && !o.peer.empty()) {
    return usage(o.peer.begin()->first + " only goes with 'peer add'");
  }
  if (cmd == "status") {
    if (auto e = want(1, "status")) return *e;
    return Request{"GET", "/v1/status", std::nullopt, print_status};
  }
  if (cmd == "peers") {
    if (w.size() == 3 && w[1] == "set") {
      auto text = read_whole_file(w[2], "peer set file");
      if (!text) return make_error(text.error());
      json body = json::parse(*text, nullptr, false);
      if (body.is_discarded()) return make_error("peer set file " + w[2] + " is not JSON");
      return Request{"PUT", "/v1/peers", std::move(body),
                     say("the admin peers are now the set in " + w[2])};
    }
    if (auto e = want(1, "peers")) return *e;
    return Request{"GET", "/v1/peers", std::nullopt, print_peers};
  }
  if (cmd == "peer") {
    const std::string sub = w.size() >= 2 ? w[1] : "";
    if (sub == "get") {
      if (auto e = want(3, "peer get KEY")) return *e;
      return Request{"GET", key_path(w[2]), std::nullopt, print_peer};
    }
    if (sub == "add") {
      if (auto e = want(3, "peer add KEY --allowed-ips A[,B...] [...]")) return *e;
      auto body = peer_add_body(w[2], o);
      if (!body) return make_error(body.error());
      return Request{"PUT", key_path(w[2]), std::move(*body), say("peer " + w[2] + " saved")};
    }
    if (sub == "remove") {
      if (auto e = want(3, "peer remove KEY")) return *e;
      return Request{"DELETE", key_path(w[2]), std::nullopt, say("peer " + w[2] + " removed")};
    }
    return usage("usage: exitgwctl peer get|add|remove KEY ...");
  }
  if (cmd == "approve" || cmd == "unapprove") {
    if (auto e = want(1, cmd.c_str())) return *e;
    const bool approved = cmd == "approve";
    return Request{
        "POST", "/v1/approval", json{{"approved", approved}},
        say(std::string("exit approval set to ") + (approved ? "approved" : "unapproved"))};
  }
  if (cmd == "approval") {
    if (w.size() != 2 || w[1] != "clear") return usage("usage: exitgwctl approval clear");
    return Request{"POST", "/v1/approval", json{{"approved", nullptr}},
                   say("exit approval override cleared")};
  }
  if (cmd == "logging" || cmd == "drain") {
    const auto on = w.size() == 2 ? on_off_arg(w[1]) : std::nullopt;
    if (!on) return usage("usage: exitgwctl " + cmd + " on|off");
    if (cmd == "logging") {
      return Request{"POST", "/v1/logging", json{{"destination", *on}},
                     say(std::string("destination logging ") + (*on ? "on" : "off"))};
    }
    return Request{"POST", "/v1/drain", json{{"on", *on}},
                   say(std::string("drain ") + (*on ? "on" : "off"))};
  }
  if (cmd == "policy") {
    const std::string sub = w.size() >= 2 ? w[1] : "";
    if (sub == "show") {
      if (auto e = want(2, "policy show")) return *e;
      return Request{"GET", "/v1/policy", std::nullopt, print_policy};
    }
    if (sub == "set") {
      if (auto e = want(3, "policy set FILE")) return *e;
      auto text = read_whole_file(w[2], "policy file");
      if (!text) return make_error(text.error());
      return Request{"PUT", "/v1/policy", std::nullopt, say("policy from " + w[2] + " in force"),
                     std::move(*text)};
    }
    if (sub == "clear") {
      if (auto e = want(2, "policy clear")) return *e;
      return Request{"DELETE", "/v1/policy", std::nullopt,
                     say("policy override cleared (the policy file or the default is in force)")};
    }
    return usage("usage: exitgwctl policy show|set FILE|clear");
  }
  if (cmd == "filter") {
    const std::string sub = w.size() >= 2 ? w[1] : "";
    if (sub == "show") {
      if (auto e = want(2, "filter show")) return *e;
      return Request{"GET", "/v1/filter", std::nullopt, print_filter};
    }
    if (sub == "set") {
      if (auto e = want(3, "filter set FILE")) return *e;
      auto text = read_whole_file(w[2], "filter file");
      if (!text) return make_error(text.error());
      json body = json::parse(*text, nullptr, false);
      if (body.is_discarded()) return make_error("filter file " + w[2] + " is not JSON");
      return Request{"PUT", "/v1/filter", std::move(body),
                     say("tailnet filter from " + w[2] + " in force")};
    }
    if (sub == "clear") {
      if (auto e = want(2, "filter clear")) return *e;
      return Request{"DELETE", "/v1/filter", std::nullopt,
                     say("tailnet filter cleared (the HuJSON policy is in force)")};
    }
    return usage("usage: exitgwctl filter show|set FILE|clear");
  }
  return usage("unknown command '" + cmd + "' (see --help)");
}

Result<std::string> find_token(const Options& o, const CtlEnvironment& env) {
  if (!o.token_file.empty()) return read_token_file(o.token_file);
  if (env.token && !env.token->empty()) return *env.token;
  return make_error(
      "no token: pass --token-file PATH (the daemon's --admin_token_file) or set "
      "EXITGW_TOKEN");
}

// The server's {"error": ...} message, or a description of a body that is not one.
std::string error_message(const httplib::Response& res) {
  const json body = json::parse(res.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string())
    return body["error"].get<std::string>();
  return "HTTP " + std::to_string(res.status) + (res.body.empty() ? "" : ": " + res.body);
}

}  // namespace

int run_ctl(const std::vector<std::string>& args, const CtlEnvironment& env, std::ostream& out,
            std::ostream& err) {
  Options o;
  if (auto failure = parse_args(args, o)) {
    err << "exitgwctl: " << failure->message << "\n";
    return failure->code;
  }
  if (o.help) {
    out << kHelp;
    return kCtlOk;
  }
  auto request = build_request(o);
  if (!request) {
    err << "exitgwctl: " << request.error() << "\n";
    return kCtlUsage;
  }
  if (!o.server.starts_with("http://") && !o.server.starts_with("https://")) {
    err << "exitgwctl: --server '" << o.server << "' must start with http:// or https://\n";
    return kCtlUsage;
  }
  auto token = find_token(o, env);
  if (!token) {
    err << "exitgwctl: " << token.error() << "\n";
    return kCtlUsage;
  }

  httplib::Client client(o.server);
  if (!client.is_valid()) {
    err << "exitgwctl: --server '" << o.server << "' is not a usable URL\n";
    return kCtlUsage;
  }
  client.set_connection_timeout(3, 0);
  client.set_read_timeout(15, 0);  // the server waits up to 5 s for the control thread
  client.set_write_timeout(5, 0);
  client.set_bearer_token_auth(*token);

  const Request& r = *request;
  const std::string body = r.text ? *r.text : r.body ? r.body->dump() : std::string();
  const char* content_type = r.text ? "application/hujson" : "application/json";
  httplib::Result res = r.method == "GET"      ? client.Get(r.path)
                        : r.method == "DELETE" ? client.Delete(r.path)
                        : r.method == "PUT"    ? client.Put(r.path, body, content_type)
                                               : client.Post(r.path, body, content_type);
  if (!res) {
    err << "exitgwctl: cannot reach " << o.server << " (" << httplib::to_string(res.error())
        << " error); is exitgw running with its admin API (--admin_listen) there?\n";
    return kCtlUnavailable;
  }
  if (res->status >= 400 && res->status < 500) {
    err << "exitgwctl: refused (" << res->status << "): " << error_message(*res) << "\n";
    return kCtlRefused;
  }
  if (res->status < 200 || res->status >= 300) {
    err << "exitgwctl: server failed (" << res->status << "): " << error_message(*res) << "\n";
    return kCtlUnavailable;
  }
  const json answer = json::parse(res->body, nullptr, false);
  if (answer.is_discarded()) {
    err << "exitgwctl: the server's answer is not JSON: " << res->body.substr(0, 200) << "\n";
    return kCtlUnavailable;
  }
  if (o.json) {
    out << answer.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return kCtlOk;
  }
  // A newer or older server may answer in a shape this build does not know; say so, not crash.
  try {
    r.print(out, answer);
  } catch (const json::exception& e) {
    err << "exitgwctl: unexpected answer from the server (" << e.what() << "); try --json\n";
    return kCtlUnavailable;
  }
  return kCtlOk;
}

}  // namespace exitgw::admin
