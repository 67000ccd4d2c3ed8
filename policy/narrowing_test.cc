#include "policy/narrowing.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "policy/progent_import.h"

namespace toolwarden {
namespace {

NarrowingResult Prove(const std::string& before, const std::string& after,
                      const NarrowingLimits& limits = {}) {
  StatusOr<NarrowingResult> result = ProveNarrower(before, after, limits);
  INFO(result.status().message());
  REQUIRE(result.ok());
  CHECK(result->narrower == result->widening.empty());
  return *result;
}

struct Case {
  std::string before;
  std::string after;
  bool narrower;
};

void RunCases(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    INFO("before: " << c.before);
    INFO("after:  " << c.after);
    NarrowingResult r = Prove(c.before, c.after);
    for (const Narrowing& w : r.widening) UNSCOPED_INFO(w.Line());
    CHECK(r.narrower == c.narrower);
  }
}

// One rule on `t` each, with these conditions ("" for none).
Case Cond(const std::string& before, const std::string& after, bool narrower) {
  auto text = [](const std::string& cond) {
    return "allow t" + (cond.empty() ? "" : " when " + cond) + ";\n";
  };
  return Case{text(before), text(after), narrower};
}

TEST_CASE("targets: exact names, globs and `*`", "[narrowing]") {
  RunCases({
      {"allow t;", "allow t;", true},
      {"allow t;", "allow u;", false},
      {"allow *;", "allow t, \"get_*\", \"?\";", true},
      {"allow \"**\";", "allow t;", true},
      {"allow \"get_*\";", "allow get_balance;", true},
      {"allow \"get_*\";", "allow set_balance;", false},
      {"allow \"get_?\";", "allow get_a;", true},
      {"allow \"get_?\";", "allow get_ab;", false},
      {"allow \"t\";", "allow t;", true},
      {"allow t;", "allow \"t\";", true},
      {"allow \"get_*\";", "allow \"get_*\";", true},
      {"allow \"get_*\";", "allow \"get_user_*\";", true},
      {"allow \"get_*\";", "allow \"get_?\";", true},
      {"allow \"get_*\";", "allow \"ge*\";", false},
      {"allow \"get_?\";", "allow \"get_*\";", false},
      {"allow get_a;", "allow \"get_*\";", false},
      {"allow \"*_x\";", "allow \"a*_x\";", false},  // true, but not proven
      {"allow \"a*\";", "allow \"a?b\";", true},
      {"allow \"a*b\";", "allow \"a*b\";", true},
      {"allow \"a*b\";", "allow \"a*bc\";", false},
      {"allow \"a*b\";", "allow acb;", true},
      {"allow a, b;", "allow b;", true},
      {"allow a;", "allow a, b;", false},
      // Each target of a rule may be covered by a different rule.
      {"allow a when x == 1;\nallow b when x == 1;", "allow a, b when x == 1;", true},
      {"allow a when x == 1;\nallow b when x == 2;", "allow a, b when x == 1;", false},
      {"allow a;\nallow \"b*\";", "allow a, bc, \"bd*\";", true},
  });
}

TEST_CASE("empty sets and priorities", "[narrowing]") {
  RunCases({
      {"allow t;", "", true},
      {"", "", true},
      {"", "allow t;", false},
      {"# nothing but a comment\n", "# nothing\n", true},
      {"allow t priority 500;", "allow t priority 100;", true},
      {"allow t priority 100;", "allow t priority 100000;", true},
      {"allow t when x == 1;\nallow u;", "allow u;\nallow t when x == 1;", true},
  });
}

TEST_CASE("conditions: none, identical, more conjuncts, parentheses", "[narrowing]") {
  RunCases({
      Cond("", "x == 1", true),
      Cond("x == 1", "", false),
      Cond("", "", true),
      Cond("x == 1 and y matches r\"a.*\"", "x == 1 and y matches r\"a.*\"", true),
      Cond("x == 1 and y matches r\"a.*\"", "y matches r\"a.*\" and x == 1", true),
      Cond("x == 1", "x == 1 and y == 2", true),
      Cond("x == 1 and y == 2", "x == 1", false),
      Cond("(a == 1 and b == 2) and c == 3", "a == 1 and (b == 2 and c == 3)", true),
      Cond("a == 1 and b == 2 and c == 3", "(c == 3 and (b == 2 and (a == 1 and d)))", true),
      Cond("true", "x == 1", true),
      Cond("x == 1 and true", "x == 1", true),
      Cond("x == 1", "false", true),
      Cond("x == 1", "y == 2 and false", true),
      Cond("x == 1", "true", false),
      Cond("x", "x", true),
      Cond("not x", "not x", true),
      Cond("not x", "x", false),
  });
}

TEST_CASE("structural identity", "[narrowing]") {
  RunCases({
      Cond("args.to == \"a\"", "args[\"to\"] == \"a\"", true),
      Cond("args[\"to\"] in [\"a\", \"b\"]", "args.to == \"a\"", true),
      Cond("args.to == \"a\"", "to == \"a\"", false),  // `to` could be a constant
      Cond("args.to == \"a\"", "args.sender == \"a\"", false),
      Cond("args[\"to\"] == \"a\"", "args[\"sender\"] == \"a\"", false),
      Cond("args.to == \"a\"", "args[\"sender\"] == \"a\"", false),
      Cond("x % 1 == 0", "x % 1.0 == 0", true),
      Cond("x % 1 == 0", "x % 2 == 0", false),
      Cond("x - 1 > 2", "x - 1 > 2", true),
      Cond("x - 1 > 2", "x - 2 > 2", false),
      Cond("all(r in to, r endswith \"@corp.com\")",
           "all(r in to, r endswith \"@corp.com\") and len(to) < 3", true),
      Cond("all(r in to, r endswith \"@corp.com\")", "all(s in to, s endswith \"@corp.com\")",
           false),
      Cond("any(r in to, r == \"a\")", "all(r in to, r == \"a\")", false),
      Cond("x from query", "x from query and y == 1", true),
      Cond("x from query", "x from trusted", false),
      Cond("x from trusted", "x from query", false),  // true, but not proven
      Cond("count(send_money) < 3", "count(send_money) < 2", true),
      Cond("count(send_money) < 3", "count(get_balance) < 2", false),
      Cond("sum(send_money.amount) + amount <= 100", "sum(send_money.amount) + amount <= 100",
           true),
      Cond("url(u).host == \"a.com\"", "url(u).host == \"a.com\"", true),
      Cond("url(u).host == \"a.com\"", "url(u).host == \"b.com\"", false),
      Cond("url(u).host in [\"a.com\", \"b.com\"]", "url(u).host == \"b.com\"", true),
      Cond("x[0] == 1", "x[0] == 1", true),
      Cond("x[0] == 1", "x[1] == 1", false),
      Cond("x == [1, 2]", "x == [1, 2]", true),
      Cond("x == [1, 2]", "x == [1, 3]", false),
      Cond("x == [1, 2]", "x in [[1, 2]]", false),  // true, but not proven
  });
}

TEST_CASE("`in` and `==`", "[narrowing]") {
  RunCases({
      Cond("x in [\"a\", \"b\", \"c\"]", "x in [\"a\"]", true),
      Cond("x in [\"a\", \"b\", \"c\"]", "x in [\"c\", \"a\"]", true),
      Cond("x in [\"a\", \"b\", \"c\"]", "x in [\"a\", \"d\"]", false),
      Cond("x in [\"a\", \"b\", \"c\"]", "x in []", true),  // never holds
      Cond("x in [\"a\", \"b\", \"c\"]", "x == \"b\"", true),
      Cond("x in [\"a\", \"b\", \"c\"]", "\"b\" == x", true),
      Cond("x in [\"a\", \"b\", \"c\"]", "x == \"d\"", false),
      Cond("x in [\"a\", \"b\", \"c\"]", "x == \"A\"", false),
      Cond("x in [1.0, 2]", "x == 1", true),
      Cond("x in [0]", "x == -0.0", true),
      Cond("x in [1]", "x == \"1\"", false),
      Cond("x in [1]", "x == true", false),
      Cond("x in [true]", "x == 1", false),
      Cond("x in [null, 1]", "x == null", true),
      Cond("x == \"a\"", "x in [\"a\"]", true),
      Cond("x == \"a\"", "x in [\"a\", \"a\"]", true),
      Cond("x == \"a\"", "x in [\"a\", \"b\"]", false),
      Cond("x == \"a\"", "x == \"a\"", true),
      Cond("x == 1", "x == 1.0", true),
      Cond("x == 1", "x == 2", false),
      Cond("x == \"a\"", "y == \"a\"", false),
      Cond("x in [\"a\", \"b\"]", "x in [\"a\", y]", false),  // not a literal list
      Cond("x in [\"a\", \"b\"]", "x in allowed", false),
      Cond("lower(x) in [\"a\", \"b\"]", "lower(x) == \"a\"", true),
      Cond("lower(x) in [\"a\", \"b\"]", "x == \"a\"", false),
      Cond("x == true", "x in [true]", true),
      Cond("x in [true, false]", "type(x) == \"boolean\"", true),
      Cond("x in [true]", "type(x) == \"boolean\"", false),
      Cond("x == null", "type(x) == \"null\"", true),
  });
}

TEST_CASE("numeric bounds", "[narrowing]") {
  RunCases({
      Cond("x >= 0", "x >= 1", true),
      Cond("x >= 0", "x >= 0", true),
      Cond("x >= 0", "x > 0", true),
      Cond("x >= 0", "x > -1", false),
      Cond("x >= 0", "x >= -1", false),
      Cond("x >= 0", "x == 5", true),
      Cond("x >= 0", "x == 0", true),
      Cond("x >= 0", "x == -1", false),
      Cond("x >= 0", "x == \"5\"", false),
      Cond("x >= 0", "x in [0, 3, 7.5]", true),
      Cond("x >= 0", "x in [0, 3, -7.5]", false),
      Cond("x >= 0", "x in [0, \"a\"]", false),
      Cond("x >= 0", "x <= 5", false),
      Cond("x >= 0", "type(x) == \"number\"", false),
      Cond("x > 0", "x >= 0", false),
      Cond("x > 0", "x >= 0.5", true),
      Cond("x > 0", "x > 0", true),
      Cond("x > 0", "x == 0", false),
      Cond("x > 0", "x == 1", true),
      Cond("x <= 100", "x <= 50", true),
      Cond("x <= 100", "x < 100", true),
      Cond("x <= 100", "x <= 101", false),
      Cond("x <= 100", "x == 100", true),
      Cond("x < 100", "x <= 100", false),
      Cond("x < 100", "x <= 99", true),
      Cond("x < 100", "x < 100", true),
      Cond("x < 100", "x == 100", false),
      // Mirrored spellings.
      Cond("0 <= x", "x >= 1", true),
      Cond("x >= 0", "10 < x", true),
      Cond("x >= 0", "10 > x", false),
      Cond("100 >= x", "50 >= x", true),
      Cond("100 > x", "x <= 100", false),
      // Ranges.
      Cond("x >= 0 and x <= 100", "x >= 10 and x <= 50", true),
      Cond("x >= 0 and x <= 100", "x >= 0 and x <= 200", false),
      Cond("x >= 0 and x <= 100", "x >= 10", false),
      Cond("x >= 0 and x <= 100", "x == 100", true),
      Cond("x >= 0 and x <= 100", "x in [0, 50, 100]", true),
      Cond("x >= 0 and x <= 100", "x in [0, 50, 101]", false),
      // Other subjects.
      Cond("len(s) >= 2", "len(s) >= 3", true),
      Cond("len(s) >= 2", "len(t) >= 3", false),
      Cond("x + 1 <= 10", "x + 1 <= 5", true),
      Cond("x >= 0", "y >= 1", false),
      // String bounds are not modelled beyond identity.
      Cond("x >= \"b\"", "x >= \"b\"", true),
      Cond("x >= \"b\"", "x >= \"c\"", false),  // true, but not proven
      Cond("x >= 0", "x >= \"a\"", false),
  });
}

TEST_CASE("`matches` needs an identical pattern", "[narrowing]") {
  RunCases({
      Cond("x matches r\"a.*\"", "x matches r\"a.*\"", true),
      Cond("x matches r\"a\\d\"", "x matches \"a\\\\d\"", true),  // the same text
      Cond("x matches r\"a.*\"", "x matches r\"ab.*\"", false),   // true, but not proven
      Cond("x matches r\"a.*\"", "x matches r\"b.*\"", false),
      Cond("x matches r\"a.*\"", "x == \"abc\"", false),  // true, but not proven
      Cond("x matches r\"a.*\"", "y matches r\"a.*\"", false),
      Cond("x matches r\"a.*\"", "lower(x) matches r\"a.*\"", false),
  });
}

TEST_CASE("`!= null` follows from what fails on null", "[narrowing]") {
  RunCases({
      Cond("x != null", "x == 1", true),
      Cond("x != null", "x == \"a\"", true),
      Cond("x != null", "x == false", true),
      Cond("x != null", "x == null", false),
      Cond("x != null", "x in [\"a\", \"b\"]", true),
      Cond("x != null", "x in [\"a\", null]", false),
      Cond("x != null", "x >= 0", true),
      Cond("x != null", "0 > x", true),
      Cond("x != null", "x matches r\"a.*\"", true),
      Cond("x != null", "x startswith \"a\"", true),
      Cond("x != null", "x endswith \"a\"", true),
      Cond("x != null", "\"abc\" contains x", true),
      Cond("x != null", "x < \"m\"", true),
      Cond("x != null", "type(x) == \"string\"", true),
      Cond("x != null", "type(x) in [\"string\", \"number\"]", true),
      Cond("x != null", "type(x) in [\"null\", \"string\"]", false),
      Cond("x != null", "type(x) != \"null\"", true),
      Cond("x != null", "type(x) != \"string\"", false),
      Cond("x != null", "x not in [null]", true),
      Cond("x != null", "x not in [null, 1]", true),
      Cond("x != null", "x not in [1]", false),
      Cond("x != null", "x != null", true),
      Cond("x != null", "null != x", true),
      Cond("null != x", "x == 1", true),
      Cond("x != null", "y == 1", false),
      Cond("x != null", "x from query", false),  // true, but not proven
      Cond("x != null", "len(x) > 0", false),    // true, but not proven
      Cond("type(x) != \"null\"", "x != null", true),
      Cond("type(x) != \"null\"", "x >= 1", true),
      Cond("type(x) not in [\"null\"]", "x == 1", true),
  });
}

TEST_CASE("`type(S)` follows from comparisons that need that type", "[narrowing]") {
  RunCases({
      Cond("type(x) == \"string\"", "x in [\"a\", \"b\"]", true),
      Cond("type(x) == \"string\"", "x == \"a\"", true),
      Cond("type(x) == \"string\"", "x matches r\"a.*\"", true),
      Cond("type(x) == \"string\"", "x endswith \".txt\"", true),
      Cond("type(x) == \"string\"", "x > \"a\"", true),
      Cond("type(x) == \"string\"", "x in [\"a\", 1]", false),
      Cond("type(x) == \"string\"", "x == 1", false),
      Cond("type(x) == \"string\"", "x >= 0", false),
      Cond("type(x) == \"string\"", "x != null", false),
      Cond("type(x) == \"string\"", "x not in [1]", false),
      Cond("type(x) == \"string\"", "type(x) == \"string\"", true),
      Cond("\"string\" == type(x)", "type(x) == \"string\"", true),
      Cond("type(x) == \"string\"", "type(y) == \"string\"", false),
      Cond("type(x) == \"number\"", "x in [1, 2]", true),
      Cond("type(x) == \"number\"", "x == 1", true),
      Cond("type(x) == \"number\"", "x >= 0", true),
      Cond("type(x) == \"number\"", "x < 5", true),
      Cond("type(x) == \"number\"", "5 <= x", true),
      Cond("type(x) == \"number\"", "x in [1, \"a\"]", false),
      Cond("type(x) == \"number\"", "x matches r\"1\"", false),
      Cond("type(x) == \"number\"", "x > \"a\"", false),
      Cond("type(x) == \"number\"", "type(x) in [\"number\", \"string\"]", false),
      Cond("type(x) in [\"number\", \"string\"]", "type(x) == \"number\"", true),
      Cond("type(x) in [\"number\", \"string\"]", "x == \"a\"", true),
      Cond("type(x) in [\"number\", \"string\"]", "x == true", false),
      Cond("type(x) not in [\"array\", \"object\"]", "x in [1, \"a\", null, true]", true),
      Cond("type(x) not in [\"array\", \"object\"]", "x != null", false),
      Cond("type(x) == \"str\"", "x == \"a\"", false),  // `type` never returns "str"
      Cond("type(x) == \"str\"", "type(x) == \"str\"", true),
  });
}

TEST_CASE("`not in` and `!=`", "[narrowing]") {
  RunCases({
      Cond("x not in [\"a\", \"b\"]", "x not in [\"a\", \"b\", \"c\"]", true),
      Cond("x not in [\"a\", \"b\"]", "x not in [\"a\"]", false),
      Cond("x not in [\"a\", \"b\"]", "x == \"c\"", true),
      Cond("x not in [\"a\", \"b\"]", "x == \"a\"", false),
      Cond("x not in [\"a\", \"b\"]", "x in [\"c\", \"d\"]", true),
      Cond("x not in [\"a\", \"b\"]", "x in [\"c\", \"b\"]", false),
      Cond("x not in [\"a\", \"b\"]", "x >= 0", true),
      Cond("x not in [\"a\", \"b\"]", "type(x) == \"number\"", true),
      Cond("x not in [\"a\", \"b\"]", "type(x) == \"string\"", false),
      Cond("x not in [5]", "x >= 0", false),
      Cond("x not in [5]", "x > 5", true),
      Cond("x not in [5]", "x < 5", true),
      Cond("x != \"admin\"", "x == \"bob\"", true),
      Cond("x != \"admin\"", "x in [\"bob\", \"admin\"]", false),
      Cond("x != \"admin\"", "type(x) == \"number\"", true),
      Cond("x != \"admin\"", "x matches r\"b.*\"", false),  // true, but not proven
      Cond("x != \"admin\"", "x not in [\"admin\", \"root\"]", true),
      Cond("x not in [\"admin\", \"root\"]", "x != \"admin\"", false),
  });
}

TEST_CASE("`or` on either side", "[narrowing]") {
  RunCases({
      Cond("x == 1 or x == 2", "x == 1", true),
      Cond("x == 1 or x == 2", "x == 3", false),
      Cond("x in [1, 2, 3]", "x == 1 or x == 2", true),
      Cond("x in [1, 2, 3]", "x == 1 or x == 4", false),
      Cond("x == 1 or x == 2", "x == 2 or x == 1", true),
      Cond("a == 1", "(a == 1 and b == 2) or (a == 1 and c == 3)", true),
      Cond("a == 1", "(a == 1 and b == 2) or c == 3", false),
      Cond("a == 1 or b == 1", "b == 1 and c == 1", true),
      Cond("x != null", "x == 1 or x in [\"a\"]", true),
      Cond("x != null", "x == 1 or y == 1", false),
      Cond("(x == 1 or y == 1) and z == 1", "z == 1 and x == 1", true),
      // True, but not proven: the sides of `or` only imply it together with `c`.
      Cond("(a == 1 and c == 1) or (b == 1 and c == 1)", "(a == 1 or b == 1) and c == 1", false),
      Cond("x == 0", "x >= 0 and x <= 0", false),
  });
}

TEST_CASE("rule lists in Progent's imported shapes", "[narrowing]") {
  auto import = [](const std::string& json) {
    StatusOr<std::string> text = ImportProgent(json, "p.json");
    INFO(text.status().message());
    REQUIRE(text.ok());
    return *text;
  };
  const std::string before = import(R"({
    "send_money": [{"priority": 1, "effect": 0, "conditions": {
        "recipient": {"type": "string", "enum": ["A", "B", "C"]},
        "amount": {"type": "number", "minimum": 0, "maximum": 100}}}],
    "read_file": [{"priority": 1, "effect": 0, "conditions": {"path": "^/home/.*\\.txt$"}}],
    "pay": [{"priority": 1, "effect": 0, "conditions": {
        "n": {"type": "integer", "minimum": 1, "maximum": 10}}}],
    "get_balance": [{"priority": 1, "effect": 0}]})");
  // The shape this test relies on: `x != null and (type(x) == ... and ...)`.
  REQUIRE(before.find("amount != null and (type(amount) == \"number\" and amount >= 0") !=
          std::string::npos);
  auto after = [&](const std::string& send, const std::string& rest = "") {
    return import(R"({"send_money": [{"priority": 1, "effect": 0, "conditions": {)" + send + "}}]" +
                  rest + "}");
  };
  const std::string narrow_send =
      R"("recipient": {"type": "string", "enum": ["A"]},
         "amount": {"type": "number", "minimum": 10, "maximum": 50})";
  CHECK(Prove(before, after(narrow_send)).narrower);
  CHECK(Prove(before, after(narrow_send + R"(, "memo": {"type": "string"})")).narrower);
  CHECK(Prove(before, after(R"("recipient": {"enum": ["B"]},
                               "amount": {"type": "integer", "exclusiveMinimum": 0,
                                          "exclusiveMaximum": 100})"))
            .narrower);
  CHECK(Prove(before, after(R"("recipient": {"const": "C"},
                               "amount": {"type": "number", "minimum": 0, "maximum": 100})"))
            .narrower);
  // Wider: another recipient, a larger range, a dropped constraint.
  CHECK_FALSE(Prove(before, after(R"("recipient": {"type": "string", "enum": ["A", "D"]},
                                     "amount": {"type": "number", "minimum": 10, "maximum": 50})"))
                  .narrower);
  CHECK_FALSE(Prove(before, after(R"("recipient": {"type": "string", "enum": ["A"]},
                                     "amount": {"type": "number", "minimum": 0, "maximum": 200})"))
                  .narrower);
  CHECK_FALSE(Prove(before, after(R"("recipient": {"type": "string", "enum": ["A"]})")).narrower);
  CHECK_FALSE(Prove(before, after(R"("recipient": {"type": "string", "enum": ["A"]},
                                     "amount": {"type": "number", "minimum": -1, "maximum": 50})"))
                  .narrower);
  // Patterns: the same one, a different one.
  CHECK(Prove(before, after(narrow_send, R"(, "read_file": [{"priority": 1, "effect": 0,
                "conditions": {"path": "^/home/.*\\.txt$"}}])"))
            .narrower);
  CHECK_FALSE(Prove(before, after(narrow_send, R"(, "read_file": [{"priority": 1, "effect": 0,
                      "conditions": {"path": "^/.*\\.txt$"}}])"))
                  .narrower);
  CHECK_FALSE(Prove(before, after(narrow_send, R"(, "read_file": [{"priority": 1, "effect": 0}])"))
                  .narrower);
  // Integers: a tighter range stays narrower; a number type is wider than an integer.
  CHECK(Prove(before, after(narrow_send, R"(, "pay": [{"priority": 1, "effect": 0,
                "conditions": {"n": {"type": "integer", "minimum": 2, "maximum": 5}}}])"))
            .narrower);
  CHECK_FALSE(Prove(before, after(narrow_send, R"(, "pay": [{"priority": 1, "effect": 0,
                      "conditions": {"n": {"type": "number", "minimum": 2, "maximum": 5}}}])"))
                  .narrower);
  // A tool the current rules do not name.
  CHECK_FALSE(
      Prove(before, after(narrow_send, R"(, "delete_file": [{"priority": 1, "effect": 0}])"))
          .narrower);
  // Unconditional get_balance stays; a conditional one is narrower.
  CHECK(Prove(before, after(narrow_send, R"(, "get_balance": [{"priority": 1, "effect": 0,
                "conditions": {"account": {"type": "string"}}}])"))
            .narrower);
}

TEST_CASE("anything but allow rules is not narrower", "[narrowing]") {
  RunCases({
      {"allow t;", "forbid t;", false},
      {"allow t;", "allow t;\nforbid u;", false},
      {"allow t;\nforbid t when x == 1 priority 1;", "allow t when x == 2;", false},
      {"allow t;", "let limit = 5;\nallow t when x < limit;", false},
      {"allow t;", "default ask;", false},
      {"allow t;", "policy p;\nallow t;", false},
      {"allow t;", "trust t;", false},
      {"allow t;", "tools \"x.json\";", false},
      {"allow t;", "allow t update { allow u; };", false},
      {"allow t;", "allow t update { };", false},
      {"allow t;", "allow t fallback block;", false},
      {"allow t update { allow u; };", "allow t;", false},
      {"let x = 1;\nallow t;", "allow t;", false},
  });
}

TEST_CASE("a parse error is InvalidArgument naming the text", "[narrowing]") {
  StatusOr<NarrowingResult> bad_before = ProveNarrower("allow t when;", "allow t;");
  REQUIRE_FALSE(bad_before.ok());
  CHECK(bad_before.status().code() == StatusCode::kInvalidArgument);
  CHECK(bad_before.status().message().find("the current rules do not parse: line 1: ") == 0);
  StatusOr<NarrowingResult> bad_after = ProveNarrower("allow t;", "allow t;\nallow \"u;");
  REQUIRE_FALSE(bad_after.ok());
  CHECK(bad_after.status().code() == StatusCode::kInvalidArgument);
  CHECK(bad_after.status().message().find("the new rules do not parse: line 2: ") == 0);
  CHECK_FALSE(ProveNarrower("allow t;", "allow t when x ==").ok());
  CHECK_FALSE(ProveNarrower("allow t;", std::string("allow \"\xff\";")).ok());
}

TEST_CASE("one line per rule not proven, saying why", "[narrowing]") {
  NarrowingResult r = Prove(
      "allow send_money when recipient in [\"A\", \"B\"] and amount <= 100;\n"
      "allow get_balance;\n",
      "allow get_balance;\n"
      "allow send_money when recipient == \"A\" and amount <= 500;\n"
      "allow send_money when recipient == \"A\" and amount <= 50;\n"
      "allow delete_file, get_balance;\n"
      "allow send_money;\n"
      "allow send_money when recipient == \"C\" and amount <= 100;\n"
      "allow send_money when memo == \"x\";\n");
  REQUIRE(r.widening.size() == 5);
  CHECK(r.widening[0].position.line == 2);
  CHECK(r.widening[0].Line() ==
        "line 2: `allow send_money when ...` is not within any current rule: the closest current "
        "rule, line 1, "
        "needs `amount <= 100`, which `amount <= 500` does not imply");
  CHECK(r.widening[1].Line() ==
        "line 4: `allow delete_file, get_balance` is not within any current rule: no current rule "
        "covers `delete_file`");
  CHECK(r.widening[2].Line() ==
        "line 5: `allow send_money` is not within any current rule: the closest current rule, line "
        "1, needs "
        "`recipient in [\"A\", \"B\"]`, and this rule has no condition");
  CHECK(r.widening[3].Line() ==
        "line 6: `allow send_money when ...` is not within any current rule: the closest current "
        "rule, line 1, "
        "needs `recipient in [\"A\", \"B\"]`, which `recipient == \"C\"` does not imply");
  CHECK(r.widening[4].Line() ==
        "line 7: `allow send_money when ...` is not within any current rule: the closest current "
        "rule, line 1, "
        "needs `recipient in [\"A\", \"B\"]`, which no condition of this rule implies");
  CHECK(r.widening[4].message.find("line 7") == std::string::npos);

  NarrowingResult closest =
      Prove("allow t when a == 1 and b == 1;\nallow t when a == 1 and c == 1 and d == 1;\n",
            "allow t when a == 1 and c == 1;\n");
  REQUIRE(closest.widening.size() == 1);
  CHECK(closest.widening[0].message.find("the closest current rule, line 2, needs `d == 1`") !=
        std::string::npos);

  NarrowingResult globs = Prove("allow \"get_*\";\n", "allow \"*_balance\";\n");
  REQUIRE(globs.widening.size() == 1);
  CHECK(globs.widening[0].message ==
        "`allow \"*_balance\"` is not within any current rule: no current rule covers "
        "`\"*_balance\"`");
}

TEST_CASE("items with no place in drafted rules are reported where they are", "[narrowing]") {
  NarrowingResult after = Prove("allow t;", "allow t;\nlet x = 1;\nforbid t;\n");
  REQUIRE(after.widening.size() == 2);
  CHECK(after.widening[0].Line() ==
        "line 2: only `allow` rules without `update` blocks or fallbacks can be proven narrower, "
        "and this is a `let`");
  CHECK(after.widening[1].Line() ==
        "line 3: only `allow` rules without `update` blocks or fallbacks can be proven narrower, "
        "and this is a `forbid` rule");
  NarrowingResult before = Prove("allow t;\n\nforbid t when x == 1;\n", "allow t when x == 2;");
  REQUIRE(before.widening.size() == 1);
  CHECK(before.widening[0].position.line == 0);
  CHECK(before.widening[0].Line() ==
        "the current rules hold a `forbid` rule (line 3), so nothing can be proven narrower "
        "than them");
}

TEST_CASE("the step budget fails closed", "[narrowing]") {
  const std::string before = "allow t when x >= 0 and y in [1, 2, 3];\nallow u;\n";
  const std::string after = "allow t when y == 2 and x >= 5;\nallow u;\n";
  CHECK(Prove(before, after).narrower);
  NarrowingLimits tiny;
  tiny.max_steps = 5;
  NarrowingResult r = Prove(before, after, tiny);
  CHECK_FALSE(r.narrower);
  REQUIRE(r.widening.size() == 2);
  CHECK(r.widening[0].Line() ==
        "line 1: `allow t when ...` was not proven within a current rule: the proof ran out of "
        "its budget of 5 steps");

  // The default budget, hit by texts a model could send: every new rule is
  // compared with every current one.
  std::string many_targets = "allow a0";
  for (int i = 1; i < 1000; ++i) many_targets += ", a" + std::to_string(i);
  std::string many_rules;
  for (int i = 0; i < 1000; ++i) many_rules += "allow b" + std::to_string(i) + ";\n";
  NarrowingResult big = Prove(many_targets + ";\n", many_rules);
  CHECK_FALSE(big.narrower);
  REQUIRE(big.widening.size() == 1000);
  CHECK(big.widening.front().message ==
        "`allow b0` is not within any current rule: no current rule covers `b0`");
  CHECK(big.widening.back().message.find("ran out of its budget of " +
                                         std::to_string(kMaxNarrowingSteps) + " steps") !=
        std::string::npos);
}

TEST_CASE("deep conditions do not overflow the stack", "[narrowing]") {
  std::string deep = "x == 1";
  std::string nested = "x";
  for (int i = 0; i < 120; ++i) {
    deep.insert(0, "(");
    deep += " and y" + std::to_string(i) + ")";
    nested.insert(0, "lower(");
    nested += ")";
  }
  CHECK(Prove("allow t when " + deep + ";", "allow t when " + deep + ";").narrower);
  CHECK(Prove("allow t when " + nested + " == \"a\";", "allow t when " + nested + " == \"a\";")
            .narrower);
  CHECK_FALSE(Prove("allow t when " + nested + " == \"a\";", "allow t when x == \"a\";").narrower);

  // A balanced tree of 4096 conjuncts: identical conditions take one pass.
  std::vector<std::string> level;
  level.reserve(4096);
  for (int i = 0; i < 4096; ++i) level.push_back("x" + std::to_string(i) + " == 1");
  while (level.size() > 1) {
    std::vector<std::string> next;
    for (size_t i = 0; i < level.size(); i += 2) {
      next.push_back("(" + level[i] + " and " + level[i + 1] + ")");
    }
    level = next;
  }
  CHECK(Prove("allow t when " + level[0] + ";", "allow t when " + level[0] + ";").narrower);
}

}  // namespace
}  // namespace toolwarden
