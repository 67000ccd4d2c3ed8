// The combining rule of docs/language.md section 3, in one small function.
//
// Candidate rules are ordered by priority (lower first), then `forbid` before
// `allow`, then source order (file order, then the order rules were added). The
// first candidate whose condition holds decides. A condition that raised an
// error counts as false for `allow` and as true for `forbid`: errors never open
// the gate. When no candidate decides, the default fallback applies.
#ifndef TOOLWARDEN_INTERPRETER_COMBINE_H_
#define TOOLWARDEN_INTERPRETER_COMBINE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <tuple>

#include "policy/ast.h"

namespace toolwarden {

enum class ConditionResult { kFalse, kTrue, kError };

// Where a rule stands in the decision order.
struct RuleKey {
  int64_t priority = kDefaultPriority;
  Effect effect = Effect::kAllow;
  uint64_t order = 0;  // source order; rules added later get larger numbers
};

// True when `a` is tried before `b`.
inline bool DecidesBefore(const RuleKey& a, const RuleKey& b) {
  return std::make_tuple(a.priority, a.effect == Effect::kForbid ? 0 : 1, a.order) <
         std::make_tuple(b.priority, b.effect == Effect::kForbid ? 0 : 1, b.order);
}

// Whether a rule with this effect decides when its condition came out so.
inline bool Fires(Effect effect, ConditionResult result) {
  return result == ConditionResult::kTrue ||
         (result == ConditionResult::kError && effect == Effect::kForbid);
}

// Walks `count` candidates already sorted by DecidesBefore and returns the index
// of the first that fires, evaluating conditions lazily with `evaluate(i)` and
// reading effects with `effect_at(i)`; nullopt when none fires (the default
// fallback decides). Allocates nothing.
template <typename EffectAt, typename Evaluate>
std::optional<size_t> FirstFiring(size_t count, EffectAt&& effect_at, Evaluate&& evaluate) {
  for (size_t i = 0; i < count; ++i) {
    if (Fires(effect_at(i), evaluate(i))) return i;
  }
  return std::nullopt;
}

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_COMBINE_H_
