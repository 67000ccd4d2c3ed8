// Decision: the outcome of one tool call, as data. The same record goes to
// every front door (CLI, sidecar, MCP proxy log, C API, Python) as the JSON of
// DecisionToJson.
#ifndef TOOLWARDEN_INTERPRETER_DECISION_H_
#define TOOLWARDEN_INTERPRETER_DECISION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nlohmann/json.hpp"
#include "policy/ast.h"

namespace toolwarden {

enum class Outcome { kAllow, kDeny, kAsk, kTerminate };

const char* OutcomeName(Outcome outcome);     // "allow", "deny", "ask", "terminate"
const char* FallbackName(FallbackKind kind);  // "block", "ask", "terminate"

class Program;

// The deciding rule. `id` points into the Program, which the Decision keeps alive.
struct RuleRef {
  std::string_view id;  // "FILE:LINE" of the rule (FILE is the policy's base name)
  Effect effect = Effect::kAllow;
  int64_t priority = kDefaultPriority;
};

struct Decision {
  Outcome outcome = Outcome::kDeny;
  std::string tool;
  std::optional<RuleRef> rule;           // the deciding rule; none for an implicit deny
  std::optional<FallbackKind> fallback;  // set unless the call is allowed
  std::string message;                   // for the agent, when not allowed
  std::string reason;                    // why; empty for an allow (see ReasonOf)
  std::vector<std::string> errors;       // evaluation errors met on the way
  std::string_view policy;               // "sha256:<hex of the policy text>", in the Program
  int64_t eval_ns = 0;
  std::optional<size_t> call;  // Session::Decide: the history index of an allowed call
  // Keeps `rule->id` and `policy` valid for as long as the Decision lives, so an
  // allowed call's record allocates nothing beyond a long `tool` name.
  std::shared_ptr<const Program> program;

  bool allowed() const { return outcome == Outcome::kAllow; }
};

// The reason, with an allow's spelled out: "allowed by FILE:LINE".
std::string ReasonOf(const Decision& decision);

// {"decision", "tool", "rule": {"id","effect","priority"} | null, "fallback", "message",
//  "reason", "errors", "policy", "eval_ns"[, "call"]}
nlohmann::ordered_json DecisionToJson(const Decision& decision);

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_DECISION_H_
