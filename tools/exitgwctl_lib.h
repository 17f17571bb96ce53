// exitgwctl's logic, apart from main() so tests can run it against an in-process server.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace exitgw::admin {

// Exit codes scripts can rely on.
inline constexpr int kCtlOk = 0;
inline constexpr int kCtlRefused = 1;      // the server answered 4xx; its message is on stderr
inline constexpr int kCtlUsage = 2;        // bad arguments, or a local file (token, key) unusable
inline constexpr int kCtlUnavailable = 3;  // cannot reach the server, or it answered 5xx

// What exitgwctl takes from its environment, passed in so tests need not set variables.
struct CtlEnvironment {
  std::optional<std::string> token;  // EXITGW_TOKEN
};

// Runs one command; `args` excludes the program name. Writes results to `out`, messages to
// `err`, never reads stdin, and returns one of the exit codes above.
int run_ctl(const std::vector<std::string>& args, const CtlEnvironment& env, std::ostream& out,
            std::ostream& err);

}  // namespace exitgw::admin
