// Compiling a domain list into Hyperscan, per-worker scratch, and matching (domain_database.h).
#include "dataplane/domain/domain_database.h"

#include <atomic>
#include <cstdlib>

#include <hs/hs.h>

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "common/log_escape.h"

namespace exitgw::dp::domain {

void DomainDatabase::FreeDatabase::operator()(hs_database* db) const noexcept {
  hs_free_database(db);
}
void DomainDatabase::FreeScratch::operator()(hs_scratch* s) const noexcept {
  hs_free_scratch(s);
}

DomainDatabase::~DomainDatabase() = default;
DomainScratch::~DomainScratch() = default;

size_t DomainDatabase::database_bytes() const noexcept {
  size_t n = 0;
  return db_ && hs_database_size(db_.get(), &n) == HS_SUCCESS ? n : 0;
}

size_t DomainDatabase::scratch_bytes() const noexcept {
  size_t n = 0;
  return prototype_ && hs_scratch_size(prototype_.get(), &n) == HS_SUCCESS ? n : 0;
}

namespace {

constexpr size_t kMaxDomainLength = 253;

// Joins pieces of a message (GCC 12 -Wrestrict misfires on "literal" + std::string at -O3).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts) out.append(p);
  return out;
}

// Every byte but letters and digits becomes \xHH, so nothing in a domain is a metacharacter.
std::string escape_literal(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (char c : s) {
    const auto u = uint8_t(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::string expression_for(const DomainRule& rule) {
  return rule.kind == MatchKind::kRegex ? rule.pattern : escape_literal(rule.pattern);
}

std::string describe(const DomainList& list, size_t index) {
  const DomainRule& r = list.rules[index];
  return cat({list.origin, ":", std::to_string(r.line), ": ", kMatchKindNames[size_t(r.kind)], " '",
              escape_for_log(r.pattern, 256, /*escape_backslash=*/false), "'"});
}

// Refuses a regex that can match the empty name: it would match every name, and Hyperscan
// accepts some of them (`^.*$`, `^x?$`) in block mode. Hyperscan's own analysis of the
// expression says so (its minimum match width is 0), whatever the spelling.
Status check_matches_a_name(const DomainList& list, size_t index, const char* expression,
                            unsigned flags) {
  if (list.rules[index].kind != MatchKind::kRegex) return Ok{};
  hs_expr_info_t* info = nullptr;
  hs_compile_error_t* error = nullptr;
  if (hs_expression_info(expression, flags, &info, &error) != HS_SUCCESS) {
    std::string message = error != nullptr && error->message ? error->message : "unknown error";
    hs_free_compile_error(error);
    // "matches empty buffer" is the very case checked below; anything else is its own error.
    if (!message.starts_with("Pattern matches empty buffer"))
      return make_error(cat({describe(list, index), ": ", message}));
  }
  const bool empty = info == nullptr || info->min_width == 0;
  std::free(info);  // allocated by Hyperscan's misc allocator, malloc by default
  if (empty)
    return make_error(cat({describe(list, index),
                           ": the pattern can match the empty name, so it would match every "
                           "name; anchor it to at least one character"}));
  return Ok{};
}

// Names as unlike each other as names get: a regex that matches every one of them matches
// every name (`^.+$`, `.`, `[a-z0-9]`), which a rule must not.
constexpr std::string_view kProbeNames[] = {
    "a", "7", "_", "q.z", "xn--80ak6aa92e.com", "mail-01.corp.example.org", "zz9-zz.invalid"};

// Scans the probe names through the compiled list and refuses a regex that matched them all.
Status check_matches_some_names_only(const DomainList& list, hs_database_t* db,
                                     hs_scratch_t* scratch) {
  const size_t n = list.rules.size();
  std::vector<uint8_t> matched(n, 0);  // probes matched, per rule
  std::vector<uint8_t> seen(n, 0);
  for (std::string_view name : kProbeNames) {
    std::fill(seen.begin(), seen.end(), 0);
    const auto on_match = [](unsigned id, unsigned long long, unsigned long long, unsigned,
                             void* context) -> int {
      (*static_cast<std::vector<uint8_t>*>(context))[id] = 1;
      return 0;
    };
    if (hs_scan(db, name.data(), unsigned(name.size()), 0, scratch, on_match, &seen) != HS_SUCCESS)
      return make_error(cat({list.origin, ": Hyperscan scan failed while checking the rules"}));
    for (size_t i = 0; i < n; ++i) matched[i] += seen[i];
  }
  for (size_t i = 0; i < n; ++i) {
    if (list.rules[i].kind == MatchKind::kRegex && matched[i] == std::size(kProbeNames))
      return make_error(cat({describe(list, i),
                             ": the pattern matches every name (it matched each of a, 7, _, "
                             "q.z and xn--80ak6aa92e.com); a rule must single names out"}));
  }
  return Ok{};
}

}  // namespace

// One scan's best match so far, and what the callback needs to check anchoring.
struct DomainDatabase::MatchState {
  const RuleInfo* rules;
  const char* name;
  unsigned long long length;
  uint32_t first_block;
  Action action;
  uint32_t rule;
};

Result<DomainDatabase> compile(const DomainList& list, unsigned workers) {
  static std::atomic<uint64_t> serials{0};
  DomainDatabase out;
  out.serial_ = ++serials;
  out.list_ = list;
  const size_t n = list.rules.size();
  if (n > kMaxRules)
    return make_error(cat({list.origin, ": more than ", std::to_string(kMaxRules), " rules"}));
  out.workers_ = workers;
  out.row_ = (n + 7) / 8 * 8;
  out.matches_ = std::make_unique<DomainDatabase::CounterLine[]>(out.row_ / 8 * workers + 1);
  out.info_ = std::make_unique<DomainDatabase::RuleInfo[]>(n ? n : 1);
  for (size_t i = 0; i < n; ++i) {
    const DomainRule& r = list.rules[i];
    if (r.action != Action::kLog && r.action != Action::kBlock)
      return make_error(cat({describe(list, i), ": action must be block or log"}));
    if (r.pattern.empty() || (r.kind != MatchKind::kRegex && r.pattern.size() > kMaxDomainLength))
      return make_error(cat({describe(list, i), ": pattern length out of range"}));
    out.info_[i] = {r.action, r.kind, uint16_t(r.kind == MatchKind::kRegex ? 0 : r.pattern.size())};
    if (r.action == Action::kBlock && out.first_block_ == kNoRule) out.first_block_ = uint32_t(i);
  }
  if (n == 0) return out;  // Hyperscan refuses an empty set; an empty database matches nothing

  std::vector<std::string> expressions(n);
  std::vector<const char*> pointers(n);
  std::vector<unsigned int> flags(n, HS_FLAG_CASELESS);
  std::vector<unsigned int> ids(n);
  for (size_t i = 0; i < n; ++i) {
    expressions[i] = expression_for(list.rules[i]);
    // A literal must report every occurrence: only the one at the end of the name counts.
    if (list.rules[i].kind == MatchKind::kRegex) flags[i] |= HS_FLAG_SINGLEMATCH;
    pointers[i] = expressions[i].c_str();
    ids[i] = unsigned(i);
    if (Status s = check_matches_a_name(list, i, pointers[i], flags[i]); !s)
      return make_error(s.error());
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* error = nullptr;
  if (hs_compile_multi(pointers.data(), flags.data(), ids.data(), unsigned(n), HS_MODE_BLOCK,
                       nullptr, &db, &error) != HS_SUCCESS) {
    std::string where = list.origin;
    if (error != nullptr && error->expression >= 0 && size_t(error->expression) < n)
      where = describe(list, size_t(error->expression));
    std::string message = error != nullptr && error->message ? error->message : "unknown error";
    hs_free_compile_error(error);
    return make_error(cat({where, ": ", message}));
  }
  out.db_.reset(db);
  hs_scratch_t* scratch = nullptr;
  if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS)
    return make_error(cat({list.origin, ": cannot allocate Hyperscan scratch"}));
  out.prototype_.reset(scratch);
  if (Status s = check_matches_some_names_only(list, db, scratch); !s) return make_error(s.error());
  return out;
}

Result<DomainScratch> DomainScratch::create(const DomainDatabase& db) {
  DomainScratch s;
  if (db.prototype_) {
    hs_scratch_t* clone = nullptr;
    if (hs_clone_scratch(db.prototype_.get(), &clone) != HS_SUCCESS)
      return make_error("cannot clone Hyperscan scratch");
    s.hs_.reset(clone);
  }
  return s;
}

Status DomainScratch::prepare(const DomainDatabase& db) {
  if (!db.db_) return Ok{};
  hs_scratch_t* s = hs_.release();
  const hs_error_t rc = hs_alloc_scratch(db.db_.get(), &s);  // grows in place, or allocates
  hs_.reset(s);
  if (rc != HS_SUCCESS) return make_error("cannot grow Hyperscan scratch");
  return Ok{};
}

int DomainDatabase::on_match(unsigned int id, unsigned long long /*from*/, unsigned long long to,
                             unsigned int /*flags*/, void* context) noexcept {
  auto& m = *static_cast<MatchState*>(context);
  const RuleInfo& r = m.rules[id];
  if (r.kind != MatchKind::kRegex) {
    if (to != m.length) return 0;  // a literal counts only at the end of the name
    if (to != r.length && (r.kind == MatchKind::kExact || m.name[to - r.length - 1] != '.'))
      return 0;  // exact must also start the name; suffix must follow a dot
  }
  if (r.action > m.action || (r.action == m.action && id < m.rule)) {
    m.action = r.action;
    m.rule = id;
  }
  return m.rule == m.first_block ? 1 : 0;  // nothing can beat the first block rule: stop
}

Verdict match(const DomainDatabase& db, DomainScratch& scratch, std::string_view name) noexcept {
  if (name.empty() || !db.db_) return {};
  DomainDatabase::MatchState m{db.info_.get(),  name.data(),   name.size(),
                               db.first_block_, Action::kNone, kNoRule};
  const hs_error_t rc = hs_scan(db.db_.get(), name.data(), unsigned(name.size()), 0,
                                scratch.hs_.get(), DomainDatabase::on_match, &m);
  if (rc != HS_SUCCESS && rc != HS_SCAN_TERMINATED) [[unlikely]] {
    ++scratch.scan_errors_;
    return {};
  }
  return {m.action, m.rule};
}

}  // namespace exitgw::dp::domain
