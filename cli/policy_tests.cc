#include "cli/policy_tests.h"

#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "policy/json_limits.h"

namespace toolwarden {
namespace {

using nlohmann::json;

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// One case; returns "" when it passed, else what went wrong.
std::string RunCase(const json& c, const std::shared_ptr<const Program>& program) {
  if (!c.is_object() || !c.contains("calls") || !c["calls"].is_array()) {
    return "a case needs a `calls` array";
  }
  std::vector<std::string> trusted;
  if (c.contains("trusted")) {
    if (!c["trusted"].is_array()) return "`trusted` must be an array of strings";
    for (const json& t : c["trusted"]) {
      if (!t.is_string()) return "`trusted` must be an array of strings";
      trusted.push_back(t.get<std::string>());
    }
  }
  Session session(program, Str(c, "query"), std::move(trusted));
  const json& calls = c["calls"];
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& call = calls[i];
    const std::string where = "call #" + std::to_string(i + 1);
    if (!call.is_object() || !call.contains("tool") || !call["tool"].is_string() ||
        !call.contains("expect") || !call["expect"].is_string()) {
      return where + ": needs string `tool` and `expect`";
    }
    const std::string expect = call["expect"].get<std::string>();
    if (expect != "allow" && expect != "deny" && expect != "ask" && expect != "terminate") {
      return where + ": `expect` must be allow, deny, ask or terminate";
    }
    json args = call.contains("args") ? call["args"] : json::object();
    Decision d = session.Decide(call["tool"].get<std::string>(), args);
    std::string got = OutcomeName(d.outcome);
    std::string summary = " (got " + got + ", rule " + (d.rule ? std::string(d.rule->id) : "none") +
                          ", reason: " + ReasonOf(d) + ")";
    if (got != expect) return where + " `" + d.tool + "`: expected " + expect + summary;
    if (call.contains("rule")) {
      const json& rule = call["rule"];
      std::string actual = d.rule ? std::string(d.rule->id) : "";
      if (rule.is_null() ? d.rule.has_value()
                         : (!rule.is_string() || rule.get<std::string>() != actual)) {
        return where + " `" + d.tool + "`: expected rule " + rule.dump() + summary;
      }
    }
    std::string message = Str(call, "message");
    if (!message.empty() && d.message.find(message) == std::string::npos) {
      return where + " `" + d.tool + "`: expected a message containing \"" + message + "\"" +
             summary + " message: " + d.message;
    }
    std::string reason = Str(call, "reason");
    if (!reason.empty() && ReasonOf(d).find(reason) == std::string::npos) {
      return where + " `" + d.tool + "`: expected a reason containing \"" + reason + "\"" + summary;
    }
    if (call.contains("error")) {
      std::string wanted = Str(call, "error");
      bool found = false;
      for (const std::string& e : d.errors) found = found || e.find(wanted) != std::string::npos;
      if (!found) {
        return where + " `" + d.tool + "`: expected an error containing \"" + wanted + "\"" +
               summary;
      }
    } else if (!d.errors.empty()) {
      return where + " `" + d.tool + "`: unexpected error: " + d.errors.front();
    }
    if (call.contains("result") && d.allowed()) {
      Status status = session.AttachResult(*d.call, call["result"]);
      if (!status.ok()) return where + ": " + status.message();
    }
  }
  return "";
}

}  // namespace

PolicyTestReport RunPolicyTestFile(const std::string& path) {
  PolicyTestReport report;
  auto fail_file = [&](const std::string& message) {
    report.failed++;
    report.failures.push_back(path + ": " + message);
    return report;
  };
  StatusOr<std::string> text = ReadTextFile(path, kMaxJsonBytes);
  if (!text.ok()) return fail_file(text.status().message());
  StatusOr<json> doc = ParseJson(*text);
  if (!doc.ok()) return fail_file(doc.status().message());
  if (!doc->is_object()) return fail_file("a test file is a JSON object");
  const std::string dir = DirName(path);

  LoadOptions options;
  if (doc->contains("tools")) options.tools_path = JoinPath(dir, Str(*doc, "tools"));
  LoadedPolicy loaded;
  if (doc->contains("policy_text")) {
    loaded = LoadPolicyText("policy_text", Str(*doc, "policy_text"), dir, options);
  } else if (doc->contains("policy")) {
    loaded = LoadPolicyFile(JoinPath(dir, Str(*doc, "policy")), options);
  } else {
    return fail_file("needs `policy` or `policy_text`");
  }

  if (doc->contains("expect_load_error")) {
    const std::string wanted = Str(*doc, "expect_load_error");
    const std::string errors = loaded.ErrorText();
    if (!loaded.ok() && errors.find(wanted) != std::string::npos) {
      report.passed++;
      return report;
    }
    return fail_file("expected a load error containing \"" + wanted +
                     "\", got: " + (loaded.ok() ? std::string("no error") : errors));
  }
  if (!loaded.ok()) return fail_file("the policy does not load:\n" + loaded.ErrorText());
  if (!doc->contains("cases") || !(*doc)["cases"].is_array())
    return fail_file("needs a `cases` array");
  for (const json& c : (*doc)["cases"]) {
    std::string failure = RunCase(c, loaded.program);
    if (failure.empty()) {
      report.passed++;
    } else {
      report.failed++;
      report.failures.push_back(path + ": case \"" + Str(c, "name") + "\": " + failure);
    }
  }
  return report;
}

}  // namespace toolwarden
