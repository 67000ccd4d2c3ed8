#include "adapters/http/service.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "adapters/log/decision_log.h"

namespace toolwarden {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// A fresh directory under the temporary directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "toolwarden_http_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string path = path_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

constexpr char kPolicy[] =
    "policy pay;\n"
    "allow read;\n"
    "allow pay when amount <= 100;\n"
    "forbid pay when amount > 1000 priority 1 fallback terminate \"stop\";\n"
    "allow open update { allow pay when amount <= 500; };\n";

struct Fixture {
  TempDir dir;
  std::unique_ptr<PolicyStore> store;
  std::unique_ptr<DecisionLog> log;
  std::unique_ptr<Service> service;

  explicit Fixture(ServiceOptions options = {}) {
    dir.Write("pay.policy", kPolicy);
    store = std::make_unique<PolicyStore>(dir.path());
    REQUIRE(store->Reload().ok());
    StatusOr<std::unique_ptr<DecisionLog>> opened = DecisionLog::Open(dir.path() + "/log.jsonl");
    REQUIRE(opened.ok());
    log = std::move(*opened);
    service = std::make_unique<Service>(store.get(), log.get(), options);
  }

  HttpResponse Call(const std::string& method, const std::string& target,
                    const std::string& body = "") {
    return service->Handle(HttpRequest{method, target, body});
  }
  json Ok(const std::string& method, const std::string& target, const json& body,
          int status = 200) {
    HttpResponse r = Call(method, target, body.dump());
    INFO(method << " " << target << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == status);
    return json::parse(r.body);
  }
  std::string NewSession(const std::string& query = "q") {
    return Ok("POST", "/v1/sessions", {{"policy", "pay"}, {"query", query}}, 201)["session"];
  }
};

// The error code of a JSON error response with this HTTP status.
std::string ErrorCode(const HttpResponse& r, int status) {
  INFO(r.body);
  REQUIRE(r.status == status);
  json body = json::parse(r.body);
  REQUIRE(body["error"]["message"].is_string());
  return body["error"]["code"];
}

TEST_CASE("a session decides, records, takes results and added rules") {
  Fixture f;
  std::string id = f.NewSession("pay 50");
  CHECK(id.size() == 32);
  json d =
      f.Ok("POST", "/v1/sessions/" + id + "/decide", {{"tool", "pay"}, {"args", {{"amount", 50}}}});
  CHECK(d["decision"] == "allow");
  CHECK(d["rule"]["id"] == "pay.policy:3");
  CHECK(d["call"] == 0);
  json c =
      f.Ok("POST", "/v1/sessions/" + id + "/check", {{"tool", "pay"}, {"args", {{"amount", 300}}}});
  CHECK(c["decision"] == "deny");
  CHECK_FALSE(c.contains("call"));
  CHECK(f.Ok("POST", "/v1/sessions/" + id + "/decide",
             {{"tool", "pay"}, {"args", {{"amount", 5000}}}})["decision"] == "terminate");
  f.Ok("POST", "/v1/sessions/" + id + "/results", {{"call", 0}, {"result", {{"ok", true}}}});
  // `update` blocks apply through decide, not check.
  f.Ok("POST", "/v1/sessions/" + id + "/check", {{"tool", "open"}, {"args", json::object()}});
  CHECK(f.Ok("POST", "/v1/sessions/" + id + "/check",
             {{"tool", "pay"}, {"args", {{"amount", 300}}}})["decision"] == "deny");
  f.Ok("POST", "/v1/sessions/" + id + "/decide", {{"tool", "open"}, {"args", json::object()}});
  CHECK(f.Ok("POST", "/v1/sessions/" + id + "/check",
             {{"tool", "pay"}, {"args", {{"amount", 300}}}})["decision"] == "allow");
  json added = f.Ok("POST", "/v1/sessions/" + id + "/rules",
                    {{"source", "forbid pay when amount > 200;"}, {"mode", "narrow-only"}});
  CHECK(added["rules"] == json::array({"rules-1:1"}));
  CHECK(f.Ok("POST", "/v1/sessions/" + id + "/check",
             {{"tool", "pay"}, {"args", {{"amount", 300}}}})["rule"]["id"] == "rules-1:1");
  f.Ok("POST", "/v1/sessions/" + id + "/trusted", {{"value", "x"}});
  json state = f.Ok("GET", "/v1/sessions/" + id, json());
  CHECK(state["query"] == "pay 50");
  CHECK(state["history"].size() == 2);
  CHECK(state["history"][0]["result"] == json{{"ok", true}});
  CHECK(state["added_rules"] == json::array({"pay.policy:5", "rules-1:1"}));
  CHECK(state["trusted"] == json::array({"x"}));
  f.Ok("DELETE", "/v1/sessions/" + id, json());
  CHECK(ErrorCode(f.Call("DELETE", "/v1/sessions/" + id), 404) == "not_found");
  CHECK(f.service->live_sessions() == 0);

  // Every step is in the log, and the log verifies.
  REQUIRE(f.log->Flush().ok());
  StatusOr<LogVerification> v = VerifyLog(f.dir.path() + "/log.jsonl");
  REQUIRE(v.ok());
  CHECK(v->intact());
  // session, decide, check, decide, result, check, check, decide, check, rules, check, trusted, end
  CHECK(v->lines == 13);
}

TEST_CASE("approve records an approved ask") {
  Fixture f;
  json created = f.Ok(
      "POST", "/v1/sessions",
      {{"source", "allow pay;\nforbid pay when count(pay) >= 1 priority 1 fallback ask;"}}, 201);
  const std::string s = "/v1/sessions/" + created["session"].get<std::string>();
  CHECK(f.Ok("POST", s + "/decide", {{"tool", "pay"}})["decision"] == "allow");
  CHECK(f.Ok("POST", s + "/decide", {{"tool", "pay"}})["decision"] == "ask");
  json approved = f.Ok("POST", s + "/approve", {{"tool", "pay"}});
  CHECK(approved["decision"] == "allow");
  CHECK(approved["call"] == 1);
  CHECK(f.Ok("POST", s + "/approve", {{"tool", "other"}})["decision"] == "deny");
  CHECK(f.Ok("GET", s, json())["history"].size() == 2);
}

TEST_CASE("stateless decide and inline source") {
  Fixture f;
  json d =
      f.Ok("POST", "/v1/decide", {{"policy", "pay"}, {"tool", "pay"}, {"args", {{"amount", 5}}}});
  CHECK(d["decision"] == "allow");
  CHECK_FALSE(d.contains("call"));
  json s = f.Ok("POST", "/v1/decide",
                {{"source", "allow x when y from query;"},
                 {"query", "say hi"},
                 {"tool", "x"},
                 {"args", {{"y", "hi"}}}});
  CHECK(s["decision"] == "allow");
  CHECK(s["rule"]["id"] == "source:1");
  HttpResponse bad =
      f.Call("POST", "/v1/decide", json{{"source", "allow x when ;"}, {"tool", "x"}}.dump());
  CHECK(ErrorCode(bad, 422) == "policy_error");
  CHECK(json::parse(bad.body)["diagnostics"][0]["line"] == 1);
  json named =
      f.Ok("POST", "/v1/decide", {{"source", "allow x;"}, {"name", "inline"}, {"tool", "x"}});
  CHECK(named["rule"]["id"] == "inline:1");
  CHECK(ErrorCode(
            f.Call("POST", "/v1/decide", R"({"source": "allow x;", "name": "a:b", "tool": "x"})"),
            400) == "invalid_argument");
  json id = f.Ok("POST", "/v1/sessions", {{"source", "allow x;"}}, 201);
  CHECK(f.Ok("POST", "/v1/sessions/" + id["session"].get<std::string>() + "/decide",
             {{"tool", "x"}})["decision"] == "allow");
}

TEST_CASE("bad input gets a JSON 4xx and the service keeps serving") {
  Fixture f;
  std::string id = f.NewSession();
  const std::string s = "/v1/sessions/" + id;
  struct Case {
    std::string method, target, body;
    int status;
    std::string code;
  };
  std::string deep(100000, '[');
  std::vector<Case> cases = {
      {"POST", "/v1/sessions", "{", 400, "invalid_argument"},
      {"POST", "/v1/sessions", "[1]", 400, "invalid_argument"},
      {"POST", "/v1/sessions", "", 400, "invalid_argument"},
      {"POST", "/v1/sessions", R"({"policy": 7})", 400, "invalid_argument"},
      {"POST", "/v1/sessions", R"({"policy": "nope"})", 404, "not_found"},
      {"POST", "/v1/sessions", R"({"policy": "pay", "source": "allow x;"})", 400,
       "invalid_argument"},
      {"POST", "/v1/sessions", R"({})", 400, "invalid_argument"},
      {"POST", "/v1/sessions", R"({"policy": "pay", "trusted": [1]})", 400, "invalid_argument"},
      {"POST", "/v1/sessions", R"({"policy": "pay", "query": ["x"]})", 400, "invalid_argument"},
      {"POST", "/v1/sessions", deep, 413, "resource_exhausted"},
      {"POST", s + "/decide", deep, 413, "resource_exhausted"},
      {"POST", s + "/decide", R"({"args": {}})", 400, "invalid_argument"},
      {"POST", s + "/decide", R"({"tool": 3})", 400, "invalid_argument"},
      {"POST", "/v1/sessions/nope/decide", R"({"tool": "read"})", 404, "not_found"},
      {"POST", "/v1/sessions/nope/check", R"({"tool": "read"})", 404, "not_found"},
      {"POST", s + "/results", R"({"call": -1, "result": 1})", 400, "invalid_argument"},
      {"POST", s + "/results", R"({"call": "0", "result": 1})", 400, "invalid_argument"},
      {"POST", s + "/results", R"({"call": 0})", 400, "invalid_argument"},
      {"POST", s + "/results", R"({"call": 99, "result": 1})", 404, "not_found"},
      {"POST", s + "/rules", R"({"source": "allow pay;"})", 422, "policy_error"},
      {"POST", s + "/rules", R"({"source": "allow pay;", "mode": "wide"})", 400,
       "invalid_argument"},
      {"POST", s + "/rules", R"({"source": "forbid pay when;", "mode": "any"})", 422,
       "policy_error"},
      {"POST", s + "/rules", R"({"mode": "any"})", 400, "invalid_argument"},
      {"POST", s + "/trusted", R"({"value": 1})", 400, "invalid_argument"},
      {"POST", s + "/launch", "{}", 404, "not_found"},
      {"GET", s + "/decide", "", 405, "method_not_allowed"},
      {"PUT", "/v1/sessions", "{}", 405, "method_not_allowed"},
      {"POST", "/healthz", "", 405, "method_not_allowed"},
      {"GET", "/v2/sessions", "", 404, "not_found"},
      {"GET", "/", "", 404, "not_found"},
      {"GET", "/v1/sessions/a/b/c/d", "", 404, "not_found"},
  };
  for (const Case& c : cases) {
    INFO(c.method << " " << c.target << " " << c.body.substr(0, 60));
    CHECK(ErrorCode(f.Call(c.method, c.target, c.body), c.status) == c.code);
  }
  // Calls the engine refuses are fail-closed decisions, not errors.
  json unknown = f.Ok("POST", s + "/decide", {{"tool", "rm_rf"}, {"args", json::object()}});
  CHECK(unknown["decision"] == "deny");
  json not_object = f.Ok("POST", s + "/decide", {{"tool", "read"}, {"args", json::array()}});
  CHECK(not_object["decision"] == "deny");
  json deep_args = json::object();
  json* at = &deep_args;
  for (int i = 0; i < 100; ++i) at = &((*at)["a"] = json::object());
  CHECK(f.Ok("POST", s + "/decide", {{"tool", "read"}, {"args", deep_args}})["decision"] == "deny");
  // A result attached twice is a conflict.
  f.Ok("POST", s + "/decide", {{"tool", "read"}});
  f.Ok("POST", s + "/results", {{"call", 0}, {"result", 1}});
  CHECK(ErrorCode(f.Call("POST", s + "/results", R"({"call": 0, "result": 1})"), 409) ==
        "failed_precondition");
  // Still serving, and the session unchanged by the failures.
  CHECK(f.Ok("POST", s + "/decide", {{"tool", "read"}})["decision"] == "allow");
  CHECK(f.Ok("GET", s, json())["added_rules"].empty());
  HttpResponse metrics = f.Call("GET", "/metrics");
  CHECK(metrics.body.find("toolwarden_http_errors_total{status=\"400\"}") != std::string::npos);
}

TEST_CASE("a body over the size limit is refused") {
  ServiceOptions options;
  options.max_body_bytes = 1000;
  Fixture f(options);
  std::string big = json{{"policy", "pay"}, {"query", std::string(2000, 'x')}}.dump();
  CHECK(ErrorCode(f.Call("POST", "/v1/sessions", big), 413) == "resource_exhausted");
}

TEST_CASE("the session cap: idle sessions expire first, then 429") {
  ServiceOptions options;
  options.max_sessions = 3;
  options.session_idle_timeout = std::chrono::milliseconds(200);
  Fixture f(options);
  for (int i = 0; i < 3; ++i) f.NewSession();
  CHECK(ErrorCode(f.Call("POST", "/v1/sessions", R"({"policy": "pay"})"), 429) ==
        "resource_exhausted");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::string fresh = f.NewSession();  // the idle ones made room
  CHECK(f.service->live_sessions() == 1);
  CHECK(f.Ok("POST", "/v1/sessions/" + fresh + "/decide", {{"tool", "read"}})["decision"] ==
        "allow");
  CHECK(f.Call("GET", "/metrics").body.find("toolwarden_sessions_expired_total 3") !=
        std::string::npos);
}

TEST_CASE("concurrent decisions and updates on one session stay exact") {
  Fixture f;
  std::string id = f.NewSession();
  const std::string s = "/v1/sessions/" + id;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        HttpResponse r = f.Call("POST", s + "/decide", R"({"tool": "read", "args": {}})");
        if (r.status != 200 || json::parse(r.body)["decision"] != "allow") ++failures;
        if (i % 50 == 0) {
          std::string source = "forbid never" + std::to_string(t) + "_" + std::to_string(i) + ";";
          HttpResponse added =
              f.Call("POST", s + "/rules", json{{"source", source}, {"mode", "any"}}.dump());
          if (added.status != 200) ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == 0);
  json state = f.Ok("GET", s, json());
  CHECK(state["history"].size() == 1600);
  CHECK(state["added_rules"].size() == 32);
  REQUIRE(f.log->Flush().ok());
  StatusOr<LogVerification> v = VerifyLog(f.dir.path() + "/log.jsonl");
  REQUIRE(v.ok());
  CHECK(v->intact());
  CHECK(v->lines == 1 + 1600 + 32);  // the session, the decisions, the rules (GET logs nothing)
}

TEST_CASE("hot reload: a bad file keeps the last good version; sessions keep theirs") {
  Fixture f;
  std::string before = f.NewSession();
  const std::string old_hash = f.store->Get("pay")->hash();
  // A new version (sizes differ, so the change is seen whatever the clock).
  f.dir.Write("pay.policy", std::string(kPolicy) + "allow write;\n");
  StatusOr<ReloadReport> report = f.store->Reload();
  REQUIRE(report.ok());
  CHECK(report->loaded == std::vector<std::string>{"pay"});
  CHECK(f.store->Get("pay")->hash() != old_hash);
  std::string after = f.NewSession();
  CHECK(f.Ok("POST", "/v1/sessions/" + after + "/check", {{"tool", "write"}})["decision"] ==
        "allow");
  CHECK(f.Ok("POST", "/v1/sessions/" + before + "/check", {{"tool", "write"}})["decision"] ==
        "deny");
  const std::string good_hash = f.store->Get("pay")->hash();
  // A broken version: the last good one stays, and health says so.
  f.dir.Write("pay.policy", "allow when when;\n");
  report = f.store->Reload();
  REQUIRE(report.ok());
  CHECK(report->failed == std::vector<std::string>{"pay"});
  CHECK(f.store->Get("pay")->hash() == good_hash);
  json health = f.Ok("GET", "/healthz", json());
  CHECK(health["status"] == "degraded");
  CHECK(health["policies"]["pay"]["error"].get<std::string>().find("pay.policy:1:") !=
        std::string::npos);
  CHECK(f.Ok("POST", "/v1/decide", {{"policy", "pay"}, {"tool", "write"}})["decision"] == "allow");
  // Fixed again; then removed.
  f.dir.Write("pay.policy", kPolicy);
  REQUIRE(f.store->Reload().ok());
  CHECK(f.Ok("GET", "/healthz", json())["status"] == "ok");
  fs::remove(f.dir.path() + "/pay.policy");
  report = f.store->Reload();
  REQUIRE(report.ok());
  CHECK(report->removed == std::vector<std::string>{"pay"});
  CHECK(ErrorCode(f.Call("POST", "/v1/sessions", R"({"policy": "pay"})"), 404) == "not_found");
  // A session made before still decides with the program it started with.
  CHECK(f.Ok("POST", "/v1/sessions/" + before + "/check", {{"tool", "read"}})["decision"] ==
        "allow");
}

TEST_CASE("a policy directory that changes during requests") {
  Fixture f;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; !done; ++i) {
      f.dir.Write("pay.policy",
                  i % 3 == 2 ? "broken" : std::string(kPolicy) + std::string(i % 3, '\n'));
      REQUIRE(f.store->Reload().ok());
    }
  });
  int ok = 0;
  for (int i = 0; i < 300; ++i) {
    HttpResponse r = f.Call("POST", "/v1/decide", R"({"policy": "pay", "tool": "read"})");
    if (r.status == 200 && json::parse(r.body)["decision"] == "allow") ++ok;
  }
  done = true;
  writer.join();
  CHECK(ok == 300);
}

TEST_CASE("a decision that cannot be logged is refused, not answered") {
  Fixture f;
  std::string id = f.NewSession();
  // The log's file may not grow any more (as on a full disk): writes fail with EFBIG.
  struct rlimit old_limit;
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit tight = old_limit;
  tight.rlim_cur = static_cast<rlim_t>(fs::file_size(f.dir.path() + "/log.jsonl"));
  REQUIRE(setrlimit(RLIMIT_FSIZE, &tight) == 0);
  HttpResponse created = f.Call("POST", "/v1/sessions", R"({"policy": "pay"})");
  HttpResponse d = f.Call("POST", "/v1/sessions/" + id + "/decide", R"({"tool": "read"})");
  HttpResponse stateless = f.Call("POST", "/v1/decide", R"({"policy": "pay", "tool": "read"})");
  HttpResponse rules = f.Call("POST", "/v1/sessions/" + id + "/rules",
                              R"({"source": "forbid read;", "mode": "any"})");
  REQUIRE(setrlimit(RLIMIT_FSIZE, &old_limit) == 0);
  CHECK(ErrorCode(rules, 503) == "unavailable");
  CHECK(ErrorCode(created, 503) == "unavailable");
  CHECK(ErrorCode(d, 503) == "unavailable");
  CHECK(ErrorCode(stateless, 503) == "unavailable");
  CHECK(f.Call("GET", "/metrics").body.find("toolwarden_decision_log_failures_total 4") !=
        std::string::npos);
  // Once the log can grow again, decisions flow and the chain is intact.
  json after = f.Ok("POST", "/v1/sessions/" + id + "/decide", {{"tool", "read"}});
  CHECK(after["decision"] == "allow");
  // The refused decision changed nothing: the one recorded call is the logged one.
  CHECK(after["call"] == 0);
  json state = f.Ok("GET", "/v1/sessions/" + id, json());
  CHECK(state["history"].size() == 1);
  CHECK(state["added_rules"].empty());
  StatusOr<LogVerification> v = VerifyLog(f.dir.path() + "/log.jsonl");
  REQUIRE(v.ok());
  CHECK(v->intact());
  CHECK(v->lines == 2);
}

TEST_CASE("metrics in Prometheus text") {
  Fixture f;
  f.Ok("POST", "/v1/decide", {{"policy", "pay"}, {"tool", "read"}});
  f.Ok("POST", "/v1/decide", {{"policy", "pay"}, {"tool", "nope"}});
  HttpResponse m = f.Call("GET", "/metrics");
  CHECK(m.content_type.find("text/plain") == 0);
  CHECK(m.body.find("toolwarden_decisions_total{outcome=\"allow\"} 1\n") != std::string::npos);
  CHECK(m.body.find("toolwarden_decisions_total{outcome=\"deny\"} 1\n") != std::string::npos);
  CHECK(m.body.find("toolwarden_decision_duration_seconds_bucket{le=\"+Inf\"} 2\n") !=
        std::string::npos);
  CHECK(m.body.find("toolwarden_decision_duration_seconds_count 2\n") != std::string::npos);
  CHECK(m.body.find("toolwarden_sessions 0\n") != std::string::npos);
  CHECK(m.body.find("toolwarden_policies_healthy 1\n") != std::string::npos);
}

}  // namespace
}  // namespace toolwarden
