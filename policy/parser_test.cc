#include "policy/parser.h"

#include <catch2/catch.hpp>
#include <string>

namespace toolwarden {
namespace {

ParseResult ParseText(const std::string& text, const ParseLimits& limits = {}) {
  return Parse(Source("test.policy", text), limits);
}

std::string Errors(const std::string& text, const ParseLimits& limits = {}) {
  Source source("test.policy", text);
  return FormatDiagnostics(source, Parse(source, limits).diagnostics);
}

TEST_CASE("parses every kind of item") {
  ParseResult r = ParseText(R"(
policy banking;
tools "banking.tools.json";
trust get_iban, "get_*";
let max = 5000;
default ask "why: {reason}";
allow get_balance, "get_most_recent_*", *;
forbid send_money when amount > max priority 1 fallback terminate "no" update { allow x; };
)");
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  REQUIRE(r.ast.items.size() == 7);
  CHECK(r.ast.items[0].kind == ItemKind::kPolicy);
  CHECK(r.ast.items[0].name == "banking");
  CHECK(r.ast.items[1].path == "banking.tools.json");
  CHECK(r.ast.items[2].trust.size() == 2);
  CHECK(r.ast.items[2].trust[1].IsGlob());
  CHECK(r.ast.items[3].value->literal == 5000);
  CHECK(r.ast.items[4].fallback.kind == FallbackKind::kAsk);
  CHECK(*r.ast.items[4].fallback.message == "why: {reason}");
  const Rule& allow = r.ast.items[5].rule;
  CHECK(allow.effect == Effect::kAllow);
  CHECK(allow.targets.size() == 3);
  CHECK(allow.targets[2].text == "*");
  const Rule& forbid = r.ast.items[6].rule;
  CHECK(forbid.effect == Effect::kForbid);
  CHECK(*forbid.priority == 1);
  CHECK(forbid.fallback->kind == FallbackKind::kTerminate);
  CHECK(forbid.has_update);
  REQUIRE(forbid.updates.size() == 1);
  CHECK(forbid.updates[0].targets[0].text == "x");
  CHECK(forbid.condition->op == Op::kGt);
}

TEST_CASE("operator precedence follows the grammar") {
  ParseResult r = ParseText("allow t when not a == 1 + 2 * 3 or b in [1, 2] and c;");
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  const Expr& e = *r.ast.items[0].rule.condition;
  REQUIRE(e.op == Op::kOr);
  const Expr& left = *e.children[0];
  REQUIRE(left.op == Op::kNot);
  const Expr& eq = *left.children[0];
  REQUIRE(eq.op == Op::kEq);
  CHECK(eq.children[1]->op == Op::kAdd);
  CHECK(eq.children[1]->children[1]->op == Op::kMul);
  const Expr& right = *e.children[1];
  CHECK(right.op == Op::kAnd);
  CHECK(right.children[0]->op == Op::kIn);
  CHECK(right.children[0]->children[1]->kind == ExprKind::kList);
}

TEST_CASE("paths, calls, literals and from") {
  ParseResult r = ParseText(
      R"(allow t when a.b[0]["k"] == -1.5e3 and url(u).host endswith r"\.x" and v not in [] and w from query;)");
  REQUIRE_FALSE(r.diagnostics.HasErrors());
  const Expr& e = *r.ast.items[0].rule.condition;
  const Expr& eq = *e.children[0]->children[0]->children[0];
  REQUIRE(eq.op == Op::kEq);
  const Expr& index = *eq.children[0];
  CHECK(index.kind == ExprKind::kIndex);
  CHECK(index.children[1]->literal == "k");
  CHECK(index.children[0]->kind == ExprKind::kIndex);
  CHECK(index.children[0]->children[0]->kind == ExprKind::kField);
  CHECK(eq.children[1]->literal.get<double>() == -1500.0);
  const Expr& ends = *e.children[0]->children[0]->children[1];
  CHECK(ends.op == Op::kEndsWith);
  CHECK(ends.children[0]->kind == ExprKind::kField);
  CHECK(ends.children[0]->children[0]->kind == ExprKind::kCall);
  CHECK(ends.children[1]->raw_string);
  CHECK(ends.children[1]->literal == "\\.x");
  CHECK(e.children[0]->children[1]->op == Op::kNotIn);
  CHECK(e.children[1]->kind == ExprKind::kFrom);
  CHECK(e.children[1]->name == "query");
}

TEST_CASE("positions are 1-based lines and code-point columns") {
  ParseResult r = ParseText("# é comment\n  allow t when é_is_not_ascii;\n");
  REQUIRE(r.diagnostics.HasErrors());
  ParseResult ok = ParseText("# é\nallow \"é\" when x == \"é\" and y;\n");
  REQUIRE_FALSE(ok.diagnostics.HasErrors());
  const Expr& y = *ok.ast.items[0].rule.condition->children[1];
  CHECK(y.position.line == 2);
  CHECK(y.position.column == 29);
  CHECK(ok.ast.comments.size() == 1);
}

TEST_CASE("syntax errors are positioned diagnostics") {
  std::string out = Errors("allow t when ;\n");
  CHECK(out.find("test.policy:1:14: error: syntax error") == 0);
  CHECK(out.find("  allow t when ;\n               ^\n") != std::string::npos);
  CHECK(Errors("allow t when x == \"abc;\n").find("unterminated string") != std::string::npos);
  CHECK(Errors("allow t when x == $;").find("unexpected character `$`") != std::string::npos);
}

TEST_CASE("limit: error recovery stops after kMaxSyntaxErrors") {
  std::string garbage;
  for (int i = 0; i < 1000; ++i) garbage += "allow ; ";
  ParseResult r = ParseText(garbage);
  CHECK(r.diagnostics.error_count() <= static_cast<size_t>(kMaxSyntaxErrors) + 1);
  CHECK(Errors(garbage).find("too many syntax errors") != std::string::npos);
}

TEST_CASE("limit: source size") {
  ParseLimits limits;
  limits.max_source_bytes = 100;
  CHECK(Errors(std::string(101, ' '), limits).find("policy is 101 bytes; the limit is 100") !=
        std::string::npos);
  CHECK_FALSE(ParseText(std::string(100, ' '), limits).diagnostics.HasErrors());
  // The real limit, with a 50 MB policy.
  std::string huge(50u << 20, '#');
  CHECK(Errors(huge).find("the limit is " + std::to_string(kMaxSourceBytes)) != std::string::npos);
}

TEST_CASE("limit: invalid UTF-8 is a positioned diagnostic") {
  CHECK(Errors("allow t;\nallow \xff;").find("test.policy:2:7: error: invalid UTF-8 at byte 15") ==
        0);
  CHECK(FindInvalidUtf8("ok é ✓ 😀") == std::string_view::npos);
  CHECK(FindInvalidUtf8("\xc0\x80") == 0);          // overlong
  CHECK(FindInvalidUtf8("a\xed\xa0\x80") == 1);     // surrogate
  CHECK(FindInvalidUtf8("ab\xe2\x9c") == 2);        // truncated
  CHECK(FindInvalidUtf8("\xf4\x90\x80\x80") == 0);  // past U+10FFFF
}

TEST_CASE("limit: 100,000 nested parentheses") {
  std::string deep =
      "allow t when " + std::string(100000, '(') + "x" + std::string(100000, ')') + ";";
  std::string out = Errors(deep);
  CHECK(out.find("test.policy:1:" + std::to_string(14 + kMaxNesting) +
                 ": error: expression nests deeper than 256") == 0);
  std::string ok = "allow t when " + std::string(200, '(') + "x" + std::string(200, ')') + ";";
  CHECK_FALSE(ParseText(ok).diagnostics.HasErrors());
}

TEST_CASE("limit: long operator chains and prefix runs") {
  std::string chain = "allow t when x";
  for (int i = 0; i < 100000; ++i) chain += " and x";
  CHECK(Errors(chain + ";").find("nests deeper") != std::string::npos);
  std::string nots = "allow t when ";
  for (int i = 0; i < 100000; ++i) nots += "not ";
  CHECK(Errors(nots + "x;").find("nests deeper") != std::string::npos);
  // Operators in separate list elements do not nest.
  std::string list = "allow t when x in [";
  for (int i = 0; i < 1000; ++i) list += "1 + 1, ";
  CHECK_FALSE(ParseText(list + "1];").diagnostics.HasErrors());
}

TEST_CASE("limit: selector chains nest like operators") {
  std::string fields = "allow t when x";
  for (int i = 0; i < 20000; ++i) fields += ".a";
  CHECK(Errors(fields + " == 1;").find("nests deeper") != std::string::npos);
  std::string indexes = "allow t when x";
  for (int i = 0; i < 30000; ++i) indexes += "[0]";
  CHECK(Errors(indexes + " == 1;").find("nests deeper") != std::string::npos);
  std::string calls = "allow t when ";
  for (int i = 0; i < 30000; ++i) calls += "lower(";
  CHECK(Errors(calls + "x" + std::string(30000, ')') + " == 1;").find("nests deeper") !=
        std::string::npos);
  CHECK_FALSE(ParseText("allow t when x.a.b[0][\"k\"].c == 1;").diagnostics.HasErrors());
}

TEST_CASE("limit: a 1,000,000-element list literal") {
  std::string list = "let big = [";
  for (int i = 0; i < 1000000; ++i) list += "1,";
  list += "1];";
  CHECK(Errors(list).find("list literal has more than 100000 elements") != std::string::npos);
  ParseLimits limits;
  limits.max_list_elements = 3;
  CHECK_FALSE(ParseText("let l = [1, 2, 3];", limits).diagnostics.HasErrors());
  CHECK(ParseText("let l = [1, 2, 3, 4];", limits).diagnostics.HasErrors());
}

TEST_CASE("limit: kMaxRules items in one file") {
  std::string many;
  for (size_t i = 0; i <= kMaxRules; ++i) many += "allow a;\n";
  ParseResult r = ParseText(many);
  REQUIRE(r.diagnostics.HasErrors());
  CHECK(r.ast.items.empty());
  CHECK(Errors(many).find("more than 100000 items") != std::string::npos);
}

TEST_CASE("limit: rules per file") {
  ParseLimits limits;
  limits.max_rules = 3;
  CHECK_FALSE(ParseText("allow a; allow b; allow c;", limits).diagnostics.HasErrors());
  CHECK(
      Errors("allow a; allow b; allow c update { allow d; };", limits).find("more than 3 items") !=
      std::string::npos);
}

}  // namespace
}  // namespace toolwarden
