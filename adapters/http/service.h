// Service: the sidecar's protocol (docs/sidecar.md) as a function from a
// request to a response, with no sockets in it. server.h carries requests to it
// over HTTP/1.1; tests and fuzzers call it directly.
//
//   PolicyStore store(dir);  store.Reload();
//   Service service(&store, log.get(), ServiceOptions{});
//   HttpResponse r = service.Handle({"POST", "/v1/sessions", R"({"policy": "banking"})"});
//
// Sessions live in the service: a session is created with a policy from the
// store (or inline source), decides calls, records results and takes added
// rules. Each session serialises its own requests; different sessions run in
// parallel. Every decision is appended to the decision log before its response
// is returned; a decision that cannot be logged is answered with 503, so the
// host treats it as denied. Handle() is thread-safe and never throws.
//
// With a model server (ServiceOptions::llm), a session may be drafted when it
// is created ({"draft": true}) and its drafted rules updated after each result
// ({"update": MODE}); see llm::Drafter. A change of the rules is written to the
// log before it takes effect; a failed draft or update changes nothing (fail
// closed). The model is asked while the session's lock is held: requests to
// that session wait for it, other sessions go on, and the request occupies one
// of the server's threads for the model's latency.
#ifndef TOOLWARDEN_ADAPTERS_HTTP_SERVICE_H_
#define TOOLWARDEN_ADAPTERS_HTTP_SERVICE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "adapters/http/policy_store.h"
#include "adapters/llm/drafter.h"
#include "adapters/llm/transport.h"
#include "adapters/log/decision_log.h"
#include "interpreter/decision.h"
#include "nlohmann/json.hpp"

namespace toolwarden {

// Largest request body. Bigger bodies get 413 before they are read whole.
inline constexpr size_t kMaxBodyBytes = 1 << 20;
// Deepest JSON a request body may nest (a call's arguments themselves are
// limited further, to kMaxArgDepth, by the session).
inline constexpr int kMaxBodyDepth = 128;
// Most live sessions. When full, idle sessions are expired first; if none is
// idle, creating a session gets 429.
inline constexpr size_t kMaxSessions = 100000;

struct ServiceOptions {
  size_t max_sessions = kMaxSessions;
  std::chrono::milliseconds session_idle_timeout = std::chrono::minutes(30);
  size_t max_body_bytes = kMaxBodyBytes;
  // The model server that drafts and updates sessions' rules; without it a
  // request for a draft gets 400 `no_llm`.
  std::optional<llm::LlmConfig> llm;
  // Time, sleep and jitter of the model server's transport (tests only).
  llm::TransportHooks llm_hooks;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", "DELETE", ...
  std::string target;  // path and query, e.g. "/v1/sessions/abc/decide"
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON, or Prometheus text for /metrics
  std::string content_type = "application/json";
};

// A JSON error body: {"error": {"code": CODE, "message": MESSAGE}}.
HttpResponse ErrorResponse(int status, const std::string& code, const std::string& message);

class Service {
 public:
  // `log` may be null (no decision log). Both must outlive the service.
  Service(PolicyStore* store, DecisionLog* log, ServiceOptions options = {});
  ~Service();

  HttpResponse Handle(const HttpRequest& request);

  // Expires sessions idle for longer than the timeout; returns how many.
  size_t ExpireIdle();
  size_t live_sessions() const;
  // Counts a reload for /metrics (the store reloads on its own schedule).
  void CountReload(bool ok);
  // Counts a response the HTTP layer produced itself (413, 400 on bad HTTP).
  void CountHttpError(int status);

 private:
  struct Entry;
  using Clock = std::chrono::steady_clock;

  HttpResponse Route(const HttpRequest& request);
  HttpResponse CreateSession(const nlohmann::json& body);
  enum class Mode { kCheck, kDecide, kApprove };
  HttpResponse Decide(const std::string& id, const nlohmann::json& body, Mode mode);
  HttpResponse Results(const std::string& id, const nlohmann::json& body);
  HttpResponse Rules(const std::string& id, const nlohmann::json& body);
  HttpResponse Trusted(const std::string& id, const nlohmann::json& body);
  HttpResponse Update(const std::string& id, const nlohmann::json& body);
  HttpResponse State(const std::string& id);
  HttpResponse DeleteSession(const std::string& id);
  HttpResponse StatelessDecide(const nlohmann::json& body);
  HttpResponse Health();
  HttpResponse Metrics();

  std::shared_ptr<Entry> Find(const std::string& id);
  // Logs `entry` (kind, session, ...); false when the log could not take it.
  bool Log(nlohmann::ordered_json entry);
  // The gate drafted rules pass before session `id` takes them: it writes a
  // `rules-change` entry and sets `*log_failed` when the log cannot take it.
  llm::ChangeGate LogGate(const std::string& id, std::string policy_before, bool approved,
                          bool* log_failed);
  // Progent's update after call `call` of a drafted session got its result;
  // the outcome as JSON. Called with the entry's lock held.
  nlohmann::ordered_json UpdateAfterResult(Entry& entry, const std::string& id, size_t call);
  void CountDecision(Outcome outcome, int64_t nanos);

  PolicyStore* store_;
  DecisionLog* log_;
  ServiceOptions options_;
  std::unique_ptr<llm::Drafter> drafter_;  // null without a model server

  mutable std::mutex sessions_mutex_;
  std::unordered_map<std::string, std::shared_ptr<Entry>> sessions_;

  // Metrics.
  static constexpr size_t kBuckets = 12;
  std::array<std::atomic<uint64_t>, 4> decisions_{};  // indexed by Outcome
  std::array<std::atomic<uint64_t>, kBuckets + 1> latency_{};
  std::atomic<uint64_t> latency_sum_ns_{0};
  std::atomic<uint64_t> reloads_ok_{0}, reloads_failed_{0};
  std::atomic<uint64_t> sessions_created_{0}, sessions_expired_{0};
  std::mutex errors_mutex_;
  std::unordered_map<int, uint64_t> errors_by_status_;
  std::atomic<uint64_t> log_failures_{0};
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_ADAPTERS_HTTP_SERVICE_H_
