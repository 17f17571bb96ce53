// Parser for domain policy lists (see domain_list.h and conf/domains.conf).
#include "dataplane/domain/domain_list.h"

#include <fstream>
#include <initializer_list>
#include <sstream>

#include "common/log_escape.h"

namespace exitgw::dp::domain {
namespace {

constexpr size_t kMaxDomainLength = 253;
constexpr size_t kMaxLabelLength = 63;
constexpr size_t kMaxRegexLength = 4096;

// Joins pieces of a message (GCC 12 -Wrestrict misfires on "literal" + std::string at -O3).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The next blank-separated token of *s, removed from it.
std::string_view next_token(std::string_view* s) {
  *s = trim(*s);
  size_t n = 0;
  while (n < s->size() && !is_blank((*s)[n])) ++n;
  const std::string_view token = s->substr(0, n);
  s->remove_prefix(n);
  *s = trim(*s);
  return token;
}

// Lowercases and checks a domain: labels of letters, digits, '-' and '_', 1..63 bytes each,
// 253 in all; one trailing dot dropped. Returns an empty string and sets *why on error.
std::string normalize_domain(std::string_view d, std::string* why) {
  if (d.starts_with("*.")) {
    *why = cat({"wildcards are not patterns here: write 'suffix ", escape_for_log(d.substr(2)),
                "' (it matches the domain and every name under it)"});
    return {};
  }
  if (d.ends_with('.')) d.remove_suffix(1);
  if (d.empty() || d.size() > kMaxDomainLength) {
    *why = "a domain has 1 to 253 bytes";
    return {};
  }
  std::string out;
  out.reserve(d.size());
  size_t label = 0;
  for (char c : d) {
    if (c == '.') {
      if (label == 0) {
        *why = cat({"empty label in '", escape_for_log(d), "'"});
        return {};
      }
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') {
      ++label;
    } else if (c >= 'A' && c <= 'Z') {
      c = char(c - 'A' + 'a');
      ++label;
    } else {
      *why = cat({"'", escape_for_log(d), "' holds '", escape_for_log(std::string_view(&c, 1)),
                  "'; a domain holds letters, digits, '-', '_' and dots (use regex for more)"});
      return {};
    }
    if (label > kMaxLabelLength) {
      *why = "a label has at most 63 bytes";
      return {};
    }
    out.push_back(c);
  }
  if (label == 0) {
    *why = cat({"empty label in '", escape_for_log(d), "'"});
    return {};
  }
  return out;
}

}  // namespace

Result<DomainList> parse_domain_list(std::string_view text, std::string_view origin) {
  DomainList list;
  list.origin = std::string(origin);
  uint32_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;

    auto fail = [&](const std::string& why) {
      return make_error(cat({list.origin, ":", std::to_string(line_no), ": ", why}));
    };
    if (line.find('\0') != std::string_view::npos) return fail("NUL byte in line");

    DomainRule rule;
    rule.line = line_no;
    const std::string_view action = next_token(&line);
    if (action == "block") {
      rule.action = Action::kBlock;
    } else if (action == "log") {
      rule.action = Action::kLog;
    } else {
      return fail(cat({"unknown action '", escape_for_log(action), "' (expected block or log)"}));
    }
    const std::string_view kind = next_token(&line);
    if (kind == "exact") {
      rule.kind = MatchKind::kExact;
    } else if (kind == "suffix") {
      rule.kind = MatchKind::kSuffix;
    } else if (kind == "regex") {
      rule.kind = MatchKind::kRegex;
    } else if (kind.empty()) {
      return fail(cat({"missing match kind after '", escape_for_log(action),
                       "' (expected exact, suffix or regex)"}));
    } else {
      return fail(cat(
          {"unknown match kind '", escape_for_log(kind), "' (expected exact, suffix or regex)"}));
    }

    if (rule.kind == MatchKind::kRegex) {
      if (line.empty()) return fail("missing regex");
      if (line.size() > kMaxRegexLength) return fail("regex longer than 4096 bytes");
      rule.pattern = std::string(line);
    } else {
      const std::string_view domain = next_token(&line);
      if (domain.empty()) return fail(cat({"missing domain after '", escape_for_log(kind), "'"}));
      if (!line.empty() && line.front() != '#') {
        return fail(
            cat({"unexpected '", escape_for_log(line), "' after the domain (one domain a line)"}));
      }
      std::string why;
      rule.pattern = normalize_domain(domain, &why);
      if (rule.pattern.empty()) return fail(why);
    }
    if (list.rules.size() >= kMaxRules) return fail("more than 4194304 rules in one list");
    list.rules.push_back(std::move(rule));
  }
  return list;
}

Result<DomainList> load_domain_list(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(cat({path, ": cannot open domain list"}));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return make_error(cat({path, ": read error"}));
  return parse_domain_list(text.str(), path);
}

}  // namespace exitgw::dp::domain
