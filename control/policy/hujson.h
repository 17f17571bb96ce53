// HuJSON (JSON with comments and trailing commas, as tailnet policy files are written) read
// into nlohmann::ordered_json, with every error naming line:column.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace exitgw::policy {

// Limits that keep a damaged or hostile file from costing the control thread much: a policy
// of a few thousand rules is well under 1 MiB, and nothing in the schema nests beyond 5.
inline constexpr size_t kHujsonMaxBytes = 4 * 1024 * 1024;
inline constexpr int kHujsonMaxDepth = 64;

struct TextPosition {
  int line = 0;    // 1-based
  int column = 0;  // 1-based, in bytes
};

// One step of a path into a document: an object key or an array index.
using PathStep = std::variant<std::string, size_t>;
using JsonPath = std::vector<PathStep>;

// "acls[2].dst[0]"; the empty path is "(top level)".
std::string format_path(const JsonPath& path);

// A parsed document plus the text it came from, so that later checks can point at the line
// and column of any value they reject.
struct HujsonDocument {
  nlohmann::ordered_json root;
  std::string standard_text;  // comments and trailing commas blanked; same line:column layout

  // Where the value (or, for a path ending in a key, the key itself) at `path` starts;
  // {0, 0} if the path is not in the document.
  TextPosition locate(const JsonPath& path) const;
};

// Parses HuJSON text. Errors read "origin:line:column: problem". Duplicate object keys are
// errors (a second "acls" would otherwise silently replace the first). Never throws.
Result<HujsonDocument> parse_hujson(std::string_view text, std::string_view origin);

// Makes `s` safe to quote in a log line or error: non-printable bytes become \xNN, and
// anything past `max_bytes` is cut off with "...".
std::string printable(std::string_view s, size_t max_bytes = 64);

}  // namespace exitgw::policy
