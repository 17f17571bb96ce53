// Domain policy lists (conf/domains.conf): which names to block or log, parsed into plain
// structs and validated completely before anything is compiled. Control-side code.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace exitgw::dp::domain {

// Ordered by precedence: when several rules match a name, the greatest action wins.
enum class Action : uint8_t { kNone = 0, kLog = 1, kBlock = 2, kCount };
inline constexpr std::array<std::string_view, size_t(Action::kCount)> kActionNames = {"none", "log",
                                                                                      "block"};

enum class MatchKind : uint8_t { kExact, kSuffix, kRegex, kCount };
inline constexpr std::array<std::string_view, size_t(MatchKind::kCount)> kMatchKindNames = {
    "exact", "suffix", "regex"};

struct DomainRule {
  Action action = Action::kNone;
  MatchKind kind = MatchKind::kExact;
  // exact/suffix: the domain, lowercased, no trailing dot. regex: as written.
  std::string pattern;
  uint32_t line = 0;  // in DomainList::origin, for messages
};

struct DomainList {
  std::string origin;             // file name (or "<text>"), for messages
  std::vector<DomainRule> rules;  // a rule's index here is its id everywhere
};

// Most rules one list may hold; far above any feed, low enough that ids fit everywhere.
inline constexpr size_t kMaxRules = 1u << 22;
// Largest list file the gateway reads (millions of rules); a larger one is refused unread.
inline constexpr size_t kMaxListBytes = size_t{64} << 20;

// One rule a line: `<block|log> <exact|suffix|regex> <pattern>`. Blank lines and lines whose
// first non-blank byte is '#' are ignored; after an exact or suffix domain a `# comment` may
// follow, while a regex is the rest of the line. Every error names origin:line.
Result<DomainList> parse_domain_list(std::string_view text, std::string_view origin);

// Reads and parses a file; errors name the file.
Result<DomainList> load_domain_list(const std::string& path);

}  // namespace exitgw::dp::domain
