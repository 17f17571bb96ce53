// The admin API's tailnet endpoints (exitgw-connector is their client): GET/PUT/DELETE
// /v1/filter for the tailnet's compiled packet filter and GET/PUT /v1/tailnet for the
// connector's health, in JSON.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/admin/admin_view.h"
#include "control/tailnet_health.h"

namespace exitgw::admin {

// {"state": "ok"|"stale"|"logged_out"|"error", "since_unix_ms"?, "last_netmap_unix_ms"?,
//  "message"?, "node_key"?, "login_server"?}; null means absent. Unknown fields, wrong types,
// negative times and over-long strings are refused by name.
Result<TailnetHealth> tailnet_health_from_json(const nlohmann::json& body);
// The health as GET /v1/tailnet and the "tailnet" object of GET /v1/status show it; times of 0
// are null. `now_unix_ms` gives netmap_age_seconds (null without a netmap).
nlohmann::json tailnet_health_json(const TailnetHealth& health, int64_t now_unix_ms);
// GET /v1/filter: {"filter": {"rules": [...]} or null, "policy_source", "rules", "classes",
// "generation"}.
nlohmann::json filter_json(const AdminView& view);

}  // namespace exitgw::admin
