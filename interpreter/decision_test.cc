#include "interpreter/decision.h"

#include <catch2/catch.hpp>

namespace toolwarden {
namespace {

TEST_CASE("the decision record's JSON, in the documented field order") {
  Decision d;
  d.outcome = Outcome::kAllow;
  d.tool = "t";
  d.rule = RuleRef{"f.policy:3", Effect::kAllow, 10};
  d.policy = "sha256:x";
  d.eval_ns = 5;
  d.call = 2;
  nlohmann::ordered_json j = DecisionToJson(d);
  CHECK(
      j.dump() ==
      R"({"decision":"allow","tool":"t","rule":{"id":"f.policy:3","effect":"allow","priority":10},)"
      R"("fallback":null,"message":"","reason":"allowed by f.policy:3","errors":[],"policy":"sha256:x",)"
      R"("eval_ns":5,"call":2})");
  CHECK(std::string(OutcomeName(Outcome::kTerminate)) == "terminate");
  CHECK(std::string(FallbackName(FallbackKind::kAsk)) == "ask");
}

}  // namespace
}  // namespace toolwarden
