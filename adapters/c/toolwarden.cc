// The C API (toolwarden.h) over the C++ library. Every entry point runs its
// body through Run(), which turns any exception into a status and an error
// JSON, so nothing thrown by the C++ code (std::bad_alloc included) reaches a C
// caller. Input JSON goes through ParseJson (policy/json_limits.h), the same
// hostile-input parser as the CLI's and the sidecar's. Drafting
// (tw_session_draft and friends) runs the Drafter of adapters/llm/drafter.h
// under the session's lock.
#include "adapters/c/toolwarden.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapters/llm/drafter.h"
#include "interpreter/decision.h"
#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "nlohmann/json.hpp"
#include "policy/diagnostic.h"
#include "policy/json_limits.h"
#include "policy/status.h"

#ifndef TOOLWARDEN_VERSION
#error "build with -DTOOLWARDEN_VERSION=\"x.y.z\" (adapters/c/c_api.cmake does)"
#endif

struct tw_policy {
  std::shared_ptr<const toolwarden::Program> program;
};

// The Session holds its own shared_ptr to the Program, so a session outlives
// the tw_policy it was made from.
struct tw_session {
  tw_session(std::shared_ptr<const toolwarden::Program> program, std::string query,
             std::vector<std::string> trusted)
      : session(std::move(program), std::move(query), std::move(trusted)) {}

  std::mutex mutex;  // serialises every call on `session`
  toolwarden::Session session;
};

namespace toolwarden {
namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Used when there is no memory left to build a better reply.
constexpr char kOutOfMemory[] =
    R"({"error":{"code":"resource_exhausted","message":"out of memory"},"diagnostics":[]})";
constexpr char kUnknownException[] =
    R"({"error":{"code":"internal","message":"internal error: an unknown exception"},)"
    R"("diagnostics":[]})";

// What an entry point produces: its status and its JSON text (result or error).
struct Result {
  tw_status status = TW_INTERNAL;
  std::string json;
};

// Invalid UTF-8 in user text (a query, a tool name) becomes U+FFFD instead of
// an exception: the output is always valid JSON.
template <typename J>
std::string Dump(const J& j) {
  return j.dump(-1, ' ', false, J::error_handler_t::replace);
}

const char* CodeName(tw_status status) {
  switch (status) {
    case TW_OK:
      return "ok";
    case TW_INVALID_ARGUMENT:
      return "invalid_argument";
    case TW_NOT_FOUND:
      return "not_found";
    case TW_RESOURCE_EXHAUSTED:
      return "resource_exhausted";
    case TW_FAILED_PRECONDITION:
      return "failed_precondition";
    case TW_POLICY_ERROR:
      return "policy_error";
    case TW_INTERNAL:
      break;
  }
  return "internal";
}

tw_status StatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return TW_OK;
    case StatusCode::kInvalidArgument:
      return TW_INVALID_ARGUMENT;
    case StatusCode::kNotFound:
    case StatusCode::kUnavailable:  // a file that exists but cannot be read (EIO)
      return TW_NOT_FOUND;
    case StatusCode::kResourceExhausted:
      return TW_RESOURCE_EXHAUSTED;
    case StatusCode::kFailedPrecondition:
      return TW_FAILED_PRECONDITION;
    case StatusCode::kInternal:
      break;
  }
  return TW_INTERNAL;
}

Result Ok(const OrderedJson& body) { return Result{TW_OK, Dump(body)}; }

Result Error(tw_status status, const std::string& message,
             const Json& diagnostics = Json::array()) {
  OrderedJson error = OrderedJson::object();
  error["code"] = CodeName(status);
  error["message"] = message;
  OrderedJson body = OrderedJson::object();
  body["error"] = std::move(error);
  body["diagnostics"] = diagnostics;
  return Result{status, Dump(body)};
}

Result Error(const Status& status, const std::string& context) {
  return Error(StatusOf(status.code()), context + status.message());
}

Result Null(const char* parameter) {
  return Error(TW_INVALID_ARGUMENT, std::string("`") + parameter + "` is NULL");
}

// Copies `text` into memory from malloc (so that tw_free is free). nullptr
// when out of memory.
char* CopyOut(const char* text, size_t size) {
  char* copy = static_cast<char*>(std::malloc(size + 1));
  if (copy == nullptr) return nullptr;
  std::memcpy(copy, text, size);
  copy[size] = '\0';
  return copy;
}

// Hands `text` to the caller. A reply that cannot be copied turns into the
// out-of-memory error (and *out stays NULL if even that cannot be copied).
tw_status Emit(char** out, tw_status status, const char* text, size_t size) noexcept {
  if (out == nullptr) return status;
  *out = CopyOut(text, size);
  if (*out != nullptr) return status;
  *out = CopyOut(kOutOfMemory, sizeof(kOutOfMemory) - 1);
  return TW_RESOURCE_EXHAUSTED;
}

// Runs one entry point's body: no exception crosses the C boundary.
template <typename Body>
tw_status Run(char** out, Body&& body) noexcept {
  if (out != nullptr) *out = nullptr;
  try {
    Result result = body();
    return Emit(out, result.status, result.json.data(), result.json.size());
  } catch (const std::bad_alloc&) {
    return Emit(out, TW_RESOURCE_EXHAUSTED, kOutOfMemory, sizeof(kOutOfMemory) - 1);
  } catch (const std::exception& e) {
    try {
      Result result = Error(TW_INTERNAL, std::string("internal error: ") + e.what());
      return Emit(out, result.status, result.json.data(), result.json.size());
    } catch (...) {
      return Emit(out, TW_RESOURCE_EXHAUSTED, kOutOfMemory, sizeof(kOutOfMemory) - 1);
    }
  } catch (...) {
    return Emit(out, TW_INTERNAL, kUnknownException, sizeof(kUnknownException) - 1);
  }
}

// "policy `NAME` has 2 errors; the first: NAME:3:7: unknown tool `x`".
std::string PolicyErrorMessage(const Source& source, const Diagnostics& diagnostics) {
  std::string message = "policy `" + source.name() + "` has " +
                        std::to_string(diagnostics.error_count()) +
                        (diagnostics.error_count() == 1 ? " error" : " errors");
  for (const Diagnostic& d : diagnostics.Sorted()) {
    if (d.severity != Severity::kError) continue;
    message += (diagnostics.error_count() == 1 ? ": " : "; the first: ") + source.name() + ":" +
               std::to_string(d.position.line) + ":" + std::to_string(d.position.column) + ": " +
               d.message;
    break;
  }
  return message;
}

// The reply to a load, and the policy when it loaded.
Result FinishLoad(const LoadedPolicy& loaded, std::unique_ptr<tw_policy>* made) {
  Json diagnostics = DiagnosticsToJson(loaded.source, loaded.diagnostics);
  if (!loaded.status.ok()) {
    return Error(StatusOf(loaded.status.code()), loaded.status.message(), diagnostics);
  }
  if (loaded.diagnostics.HasErrors()) {
    return Error(TW_POLICY_ERROR, PolicyErrorMessage(loaded.source, loaded.diagnostics),
                 diagnostics);
  }
  if (loaded.program == nullptr) return Error(TW_INTERNAL, "the policy compiled to nothing");
  OrderedJson body = OrderedJson::object();
  body["name"] = loaded.program->name();
  body["hash"] = loaded.program->hash();
  body["rules"] = loaded.program->rule_count();
  body["warnings"] = diagnostics;  // no errors, so all are warnings
  Result result = Ok(body);
  *made = std::make_unique<tw_policy>();
  (*made)->program = loaded.program;
  return result;
}

// Parses JSON from the host; `parameter` names it in error messages.
Result ParseInput(const char* parameter, const char* text, Json* value) {
  StatusOr<Json> parsed = ParseJson(text);
  if (!parsed.ok()) return Error(parsed.status(), std::string("`") + parameter + "`: ");
  *value = std::move(*parsed);
  return Result{TW_OK, ""};
}

enum class Mode { kCheck, kDecide, kApprove };

Result Decide(tw_session* session, const char* tool, const char* args_json, Mode mode) {
  if (session == nullptr) return Null("session");
  if (tool == nullptr) return Null("tool");
  if (args_json == nullptr) return Null("args_json");
  Json args;
  Result parsed = ParseInput("args_json", args_json, &args);
  if (parsed.status != TW_OK) return parsed;
  Decision decision;
  {
    std::lock_guard<std::mutex> lock(session->mutex);
    Session& s = session->session;
    decision = mode == Mode::kDecide    ? s.Decide(tool, args)
               : mode == Mode::kApprove ? s.Approve(tool, args)
                                        : s.Check(tool, args);
  }
  return Ok(DecisionToJson(decision));
}

// The hash of the program a session decides with (it changes as rules are added).
OrderedJson PolicyHash(const Session& session) {
  return session.program() != nullptr ? OrderedJson(session.program()->hash()) : OrderedJson();
}

// The model settings of tw_session_draft and friends: the environment's, then
// the fields of `llm_json` (NULL: none). `need_server` requires a URL and a
// model (every call but apply, which asks no model).
Result ReadLlmConfig(const char* llm_json, bool need_server, llm::LlmConfig* config) {
  llm::LlmConfig base;
  Status env = llm::ConfigFromEnvironment(&base);
  if (!env.ok()) return Error(env, "");
  Json settings = Json::object();
  if (llm_json != nullptr) {
    Result parsed = ParseInput("llm_json", llm_json, &settings);
    if (parsed.status != TW_OK) return parsed;
  }
  StatusOr<llm::LlmConfig> read = llm::LlmConfigFromJson(settings, std::move(base));
  if (!read.ok()) return Error(read.status(), "`llm_json`: ");
  if (need_server) {
    if (read->endpoint.base_url.empty()) {
      return Error(TW_INVALID_ARGUMENT,
                   "no model server: set \"url\" in `llm_json` or TOOLWARDEN_LLM_URL");
    }
    if (read->endpoint.model.empty()) {
      return Error(TW_INVALID_ARGUMENT,
                   "no model: set \"model\" in `llm_json` or TOOLWARDEN_LLM_MODEL");
    }
    Status valid = llm::ValidateConfig(*read);
    if (!valid.ok()) return Error(valid, "`llm_json`: ");
  }
  *config = std::move(*read);
  return Result{TW_OK, ""};
}

// Drafting needs the tool schemas the rules are written against.
bool HasCatalog(const Session& session) {
  return session.program() != nullptr && session.program()->catalog() != nullptr;
}

constexpr char kNoTools[] =
    "drafting needs the tools: the policy has no `tools` file (or `tools_path`)";
constexpr char kDraftName[] = "draft";

Result SessionDraft(tw_session* session, const char* llm_json) {
  if (session == nullptr) return Null("session");
  llm::LlmConfig config;
  Result read = ReadLlmConfig(llm_json, /*need_server=*/true, &config);
  if (read.status != TW_OK) return read;
  const llm::Drafter drafter(std::move(config));
  llm::DraftOutcome outcome;
  {
    // Held through the model conversation: nothing may change the session
    // between the rules being checked and being added.
    std::lock_guard<std::mutex> lock(session->mutex);
    Session& s = session->session;
    if (!HasCatalog(s)) return Error(TW_FAILED_PRECONDITION, kNoTools);
    if (s.AddedText(kDraftName)) {
      return Error(TW_FAILED_PRECONDITION, "the session already has drafted rules named `draft`");
    }
    outcome = drafter.Draft(s, kDraftName);
  }
  return Ok(llm::DraftOutcomeToJson(outcome));
}

Result SessionUpdate(tw_session* session, size_t call, const char* mode, const char* llm_json) {
  if (session == nullptr) return Null("session");
  if (mode == nullptr) return Null("mode");
  StatusOr<llm::UpdateMode> update_mode = llm::ParseUpdateMode(mode);
  if (!update_mode.ok()) {
    return Error(TW_INVALID_ARGUMENT, "`mode` must be \"narrow-only\", \"ask\" or \"any\"");
  }
  llm::LlmConfig config;
  Result read = ReadLlmConfig(llm_json, /*need_server=*/true, &config);
  if (read.status != TW_OK) return read;
  const llm::Drafter drafter(std::move(config));
  llm::UpdateOutcome outcome;
  {
    std::lock_guard<std::mutex> lock(session->mutex);
    Session& s = session->session;
    // The host's mistakes are errors, before any model call; what the model
    // does is the outcome.
    if (!HasCatalog(s)) return Error(TW_FAILED_PRECONDITION, kNoTools);
    if (call >= s.history().size()) {
      return Error(TW_NOT_FOUND, "no recorded call #" + std::to_string(call));
    }
    if (!s.history()[call].result) {
      return Error(
          TW_FAILED_PRECONDITION,
          "call #" + std::to_string(call) + " has no result yet (tw_session_attach_result first)");
    }
    if (s.drafted().empty()) {
      return Error(TW_FAILED_PRECONDITION,
                   "the session has no drafted rules to update (tw_session_draft first)");
    }
    outcome = drafter.Update(s, call, *update_mode);
  }
  return Ok(llm::UpdateOutcomeToJson(outcome));
}

Result SessionApplyUpdate(tw_session* session, const char* change_json, const char* llm_json) {
  if (session == nullptr) return Null("session");
  if (change_json == nullptr) return Null("change_json");
  Json change_value;
  Result parsed = ParseInput("change_json", change_json, &change_value);
  if (parsed.status != TW_OK) return parsed;
  StatusOr<llm::RulesChange> change = llm::RulesChangeFromJson(change_value);
  if (!change.ok()) return Error(change.status(), "`change_json`: ");
  llm::LlmConfig config;
  Result read = ReadLlmConfig(llm_json, /*need_server=*/false, &config);
  if (read.status != TW_OK) return read;
  const llm::Drafter drafter(std::move(config));
  llm::UpdateOutcome outcome;
  {
    std::lock_guard<std::mutex> lock(session->mutex);
    outcome = drafter.Apply(session->session, *change);
  }
  return Ok(llm::UpdateOutcomeToJson(outcome));
}

}  // namespace
}  // namespace toolwarden

using toolwarden::Error;
using toolwarden::Json;
using toolwarden::Mode;
using toolwarden::Null;
using toolwarden::Ok;
using toolwarden::OrderedJson;
using toolwarden::Result;
using toolwarden::Run;

extern "C" {

const char* tw_version(void) { return TOOLWARDEN_VERSION; }

void tw_free(char* text) { std::free(text); }

tw_status tw_policy_from_text(const char* name, const char* text, size_t text_len,
                              const char* base_dir, const char* tools_path, tw_policy** policy,
                              char** out) {
  if (policy != nullptr) *policy = nullptr;
  std::unique_ptr<tw_policy> made;
  tw_status status = Run(out, [&]() -> Result {
    if (name == nullptr) return Null("name");
    if (text == nullptr) return Null("text");
    if (policy == nullptr) return Null("policy");
    toolwarden::LoadOptions options;
    if (tools_path != nullptr) options.tools_path = tools_path;
    toolwarden::LoadedPolicy loaded = toolwarden::LoadPolicyText(
        name, std::string(text, text_len), base_dir != nullptr ? base_dir : "", options);
    return toolwarden::FinishLoad(loaded, &made);
  });
  if (status == TW_OK && policy != nullptr) *policy = made.release();
  return status;
}

tw_status tw_policy_from_file(const char* path, const char* tools_path, tw_policy** policy,
                              char** out) {
  if (policy != nullptr) *policy = nullptr;
  std::unique_ptr<tw_policy> made;
  tw_status status = Run(out, [&]() -> Result {
    if (path == nullptr) return Null("path");
    if (policy == nullptr) return Null("policy");
    toolwarden::LoadOptions options;
    if (tools_path != nullptr) options.tools_path = tools_path;
    toolwarden::LoadedPolicy loaded = toolwarden::LoadPolicyFile(path, options);
    return toolwarden::FinishLoad(loaded, &made);
  });
  if (status == TW_OK && policy != nullptr) *policy = made.release();
  return status;
}

void tw_policy_free(tw_policy* policy) { delete policy; }

tw_status tw_session_new(const tw_policy* policy, const char* query, const char* trusted_json,
                         tw_session** session, char** out) {
  if (session != nullptr) *session = nullptr;
  std::unique_ptr<tw_session> made;
  tw_status status = Run(out, [&]() -> Result {
    if (policy == nullptr) return Null("policy");
    if (query == nullptr) return Null("query");
    if (session == nullptr) return Null("session");
    std::vector<std::string> trusted;
    if (trusted_json != nullptr) {
      Json values;
      Result parsed = toolwarden::ParseInput("trusted_json", trusted_json, &values);
      if (parsed.status != TW_OK) return parsed;
      if (!values.is_array()) {
        return Error(TW_INVALID_ARGUMENT, "`trusted_json` must be a JSON array of strings");
      }
      if (values.size() > toolwarden::kMaxTrustedValues) {
        return Error(TW_RESOURCE_EXHAUSTED,
                     "`trusted_json` holds " + std::to_string(values.size()) +
                         " values; the limit is " + std::to_string(toolwarden::kMaxTrustedValues));
      }
      for (Json& value : values) {
        if (!value.is_string()) {
          return Error(TW_INVALID_ARGUMENT, "`trusted_json` must be a JSON array of strings");
        }
        trusted.push_back(std::move(value.get_ref<std::string&>()));
      }
    }
    made = std::make_unique<tw_session>(policy->program, query, std::move(trusted));
    OrderedJson body = OrderedJson::object();
    body["policy"] = toolwarden::PolicyHash(made->session);
    return Ok(body);
  });
  if (status == TW_OK && session != nullptr) {
    *session = made.release();
  }
  return status;
}

void tw_session_free(tw_session* session) { delete session; }

tw_status tw_session_decide(tw_session* session, const char* tool, const char* args_json,
                            char** out) {
  return Run(out, [&] { return toolwarden::Decide(session, tool, args_json, Mode::kDecide); });
}

tw_status tw_session_approve(tw_session* session, const char* tool, const char* args_json,
                             char** out) {
  return Run(out, [&] { return toolwarden::Decide(session, tool, args_json, Mode::kApprove); });
}

tw_status tw_session_check(tw_session* session, const char* tool, const char* args_json,
                           char** out) {
  return Run(out, [&] { return toolwarden::Decide(session, tool, args_json, Mode::kCheck); });
}

tw_status tw_session_attach_result(tw_session* session, size_t call, const char* result_json,
                                   char** out) {
  return Run(out, [&]() -> Result {
    if (session == nullptr) return Null("session");
    if (result_json == nullptr) return Null("result_json");
    Json result;
    Result parsed = toolwarden::ParseInput("result_json", result_json, &result);
    if (parsed.status != TW_OK) return parsed;
    toolwarden::Status status;
    {
      std::lock_guard<std::mutex> lock(session->mutex);
      status = session->session.AttachResult(call, std::move(result));
    }
    if (!status.ok()) return Error(status, "");
    return Ok(OrderedJson::object());
  });
}

tw_status tw_session_add_trusted(tw_session* session, const char* value, char** out) {
  return Run(out, [&]() -> Result {
    if (session == nullptr) return Null("session");
    if (value == nullptr) return Null("value");
    toolwarden::Status status;
    {
      std::lock_guard<std::mutex> lock(session->mutex);
      status = session->session.AddTrustedValue(value);
    }
    if (!status.ok()) return Error(status, "");
    return Ok(OrderedJson::object());
  });
}

tw_status tw_session_add_rules(tw_session* session, const char* name, const char* text,
                               size_t text_len, const char* mode, char** out) {
  return Run(out, [&]() -> Result {
    if (session == nullptr) return Null("session");
    if (name == nullptr) return Null("name");
    if (text == nullptr) return Null("text");
    if (mode == nullptr) return Null("mode");
    toolwarden::AddMode add_mode;
    if (std::strcmp(mode, "narrow-only") == 0) {
      add_mode = toolwarden::AddMode::kNarrowOnly;
    } else if (std::strcmp(mode, "any") == 0) {
      add_mode = toolwarden::AddMode::kAny;
    } else {
      return Error(TW_INVALID_ARGUMENT, "`mode` must be \"narrow-only\" or \"any\"");
    }
    std::lock_guard<std::mutex> lock(session->mutex);
    toolwarden::AddRulesResult added =
        session->session.AddRules(name, std::string(text, text_len), add_mode);
    Json diagnostics = toolwarden::DiagnosticsToJson(added.source, added.diagnostics);
    if (added.diagnostics.HasErrors()) {
      return Error(TW_POLICY_ERROR, toolwarden::PolicyErrorMessage(added.source, added.diagnostics),
                   diagnostics);
    }
    if (!added.ok()) {
      return Error(toolwarden::StatusOf(added.status.code()), added.status.message(), diagnostics);
    }
    OrderedJson body = OrderedJson::object();
    body["rules"] = added.rule_ids;
    body["policy"] = toolwarden::PolicyHash(session->session);
    body["warnings"] = diagnostics;
    return Ok(body);
  });
}

tw_status tw_session_draft(tw_session* session, const char* llm_json, char** out) {
  return Run(out, [&] { return toolwarden::SessionDraft(session, llm_json); });
}

tw_status tw_session_update(tw_session* session, size_t call, const char* mode,
                            const char* llm_json, char** out) {
  return Run(out, [&] { return toolwarden::SessionUpdate(session, call, mode, llm_json); });
}

tw_status tw_session_apply_update(tw_session* session, const char* change_json,
                                  const char* llm_json, char** out) {
  return Run(out, [&] { return toolwarden::SessionApplyUpdate(session, change_json, llm_json); });
}

tw_status tw_session_state(tw_session* session, char** out) {
  return Run(out, [&]() -> Result {
    if (session == nullptr) return Null("session");
    OrderedJson body = OrderedJson::object();
    {
      std::lock_guard<std::mutex> lock(session->mutex);
      const toolwarden::Session& s = session->session;
      OrderedJson history = OrderedJson::array();
      for (const toolwarden::CallRecord& record : s.history()) {
        OrderedJson entry = OrderedJson::object();
        entry["tool"] = record.tool;
        entry["args"] = OrderedJson(record.args);
        if (record.result) entry["result"] = OrderedJson(*record.result);
        history.push_back(std::move(entry));
      }
      body["query"] = s.query();
      body["policy"] = toolwarden::PolicyHash(s);
      body["history"] = std::move(history);
      body["added_rules"] = s.added_rules();
      body["trusted"] = s.trusted_values();
      body["drafted"] = s.drafted();
    }
    return Ok(body);
  });
}

}  // extern "C"
