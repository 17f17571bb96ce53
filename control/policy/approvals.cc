// Approvals file parser: one fact per line, every line checked, nothing half-applied.
#include "control/policy/approvals.h"

#include <string>
#include <vector>

#include "control/policy/hujson.h"

namespace exitgw::policy {
namespace {

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

Result<Approvals> parse_approvals(std::string_view text, std::string_view origin) {
  const std::string where(origin);
  if (text.size() > kApprovalsMaxBytes) {
    return make_error(where + ": larger than " + std::to_string(kApprovalsMaxBytes) + " bytes");
  }
  Approvals out;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    const std::string at = where + ":" + std::to_string(line_number) + ": ";
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\0') != std::string_view::npos) return make_error(at + "NUL byte");
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    const auto w = words(line);
    if (w.empty()) continue;
    if (w[0] != "exit-node") {
      return make_error(at + "unknown approval \"" + printable(w[0]) +
                        "\" (the only one is exit-node)");
    }
    if (w.size() != 2 || (w[1] != "approved" && w[1] != "unapproved")) {
      return make_error(at + "write \"exit-node approved\" or \"exit-node unapproved\"");
    }
    if (out.exit_node) {
      return make_error(at + "exit-node is already set on line " +
                        std::to_string(out.exit_node_line));
    }
    out.exit_node = w[1] == "approved";
    out.exit_node_line = line_number;
  }
  return out;
}

}  // namespace exitgw::policy
