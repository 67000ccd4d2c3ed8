// decide_fuzz: a session of calls with arbitrary arguments against the shipped
// policies (policies/agentdojo/*.policy, policies/examples/*.policy,
// policies/mcp/*.policy, each with the tools file it names), loaded once.
//
// Input: byte 0 picks the policy; the rest is split on '\n' into calls, each
// a byte that picks the tool (one of the policy catalog's tools, in name
// order, or a name the catalog lacks) followed by the call's arguments as JSON
// (ParseJson; a call whose arguments do not parse is skipped, as every front
// door refuses it). The calls are decided in order in one session, so budgets,
// `called`, `update` blocks and `from trusted` (an allowed call's arguments
// come back as its result) see the earlier ones. Checks what session.h
// promises:
//   - Check has no side effects and is deterministic: twice the same outcome,
//     rule, fallback, reason, message and errors;
//   - Decide decides as the Check just before it did, records exactly the
//     allowed calls (history grows by one, `call` is the new index), and
//     nothing else;
//   - a call that is not allowed stays not allowed when checked again after it;
//   - decisions print as JSON (strict UTF-8: reasons quote argument values);
//   - nothing throws.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "interpreter/decision.h"
#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "nlohmann/json.hpp"
#include "policy/json_limits.h"

namespace toolwarden {
namespace {

struct Loaded {
  std::shared_ptr<const Program> program;
  std::vector<std::string> tools;  // the catalog's, then one it lacks
};

std::vector<Loaded> LoadAll() {
  const std::string root = TOOLWARDEN_SOURCE_DIR;
  const char* files[] = {
      "policies/agentdojo/banking.policy", "policies/agentdojo/slack.policy",
      "policies/agentdojo/travel.policy",  "policies/agentdojo/workspace.policy",
      "policies/examples/banking.policy",  "policies/examples/workspace.policy",
      "policies/mcp/everything.policy",    "policies/mcp/filesystem.policy",
  };
  std::vector<Loaded> all;
  for (const char* file : files) {
    LoadedPolicy loaded = LoadPolicyFile(root + "/" + file);
    if (!loaded.ok()) {
      std::fprintf(stderr, "decide_fuzz: %s does not load:\n%s\n", file,
                   loaded.ErrorText().c_str());
      std::abort();
    }
    Loaded entry{loaded.program, {}};
    if (const ToolCatalog* catalog = loaded.program->catalog()) {
      for (const auto& [name, schema] : catalog->tools()) entry.tools.push_back(name);
    }
    entry.tools.push_back("not_a_tool");
    all.push_back(std::move(entry));
  }
  return all;
}

bool SameDecision(const Decision& a, const Decision& b) {
  return a.outcome == b.outcome && a.rule.has_value() == b.rule.has_value() &&
         (!a.rule || a.rule->id == b.rule->id) && a.fallback == b.fallback &&
         a.message == b.message && a.reason == b.reason && a.errors == b.errors;
}

std::string Describe(const Decision& d) {
  return DecisionToJson(d).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace
}  // namespace toolwarden

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace toolwarden;
  static const std::vector<Loaded>* policies = new std::vector<Loaded>(LoadAll());
  if (size < 1) return 0;
  const Loaded& policy = (*policies)[data[0] % policies->size()];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  Session session(policy.program, "send 100 to UK12345678901234567890; mail bob@example.com",
                  {"bob@example.com", "UK12345678901234567890"});
  int calls = 0;
  while (!rest.empty() && calls < 16) {
    size_t end = rest.find('\n');
    std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.empty()) continue;
    ++calls;
    const std::string& tool = policy.tools[static_cast<uint8_t>(line[0]) % policy.tools.size()];
    StatusOr<nlohmann::json> args = ParseJson(line.substr(1));
    if (!args.ok()) continue;

    Decision first = session.Check(tool, *args);
    Decision second = session.Check(tool, *args);
    FUZZ_CHECK(SameDecision(first, second), Describe(first) + "\n" + Describe(second));
    FUZZ_CHECK(!first.call.has_value(), "Check recorded a call");
    (void)DecisionToJson(first).dump();  // strict: throws on invalid UTF-8

    size_t history = session.history().size();
    Decision decided = session.Decide(tool, *args);
    FUZZ_CHECK(SameDecision(first, decided), Describe(first) + "\n" + Describe(decided));
    FUZZ_CHECK(decided.allowed() == decided.call.has_value(), Describe(decided));
    if (decided.allowed()) {
      FUZZ_CHECK(session.history().size() == history + 1 && *decided.call == history,
                 Describe(decided));
      FUZZ_CHECK(session.AttachResult(*decided.call, *args).ok(), "AttachResult failed");
    } else {
      FUZZ_CHECK(session.history().size() == history, "a call that was not allowed was recorded");
      Decision after = session.Check(tool, *args);
      FUZZ_CHECK(!after.allowed(), "a refused call is allowed when checked again:\n" +
                                       Describe(decided) + "\n" + Describe(after));
    }
  }
  return 0;
}
