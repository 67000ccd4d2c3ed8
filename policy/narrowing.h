// ProveNarrower: does a new set of drafted `allow` rules provably allow no more
// than the current set?
//
//   StatusOr<NarrowingResult> proof = ProveNarrower(current_text, proposed_text);
//   if (!proof.ok()) { ... a text does not parse: proof.status() ... }
//   else if (proof->narrower) { ... safe to replace the current rules ... }
//   else for (const Narrowing& w : proof->widening) print w.Line();
//
// A model drafts `allow` rules for a session (AddMode::kDraft in
// interpreter/session.h) and may later propose an update: a full new set that
// replaces the current one. In narrow-only mode the update is taken only when
// this prover shows that every call the new set allows, the current set allows
// too. It is a security check, so it is sound and deliberately incomplete:
// whatever it cannot decide counts as widening, and the caller refuses it.
//
// WHAT IS PROVEN
//
// Every `allow` rule A' of `after` is covered, for each of its targets, by some
// `allow` rule A of `before`. A covers A' on target t' when
//
//  1. a target of A covers t': `*` (or any pattern of only `*`s) covers
//     everything; a target covers one with the same text (an identifier and a
//     string naming the same tool are the same target); a glob covers an exact
//     name it matches (`*` any run, `?` one character, as at run time); a glob
//     `P*` (P without `*` or `?`) covers any glob or name that starts with P;
//  2. cond(A') implies cond(A), where a rule without `when` has the condition
//     `true`. Implication is decided on the expressions:
//     - `true` is implied by anything, and `false` implies anything;
//     - an `and` is implied when both sides are; an `and` implies what either
//       side implies; an `or` implies what both sides imply; an `or` is implied
//       when one side is (`and` and `or` are seen through parentheses, so the
//       top-level `and` chains of both conditions are compared conjunct by
//       conjunct: every conjunct of A must follow from one of A');
//     - structurally identical expressions imply each other (numbers compared
//       by value, `r"..."` and "..." by their text, `args.x` and `args["x"]`
//       are the same argument);
//     - comparisons of one subject S (any expression, e.g. `amount`,
//       `args["to"]`, `lower(x)`, `len(s)`) with literals: each such conjunct
//       says which values S may have, and c' implies c when every value that
//       makes c' true makes c true. The forms understood, with S on either side:
//         S == v, S != v                        v a null, boolean, number or string
//         S in [v, ...], S not in [v, ...]      a list of such literals
//         type(S) == "t", type(S) != "t", type(S) in [...], type(S) not in [...]
//         S < n, S <= n, S > n, S >= n          n a number
//       and, only as premises (they say S is a string, nothing more exact):
//         S matches P, S contains/startswith/endswith "lit", S < "lit" (and the
//         other comparisons with a string). So `amount >= 10` implies
//       `amount >= 0`, `amount != null` and `type(amount) == "number"`;
//       `to in ["a"]` implies `to in ["a", "b"]` and `type(to) == "string"`;
//       `path matches P` implies `path != null` but only an identical
//       `path matches P` (same pattern text).
//
// WHY THIS IS SOUND
//
// Errors: in an `allow` rule a condition that raises an error counts as false
// (docs/language.md section 3), so only calls on which cond(A') evaluates to
// true without an error matter. `and`/`or` short-circuit, so a true `and` had
// every operand true, and a true `or` had one operand true. Each premise form
// above is true only for the values listed, and the evaluator
// (interpreter/evaluator.cc) errors otherwise: `<`, `<=`, `>`, `>=` compare two
// numbers or two strings and error on anything else (so `amount >= 0` is never
// true for a null, missing or string `amount`); `matches`, `contains`,
// `startswith`, `endswith` error on non-strings; `==`, `!=`, `in` compare by
// deep equality, numbers by value and different types unequal; `type()` never
// errors. Expressions are pure within one decision, so the same subject has
// the same value in both rules.
//
// Priorities are ignored. Drafted rules hold no `forbid` and no `update` block,
// and every one of them sits after every rule that is not drafted (Session::
// DraftFloor: at or above the highest priority of those, and on ties `forbid`
// runs before `allow` and added rules after the file's). So with the new set,
// a call is allowed by a drafted rule A' only when no other rule decided it
// first; with the current set the same rules come first and decide nothing,
// and the covering A holds, so the first rule to hold among the drafted ones
// (A or an earlier one) allows. Which drafted rule allows differs (the
// decision record names it), whether the call is allowed does not. A call
// decided before the drafted rules is decided the same way in both.
//
// One gap is outside what any comparison of rules can see: the evaluation
// step budget of a decision (kMaxEvalSteps) is shared by all rules, so a call
// that the current set denies only because its rules ran out of steps could be
// allowed by the new set. That call is denied by exhaustion, never by a rule.
//
// WHAT IS NOT PROVEN
//
// Anything else, for example: arithmetic, quantifiers, provenance and
// `count`/`sum` other than identical ones; string ranges (`x >= "b"` does not
// prove `x >= "a"`); conjuncts of A' that only together imply one of A
// (`x >= 0 and x <= 0` does not prove `x == 0`), also through an `or`
// (`(a or b) and c` does not prove `(a and c) or (b and c)`); a bare name and
// `args.name` (the name could be a constant of the policy); a glob of A'
// covered only by several rules of `before`. Such rules are reported in
// `widening`, and so is every rule not proven within NarrowingLimits.
//
// A text that holds anything but `allow` rules without `update` blocks or
// fallbacks (a `forbid`, a `let`, a `default`, a `policy` header, ...) makes
// the result not narrower, with an entry saying why: a `forbid` in `before`
// denies calls the new set could allow, and the rest has no place in drafted
// rules.
#ifndef TOOLWARDEN_POLICY_NARROWING_H_
#define TOOLWARDEN_POLICY_NARROWING_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "policy/source.h"
#include "policy/status.h"

namespace toolwarden {

// Work the prover may do for one call: each implication tried, target or node
// compared and list element read is one step. Stops a pair of large texts
// (many rules, long conditions, huge lists) from turning one update into a
// denial of service: the work is otherwise quadratic in the texts' sizes. When
// it runs out, the rules not yet proven count as widening (fail closed). Real
// drafted sets (tens of rules, each compared in full only with the current
// rules for the same tools) take thousands of steps.
inline constexpr size_t kMaxNarrowingSteps = 1000000;

struct NarrowingLimits {
  size_t max_steps = kMaxNarrowingSteps;
};

// One reason the proof failed: a rule of `after` not proven covered, or an item
// of either text that has no place in drafted rules.
struct Narrowing {
  // Where the rule or item starts in `after`; line 0 for a problem in
  // `before` (the message names its line there).
  Position position;
  // Lower-case, no final period, user text in backticks, e.g.
  //   `allow send_money when ...` is not within any current rule: the closest
  //   current rule, line 1, needs `amount <= 100`, which `amount <= 500` does
  //   not imply
  std::string message;
  // "line 3: " followed by the message, or the message alone for line 0.
  std::string Line() const;
};

struct NarrowingResult {
  // Proven: every call that `after` allows, `before` allows.
  bool narrower = false;
  // Empty when narrower; otherwise at least one entry, one per rule of `after`
  // not proven covered and per item that has no place in drafted rules.
  std::vector<Narrowing> widening;
};

// Both texts are lists of rules in the policy language, as Parse reads them
// (parser.h; no `policy` header is needed), each with its own line numbers.
// Returns InvalidArgument when either text does not parse, naming which one
// ("the current rules" or "the new rules") and its first error. The texts are
// not checked (checker.h): the caller checks `after` when it adds it, and an
// expression means the same in both texts whatever it is. Never throws.
StatusOr<NarrowingResult> ProveNarrower(std::string_view before_text, std::string_view after_text,
                                        const NarrowingLimits& limits = {});

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_NARROWING_H_
