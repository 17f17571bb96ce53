// The tailnet connector's health as it reports it (PUT /v1/tailnet): shown by GET /v1/status,
// `exitgwctl status` and /metrics; never part of /readyz, since a stale netmap keeps forwarding.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace exitgw {

// "none" is exitgw's own: no connector has reported.
inline constexpr std::array<std::string_view, 5> kTailnetStates = {"none", "ok", "stale",
                                                                   "logged_out", "error"};

struct TailnetHealth {
  std::string state = "none";       // one of kTailnetStates
  int64_t since_unix_ms = 0;        // when the connector entered the state; 0: unknown
  int64_t last_netmap_unix_ms = 0;  // 0: never had one
  std::string message;
  std::string node_key;      // "nodekey:<hex>", as the coordination server knows the node
  std::string login_server;  // the coordination server's URL
  // The node's own tailnet addresses ("100.64.0.1", "fd7a:115c:a1e0::1"), canonical; the IPv4
  // ones are the exception path's (dataplane/exception.cc).
  std::vector<std::string> addresses;
  int64_t reported_unix_ms = 0;  // when exitgw received the report (set by the control thread)
};

}  // namespace exitgw
