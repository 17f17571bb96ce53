// HuJSON to standard JSON: comments and trailing commas are blanked in place (so nlohmann's
// and our own line:column stay those of the original text), then nlohmann parses the result.
#include "control/policy/hujson.h"

#include <cstdio>
#include <exception>
#include <set>

namespace exitgw::policy {
namespace {

TextPosition position_of(std::string_view text, size_t offset) {
  TextPosition pos{1, 1};
  if (offset > text.size()) offset = text.size();
  for (size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++pos.line;
      pos.column = 1;
    } else {
      ++pos.column;
    }
  }
  return pos;
}

Error error_at(std::string_view origin, std::string_view text, size_t offset,
               std::string_view problem) {
  const TextPosition pos = position_of(text, offset);
  return make_error(std::string(origin) + ":" + std::to_string(pos.line) + ":" +
                    std::to_string(pos.column) + ": " + std::string(problem));
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Blanks comments and trailing commas; checks nesting depth. Strings are copied untouched
// (an unterminated one is left for nlohmann to report).
Result<std::string> standardize(std::string_view text, std::string_view origin) {
  std::string out(text);
  const size_t n = text.size();
  // The last two significant (non-blank) bytes emitted, to recognise "x , ]" as a trailing
  // comma but leave "[ , ]" and ", , ]" for the JSON parser to refuse.
  size_t last = std::string::npos;
  size_t before_last = std::string::npos;
  auto significant = [&](size_t at) {
    before_last = last;
    last = at;
  };
  int depth = 0;
  size_t i = 0;
  while (i < n) {
    const char c = text[i];
    if (c == '"') {
      size_t j = i + 1;
      while (j < n && text[j] != '"' && text[j] != '\n') j += text[j] == '\\' ? 2 : 1;
      if (j >= n) j = n - 1;
      significant(j);
      i = j + 1;
      continue;
    }
    if (c == '/' && i + 1 < n && text[i + 1] == '/') {
      while (i < n && text[i] != '\n') out[i++] = ' ';
      continue;
    }
    if (c == '/' && i + 1 < n && text[i + 1] == '*') {
      const size_t end = text.find("*/", i + 2);
      if (end == std::string_view::npos) {
        return error_at(origin, text, i, "unterminated /* comment");
      }
      for (size_t j = i; j < end + 2; ++j) {
        if (out[j] != '\n') out[j] = ' ';
      }
      i = end + 2;
      continue;
    }
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > kHujsonMaxDepth) {
        return error_at(origin, text, i,
                        "nesting deeper than " + std::to_string(kHujsonMaxDepth) + " levels");
      }
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
      if (last != std::string::npos && out[last] == ',' && before_last != std::string::npos &&
          out[before_last] != '[' && out[before_last] != '{' && out[before_last] != ',') {
        out[last] = ' ';
      }
    }
    significant(i);
    ++i;
  }
  return out;
}

// A cursor over text already known to be valid JSON (nlohmann accepted it).
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  size_t offset() const { return i_; }

  void skip_space() {
    while (i_ < s_.size() && is_space(s_[i_])) ++i_;
  }
  char peek() {
    skip_space();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  void expect(char) { ++i_; }

  // At the opening quote; returns the decoded string and moves past the closing quote.
  std::string string() {
    const size_t start = i_++;
    bool escaped = false;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') {
        escaped = true;
        ++i_;
      }
      ++i_;
    }
    ++i_;
    const std::string_view raw = s_.substr(start, i_ - start);
    if (!escaped) return std::string(raw.substr(1, raw.size() - 2));
    // Keys with escapes are rare: let nlohmann decode them exactly as it did the document.
    nlohmann::json decoded = nlohmann::json::parse(raw, nullptr, false);
    return decoded.is_string() ? decoded.get<std::string>() : std::string(raw);
  }

  void skip_value() {
    const char c = peek();
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      if (peek() == close) {
        ++i_;
        return;
      }
      while (true) {
        if (c == '{') {
          peek();
          string();
          peek();
          expect(':');
        }
        skip_value();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        ++i_;  // the closing bracket
        return;
      }
    }
    if (c == '"') {
      string();
      return;
    }
    while (i_ < s_.size() && !is_space(s_[i_]) && s_[i_] != ',' && s_[i_] != ']' && s_[i_] != '}') {
      ++i_;
    }
  }

  // Returns the offset of the first key that repeats within its object, or npos.
  size_t find_duplicate_key() {
    const char c = peek();
    if (c != '{' && c != '[') {
      skip_value();
      return std::string::npos;
    }
    const char close = c == '{' ? '}' : ']';
    ++i_;
    if (peek() == close) {
      ++i_;
      return std::string::npos;
    }
    std::set<std::string> keys;
    while (true) {
      if (c == '{') {
        const size_t key_at = (peek(), i_);
        if (!keys.insert(string()).second) return key_at;
        peek();
        expect(':');
      }
      const size_t inner = find_duplicate_key();
      if (inner != std::string::npos) return inner;
      if (peek() == ',') {
        ++i_;
        continue;
      }
      ++i_;
      return std::string::npos;
    }
  }

  // Offset of the key (last step a key) or value (last step an index) at `path`, or npos.
  size_t locate(const JsonPath& path, size_t depth) {
    const char c = peek();
    if (depth == path.size()) return i_;
    if (c == '{' && std::holds_alternative<std::string>(path[depth])) {
      const std::string& want = std::get<std::string>(path[depth]);
      ++i_;
      if (peek() == '}') return std::string::npos;
      while (true) {
        const size_t key_at = (peek(), i_);
        const bool match = string() == want;
        peek();
        expect(':');
        if (match) return depth + 1 == path.size() ? key_at : locate(path, depth + 1);
        skip_value();
        if (peek() != ',') return std::string::npos;
        ++i_;
      }
    }
    if (c == '[' && std::holds_alternative<size_t>(path[depth])) {
      const size_t want = std::get<size_t>(path[depth]);
      ++i_;
      if (peek() == ']') return std::string::npos;
      for (size_t index = 0;; ++index) {
        if (index == want) return locate(path, depth + 1);
        skip_value();
        if (peek() != ',') return std::string::npos;
        ++i_;
      }
    }
    return std::string::npos;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

// nlohmann's message minus its "[json.exception...] parse error at line L, column C: " prefix
// (we print our own position, from its byte offset).
std::string parse_problem(const char* what) {
  std::string_view msg(what);
  const size_t column = msg.find("column ");
  if (column != std::string_view::npos) {
    const size_t colon = msg.find(": ", column);
    if (colon != std::string_view::npos) msg.remove_prefix(colon + 2);
  } else {
    const size_t bracket = msg.find("] ");
    if (bracket != std::string_view::npos) msg.remove_prefix(bracket + 2);
  }
  return printable(msg, 200);
}

}  // namespace

std::string format_path(const JsonPath& path) {
  if (path.empty()) return "(top level)";
  std::string out;
  for (const PathStep& step : path) {
    if (const auto* key = std::get_if<std::string>(&step)) {
      if (!out.empty()) out += '.';
      out += printable(*key);
    } else {
      out += "[" + std::to_string(std::get<size_t>(step)) + "]";
    }
  }
  return out;
}

std::string printable(std::string_view s, size_t max_bytes) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == max_bytes) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

TextPosition HujsonDocument::locate(const JsonPath& path) const {
  try {
    Scanner scanner(standard_text);
    const size_t at = scanner.locate(path, 0);
    if (at == std::string::npos) return {};
    return position_of(standard_text, at);
  } catch (const std::exception&) {
    return {};
  }
}

Result<HujsonDocument> parse_hujson(std::string_view text, std::string_view origin) {
  if (text.size() > kHujsonMaxBytes) {
    return make_error(std::string(origin) + ": " + std::to_string(text.size()) +
                      " bytes; a policy file may be at most " + std::to_string(kHujsonMaxBytes));
  }
  try {
    Result<std::string> standard = standardize(text, origin);
    if (!standard) return make_error(standard.error());
    HujsonDocument doc;
    doc.standard_text = std::move(standard.value());
    try {
      doc.root = nlohmann::ordered_json::parse(doc.standard_text);
    } catch (const nlohmann::ordered_json::parse_error& e) {
      const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
      return error_at(origin, text, offset, parse_problem(e.what()));
    }
    Scanner scanner(doc.standard_text);
    const size_t duplicate = scanner.find_duplicate_key();
    if (duplicate != std::string::npos) {
      return error_at(origin, text, duplicate, "duplicate key in the same object");
    }
    return doc;
  } catch (const std::exception& e) {
    // Only std::bad_alloc is expected here; keep it (and anything else) inside the module.
    return make_error(std::string(origin) + ": cannot parse: " + printable(e.what(), 200));
  }
}

}  // namespace exitgw::policy
