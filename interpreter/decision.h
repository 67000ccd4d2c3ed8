// Decision: the outcome of one tool call, as data. The same record goes to
// every front door (CLI, sidecar, MCP proxy log, C API, Python) as the JSON of
// DecisionToJson.
#ifndef TOOLWARDEN_INTERPRETER_DECISION_H_
#define TOOLWARDEN_INTERPRETER_DECISION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "policy/ast.h"

namespace toolwarden {

enum class Outcome { kAllow, kDeny, kAsk, kTerminate };

const char* OutcomeName(Outcome outcome);     // "allow", "deny", "ask", "terminate"
const char* FallbackName(FallbackKind kind);  // "block", "ask", "terminate"

struct RuleRef {
  std::string id;  // "FILE:LINE" of the rule (FILE is the policy's base name)
  Effect effect = Effect::kAllow;
  int64_t priority = kDefaultPriority;
};

struct Decision {
  Outcome outcome = Outcome::kDeny;
  std::string tool;
  std::optional<RuleRef> rule;           // the deciding rule; none for an implicit deny
  std::optional<FallbackKind> fallback;  // set unless the call is allowed
  std::string message;                   // for the agent, when not allowed
  std::string reason;                    // why, for people and logs
  std::vector<std::string> errors;       // evaluation errors met on the way
  std::string policy;                    // "sha256:<hex of the policy text>"
  int64_t eval_ns = 0;
  std::optional<size_t> call;  // Session::Decide: the history index of an allowed call

  bool allowed() const { return outcome == Outcome::kAllow; }
};

// {"decision", "tool", "rule": {"id","effect","priority"} | null, "fallback", "message",
//  "reason", "errors", "policy", "eval_ns"[, "call"]}
nlohmann::ordered_json DecisionToJson(const Decision& decision);

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_DECISION_H_
