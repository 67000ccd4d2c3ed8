// Drafter: Progent's second half. A model drafts least-privilege rules for a
// session from the user's query and the tool list, and updates them as tool
// results arrive. The model may be wrong or manipulated; the engine is not:
//
//   - every reply goes through the same parser and checker as a policy file
//     (Session::AddRules with AddMode::kDraft), after our own strict reading of
//     its JSON; diagnostics go back to the model, at most `max_repairs` times;
//   - drafted rules are `allow` rules only, at Session::DraftFloor() (priority
//     100 or above, after every rule a person wrote), so no reply can get past a
//     `forbid` of the policy file;
//   - a dead server, an HTTP error, a cut-off reply (finish `length`), a
//     refusal, or output still invalid after the repairs changes nothing: the
//     session keeps its rules and the outcome says why (fail closed).
//
//   Drafter drafter(config);
//   DraftOutcome d = drafter.Draft(session);              // at the session's start
//   ...
//   UpdateOutcome u = drafter.Update(session, call, UpdateMode::kNarrowOnly);
//
// Update follows Progent's two steps: the model first says whether the rules
// need to change, seeing the call but NOT its result (so a prompt injection in
// the result cannot ask for the change); only then does it see the result and
// write the new rules, which replace the drafted ones:
//   kNarrowOnly  only when the engine proves they allow no more (kDraftNarrowing)
//   kAsk         proven-narrower updates apply; others come back `pending` for
//                a person, who applies them with Apply()
//   kAny         apply (still only `allow` rules after every file rule)
// docs/llm.md has the prompts, the formats and the configuration.
#ifndef TOOLWARDEN_ADAPTERS_LLM_DRAFTER_H_
#define TOOLWARDEN_ADAPTERS_LLM_DRAFTER_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/llm/protocol.h"
#include "adapters/llm/transport.h"
#include "interpreter/session.h"
#include "nlohmann/json.hpp"
#include "policy/status.h"
#include "policy/tool_catalog.h"

namespace toolwarden::llm {

// Most repairs one draft or update may ask for; each costs a model call.
inline constexpr int kMaxRepairs = 5;
// Longest user query and tool result shown to the model (longer ones are cut,
// and the prompt says so).
inline constexpr size_t kMaxPromptQueryBytes = 16 << 10;
inline constexpr size_t kMaxPromptResultBytes = 32 << 10;

// What the model is asked to write.
enum class DraftFormat {
  kProgentJson,  // {"rules": [{"name": TOOL, "args": {ARG: RESTRICTION}}]}, constrained by a
                 // JSON Schema where the server takes one
  kPolicyText,   // `allow` rules in the policy language; a GBNF grammar for llama.cpp
};
StatusOr<DraftFormat> ParseDraftFormat(std::string_view name);  // "json" | "policy"

enum class UpdateMode { kNarrowOnly, kAsk, kAny };
StatusOr<UpdateMode> ParseUpdateMode(std::string_view name);  // "narrow-only" | "ask" | "any"
std::string_view UpdateModeName(UpdateMode mode);

struct LlmConfig {
  Endpoint endpoint;
  TransportOptions transport;
  DraftFormat format = DraftFormat::kProgentJson;
  int max_repairs = 2;  // at most kMaxRepairs
  int max_tokens = 4096;
};

// Fills `config` from TOOLWARDEN_LLM_URL, TOOLWARDEN_LLM_MODEL,
// TOOLWARDEN_LLM_API_KEY and TOOLWARDEN_LLM_PROTOCOL where set (flags override
// them afterwards). `getenv` is injectable for tests.
Status ConfigFromEnvironment(LlmConfig* config,
                             const std::function<const char*(const char*)>& getenv = nullptr);
// URL and model must be set, max_repairs in range.
Status ValidateConfig(const LlmConfig& config);

// One change of a session's drafted rules, as the decision log records it.
struct RulesChange {
  std::string kind;      // "draft" or "update"
  std::string name;      // the new text's name (rule ids are NAME:LINE)
  std::string replaces;  // the drafted text it replaces; "" for a draft
  std::string before;    // that text's rules; "" for a draft
  std::string after;     // the new rules
  std::string mode;      // for updates: the UpdateMode's name
  std::string policy;    // the session's policy hash once they are added
};
// Sees a change before the session takes it; returning false leaves the
// session as it was (front doors write the decision log here).
using ChangeGate = std::function<bool(const RulesChange&)>;

struct DraftOutcome {
  Status status;     // not ok: the session is unchanged; the message says why
  std::string name;  // the drafted text's name
  std::string text;  // the drafted rules (policy language), once checked
  std::vector<std::string> rule_ids;
  std::string policy;                 // the session's policy hash afterwards
  int model_calls = 0;                // first request plus repairs
  std::vector<std::string> problems;  // diagnostics of the last reply, if any
  bool ok() const { return status.ok(); }
};

struct UpdateOutcome {
  enum class Result {
    kNoUpdate,  // the model said no change is needed
    kApplied,   // the new rules replaced the drafted ones
    kPending,   // kAsk: a widening update waits for a person (Apply)
    kRefused,   // kNarrowOnly: not proven narrower; nothing changed
    kFailed,    // server, protocol or output failure; nothing changed (status says why)
  };
  Result result = Result::kFailed;
  Status status;
  RulesChange change;                 // kApplied, kPending, kRefused: the proposed change
  std::vector<std::string> problems;  // why not proven narrower, or the last diagnostics
  int model_calls = 0;
};
std::string_view UpdateResultName(UpdateOutcome::Result result);

// The JSON forms front doors (sidecar, C API, Python) answer with:
//   draft:  {"ok": true, "name", "rules", "rule_ids": [...], "policy", "model_calls",
//            "warnings": [...]}  or  {"ok": false, "error", "problems": [...], "model_calls"}
//   update: {"result": "no-update"|"applied"|"pending"|"refused"|"failed", "error"?,
//            "problems": [...], "model_calls", "change": CHANGE or null}
//   change: {"kind", "name", "replaces", "before", "after", "mode", "policy"}
nlohmann::ordered_json DraftOutcomeToJson(const DraftOutcome& outcome);
nlohmann::ordered_json UpdateOutcomeToJson(const UpdateOutcome& outcome);
nlohmann::ordered_json RulesChangeToJson(const RulesChange& change);
StatusOr<RulesChange> RulesChangeFromJson(const nlohmann::json& json);
// {"url", "model", "protocol", "format", "max_repairs", "max_tokens", "timeout_ms"}, every
// field optional, over `base` (the environment's settings); the API key only ever comes
// from TOOLWARDEN_LLM_API_KEY, never from JSON that might be logged.
StatusOr<LlmConfig> LlmConfigFromJson(const nlohmann::json& json, LlmConfig base);

// The prompts, exposed for golden tests and docs/llm.md.
std::vector<Message> DraftPrompt(const ToolCatalog& catalog, std::string_view query,
                                 DraftFormat format, int64_t floor);
std::vector<Message> UpdateDecisionPrompt(std::string_view query, std::string_view current_rules,
                                          std::string_view tool, const nlohmann::json& args);
std::vector<Message> UpdatePrompt(const ToolCatalog& catalog, std::string_view query,
                                  std::string_view current_rules, std::string_view tool,
                                  const nlohmann::json& args, const nlohmann::json& result,
                                  DraftFormat format, int64_t floor);
// The constraint sent for `format` on `catalog`: the JSON Schema of the
// Progent form (tool names and argument names enumerated), or the GBNF
// grammar of drafted rules.
Constraint DraftConstraint(const ToolCatalog& catalog, DraftFormat format);
// Our own strict reading of a Progent-form reply, turned into policy text (via
// ImportProgent) with every rule at `floor`. InvalidArgument says what is wrong.
StatusOr<std::string> ProgentReplyToRules(std::string_view reply, const ToolCatalog& catalog,
                                          int64_t floor);

class Drafter {
 public:
  explicit Drafter(LlmConfig config, TransportHooks hooks = {});

  // Drafts rules for `session` (its query; the tools of its policy's `tools`
  // file) and adds them under `name`.
  DraftOutcome Draft(Session& session, const std::string& name = "draft",
                     const ChangeGate& commit = nullptr) const;

  // Progent's update after the allowed call `call` (Decision::call) got its
  // result (Session::AttachResult first). Replaces the latest drafted text.
  UpdateOutcome Update(Session& session, size_t call, UpdateMode mode,
                       const ChangeGate& commit = nullptr) const;

  // Applies a pending update a person approved (kAsk). Fails when the drafted
  // rules it replaces are no longer the session's latest.
  UpdateOutcome Apply(Session& session, const RulesChange& pending,
                      const ChangeGate& commit = nullptr) const;

  const LlmConfig& config() const { return config_; }

 private:
  // The session's tool catalog, once the configuration is valid.
  StatusOr<const ToolCatalog*> Tools(const Session& session) const;
  struct Reply;
  Reply Ask(std::vector<Message> messages, const Constraint& constraint) const;
  // Asks, reads the answer, checks it with `trial` (AddRules on a copy of the
  // session) and asks for repairs until it is valid or they run out.
  struct Proposal {
    Status status;
    std::string rules;
    std::vector<std::string> problems;
    int model_calls = 0;
  };
  Proposal Propose(std::vector<Message> messages, const ToolCatalog& catalog, int64_t floor,
                   const std::function<AddRulesResult(const std::string&)>& trial) const;

  LlmConfig config_;
  Transport transport_;
};

}  // namespace toolwarden::llm

#endif  // TOOLWARDEN_ADAPTERS_LLM_DRAFTER_H_
