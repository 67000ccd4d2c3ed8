#include "interpreter/combine.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <vector>

namespace toolwarden {
namespace {

struct TestRule {
  RuleKey key;
  ConditionResult result;
};

// The specification of section 3, written independently of combine.h: among the
// rules that fire (true, or an error in a forbid), the one with the lowest
// priority decides; on a tie a forbid beats an allow; then the earliest in source.
std::optional<size_t> Reference(const std::vector<TestRule>& rules) {
  std::optional<size_t> best;
  for (size_t i = 0; i < rules.size(); ++i) {
    const TestRule& r = rules[i];
    bool fires = r.result == ConditionResult::kTrue ||
                 (r.result == ConditionResult::kError && r.key.effect == Effect::kForbid);
    if (!fires) continue;
    if (!best) {
      best = i;
      continue;
    }
    const RuleKey& b = rules[*best].key;
    bool better =
        r.key.priority < b.priority ||
        (r.key.priority == b.priority && r.key.effect == Effect::kForbid &&
         b.effect == Effect::kAllow) ||
        (r.key.priority == b.priority && r.key.effect == b.effect && r.key.order < b.order);
    if (better) best = i;
  }
  return best;
}

std::optional<size_t> Engine(std::vector<TestRule> rules) {
  std::vector<size_t> order(rules.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return DecidesBefore(rules[a].key, rules[b].key); });
  std::optional<size_t> fired = FirstFiring(
      order.size(), [&](size_t i) { return rules[order[i]].key.effect; },
      [&](size_t i) { return rules[order[i]].result; });
  if (!fired) return std::nullopt;
  return order[*fired];
}

TEST_CASE("combining agrees with the reference on every rule set of up to 4 rules") {
  // Each rule: priority in {0, 1}, effect in {allow, forbid}, result in {false, true, error}:
  // 12 kinds; all sequences of length 0..4 (12^4 = 20736 at length 4).
  const ConditionResult results[] = {ConditionResult::kFalse, ConditionResult::kTrue,
                                     ConditionResult::kError};
  size_t checked = 0;
  for (int length = 0; length <= 4; ++length) {
    int total = 1;
    for (int i = 0; i < length; ++i) total *= 12;
    for (int code = 0; code < total; ++code) {
      std::vector<TestRule> rules;
      int c = code;
      for (int i = 0; i < length; ++i, c /= 12) {
        int kind = c % 12;
        rules.push_back({RuleKey{kind % 2, (kind / 2) % 2 ? Effect::kForbid : Effect::kAllow,
                                 static_cast<uint64_t>(i)},
                         results[kind / 4]});
      }
      REQUIRE(Engine(rules) == Reference(rules));
      ++checked;
    }
  }
  CHECK(checked == 1 + 12 + 144 + 1728 + 20736);
}

TEST_CASE("the order: priority, then forbid before allow, then source order") {
  CHECK(DecidesBefore({1, Effect::kAllow, 5}, {2, Effect::kForbid, 0}));
  CHECK(DecidesBefore({1, Effect::kForbid, 5}, {1, Effect::kAllow, 0}));
  CHECK(DecidesBefore({1, Effect::kAllow, 0}, {1, Effect::kAllow, 1}));
  CHECK_FALSE(DecidesBefore({1, Effect::kAllow, 1}, {1, Effect::kAllow, 1}));
}

TEST_CASE("errors never open the gate") {
  CHECK_FALSE(Fires(Effect::kAllow, ConditionResult::kError));
  CHECK(Fires(Effect::kForbid, ConditionResult::kError));
  CHECK(Fires(Effect::kAllow, ConditionResult::kTrue));
  CHECK_FALSE(Fires(Effect::kForbid, ConditionResult::kFalse));
}

TEST_CASE("evaluation is lazy: nothing after the deciding rule runs") {
  std::vector<RuleKey> keys = {
      {0, Effect::kForbid, 0}, {0, Effect::kAllow, 1}, {1, Effect::kForbid, 2}};
  int evaluated = 0;
  auto fired = FirstFiring(
      keys.size(), [&](size_t i) { return keys[i].effect; },
      [&](size_t i) {
        ++evaluated;
        return i == 0 ? ConditionResult::kFalse : ConditionResult::kTrue;
      });
  CHECK(fired == std::optional<size_t>(1));
  CHECK(evaluated == 2);
  CHECK_FALSE(FirstFiring(
      0, [](size_t) { return Effect::kAllow; }, [](size_t) { return ConditionResult::kTrue; }));
}

}  // namespace
}  // namespace toolwarden
