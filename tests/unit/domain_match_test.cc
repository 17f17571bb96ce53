// Domain lists: parsing with line-numbered errors, Hyperscan compilation, and match()
// semantics (exact, suffix, regex, case, precedence), checked against a naive model.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "dataplane/domain/domain_database.h"
#include "dataplane/domain/domain_list.h"

namespace exitgw::dp::domain {
namespace {

struct Policy {
  DomainDatabase db;
  DomainScratch scratch;
};

Policy policy(std::string_view text) {
  auto list = parse_domain_list(text, "test.conf");
  EXPECT_TRUE(list.ok()) << list.error();
  auto db = compile(*list);
  EXPECT_TRUE(db.ok()) << db.error();
  auto scratch = DomainScratch::create(*db);
  EXPECT_TRUE(scratch.ok()) << scratch.error();
  return {std::move(db).value(), std::move(scratch).value()};
}

std::string parse_error(std::string_view text) {
  auto list = parse_domain_list(text, "d.conf");
  return list.ok() ? "(parsed)" : list.error();
}

std::string compile_error(std::string_view text) {
  auto list = parse_domain_list(text, "d.conf");
  if (!list.ok()) return "(parse failed) " + list.error();
  auto db = compile(*list);
  return db.ok() ? "(compiled)" : db.error();
}

TEST(DomainList, ParsesRulesCommentsBlankLinesAndCrlf) {
  auto list = parse_domain_list(
      "# a comment\r\n\n  block exact Example.COM.   # why\r\n\tlog suffix example.net\n"
      "log regex ^ads[0-9]*\\. # part of the regex\n",
      "x.conf");
  ASSERT_TRUE(list.ok()) << list.error();
  ASSERT_EQ(list->rules.size(), 3u);
  EXPECT_EQ(list->rules[0].action, Action::kBlock);
  EXPECT_EQ(list->rules[0].kind, MatchKind::kExact);
  EXPECT_EQ(list->rules[0].pattern, "example.com");
  EXPECT_EQ(list->rules[0].line, 3u);
  EXPECT_EQ(list->rules[1].kind, MatchKind::kSuffix);
  EXPECT_EQ(list->rules[1].line, 4u);
  EXPECT_EQ(list->rules[2].kind, MatchKind::kRegex);
  EXPECT_EQ(list->rules[2].pattern, "^ads[0-9]*\\. # part of the regex");
}

TEST(DomainList, ErrorsNameFileAndLine) {
  EXPECT_EQ(parse_error("block exact a.com\n\ndeny exact b.com\n"),
            "d.conf:3: unknown action 'deny' (expected block or log)");
  EXPECT_EQ(parse_error("block prefix a.com"),
            "d.conf:1: unknown match kind 'prefix' (expected exact, suffix or regex)");
  EXPECT_EQ(parse_error("#\nblock"),
            "d.conf:2: missing match kind after 'block' (expected exact, suffix or regex)");
  EXPECT_EQ(parse_error("log exact"), "d.conf:1: missing domain after 'exact'");
  EXPECT_EQ(parse_error("log regex   "), "d.conf:1: missing regex");
  EXPECT_EQ(parse_error("log exact a.com b.com"),
            "d.conf:1: unexpected 'b.com' after the domain (one domain a line)");
  EXPECT_EQ(parse_error("\n\nblock suffix *.ads.example"),
            "d.conf:3: wildcards are not patterns here: write 'suffix ads.example' (it matches "
            "the domain and every name under it)");
  EXPECT_EQ(parse_error("block exact a..com"), "d.conf:1: empty label in 'a..com'");
  EXPECT_EQ(parse_error("block exact ."), "d.conf:1: a domain has 1 to 253 bytes");
  EXPECT_EQ(parse_error("block exact a/b.com"),
            "d.conf:1: 'a/b.com' holds '/'; a domain holds letters, digits, '-', '_' and dots "
            "(use regex for more)");
  EXPECT_EQ(parse_error("block exact " + std::string(64, 'a') + ".com"),
            "d.conf:1: a label has at most 63 bytes");
}

TEST(DomainDatabase, CompileErrorsNameTheRuleLine) {
  const std::string bad = compile_error("block exact a.com\n# x\nlog regex ^ads[0-9\n");
  EXPECT_TRUE(bad.starts_with("d.conf:3: regex '^ads[0-9': ")) << bad;
  EXPECT_EQ(compile_error("block exact a.com\nlog regex .*\n"),
            "d.conf:2: regex '.*': the pattern can match the empty name, so it would match "
            "every name; anchor it to at least one character");
  // Hyperscan's own analysis, not a list of spellings: these compile in block mode.
  for (const char* pattern : {"^.*$", "^x?$", "^(www\\.)?$", "(a|)", "x{0,3}"}) {
    EXPECT_NE(
        compile_error(std::string("log regex ") + pattern + "\n").find("can match the empty name"),
        std::string::npos)
        << pattern;
  }
  // Matching every name (each of a set of unlike names) is refused the same way.
  for (const char* pattern : {"^.+$", ".", "[a-z0-9_]", "^[^ ]+$"}) {
    EXPECT_NE(compile_error(std::string("log regex ") + pattern + "\n")
                  .find("the pattern matches every name"),
              std::string::npos)
        << pattern;
  }
  // A pattern that singles names out is accepted.
  EXPECT_EQ(compile_error("log regex ^x$\nlog regex ^api[0-9]+\\.\nlog regex \\.com$\n"),
            "(compiled)");
  EXPECT_TRUE(compile_error("log regex (?<=a)b\n").starts_with("d.conf:1: regex")) << "lookbehind";
}

TEST(DomainMatch, ExactMatchesOnlyTheName) {
  Policy p = policy("block exact example.com\n");
  EXPECT_EQ(match(p.db, p.scratch, "example.com"), (Verdict{Action::kBlock, 0}));
  EXPECT_EQ(match(p.db, p.scratch, "www.example.com").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "example.com.au").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "exampleXcom").action, Action::kNone);  // dot is literal
  EXPECT_EQ(match(p.db, p.scratch, "").action, Action::kNone);
}

TEST(DomainMatch, SuffixMatchesTheDomainAndNamesUnderItOnly) {
  Policy p = policy("block suffix example.com\n");
  EXPECT_EQ(match(p.db, p.scratch, "example.com").action, Action::kBlock);
  EXPECT_EQ(match(p.db, p.scratch, "a.b.example.com").action, Action::kBlock);
  EXPECT_EQ(match(p.db, p.scratch, "notexample.com").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "example.com.evil").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "xample.com").action, Action::kNone);
}

TEST(DomainMatch, OnlyTheOccurrenceAtTheEndOfTheNameCounts) {
  Policy p = policy("block exact example.com\nlog suffix ab.com\n");
  EXPECT_EQ(match(p.db, p.scratch, "example.com.example.com").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "example.comexample.com").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "ab.com.ab.com"), (Verdict{Action::kLog, 1}));
  EXPECT_EQ(match(p.db, p.scratch, "ab.comab.com").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "ab.com.xab.com").action, Action::kNone);
}

TEST(DomainMatch, MatchingIgnoresCase) {
  Policy p = policy("block exact Example.Com\nlog regex ^ADS\\.\n");
  EXPECT_EQ(match(p.db, p.scratch, "EXAMPLE.com").action, Action::kBlock);
  EXPECT_EQ(match(p.db, p.scratch, "ads.example.org").action, Action::kLog);
}

TEST(DomainMatch, RegexMatchesAsWrittenAnywhereUnlessAnchored) {
  Policy p = policy("log regex ^ads[0-9]*\\.\nblock regex tracker\n");
  EXPECT_EQ(match(p.db, p.scratch, "ads12.example.com"), (Verdict{Action::kLog, 0}));
  EXPECT_EQ(match(p.db, p.scratch, "ads.example.com").action, Action::kLog);
  EXPECT_EQ(match(p.db, p.scratch, "bads1.example.com").action, Action::kNone);
  EXPECT_EQ(match(p.db, p.scratch, "my-tracker-cdn.net"), (Verdict{Action::kBlock, 1}));
}

TEST(DomainMatch, BlockBeatsLogAndLowestIndexBreaksTies) {
  Policy p = policy(
      "log suffix example.com\n"     // 0
      "log exact a.example.com\n"    // 1
      "block regex ^a\\.\n"          // 2
      "block suffix example.com\n"   // 3
      "log suffix example.org\n"     // 4
      "log exact x.example.org\n");  // 5
  EXPECT_EQ(match(p.db, p.scratch, "a.example.com"), (Verdict{Action::kBlock, 2}));
  EXPECT_EQ(match(p.db, p.scratch, "b.example.com"), (Verdict{Action::kBlock, 3}));
  EXPECT_EQ(match(p.db, p.scratch, "x.example.org"), (Verdict{Action::kLog, 4}));
  EXPECT_EQ(match(p.db, p.scratch, "example.net"), (Verdict{}));
}

TEST(DomainMatch, EmptyListMatchesNothing) {
  Policy p = policy("# nothing yet\n");
  EXPECT_EQ(p.db.rule_count(), 0u);
  EXPECT_EQ(match(p.db, p.scratch, "example.com"), (Verdict{}));
  EXPECT_EQ(p.scratch.scan_errors(), 0u);
}

TEST(DomainScratch, PrepareFitsANewerDatabase) {
  Policy small = policy("");
  Policy big = policy("block regex ^(a|b)+c{3,40}d\\.\nlog suffix example.com\n");
  // A scratch made for the empty list cannot scan the new one: counted, never a crash.
  EXPECT_EQ(match(big.db, small.scratch, "example.com"), (Verdict{}));
  EXPECT_EQ(small.scratch.scan_errors(), 1u);
  ASSERT_TRUE(small.scratch.prepare(big.db).ok());
  EXPECT_EQ(match(big.db, small.scratch, "abcccd.example.com"), (Verdict{Action::kBlock, 0}));
  EXPECT_EQ(match(big.db, small.scratch, "www.example.com"), (Verdict{Action::kLog, 1}));
  EXPECT_EQ(small.scratch.scan_errors(), 1u);
}

TEST(DomainDatabase, ExampleConfigParsesAndCompiles) {
  auto list = load_domain_list(std::string(EXITGW_SOURCE_DIR) + "/conf/domains.conf");
  ASSERT_TRUE(list.ok()) << list.error();
  EXPECT_GT(list->rules.size(), 3u);
  auto db = compile(*list);
  ASSERT_TRUE(db.ok()) << db.error();
  EXPECT_GT(db->database_bytes(), 0u);
  EXPECT_GT(db->scratch_bytes(), 0u);
}

TEST(DomainList, MissingFileIsAnError) {
  auto list = load_domain_list("/nonexistent/domains.conf");
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.error(), "/nonexistent/domains.conf: cannot open domain list");
}

// The naive model: walk the rules in order, apply the documented precedence.
Verdict naive(const DomainList& list, const std::string& name) {
  Verdict best;
  for (uint32_t i = 0; i < list.rules.size(); ++i) {
    const DomainRule& r = list.rules[i];
    bool hit = name == r.pattern;
    if (r.kind == MatchKind::kSuffix && !hit)
      hit = name.size() > r.pattern.size() && name.ends_with("." + r.pattern);
    if (hit && (r.action > best.action || (r.action == best.action && i < best.rule)))
      best = {r.action, i};
  }
  return best;
}

TEST(DomainMatch, AgreesWithNaiveModelOnRandomListsAndNames) {
  std::mt19937 rng(42);
  const std::vector<std::string> labels = {"a", "b", "ab", "ba", "x-1", "com", "net", "_t"};
  auto random_name = [&](int max_labels) {
    std::string s;
    const int n = 1 + int(rng() % unsigned(max_labels));
    for (int i = 0; i < n; ++i) {
      if (i) s += '.';
      s += labels[rng() % labels.size()];
    }
    return s;
  };
  for (int round = 0; round < 40; ++round) {
    std::string text;
    const int rules = 1 + int(rng() % 30);
    for (int i = 0; i < rules; ++i) {
      text += rng() % 3 == 0 ? "block " : "log ";
      text += rng() % 2 ? "exact " : "suffix ";
      std::string d = random_name(3);
      if (rng() % 4 == 0) d[0] = char(std::toupper(d[0]));
      text += d + "\n";
    }
    auto list = parse_domain_list(text, "random");
    ASSERT_TRUE(list.ok()) << list.error();
    Policy p = policy(text);
    for (int q = 0; q < 300; ++q) {
      const std::string name = random_name(4);
      EXPECT_EQ(match(p.db, p.scratch, name), naive(*list, name)) << text << "\nname " << name;
    }
  }
}

}  // namespace
}  // namespace exitgw::dp::domain
