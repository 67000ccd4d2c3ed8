#include "adapters/http/service.h"

#include <cinttypes>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "policy/diagnostic.h"
#include "policy/json_limits.h"
#include "policy/sha256.h"

namespace toolwarden {

using nlohmann::json;
using nlohmann::ordered_json;

struct Service::Entry {
  std::mutex mutex;  // serialises this session's requests
  Session session;
  std::string policy_name;  // "" for inline source
  std::atomic<int64_t> last_used_ns{0};
  uint64_t rule_sets = 0;  // AddRules calls so far, for default names; guarded by mutex
  // How drafted rules are updated after results; nullopt when they are not.
  // Both guarded by mutex.
  std::optional<llm::UpdateMode> update_mode;
  std::optional<llm::RulesChange> pending_update;  // kAsk: waits for POST .../update

  Entry(std::shared_ptr<const Program> program, std::string query, std::vector<std::string> trusted,
        std::string name)
      : session(std::move(program), std::move(query), std::move(trusted)),
        policy_name(std::move(name)) {}
};

namespace {

constexpr double kBucketBounds[] = {1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5,
                                    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2};

std::string Dump(const ordered_json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

HttpResponse JsonResponse(int status, const ordered_json& body) {
  HttpResponse r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

const char* CodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid_argument";
    case StatusCode::kNotFound:
      return "not_found";
    case StatusCode::kResourceExhausted:
      return "resource_exhausted";
    case StatusCode::kFailedPrecondition:
      return "failed_precondition";
    case StatusCode::kInternal:
      return "internal";
    case StatusCode::kUnavailable:
      return "unavailable";
  }
  return "internal";
}

int HttpStatusOf(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kResourceExhausted:
      return 413;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse StatusResponse(const Status& status) {
  return ErrorResponse(HttpStatusOf(status.code()), CodeName(status.code()), status.message());
}

HttpResponse PolicyErrorResponse(const std::string& message, const Source& source,
                                 const Diagnostics& diagnostics) {
  ordered_json body;
  body["error"] = {{"code", "policy_error"}, {"message", message}};
  body["diagnostics"] = DiagnosticsToJson(source, diagnostics);
  return JsonResponse(422, body);
}

std::string NewSessionId() {
  static thread_local std::mt19937_64 rng([] {
    std::random_device device;  // getrandom(2) on Linux
    std::seed_seq seed{device(), device(), device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }());
  char id[33];
  std::snprintf(id, sizeof(id), "%016" PRIx64 "%016" PRIx64, rng(), rng());
  return id;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Splits "/v1/sessions/ID/decide?x" into {"v1", "sessions", "ID", "decide"}.
std::vector<std::string> PathParts(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

// Reads an optional string field; false (with `error` set) when of another type.
bool OptionalString(const json& body, const char* key, std::string* out, std::string* error) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_string()) {
    *error = std::string("`") + key + "` must be a string";
    return false;
  }
  *out = it->get<std::string>();
  return true;
}

bool TrustedValues(const json& body, std::vector<std::string>* out, std::string* error) {
  auto it = body.find("trusted");
  if (it == body.end() || it->is_null()) return true;
  if (!it->is_array()) {
    *error = "`trusted` must be an array of strings";
    return false;
  }
  if (it->size() > kMaxTrustedValues) {
    *error = "`trusted` holds more than " + std::to_string(kMaxTrustedValues) + " values";
    return false;
  }
  for (const json& v : *it) {
    if (!v.is_string()) {
      *error = "`trusted` must be an array of strings";
      return false;
    }
    out->push_back(v.get<std::string>());
  }
  return true;
}

}  // namespace

HttpResponse ErrorResponse(int status, const std::string& code, const std::string& message) {
  ordered_json body;
  body["error"] = {{"code", code}, {"message", message}};
  return JsonResponse(status, body);
}

Service::Service(PolicyStore* store, DecisionLog* log, ServiceOptions options)
    : store_(store), log_(log), options_(std::move(options)) {
  if (options_.llm) drafter_ = std::make_unique<llm::Drafter>(*options_.llm, options_.llm_hooks);
}

Service::~Service() = default;

HttpResponse Service::Handle(const HttpRequest& request) {
  HttpResponse response;
  try {
    response = Route(request);
  } catch (const std::bad_alloc&) {
    response = ErrorResponse(503, "resource_exhausted", "out of memory");
  } catch (const std::exception& e) {
    response = ErrorResponse(500, "internal", std::string("internal error: ") + e.what());
  } catch (...) {
    response = ErrorResponse(500, "internal", "internal error");
  }
  if (response.status >= 400) CountHttpError(response.status);
  return response;
}

HttpResponse Service::Route(const HttpRequest& request) {
  const std::vector<std::string> parts = PathParts(request.target);
  const std::string& method = request.method;
  auto wrong_method = [&](const char* allowed) {
    return ErrorResponse(405, "method_not_allowed",
                         method + " is not allowed on " + request.target + "; use " + allowed);
  };
  if (parts.size() == 1 && parts[0] == "healthz") {
    return method == "GET" ? Health() : wrong_method("GET");
  }
  if (parts.size() == 1 && parts[0] == "metrics") {
    return method == "GET" ? Metrics() : wrong_method("GET");
  }
  if (parts.size() < 2 || parts[0] != "v1" || (parts[1] != "sessions" && parts[1] != "decide") ||
      (parts[1] == "decide" && parts.size() != 2) || parts.size() > 4) {
    return ErrorResponse(404, "not_found", "no such endpoint: " + request.target);
  }
  // GET and DELETE of one session take no body.
  if (parts.size() == 3 && parts[1] == "sessions") {
    if (method == "GET") return State(parts[2]);
    if (method == "DELETE") return DeleteSession(parts[2]);
    return wrong_method("GET or DELETE");
  }
  if (method != "POST") return wrong_method("POST");
  StatusOr<json> body = ParseJson(request.body, JsonLimits{options_.max_body_bytes, kMaxBodyDepth});
  if (!body.ok()) {
    return ErrorResponse(body.status().code() == StatusCode::kResourceExhausted ? 413 : 400,
                         CodeName(body.status().code()),
                         "request body: " + body.status().message());
  }
  if (!body->is_object())
    return ErrorResponse(400, "invalid_argument", "body must be a JSON object");
  if (parts.size() == 2)
    return parts[1] == "decide" ? StatelessDecide(*body) : CreateSession(*body);
  const std::string& id = parts[2];
  const std::string& action = parts[3];
  if (action == "decide") return Decide(id, *body, Mode::kDecide);
  if (action == "check") return Decide(id, *body, Mode::kCheck);
  if (action == "approve") return Decide(id, *body, Mode::kApprove);
  if (action == "results") return Results(id, *body);
  if (action == "rules") return Rules(id, *body);
  if (action == "trusted") return Trusted(id, *body);
  if (action == "update") return Update(id, *body);
  return ErrorResponse(404, "not_found", "no such endpoint: " + request.target);
}

namespace {

// The program a request names: {"policy": NAME} from the store, or
// {"source": TEXT} compiled on the spot. Sets `error` when it cannot.
std::shared_ptr<const Program> ProgramOf(const json& body, PolicyStore* store, std::string* name,
                                         std::optional<HttpResponse>* error) {
  std::string message, source;
  if (!OptionalString(body, "policy", name, &message) ||
      !OptionalString(body, "source", &source, &message)) {
    *error = ErrorResponse(400, "invalid_argument", message);
    return nullptr;
  }
  const bool has_source = body.contains("source") && !body["source"].is_null();
  if (name->empty() == !has_source) {
    *error = ErrorResponse(400, "invalid_argument", "give exactly one of `policy` and `source`");
    return nullptr;
  }
  if (!has_source) {
    std::shared_ptr<const Program> program = store->Get(*name);
    if (program == nullptr) *error = ErrorResponse(404, "not_found", "no policy `" + *name + "`");
    return program;
  }
  std::string source_name = "source";
  if (!OptionalString(body, "name", &source_name, &message) || source_name.empty() ||
      source_name.find_first_of(":/\n") != std::string::npos) {
    *error =
        ErrorResponse(400, "invalid_argument",
                      message.empty() ? "`name` must be non-empty, without `:` or `/`" : message);
    return nullptr;
  }
  LoadOptions options;
  options.tools_inside_base_dir = true;
  LoadedPolicy loaded = LoadPolicyText(source_name, std::move(source), store->dir(), options);
  if (!loaded.ok()) {
    if (!loaded.status.ok()) {
      *error = StatusResponse(loaded.status);
    } else {
      *error =
          PolicyErrorResponse("the policy source has errors", loaded.source, loaded.diagnostics);
    }
    return nullptr;
  }
  return loaded.program;
}

}  // namespace

HttpResponse Service::CreateSession(const json& body) {
  std::string name, query, message, update_name;
  std::vector<std::string> trusted;
  if (!OptionalString(body, "query", &query, &message) ||
      !TrustedValues(body, &trusted, &message) ||
      !OptionalString(body, "update", &update_name, &message)) {
    return ErrorResponse(400, "invalid_argument", message);
  }
  bool draft = false;
  if (auto it = body.find("draft"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return ErrorResponse(400, "invalid_argument", "`draft` must be a boolean");
    }
    draft = it->get<bool>();
  }
  std::optional<llm::UpdateMode> update_mode;
  if (update_name.empty()) update_name = draft ? "narrow-only" : "off";
  if (update_name != "off") {
    StatusOr<llm::UpdateMode> parsed = llm::ParseUpdateMode(update_name);
    if (!parsed.ok()) {
      return ErrorResponse(400, "invalid_argument",
                           "`update` must be \"off\", \"narrow-only\", \"ask\" or \"any\"");
    }
    if (!draft) {
      return ErrorResponse(400, "invalid_argument",
                           "`update` needs `draft`: only drafted rules are updated");
    }
    update_mode = *parsed;
  }
  if (draft && drafter_ == nullptr) {
    return ErrorResponse(400, "no_llm",
                         "drafting needs a model server: start the sidecar with --llm URL "
                         "--model NAME");
  }
  std::optional<HttpResponse> error;
  std::shared_ptr<const Program> program = ProgramOf(body, store_, &name, &error);
  if (program == nullptr) return *error;
  auto entry = std::make_shared<Entry>(program, std::move(query), std::move(trusted), name);
  entry->update_mode = update_mode;
  entry->last_used_ns = NowNs();
  std::string id = NewSessionId();
  // Held until the draft is in: nothing can use the session before it (and
  // only this request knows its id yet).
  std::lock_guard<std::mutex> session_lock(entry->mutex);
  {
    std::unique_lock<std::mutex> lock(sessions_mutex_);
    if (sessions_.size() >= options_.max_sessions) {
      lock.unlock();
      ExpireIdle();
      lock.lock();
      if (sessions_.size() >= options_.max_sessions) {
        return ErrorResponse(429, "resource_exhausted",
                             "too many live sessions (" + std::to_string(options_.max_sessions) +
                                 "); delete finished ones");
      }
    }
    sessions_.emplace(id, entry);
  }
  ++sessions_created_;
  ordered_json out;
  out["session"] = id;
  out["policy"] = program->hash();
  out["name"] = name.empty() ? program->name() : name;
  ordered_json log_entry;
  log_entry["kind"] = "session";
  log_entry["session"] = id;
  log_entry["policy_name"] = name;
  log_entry["policy"] = program->hash();
  log_entry["query"] = entry->session.query();
  if (draft) {
    log_entry["draft"] = true;
    log_entry["update"] = update_name;
  }
  if (!Log(std::move(log_entry))) {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    sessions_.erase(id);
    return ErrorResponse(503, "unavailable", "the decision log cannot be written");
  }
  if (draft) {
    bool log_failed = false;
    llm::DraftOutcome drafted =
        drafter_->Draft(entry->session, "draft", LogGate(id, program->hash(), false, &log_failed));
    if (log_failed) {
      drafted.status =
          Status(StatusCode::kUnavailable,
                 "the decision log cannot be written; the drafted rules were not added");
    }
    if (!drafted.ok()) {
      // Nothing changed; the log says why, as far as it can.
      ordered_json failed;
      failed["kind"] = "draft-failed";
      failed["session"] = id;
      failed["error"] = drafted.status.message();
      failed["problems"] = drafted.problems;
      failed["model_calls"] = drafted.model_calls;
      Log(std::move(failed));
    }
    out["draft"] = llm::DraftOutcomeToJson(drafted);
    entry->last_used_ns = NowNs();
  }
  return JsonResponse(201, out);
}

std::shared_ptr<Service::Entry> Service::Find(const std::string& id) {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  it->second->last_used_ns = NowNs();
  return it->second;
}

namespace {

// {"tool": STRING, "args": ANY}; a missing `args` is {}. Arguments of the
// wrong type reach the session, which denies the call.
bool CallOf(const json& body, std::string* tool, const json** args, std::string* error) {
  auto t = body.find("tool");
  if (t == body.end() || !t->is_string()) {
    *error = "`tool` must be a string";
    return false;
  }
  *tool = t->get<std::string>();
  static const json kEmpty = json::object();
  auto a = body.find("args");
  *args = a == body.end() ? &kEmpty : &*a;
  return true;
}

}  // namespace

HttpResponse Service::Decide(const std::string& id, const json& body, Mode mode) {
  const int64_t start = NowNs();
  std::string tool, message;
  const json* args = nullptr;
  if (!CallOf(body, &tool, &args, &message)) return ErrorResponse(400, "invalid_argument", message);
  std::shared_ptr<Entry> entry = Find(id);
  if (entry == nullptr) return ErrorResponse(404, "not_found", "no session `" + id + "`");
  std::lock_guard<std::mutex> lock(entry->mutex);
  Session& session = entry->session;
  const char* kind = mode == Mode::kDecide    ? "decide"
                     : mode == Mode::kApprove ? "approve"
                                              : "check";
  // The decision goes to the log before the session records it: a decision
  // the log cannot take changes nothing and is answered with 503.
  HttpResponse response;
  bool logged = false;
  auto log_first = [&](const Decision& pending) {
    ordered_json record_json = DecisionToJson(pending);
    response.body = Dump(record_json);
    logged = Log(DecisionLogEntry(kind, id, *args, std::move(record_json)));
    return logged;
  };
  Decision d = mode == Mode::kDecide    ? session.Decide(tool, *args, log_first)
               : mode == Mode::kApprove ? session.Approve(tool, *args, log_first)
                                        : session.Check(tool, *args);
  if (mode == Mode::kCheck) log_first(d);
  if (!logged) {
    return ErrorResponse(503, "unavailable",
                         "the decision log cannot be written; treat the call as denied");
  }
  CountDecision(d.outcome, NowNs() - start);
  return response;
}

HttpResponse Service::StatelessDecide(const json& body) {
  const int64_t start = NowNs();
  std::string name, query, tool, message;
  std::vector<std::string> trusted;
  const json* args = nullptr;
  if (!OptionalString(body, "query", &query, &message) ||
      !TrustedValues(body, &trusted, &message) || !CallOf(body, &tool, &args, &message)) {
    return ErrorResponse(400, "invalid_argument", message);
  }
  std::optional<HttpResponse> error;
  std::shared_ptr<const Program> program = ProgramOf(body, store_, &name, &error);
  if (program == nullptr) return *error;
  Session session(program, std::move(query), std::move(trusted));
  Decision d = session.Decide(tool, *args);
  d.call.reset();  // nothing to attach a result to
  ordered_json record_json = DecisionToJson(d);
  HttpResponse response;
  response.body = Dump(record_json);
  if (!Log(DecisionLogEntry("decide", "", *args, std::move(record_json)))) {
    return ErrorResponse(503, "unavailable",
                         "the decision log cannot be written; treat the call as denied");
  }
  CountDecision(d.outcome, NowNs() - start);
  return response;
}

HttpResponse Service::Results(const std::string& id, const json& body) {
  auto call = body.find("call");
  if (call == body.end() || !call->is_number_unsigned()) {
    return ErrorResponse(400, "invalid_argument", "`call` must be a non-negative integer");
  }
  if (!body.contains("result"))
    return ErrorResponse(400, "invalid_argument", "`result` is missing");
  std::shared_ptr<Entry> entry = Find(id);
  if (entry == nullptr) return ErrorResponse(404, "not_found", "no session `" + id + "`");
  std::lock_guard<std::mutex> lock(entry->mutex);
  const size_t index = call->get<size_t>();
  const json& result = body["result"];
  // What AttachResult would refuse, checked before the log takes the line.
  const std::vector<CallRecord>& history = entry->session.history();
  if (index >= history.size()) {
    return ErrorResponse(404, "not_found", "no recorded call #" + std::to_string(index));
  }
  if (history[index].result) {
    return ErrorResponse(409, "failed_precondition",
                         "call #" + std::to_string(index) + " already has a result");
  }
  ordered_json log_entry;
  log_entry["kind"] = "result";
  log_entry["session"] = id;
  log_entry["call"] = index;
  log_entry["result"] = "sha256:" + Sha256Hex(Dump(result));
  if (!Log(std::move(log_entry))) {
    return ErrorResponse(503, "unavailable", "the decision log cannot be written");
  }
  Status status = entry->session.AttachResult(index, result);
  if (!status.ok()) return StatusResponse(status);
  ordered_json out = ordered_json::object();
  if (entry->update_mode && drafter_ != nullptr && !entry->session.drafted().empty()) {
    out["update"] = UpdateAfterResult(*entry, id, index);
  }
  return JsonResponse(200, out);
}

namespace {

// The decision log's form of a rules change: {"kind": KIND, "session",
// "change": "draft"|"update", then the change's other fields}.
ordered_json ChangeLogEntry(const char* kind, const std::string& session,
                            const llm::RulesChange& change) {
  ordered_json entry;
  entry["kind"] = kind;
  entry["session"] = session;
  const ordered_json fields = llm::RulesChangeToJson(change);
  for (const auto& [key, value] : fields.items()) entry[key == "kind" ? "change" : key] = value;
  return entry;
}

}  // namespace

llm::ChangeGate Service::LogGate(const std::string& id, std::string policy_before, bool approved,
                                 bool* log_failed) {
  return [this, id, policy_before = std::move(policy_before), approved,
          log_failed](const llm::RulesChange& change) {
    ordered_json entry = ChangeLogEntry("rules-change", id, change);
    entry["policy_before"] = policy_before;
    if (approved) entry["approved"] = true;
    const bool logged = Log(std::move(entry));
    if (!logged) *log_failed = true;
    return logged;
  };
}

ordered_json Service::UpdateAfterResult(Entry& entry, const std::string& id, size_t call) {
  Session& session = entry.session;
  bool log_failed = false;
  llm::UpdateOutcome update =
      drafter_->Update(session, call, *entry.update_mode,
                       LogGate(id, session.program()->hash(), false, &log_failed));
  entry.last_used_ns = NowNs();
  using Result = llm::UpdateOutcome::Result;
  if (log_failed) {
    update.result = Result::kFailed;
    update.status = Status(StatusCode::kUnavailable,
                           "the decision log cannot be written; the update was not applied");
    return llm::UpdateOutcomeToJson(update);
  }
  if (update.result == Result::kApplied) {
    // A pending update replaces rules that no longer decide: it can never apply.
    entry.pending_update.reset();
    return llm::UpdateOutcomeToJson(update);
  }
  // Nothing changed; the log records what the model proposed and why not.
  ordered_json log_entry;
  log_entry["kind"] = "update";
  log_entry["session"] = id;
  log_entry["call"] = call;
  const ordered_json outcome = llm::UpdateOutcomeToJson(update);
  for (const auto& [key, value] : outcome.items()) log_entry[key] = value;
  const bool logged = Log(std::move(log_entry));
  if (update.result == Result::kPending) {
    if (logged) {
      entry.pending_update = update.change;  // one at a time: the newest wins
    } else {
      update.result = Result::kFailed;
      update.status =
          Status(StatusCode::kUnavailable,
                 "the decision log cannot be written; the update was not kept for approval");
    }
  }
  return llm::UpdateOutcomeToJson(update);
}

HttpResponse Service::Update(const std::string& id, const json& body) {
  auto approve = body.find("approve");
  if (approve == body.end() || !approve->is_boolean()) {
    return ErrorResponse(400, "invalid_argument", "`approve` must be a boolean");
  }
  std::shared_ptr<Entry> entry = Find(id);
  if (entry == nullptr) return ErrorResponse(404, "not_found", "no session `" + id + "`");
  std::lock_guard<std::mutex> lock(entry->mutex);
  if (!entry->pending_update || drafter_ == nullptr) {
    return ErrorResponse(409, "no_pending_update", "session `" + id + "` has no pending update");
  }
  const llm::RulesChange pending = *entry->pending_update;
  Session& session = entry->session;
  if (!approve->get<bool>()) {
    ordered_json log_entry = ChangeLogEntry("update-review", id, pending);
    log_entry["approved"] = false;
    log_entry["result"] = "rejected";
    if (!Log(std::move(log_entry))) {
      return ErrorResponse(503, "unavailable", "the decision log cannot be written");
    }
    entry->pending_update.reset();
    ordered_json out;
    out["result"] = "rejected";
    out["change"] = llm::RulesChangeToJson(pending);
    return JsonResponse(200, out);
  }
  bool log_failed = false;
  llm::UpdateOutcome applied =
      drafter_->Apply(session, pending, LogGate(id, session.program()->hash(), true, &log_failed));
  if (log_failed) {
    // Still pending: the person may approve it again once the log can grow.
    return ErrorResponse(503, "unavailable", "the decision log cannot be written");
  }
  entry->pending_update.reset();
  if (!applied.status.ok()) {
    ordered_json log_entry = ChangeLogEntry("update-review", id, pending);
    log_entry["approved"] = true;
    log_entry["result"] = "failed";
    log_entry["error"] = applied.status.message();
    Log(std::move(log_entry));
  }
  return JsonResponse(200, llm::UpdateOutcomeToJson(applied));
}

HttpResponse Service::Rules(const std::string& id, const json& body) {
  std::string source, mode_name = "narrow-only", name, message;
  if (!OptionalString(body, "source", &source, &message) ||
      !OptionalString(body, "mode", &mode_name, &message) ||
      !OptionalString(body, "name", &name, &message)) {
    return ErrorResponse(400, "invalid_argument", message);
  }
  if (!body.contains("source"))
    return ErrorResponse(400, "invalid_argument", "`source` is missing");
  AddMode mode;
  if (mode_name == "narrow-only") {
    mode = AddMode::kNarrowOnly;
  } else if (mode_name == "any") {
    mode = AddMode::kAny;
  } else {
    return ErrorResponse(400, "invalid_argument", "`mode` must be \"narrow-only\" or \"any\"");
  }
  std::shared_ptr<Entry> entry = Find(id);
  if (entry == nullptr) return ErrorResponse(404, "not_found", "no session `" + id + "`");
  std::lock_guard<std::mutex> lock(entry->mutex);
  if (name.empty()) name = "rules-" + std::to_string(entry->rule_sets + 1);
  const std::string before = entry->session.program()->hash();
  bool logged = false;
  AddRulesResult added =
      entry->session.AddRules(name, source, mode, [&](const AddRulesResult& pending) {
        ordered_json log_entry;
        log_entry["kind"] = "rules";
        log_entry["session"] = id;
        log_entry["mode"] = mode_name;
        log_entry["name"] = name;
        log_entry["source"] = source;
        log_entry["rules"] = pending.rule_ids;
        log_entry["policy_before"] = before;
        log_entry["policy_after"] = pending.policy;
        logged = Log(std::move(log_entry));
        return logged;
      });
  if (!added.ok()) {
    if (added.diagnostics.HasErrors()) {
      return PolicyErrorResponse(added.status.message(), added.source, added.diagnostics);
    }
    if (!logged && added.status.code() == StatusCode::kFailedPrecondition) {
      return ErrorResponse(503, "unavailable", "the decision log cannot be written");
    }
    return StatusResponse(added.status);
  }
  ++entry->rule_sets;
  const std::string& after = added.policy;
  ordered_json out;
  out["rules"] = added.rule_ids;
  out["policy"] = after;
  out["warnings"] = DiagnosticsToJson(added.source, added.diagnostics);
  return JsonResponse(200, out);
}

HttpResponse Service::Trusted(const std::string& id, const json& body) {
  auto value = body.find("value");
  if (value == body.end() || !value->is_string()) {
    return ErrorResponse(400, "invalid_argument", "`value` must be a string");
  }
  std::shared_ptr<Entry> entry = Find(id);
  if (entry == nullptr) return ErrorResponse(404, "not_found", "no session `" + id + "`");
  std::lock_guard<std::mutex> lock(entry->mutex);
  if (entry->session.trusted_values().size() >= kMaxTrustedValues) {
    return ErrorResponse(413, "resource_exhausted",
                         "more than " + std::to_string(kMaxTrustedValues) + " trusted values");
  }
  ordered_json log_entry;
  log_entry["kind"] = "trusted";
  log_entry["session"] = id;
  log_entry["value"] = *value;
  if (!Log(std::move(log_entry))) {
    return ErrorResponse(503, "unavailable", "the decision log cannot be written");
  }
  Status status = entry->session.AddTrustedValue(value->get<std::string>());
  if (!status.ok()) return StatusResponse(status);
  return JsonResponse(200, ordered_json::object());
}

HttpResponse Service::State(const std::string& id) {
  std::shared_ptr<Entry> entry = Find(id);
  if (entry == nullptr) return ErrorResponse(404, "not_found", "no session `" + id + "`");
  std::lock_guard<std::mutex> lock(entry->mutex);
  const Session& s = entry->session;
  ordered_json out;
  out["session"] = id;
  out["query"] = s.query();
  out["policy"] = s.program()->hash();
  out["policy_name"] = entry->policy_name;
  ordered_json history = ordered_json::array();
  for (const CallRecord& call : s.history()) {
    ordered_json c;
    c["tool"] = call.tool;
    c["args"] = call.args;
    if (call.result) c["result"] = *call.result;
    history.push_back(std::move(c));
  }
  out["history"] = std::move(history);
  out["added_rules"] = s.added_rules();
  out["trusted"] = s.trusted_values();
  out["drafted"] = s.drafted();
  out["update_mode"] = entry->update_mode ? llm::UpdateModeName(*entry->update_mode) : "off";
  out["pending_update"] = entry->pending_update ? llm::RulesChangeToJson(*entry->pending_update)
                                                : ordered_json(nullptr);
  return JsonResponse(200, out);
}

HttpResponse Service::DeleteSession(const std::string& id) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return ErrorResponse(404, "not_found", "no session `" + id + "`");
    entry = std::move(it->second);
    sessions_.erase(it);
  }
  // A request that found the session before it was removed finishes (and logs)
  // first, so `end` is the session's last line.
  std::lock_guard<std::mutex> session_lock(entry->mutex);
  ordered_json log_entry;
  log_entry["kind"] = "end";
  log_entry["session"] = id;
  if (!Log(std::move(log_entry))) {
    return ErrorResponse(503, "unavailable", "the decision log cannot be written");
  }
  return JsonResponse(200, ordered_json::object());
}

size_t Service::ExpireIdle() {
  const int64_t cutoff =
      NowNs() -
      std::chrono::duration_cast<std::chrono::nanoseconds>(options_.session_idle_timeout).count();
  std::vector<std::string> expired;
  {
    std::lock_guard<std::mutex> lock(sessions_mutex_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (it->second->last_used_ns.load() < cutoff) {
        expired.push_back(it->first);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
  }
  sessions_expired_ += expired.size();
  for (const std::string& id : expired) {
    ordered_json log_entry;
    log_entry["kind"] = "expired";
    log_entry["session"] = id;
    Log(std::move(log_entry));
  }
  return expired.size();
}

size_t Service::live_sessions() const {
  std::lock_guard<std::mutex> lock(sessions_mutex_);
  return sessions_.size();
}

HttpResponse Service::Health() {
  ordered_json out;
  const bool healthy = store_->healthy();
  out["status"] = healthy ? "ok" : "degraded";
  out["policies"] = store_->Summary();
  if (!store_->dir_error().empty()) out["error"] = store_->dir_error();
  out["sessions"] = live_sessions();
  if (log_ != nullptr) {
    LogHead head = log_->Anchor();
    out["log"] = {{"path", log_->path()}, {"lines", head.lines}, {"head", head.hash}};
  }
  return JsonResponse(200, out);
}

void Service::CountReload(bool ok) { ++(ok ? reloads_ok_ : reloads_failed_); }

void Service::CountHttpError(int status) {
  std::lock_guard<std::mutex> lock(errors_mutex_);
  ++errors_by_status_[status];
}

void Service::CountDecision(Outcome outcome, int64_t nanos) {
  ++decisions_[static_cast<size_t>(outcome)];
  const double seconds = static_cast<double>(nanos) * 1e-9;
  size_t b = 0;
  while (b < kBuckets && seconds > kBucketBounds[b]) ++b;
  ++latency_[b];
  latency_sum_ns_ += static_cast<uint64_t>(nanos);
}

bool Service::Log(ordered_json entry) {
  if (log_ == nullptr) return true;
  Status status = log_->Append(std::move(entry));
  if (!status.ok()) ++log_failures_;
  return status.ok();
}

HttpResponse Service::Metrics() {
  std::string out;
  char line[256];
  auto add = [&](const char* format, auto... values) {
    std::snprintf(line, sizeof(line), format, values...);
    out += line;
  };
  out +=
      "# HELP toolwarden_decisions_total Decisions made, by outcome.\n"
      "# TYPE toolwarden_decisions_total counter\n";
  for (size_t i = 0; i < decisions_.size(); ++i) {
    add("toolwarden_decisions_total{outcome=\"%s\"} %" PRIu64 "\n",
        OutcomeName(static_cast<Outcome>(i)), decisions_[i].load());
  }
  out +=
      "# HELP toolwarden_decision_duration_seconds Time to decide and log one call.\n"
      "# TYPE toolwarden_decision_duration_seconds histogram\n";
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= kBuckets; ++b) {
    cumulative += latency_[b].load();
    if (b < kBuckets) {
      add("toolwarden_decision_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", kBucketBounds[b],
          cumulative);
    } else {
      add("toolwarden_decision_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    }
  }
  add("toolwarden_decision_duration_seconds_sum %.9f\n",
      static_cast<double>(latency_sum_ns_.load()) * 1e-9);
  add("toolwarden_decision_duration_seconds_count %" PRIu64 "\n", cumulative);
  out +=
      "# HELP toolwarden_sessions Live sessions.\n"
      "# TYPE toolwarden_sessions gauge\n";
  add("toolwarden_sessions %zu\n", live_sessions());
  out +=
      "# HELP toolwarden_sessions_created_total Sessions created.\n"
      "# TYPE toolwarden_sessions_created_total counter\n";
  add("toolwarden_sessions_created_total %" PRIu64 "\n", sessions_created_.load());
  out +=
      "# HELP toolwarden_sessions_expired_total Sessions expired after being idle.\n"
      "# TYPE toolwarden_sessions_expired_total counter\n";
  add("toolwarden_sessions_expired_total %" PRIu64 "\n", sessions_expired_.load());
  out +=
      "# HELP toolwarden_policy_reloads_total Reloads of the policy directory, by result.\n"
      "# TYPE toolwarden_policy_reloads_total counter\n";
  add("toolwarden_policy_reloads_total{result=\"ok\"} %" PRIu64 "\n", reloads_ok_.load());
  add("toolwarden_policy_reloads_total{result=\"error\"} %" PRIu64 "\n", reloads_failed_.load());
  out +=
      "# HELP toolwarden_policies_healthy 1 when every policy file loads cleanly.\n"
      "# TYPE toolwarden_policies_healthy gauge\n";
  add("toolwarden_policies_healthy %d\n", store_->healthy() ? 1 : 0);
  out +=
      "# HELP toolwarden_decision_log_failures_total Log writes that failed.\n"
      "# TYPE toolwarden_decision_log_failures_total counter\n";
  add("toolwarden_decision_log_failures_total %" PRIu64 "\n", log_failures_.load());
  out +=
      "# HELP toolwarden_http_errors_total Error responses, by HTTP status.\n"
      "# TYPE toolwarden_http_errors_total counter\n";
  {
    std::lock_guard<std::mutex> lock(errors_mutex_);
    std::map<int, uint64_t> sorted(errors_by_status_.begin(), errors_by_status_.end());
    for (const auto& [status, count] : sorted) {
      add("toolwarden_http_errors_total{status=\"%d\"} %" PRIu64 "\n", status, count);
    }
  }
  HttpResponse r;
  r.body = std::move(out);
  r.content_type = "text/plain; version=0.0.4";
  return r;
}

}  // namespace toolwarden
