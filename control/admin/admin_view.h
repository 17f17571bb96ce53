// What the admin API reads: a snapshot of the running state the control thread publishes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/net_parse.h"
#include "control/policy/tailnet_filter.h"
#include "control/tailnet_health.h"
#include "control/wg/crypto.h"

namespace exitgw::admin {

// Built by the control thread and never changed once published: HTTP threads hold it through a
// shared_ptr<const AdminView>, so a request sees one consistent state however long it takes.
struct AdminView {
  uint64_t generation = 0;          // of the running configuration
  std::string last_update_source;   // "file", "admin", "etcd", ...; empty before any update
  int64_t last_update_unix_ms = 0;  // 0: never

  bool approved = false;  // effective exit approval (files, autoApprovers, override)
  std::optional<bool> approval_override;  // set by ApprovalSet; nullopt: none
  std::string approval_reason;            // why approved or not, for operators
  bool destination_logging = false;
  bool draining = false;

  // The running exit policy: where it came from ("default", "file", "admin", "etcd"), its text
  // (the override's or the file's; shared with the control thread, never changed) and size.
  std::string policy_source;
  std::shared_ptr<const std::string> policy_text;
  size_t policy_rules = 0;
  size_t policy_classes = 0;
  // The tailnet's packet filter while one is set (policy_source "tailnet"); null otherwise.
  std::shared_ptr<const policy::TailnetFilter> tailnet_filter;
  TailnetHealth tailnet;  // state "none" until a connector reports

  // One entry per update source ("file:peers", "file:policy", "etcd", ...).
  struct SourceHealth {
    bool ok = true;
    std::string message;          // the last error, or a short note when ok
    int64_t last_ok_unix_ms = 0;  // last successful load or watch event; 0: never
  };
  std::map<std::string, SourceHealth> sources;

  struct Peer {
    wg::Key public_key{};
    std::string source;  // which update source owns the peer ("file", "admin", "etcd")
    std::string user;
    std::vector<std::string> tags;
    std::vector<Ipv4Prefix> allowed_ips;
    std::vector<Ipv6Prefix> allowed_ips6;
    std::string endpoint;  // the configured one, "a.b.c.d:port" or "[v6]:port"; empty: none
    // Where the gateway sends to now ("a.b.c.d:port" or "[v6]:port"): the source of the
    // newest authenticated packet, else the configured endpoint; empty: none yet.
    std::string current_endpoint;
    uint16_t persistent_keepalive = 0;
    bool has_preshared_key = false;      // the key itself never leaves the control thread
    int64_t last_handshake_unix_ms = 0;  // 0: never
    uint64_t rx_bytes = 0;
    uint64_t tx_bytes = 0;
    bool has_disco_key = false;
    wg::Key disco_key{};
  };
  std::vector<Peer> peers;  // in any order; the API sorts by key
};

}  // namespace exitgw::admin
