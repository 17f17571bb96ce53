// HuJSON reader: comments, trailing commas, limits, and line:column in every error.
#include "control/policy/hujson.h"

#include <gtest/gtest.h>

#include <string>

namespace exitgw::policy {
namespace {

TEST(PolicyHujson, AcceptsLineAndBlockCommentsAndTrailingCommas) {
  const char* text = R"({
    // a line comment
    "a": [1, 2, 3,],  /* a block
                          comment spanning lines */
    "b": {"c": "// not a comment", "d": "/* nor this */",},
  })";
  auto doc = parse_hujson(text, "p.hujson");
  ASSERT_TRUE(doc.ok()) << doc.error();
  EXPECT_EQ(doc->root["a"].size(), 3u);
  EXPECT_EQ(doc->root["b"]["c"], "// not a comment");
  EXPECT_EQ(doc->root["b"]["d"], "/* nor this */");
}

TEST(PolicyHujson, TrailingCommaWithCommentBeforeCloseBracket) {
  auto doc = parse_hujson("[1, // one\n 2, /* two */\n]", "p");
  ASSERT_TRUE(doc.ok()) << doc.error();
  EXPECT_EQ(doc->root.size(), 2u);
}

TEST(PolicyHujson, CommaWithoutElementIsAnErrorWithPosition) {
  auto doc = parse_hujson("{\n  \"a\": [,],\n}", "p.hujson");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().rfind("p.hujson:2:", 0), 0u) << doc.error();
  EXPECT_FALSE(parse_hujson("[1,,]", "p").ok());
  EXPECT_FALSE(parse_hujson("{,}", "p").ok());
}

TEST(PolicyHujson, SyntaxErrorNamesLineAndColumn) {
  auto doc = parse_hujson("{\n  \"a\": 1,\n  \"b\": tru\n}", "p.hujson");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().rfind("p.hujson:3:", 0), 0u) << doc.error();
  EXPECT_NE(doc.error().find("literal"), std::string::npos) << doc.error();
}

TEST(PolicyHujson, UnterminatedBlockCommentNamesItsStart) {
  auto doc = parse_hujson("{\n  /* never closed\n}", "p");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error(), "p:2:3: unterminated /* comment");
}

TEST(PolicyHujson, DuplicateKeyIsAnErrorAtTheSecondKey) {
  auto doc = parse_hujson("{\"acls\": [],\n \"acls\": []}", "p");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error(), "p:2:2: duplicate key in the same object");
  // The same key in different objects is fine.
  EXPECT_TRUE(parse_hujson(R"([{"a": 1}, {"a": 2}])", "p").ok());
}

TEST(PolicyHujson, DuplicateKeySpelledWithEscapeIsStillDuplicate) {
  EXPECT_FALSE(parse_hujson(R"({"ab": 1, "\u0061b": 2})", "p").ok());
}

TEST(PolicyHujson, NestingBeyondLimitIsRefused) {
  std::string deep(kHujsonMaxDepth + 1, '[');
  deep += std::string(kHujsonMaxDepth + 1, ']');
  auto doc = parse_hujson(deep, "p");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.error().find("nesting deeper"), std::string::npos);
  std::string ok(kHujsonMaxDepth, '[');
  ok += std::string(kHujsonMaxDepth, ']');
  EXPECT_TRUE(parse_hujson(ok, "p").ok());
}

TEST(PolicyHujson, OversizedInputIsRefusedBeforeParsing) {
  std::string big(kHujsonMaxBytes + 1, ' ');
  auto doc = parse_hujson(big, "p");
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.error().find("at most"), std::string::npos);
}

TEST(PolicyHujson, EmptyAndGarbageInputAreErrorsNotCrashes) {
  EXPECT_FALSE(parse_hujson("", "p").ok());
  EXPECT_FALSE(parse_hujson("   // only a comment\n", "p").ok());
  EXPECT_FALSE(parse_hujson(std::string("{\"a\":\0}", 7), "p").ok());
  EXPECT_FALSE(parse_hujson("{\"a\": \"\xff\xfe\"}", "p").ok());
}

TEST(PolicyHujson, LocateFindsKeysAndArrayElements) {
  auto doc = parse_hujson("{\n  \"acls\": [\n    {\"src\": [\"a\", \"b\"]},\n  ],\n}", "p");
  ASSERT_TRUE(doc.ok()) << doc.error();
  TextPosition pos = doc->locate({"acls", size_t{0}, "src", size_t{1}});
  EXPECT_EQ(pos.line, 3);
  EXPECT_EQ(pos.column, 19);
  pos = doc->locate({"acls"});
  EXPECT_EQ(pos.line, 2);
  EXPECT_EQ(pos.column, 3);
  EXPECT_EQ(doc->locate({"nope"}).line, 0);
  EXPECT_EQ(format_path({"acls", size_t{0}, "src", size_t{1}}), "acls[0].src[1]");
}

}  // namespace
}  // namespace exitgw::policy
