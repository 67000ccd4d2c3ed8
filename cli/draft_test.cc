#include "cli/draft.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "tests/llm/fake_llm.h"

namespace toolwarden {
namespace {

using nlohmann::json;

const std::string kTools =
    std::string(TOOLWARDEN_SOURCE_DIR) + "/bench/agentdojo/data/banking.tools.json";

json Reply(const std::string& content, const std::string& finish = "stop") {
  return {{"steps", {{{"reply", {{"content", content}, {"finish", finish}}}}}}};
}

// A fresh path in a new temporary directory.
std::string TempPolicyPath() {
  char dir[] = "/tmp/toolwarden_draft_test.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  return std::string(dir) + "/drafted.policy";
}

DraftOptions Options(const testing::FakeLlm& fake) {
  DraftOptions options;
  options.tools_path = kTools;
  options.query = "What's my balance?\nAnd my IBAN?";
  options.llm.endpoint.base_url = fake.url();
  options.llm.endpoint.model = "fake";
  options.llm.transport.backoff_base = llm::Millis(1);
  options.llm.transport.backoff_cap = llm::Millis(1);
  return options;
}

TEST_CASE("draft prints the policy with the drafted rules after it") {
  auto fake = testing::FakeLlm::Start(Reply(
      R"({"rules": [{"name": "get_balance", "args": {}}, {"name": "get_iban", "args": {}}]})"));
  std::ostringstream out, err;
  REQUIRE(RunDraft(Options(*fake), out, err) == kExitOk);
  const std::string policy = out.str();
  CHECK(policy.rfind("policy drafted;\n\ntools \"" + kTools + "\";\n", 0) == 0);
  // The task is a comment, line by line, so a newline in it cannot start a rule.
  CHECK(policy.find("#   What's my balance?\n#   And my IBAN?\n") != std::string::npos);
  CHECK(policy.find("allow get_balance priority 100;\n") != std::string::npos);
  CHECK(policy.find("allow get_iban priority 100;\n") != std::string::npos);
  CHECK(err.str().empty());
  // What it printed lints clean.
  const std::string path = TempPolicyPath();
  std::ofstream(path) << policy;
  std::ostringstream lint_out, lint_err;
  CHECK(RunCli({"lint", path}, lint_out, lint_err) == kExitOk);
  CHECK(lint_out.str() == path + ": ok\n");
  std::remove(path.c_str());
}

TEST_CASE("draft after a policy file: its rules come first, drafted ones above its priorities") {
  const std::string path = TempPolicyPath();
  std::ofstream(path) << "policy mine;\nforbid send_money when amount > 10 priority 400;\n";
  auto fake = testing::FakeLlm::Start(Reply(R"({"rules": [{"name": "send_money", "args": {}}]})"));
  DraftOptions options = Options(*fake);
  options.policy_path = path;
  std::ostringstream out, err;
  REQUIRE(RunDraft(options, out, err) == kExitOk);
  CHECK(out.str().rfind("policy mine;\nforbid send_money when amount > 10 priority 400;\n", 0) ==
        0);
  CHECK(out.str().find("allow send_money priority 400;\n") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("draft prints nothing when the model gives no usable rules") {
  auto fake = testing::FakeLlm::Start(Reply("I won't.", "refusal"));
  std::ostringstream out, err;
  CHECK(RunDraft(Options(*fake), out, err) == kExitFailed);
  CHECK(out.str().empty());
  CHECK_THAT(err.str(), Catch::Contains("refused"));
}

TEST_CASE("draft: usage errors") {
  std::ostringstream out, err;
  CHECK(RunCli({"draft", "--query", "q"}, out, err) == kExitUsage);
  CHECK(RunCli({"draft", "--tools", kTools, "--query", "q", "--llm", "http://127.0.0.1:1",
                "--model", "m", "--repairs", "9"},
               out, err) == kExitUsage);
  CHECK(RunCli({"draft", "--tools", kTools, "--query", "q", "--llm", "http://127.0.0.1:1",
                "--model", "m", "--protocol", "smoke-signals"},
               out, err) == kExitUsage);
  CHECK(RunCli({"draft", "--tools", "/nonexistent.json", "--query", "q", "--llm",
                "http://127.0.0.1:1", "--model", "m"},
               out, err) == kExitUsage);
  CHECK(out.str().empty());
}

}  // namespace
}  // namespace toolwarden
