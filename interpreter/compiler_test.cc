#include <catch2/catch.hpp>

#include "interpreter/loader.h"
#include "interpreter/plan.h"
#include "tests/testing.h"

namespace toolwarden {
namespace {

using testing::MustLoad;

TEST_CASE("rules are indexed by tool name, sorted in decision order") {
  auto program = MustLoad(
      "allow a;\n"
      "forbid a, b priority 5;\n"
      "allow \"a*\" priority 1;\n"
      "forbid * priority 20;\n");
  const internal::Plan& plan = program->plan();
  bool exact = false;
  const auto& a = plan.Candidates("a", &exact);
  CHECK(exact);
  std::vector<int> lines;
  for (uint32_t r : a) lines.push_back(plan.rules[r].line);
  CHECK(lines == std::vector<int>{3, 2, 1, 4});
  const auto& other = plan.Candidates("zzz", &exact);
  CHECK_FALSE(exact);
  lines.clear();
  for (uint32_t r : other) lines.push_back(plan.rules[r].line);
  CHECK(lines == std::vector<int>{3, 4});  // glob and * rules, filtered at decision time
}

TEST_CASE("constants, sets and regexes are prepared once") {
  auto program = MustLoad(
      "let l = [\"x\", 1, null, true, [1]];\n"
      "allow a when v in l and w in l and s matches r\"a+\" and t matches r\"a+\" and u matches "
      "\"b\";\n"
      "allow b when args.v == 1 and args[\"w\"] == 2 and v.x == 3;\n");
  const internal::Plan& plan = program->plan();
  CHECK(plan.sets.size() == 1);  // one set for the constant, shared by both uses
  CHECK(plan.sets[0]->strings.count("x") == 1);
  CHECK(plan.sets[0]->numbers.count(1.0) == 1);
  CHECK(plan.sets[0]->has_null);
  CHECK(plan.sets[0]->has_true);
  CHECK_FALSE(plan.sets[0]->has_false);
  CHECK(plan.sets[0]->others.size() == 1);
  CHECK(plan.regexes.size() == 2);  // "a+" de-duplicated
  int args = 0;
  for (const internal::Node& n : plan.nodes) args += n.op == internal::NodeOp::kArg;
  CHECK(args == 2 + 3 + 2 + 1);  // args.v and args["w"] resolve to plain argument nodes
  CHECK(program->rule_count() == 2);
  CHECK(program->hash().size() == 7 + 64);
}

TEST_CASE("update rules are compiled but not indexed") {
  auto program = MustLoad("allow a update { forbid b; allow c update { forbid d; }; };\n");
  const internal::Plan& plan = program->plan();
  CHECK(plan.rules.size() == 4);
  CHECK(plan.top_level_rules == 1);
  bool exact = false;
  CHECK(plan.Candidates("b", &exact).empty());
  CHECK(plan.rules[0].updates.size() == 2);
  CHECK(plan.rules[2].updates.size() == 1);
}

TEST_CASE("limit: quantifier nesting") {
  std::string condition = "true";
  for (int i = 0; i < internal::kMaxQuantifierNesting + 1; ++i) {
    condition = "all(v" + std::to_string(i) + " in xs, " + condition + ")";
  }
  LoadedPolicy loaded = LoadPolicyText("q.policy", "allow t when " + condition + ";", "");
  CHECK_FALSE(loaded.ok());
  CHECK(loaded.ErrorText().find("quantifiers nest deeper than 16") != std::string::npos);
}

TEST_CASE("compiling nothing fails cleanly") { CHECK_FALSE(Compile(nullptr).ok()); }

}  // namespace
}  // namespace toolwarden
