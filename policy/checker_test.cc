#include "policy/checker.h"

#include <catch2/catch.hpp>

#include "policy/parser.h"

namespace toolwarden {
namespace {

using nlohmann::json;

ToolCatalog Tools() {
  json doc = json::parse(R"({
    "share_file": {"type": "object", "properties": {"file_id": {"type": "string"},
                   "email": {"type": "string"}, "permission": {"enum": ["r", "rw"]}},
                   "required": ["file_id", "email"]},
    "send_money": {"type": "object", "properties": {"recipient": {"type": "string"},
                   "amount": {"type": "number"}, "meta": {"type": "object",
                   "properties": {"note": {"type": "string"}}}},
                   "required": ["recipient", "amount"]},
    "send_email": {"type": "object", "properties": {"recipients": {"type": "array", "items": {"type": "string"}},
                   "cc": {"type": "array", "items": {"type": "string"}}, "query": {"type": "string"}},
                   "required": ["recipients"]},
    "get_balance": {"type": "object", "properties": {}}
  })");
  return *ToolCatalogFromJson(doc);
}

std::string Diagnose(const std::string& text, bool with_tools = true) {
  Source source("c.policy", text);
  ParseResult parsed = Parse(source);
  REQUIRE_FALSE(parsed.diagnostics.HasErrors());
  ToolCatalog tools = Tools();
  CheckResult result = Check(std::move(parsed.ast), source, with_tools ? &tools : nullptr);
  CHECK((result.policy == nullptr) == result.diagnostics.HasErrors());
  return FormatDiagnostics(source, result.diagnostics);
}

struct Case {
  const char* policy;
  const char* expected;  // "" = no diagnostics; else a substring of the output
};

TEST_CASE("checker errors and warnings, positioned") {
  const Case cases[] = {
      {"allow share_file when email == \"a@b.c\";", ""},
      {"allow share_file when emails in [\"a\"];",
       "c.policy:1:23: error: unknown argument `emails` of tool `share_file`"},
      {"allow share_files;", "c.policy:1:7: error: unknown tool `share_files`"},
      {"allow \"share_*\", \"nope_*\";",
       "c.policy:1:18: warning: glob `nope_*` matches no known tool"},
      {"allow send_money when amount matches r\"1.*\";",
       "error: `matches` needs string, but `amount` is number"},
      {"allow send_money when amount in [\"1\"];",
       "error: `amount` is number but the items of `[\"1\"]` are string, so `in` never matches"},
      {"allow send_money when amount == \"5\";", "so `==` is always false"},
      {"allow send_money when amount != null and recipient != null;", ""},
      {"allow send_money when recipient < 5;",
       "`<` compares numbers with numbers or strings with strings"},
      {"allow send_money when amount;",
       "error: a condition must be a boolean, but `amount` is number"},
      {"allow send_money when meta.nope == 1;", "error: `meta` has no field `nope`"},
      {"allow send_money when meta.note == \"x\";", ""},
      {"allow send_money when url(recipient).hots == \"x\";", "has no field `hots`"},
      {"allow send_email when all(r in recipients, email(r).domain == \"x.com\");", ""},
      {"allow send_email when all(r in recipients, r > 1);", "`>` compares numbers with numbers"},
      {"allow send_email when query == \"x\";",
       "warning: `query` is the built-in, not the argument of `send_email`"},
      {"forbid send_email when any(c in cc, c endswith \"x\");",
       "warning: optional argument `cc` of `send_email` may be missing (null) here"},
      {"forbid send_email when cc != null and any(c in cc, c endswith \"x\");", ""},
      {"allow send_money when sum(send_money.amt) < 5;",
       "unknown argument `amt` of tool `send_money`"},
      {"allow send_money when count(nope) < 5;", "unknown tool `nope`"},
      {"allow get_balance;\nallow get_balance when tool == \"x\";",
       "c.policy:2:1: warning: this rule can never decide: the rule at line 1 always decides "
       "first"},
      {"forbid get_balance when true;\nallow get_balance;", ""},
      {"allow *;\nforbid get_balance priority 11;",
       "c.policy:2:1: warning: this rule can never decide"},
      {"allow send_money when recipient from trusted;",
       "warning: `from trusted` but no `trust` item"},
      {"trust nope;", "warning: unknown tool `nope`"},
  };
  for (const Case& c : cases) {
    INFO(c.policy);
    std::string out = Diagnose(c.policy);
    if (std::string(c.expected).empty()) {
      CHECK(out == "");
    } else {
      CHECK_THAT(out, Catch::Matchers::Contains(c.expected));
    }
  }
}

TEST_CASE("checks that need no tool schemas") {
  const Case cases[] = {
      {"policy a;\npolicy b;", "c.policy:2:1: error: `policy` must be the first item"},
      {"tools \"a\";\ntools \"b\";", "more than one `tools` item"},
      {"default block;\ndefault ask;", "more than one `default` item"},
      {"allow t;\ndefault block;", "warning: `default` after rules"},
      {"let a = 1;\nlet a = 2;", "c.policy:2:1: error: `a` is already defined"},
      {"let query = 1;", "`query` is a built-in name"},
      {"let a = b;", "unknown constant `b`"},
      {"let a = 2 * 3 + 1;\nallow t when x == a;", ""},
      {"let a = \"x\" + 1;", "`let` arithmetic needs numbers"},
      {"let a = 1 / 0;", "division by zero"},
      {"let a = 1e300 * 1e300;", "`let` arithmetic overflows"},
      {"let a = 1e300 * 10;", ""},
      {"let a = lower(\"X\");", "`let` values may use only literals"},
      {"allow t when x fallback block;", "error: `fallback` on an `allow` rule"},
      {"forbid t priority 1000001;", "priority must be between 0 and 1000000"},
      {"forbid t fallback block \"{tool} {bogus}\";", "unknown placeholder `{bogus}` in message"},
      {"forbid t fallback block \"{tool} {query} {rule} {reason}\";", ""},
      {"allow t when frob(x);", "unknown function `frob`"},
      {"allow t when len(x, y) > 1;", "`len` takes 1 argument, got 2"},
      {"allow t when all(x, true);", "`all` takes `NAME in ARRAY, CONDITION`"},
      {"allow t when all(tool in xs, true);", "`tool` is a built-in name"},
      {"allow t when x from elsewhere;", "`from` takes `query` or `trusted`, got `elsewhere`"},
      {"allow t when x matches y;", "the pattern of `matches` must be a constant string"},
      {"allow t when x matches \"(\";", "invalid regex: missing ): ("},
      {"allow t when x matches \"((a{100}){100}){100}\";", "regex"},
      {"allow t when x matches r\"(abcdefghijklmnopqrstuvwxyz){900}\";",
       "regex program is too large"},
      {"let p = r\"[a-z]+\";\nallow t when x matches p;", ""},
      {"allow t when count(1) > 1;", "expected a tool name or a quoted glob"},
      {"allow t when sum(x) > 1;", "`sum` takes TOOL.ARGUMENT"},
      {"allow t when 1 + \"a\" > 1;", "`+` needs number"},
      {"allow t when not 1;", "the operand of `not` must be a boolean"},
      {"allow t when x and 2;", "an operand of `and`/`or` must be a boolean"},
      {"allow t when -\"a\" < 1;", "unary `-` needs number"},
      {"allow t when [1] in 1;", "`in` needs array"},
  };
  for (const Case& c : cases) {
    INFO(c.policy);
    std::string out = Diagnose(c.policy, /*with_tools=*/false);
    if (std::string(c.expected).empty()) {
      CHECK(out == "");
    } else {
      CHECK_THAT(out, Catch::Matchers::Contains(c.expected));
    }
  }
}

TEST_CASE("limit: kMaxQuantifierNesting, with the position of the quantifier too deep") {
  auto nested = [](int levels) {
    std::string condition = "true";
    for (int i = levels - 1; i >= 0; --i) {
      condition = "any(v" + std::to_string(i) + " in xs, " + condition + ")";
    }
    return "allow t when " + condition + ";";
  };
  CHECK(Diagnose(nested(kMaxQuantifierNesting), false).empty());
  const std::string over = Diagnose(nested(kMaxQuantifierNesting + 1), false);
  const size_t column = nested(kMaxQuantifierNesting + 1).find("any(v16 ") + 1;
  CHECK(over == "c.policy:1:" + std::to_string(column) +
                    ": error: quantifiers nest deeper than 16\n" +
                    over.substr(over.find('\n') + 1));
  CHECK(over.find("error", over.find('\n')) == std::string::npos);  // one diagnostic
}

TEST_CASE("the checked policy carries constants, trust and the default") {
  Source source(
      "c.policy",
      "policy p;\ntrust a, \"b*\";\nlet l = [1, -2.5, \"x\"];\ndefault ask \"m\";\nallow t;");
  ParseResult parsed = Parse(source);
  CheckResult r = Check(std::move(parsed.ast), source, nullptr);
  REQUIRE(r.policy != nullptr);
  CHECK(r.policy->name == "p");
  CHECK(r.policy->constants.at("l") == json::parse("[1, -2.5, \"x\"]"));
  CHECK(r.policy->trusted_tools.size() == 2);
  CHECK(r.policy->default_fallback->kind == FallbackKind::kAsk);
}

TEST_CASE("glob matching") {
  CHECK(GlobMatch("get_*", "get_balance"));
  CHECK(GlobMatch("*", ""));
  CHECK(GlobMatch("a?c", "abc"));
  CHECK_FALSE(GlobMatch("a?c", "ac"));
  CHECK(GlobMatch("*_*_x", "a_b_c_x"));
  CHECK_FALSE(GlobMatch("get_*", "set_balance"));
  CHECK(GlobMatch(std::string(50, '*') + "b", std::string(10000, 'a') + "b"));
  CHECK_FALSE(GlobMatch("*a*a*a*a*b", std::string(10000, 'a')));
  CHECK(GlobMatch("caf?", "café"));  // ? is one code point
  CHECK_FALSE(GlobMatch("caf??", "café"));
  CHECK(GlobMatch("*é", "xxé"));
}

}  // namespace
}  // namespace toolwarden
