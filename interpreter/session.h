// Session: one agent run under one Program.
//
//   std::shared_ptr<const Program> program = ...;   // see program.h / loader.h
//   Session session(program, "Pay the bill in bill-december-2023.txt");
//   Decision d = session.Decide("send_money", args);  // records the call if allowed
//   if (d.allowed()) session.AttachResult(*d.call, tool_result);
//
// A session holds the user's query, the values the host trusts, the history of
// allowed calls (with their results, attached later) and the rules that
// `update` blocks have added. Check() answers "would this be allowed?" with no
// side effects; Decide() also records an allowed call and applies the deciding
// rule's `update` block. A Session is not thread-safe; the Program it shares is.
#ifndef TOOLWARDEN_INTERPRETER_SESSION_H_
#define TOOLWARDEN_INTERPRETER_SESSION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "interpreter/decision.h"
#include "interpreter/program.h"
#include "nlohmann/json.hpp"
#include "policy/diagnostic.h"
#include "policy/source.h"
#include "policy/status.h"

namespace toolwarden {

// Most allowed calls one session records. Past it every call is denied (an agent
// in a loop must not grow memory without bound, and budgets must stay exact).
inline constexpr size_t kMaxHistory = 10000;
// Evaluation steps per decision, over all rules tried. Stops a policy with huge
// quantifier loops from turning one decision into a denial of service.
inline constexpr size_t kMaxEvalSteps = 100000;
// Deepest argument JSON a call may carry, and its most nodes.
inline constexpr int kMaxArgDepth = 64;
inline constexpr size_t kMaxArgNodes = 100000;
// Most trusted values a host may register.
inline constexpr size_t kMaxTrustedValues = 10000;
// Session::AddRules: most texts and bytes one session takes (each addition
// checks and compiles the whole policy again, so both bound its cost), and the
// longest name of an added text.
inline constexpr size_t kMaxAddedTexts = 100;
inline constexpr size_t kMaxAddedBytes = 256 << 10;
// The same for drafted texts (AddMode::kDraft), counted apart so that a model
// (perhaps steered by a tool result) cannot use up what the host may add.
inline constexpr size_t kMaxDraftedTexts = 50;
inline constexpr size_t kMaxDraftedBytes = 256 << 10;
inline constexpr size_t kMaxAddedNameBytes = 64;

struct CallRecord {
  std::string tool;
  nlohmann::json args;
  std::optional<nlohmann::json> result;
};

struct SessionLimits {
  size_t max_history = kMaxHistory;
  size_t max_eval_steps = kMaxEvalSteps;
};

// Lowest priority of drafted rules (AddMode::kDraft): the language promises
// that rules a model drafts sit at 100 or above.
inline constexpr int64_t kMinDraftPriority = 100;

// How AddRules treats rules that could allow more than the session does now.
enum class AddMode {
  kNarrowOnly,  // only `forbid` rules that block or terminate: nothing denied becomes allowed or
                // ask
  kAny,         // any rules
  // Rules a model drafted: only `allow` rules without `update` blocks, each
  // with its priority written out, at DraftFloor() or above. Whatever the
  // priorities, drafted rules decide after every rule that was not drafted
  // (the file's, its `update` blocks', the host's, added before or after), so
  // no drafted rule can get past one of their `forbid`s. They may widen what
  // the session allows: that is what a draft is for.
  kDraft,
  // kDraft, replacing the drafted text `replaces` by one that provably allows
  // no more (ProveNarrower, policy/narrowing.h); anything not proven is refused.
  kDraftNarrowing,
};

struct AddRulesResult {
  Source source{"", ""};              // the added text, for FormatDiagnostics
  Diagnostics diagnostics;            // problems in it, positioned in `source`
  Status status;                      // not ok when nothing was added
  std::vector<std::string> rule_ids;  // the added top-level rules, "NAME:LINE"
  std::string policy;                 // the session's policy hash once they are added
  bool ok() const { return status.ok(); }
};

class Session {
 public:
  // A null program denies every call.
  Session(std::shared_ptr<const Program> program, std::string query,
          std::vector<std::string> trusted_values = {}, SessionLimits limits = {});

  // Decide, Approve and AddRules take an optional gate: it sees the outcome
  // (with `call` set for a call about to be recorded) before the session
  // changes, and when it returns false the session stays as it was. Front
  // doors use it to write the decision log first, so nothing the log lacks
  // ever takes effect.
  using DecisionGate = std::function<bool(const Decision&)>;

  Decision Check(std::string_view tool, const nlohmann::json& args) const;
  Decision Decide(std::string_view tool, const nlohmann::json& args,
                  const DecisionGate& commit = nullptr);
  // Decide() for a call a person approved after it came out `ask`: the call is
  // decided again and, if it is still `ask`, recorded like an allowed call
  // (so budgets and `called` count it) and returned as allowed, with the
  // asking rule and the reason "approved: ...". Approval never changes a
  // deny or terminate; an allowed call is simply decided.
  Decision Approve(std::string_view tool, const nlohmann::json& args,
                   const DecisionGate& commit = nullptr);

  // Attaches the result of the allowed call `call` (Decision::call). Results of
  // tools the policy `trust`s become trusted provenance for `from trusted`.
  Status AttachResult(size_t call, nlohmann::json result);
  // Registers a value as trusted (`X from trusted`).
  Status AddTrustedValue(std::string value);
  // Adds rules written in the policy language (they may use the policy's
  // constants; `let`s are refused, as they could change what a name in the
  // file's own rules means) to this session only. They join the rules added so far,
  // after every file rule in the decision order, and are checked against the
  // policy's tool schemas. All or nothing: on any error the session is
  // unchanged. Rule ids are "NAME:LINE" with lines counted in `text`.
  //
  // `replaces` (kDraft and kDraftNarrowing only; required by the latter) names
  // a drafted text the new one replaces: its rules stop deciding when the new
  // ones start, in the same step.
  AddRulesResult AddRules(std::string name, std::string text, AddMode mode,
                          const std::function<bool(const AddRulesResult&)>& commit = nullptr,
                          const std::string& replaces = {});
  // The lowest priority a drafted rule may have: kMinDraftPriority, or the
  // highest priority of any rule that was not drafted (the file's, its
  // `update` blocks', the host's added ones) when that is higher. It makes the
  // text say what the engine does anyway: drafted rules come last.
  int64_t DraftFloor() const;
  // The drafted texts now deciding, by name, in the order added.
  std::vector<std::string> drafted() const;
  // The text added under `name`, or nullopt.
  std::optional<std::string> AddedText(const std::string& name) const;

  const std::string& query() const { return query_; }
  const std::vector<CallRecord>& history() const { return history_; }
  const std::vector<std::string>& trusted_values() const { return trusted_values_; }
  // Rules added by `update` blocks so far, as rule ids in the order added.
  std::vector<std::string> added_rules() const;
  const std::shared_ptr<const Program>& program() const { return program_; }

 private:
  Decision Evaluate(std::string_view tool, const nlohmann::json& args,
                    std::vector<uint32_t>* updates) const;

  std::shared_ptr<const Program> program_;
  std::string query_;
  // `query matches R` for program_'s regexes, computed once (see QueryMatches
  // in evaluator.h); recomputed whenever program_ changes.
  std::vector<int8_t> query_matches_;
  std::vector<std::string> trusted_values_;
  SessionLimits limits_;
  std::vector<CallRecord> history_;
  struct Added {
    uint32_t rule;  // index into the plan's rules
    uint64_t order;
    bool drafted;  // decides after every rule that is not, whatever the priorities
  };
  // Source order of the next added rule: after every file rule, and never
  // reused, so a later rule never sorts before an earlier one.
  uint64_t NextOrder() { return (uint64_t{1} << 40) + next_order_++; }
  std::vector<Added> added_;
  uint64_t next_order_ = 0;
  size_t added_bytes_ = 0;            // host text taken by AddRules so far
  size_t drafted_bytes_ = 0;          // drafted text taken so far
  std::vector<std::string> retired_;  // drafted texts replaced by later ones
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_SESSION_H_
