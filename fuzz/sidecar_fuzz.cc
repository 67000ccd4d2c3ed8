// sidecar_fuzz: the sidecar's protocol (adapters/http/service.h) on arbitrary
// requests, with the example policies (policies/examples) in its store and a
// decision log in a temporary file.
//
// Input: the first line is the method, the second the target (`@` in it
// stands for the id of a session the target has just created), the rest the
// body. Each input gets a fresh Service and log: the request goes in as it
// is, then the body goes, as a session's client would send it, to a session's
// check, decide, approve, results, trusted, rules and update endpoints and to
// the stateless /v1/decide; then the session's state is read and it is
// deleted. Checks what service.h and docs/sidecar.md promise:
//   - Handle never throws, and no request is answered 500 `internal` (that is
//     the catch-all for an exception from inside);
//   - every response is JSON (Prometheus text for /metrics): an object, with
//     {"error": {"code": STRING, "message": STRING}} for a status >= 400;
//   - /check changes nothing: /decide of the same body right after gives the
//     same decision;
//   - the decision log verifies (every decision was logged, as a chain).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "adapters/http/policy_store.h"
#include "adapters/http/service.h"
#include "adapters/log/decision_log.h"
#include "fuzz/fuzz_check.h"
#include "nlohmann/json.hpp"

namespace toolwarden {
namespace {

using nlohmann::json;

std::string Show(const HttpRequest& request, const HttpResponse& response) {
  return request.method + " " + request.target + " " + request.body.substr(0, 2000) + " -> " +
         std::to_string(response.status) + " " + response.body.substr(0, 2000);
}

// The response's JSON; aborts when it breaks the protocol.
json CheckResponse(const HttpRequest& request, const HttpResponse& response) {
  FUZZ_CHECK(response.status >= 200 && response.status <= 599, Show(request, response));
  if (response.content_type != "application/json") {
    FUZZ_CHECK(request.target.rfind("/metrics", 0) == 0, Show(request, response));
    return json();
  }
  json body = json::parse(response.body, nullptr, false);
  FUZZ_CHECK(body.is_object(), Show(request, response));
  if (response.status >= 400) {
    FUZZ_CHECK(body.contains("error") && body["error"].is_object() &&
                   body["error"].value("code", json()).is_string() &&
                   body["error"].value("message", json()).is_string(),
               Show(request, response));
    FUZZ_CHECK(response.status != 500, Show(request, response));
  }
  return body;
}

struct Harness {
  std::string dir;
  std::string log_path;
  std::unique_ptr<PolicyStore> store;

  Harness() {
    char pattern[] = "/tmp/toolwarden_sidecar_fuzz_XXXXXX";
    FUZZ_CHECK(mkdtemp(pattern) != nullptr, "mkdtemp");
    dir = pattern;
    log_path = dir + "/decisions.jsonl";
    static const std::string* paths[2] = {&log_path, &dir};
    std::atexit([] {  // the harness lives until exit; leave nothing in /tmp
      unlink(paths[0]->c_str());
      rmdir(paths[1]->c_str());
    });
    store =
        std::make_unique<PolicyStore>(std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/examples");
    StatusOr<ReloadReport> report = store->Reload();
    FUZZ_CHECK(report.ok() && store->healthy(), store->Summary().dump());
  }
};

}  // namespace
}  // namespace toolwarden

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace toolwarden;
  static Harness* harness = new Harness();
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t first = input.find('\n');
  if (first == std::string_view::npos) return 0;
  size_t second = input.find('\n', first + 1);
  if (second == std::string_view::npos) return 0;
  std::string method(input.substr(0, first));
  std::string target(input.substr(first + 1, second - first - 1));
  std::string body(input.substr(second + 1));

  unlink(harness->log_path.c_str());
  StatusOr<std::unique_ptr<DecisionLog>> log = DecisionLog::Open(harness->log_path);
  FUZZ_CHECK(log.ok(), log.status().message());
  {
    Service service(harness->store.get(), log->get());
    auto call = [&](const std::string& m, const std::string& t, const std::string& b) {
      HttpRequest request{m, t, b};
      HttpResponse response = service.Handle(request);
      return std::make_pair(response, CheckResponse(request, response));
    };
    const std::string policy = size % 2 == 0 ? "banking" : "workspace";
    auto [created, created_body] =
        call("POST", "/v1/sessions",
             json{{"policy", policy}, {"query", "send 100 to UK12345678901234567890"}}.dump());
    FUZZ_CHECK(created.status == 201, created.body);
    const std::string id = created_body["session"].get<std::string>();
    const std::string base = "/v1/sessions/" + id + "/";

    std::string raw_target = target;
    for (size_t at = raw_target.find('@'); at != std::string::npos;
         at = raw_target.find('@', at + id.size())) {
      raw_target.replace(at, 1, id);
    }
    call(method, raw_target, body);

    auto [checked, checked_body] = call("POST", base + "check", body);
    auto [decided, decided_body] = call("POST", base + "decide", body);
    if (checked.status == 200) {
      FUZZ_CHECK(decided.status == 200 && checked_body["decision"] == decided_body["decision"] &&
                     checked_body["rule"] == decided_body["rule"],
                 checked.body + "\n" + decided.body);
    }
    for (const char* action : {"approve", "results", "trusted", "rules", "update"}) {
      call("POST", base + action, body);
    }
    call("POST", "/v1/decide", body);
    call("GET", "/v1/sessions/" + id, "");
    call("DELETE", "/v1/sessions/" + id, "");
    call("GET", "/metrics", "");
  }
  StatusOr<LogVerification> verified = VerifyLog(harness->log_path);
  FUZZ_CHECK(verified.ok() && verified->intact(),
             verified.ok() ? verified->problem->message : verified.status().message());
  return 0;
}
