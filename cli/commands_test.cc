#include "cli/commands.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/testing.h"

namespace toolwarden {
namespace {

using testing::TempFile;

struct Run {
  int code;
  std::string out, err;
};

Run Cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

const std::string kSource = TOOLWARDEN_SOURCE_DIR;
const std::string kWorkspaceTools = kSource + "/policies/examples/workspace.tools.json";

TEST_CASE("lint reports an unknown argument at its line and column") {
  std::string policy =
      TempFile("share.policy", "policy w;\nallow share_file when emails in trusted;\n");
  Run r = Cli({"lint", policy, "--tools", kWorkspaceTools});
  CHECK(r.code == kExitFailed);
  CHECK(r.out.find(policy + ":2:23: error: unknown argument `emails` of tool `share_file`\n"
                            "  allow share_file when emails in trusted;\n"
                            "                        ^\n") == 0);
  Run json = Cli({"lint", policy, "--tools", kWorkspaceTools, "--format", "json"});
  CHECK(json.code == kExitFailed);
  CHECK(json.out.find("\"line\": 2") != std::string::npos);
  CHECK(json.out.find("\"column\": 23") != std::string::npos);
}

TEST_CASE("lint exit codes") {
  std::string good = TempFile("good.policy", "allow t;\n");
  CHECK(Cli({"lint", good}).code == kExitOk);
  CHECK(Cli({"lint", good}).out == good + ": ok\n");
  CHECK(Cli({"lint"}).code == kExitUsage);
  CHECK(Cli({"lint", good, "--format", "xml"}).code == kExitUsage);
  CHECK(Cli({"lint", good, "--bogus"}).code == kExitUsage);
  Run missing = Cli({"lint", "/nonexistent.policy"});
  CHECK(missing.code == kExitFailed);
  CHECK(missing.out.find("cannot open") != std::string::npos);
  std::string warn = TempFile("warn.policy", "allow t;\nallow t when x;\n");
  Run w = Cli({"lint", warn});
  CHECK(w.code == kExitOk);
  CHECK(w.out.find("warning: this rule can never decide") != std::string::npos);
}

TEST_CASE("check prints the decision and exits 0 only for allow") {
  std::string policy = kSource + "/policies/examples/banking.policy";
  Run denied = Cli(
      {"check", "--policy", policy, "--tool", "send_money", "--args",
       R"({"recipient": "US133000000121212121212", "amount": 100, "subject": "s", "date": "d"})"});
  CHECK(denied.code == kExitFailed);
  CHECK(denied.out.find("\"decision\": \"deny\"") != std::string::npos);
  CHECK(
      denied.out.find(
          "the closest, banking.policy:22, fails because `recipient in trusted_ibans` is false") !=
      std::string::npos);
  Run allowed = Cli(
      {"check", "--policy", policy, "--tool", "send_money", "--args",
       R"({"recipient": "UK12345678901234567890", "amount": 100, "subject": "s", "date": "d"})"});
  CHECK(allowed.code == kExitOk);
  CHECK(allowed.out.find("\"decision\": \"allow\"") != std::string::npos);
  Run asked = Cli({"check", "--policy", policy, "--tool", "update_password", "--args",
                   R"({"password": "hunter2"})", "--query", "set my password to hunter2"});
  CHECK(asked.code == kExitOk);
  CHECK(Cli({"check", "--policy", policy, "--tool", "t"}).code == kExitUsage);
  CHECK(Cli({"check", "--policy", policy, "--tool", "t", "--args", "[1"}).code == kExitUsage);
  CHECK(Cli({"check", "--policy", policy, "--tool", "t", "--args", "[1]"}).code == kExitUsage);
  std::string bad = TempFile("bad.policy", "allow t when ;\n");
  Run policy_error = Cli({"check", "--policy", bad, "--tool", "t", "--args", "{}"});
  CHECK(policy_error.code == kExitUsage);
  CHECK(policy_error.err.find("syntax error") != std::string::npos);
}

TEST_CASE("limit: 100,000-deep argument JSON on the command line") {
  std::string policy = TempFile("any.policy", "allow t;\n");
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  Run r = Cli({"check", "--policy", policy, "--tool", "t", "--args", deep});
  CHECK(r.code == kExitUsage);
  CHECK(r.err.find("nests deeper than 128") != std::string::npos);
}

TEST_CASE("test runs policy test files") {
  std::string policy = TempFile("t2.policy", "allow a when x == 1;\n");
  std::string file = TempFile("t2.json", R"({"policy": "toolwarden_test_t2.policy", "cases": [
    {"name": "ok", "calls": [{"tool": "a", "args": {"x": 1}, "expect": "allow", "rule": "toolwarden_test_t2.policy:1"}]},
    {"name": "bad", "calls": [{"tool": "a", "args": {"x": 2}, "expect": "allow"}]}]})");
  Run r = Cli({"test", file});
  CHECK(r.code == kExitFailed);
  CHECK(r.out.find("case \"bad\": call #1 `a`: expected allow (got deny") != std::string::npos);
  CHECK(r.out.find("1 passed, 1 failed\n") != std::string::npos);
  CHECK(Cli({"test"}).code == kExitUsage);
}

TEST_CASE("fmt prints, checks and writes canonical text") {
  std::string messy = TempFile("messy.policy", "allow   t when (x==1)and y ;  # why\n");
  Run r = Cli({"fmt", messy});
  CHECK(r.code == kExitOk);
  CHECK(r.out == "allow t when x == 1 and y;  # why\n");
  CHECK(Cli({"fmt", messy, "--check"}).code == kExitFailed);
  CHECK(Cli({"fmt", messy, "--write"}).code == kExitOk);
  CHECK(Cli({"fmt", messy, "--check"}).code == kExitOk);
  CHECK(Cli({"fmt", messy, "--check", "--write"}).code == kExitUsage);
  std::string broken = TempFile("broken.policy", "allow (;\n");
  CHECK(Cli({"fmt", broken}).code == kExitFailed);
}

TEST_CASE("import prints the equivalent policy") {
  std::string progent = TempFile("p.json", R"({"send_money": [{"priority": 1, "effect": 0,
      "conditions": {"recipient": {"type": "string", "enum": ["A", "B"]}}, "fallback": 0}]})");
  Run r = Cli({"import", "--from", "progent", progent});
  CHECK(r.code == kExitOk);
  CHECK(r.out.find("allow send_money when") != std::string::npos);
  std::string policy = TempFile("imported.policy", r.out);
  CHECK(Cli({"lint", policy}).code == kExitOk);
  std::string unsupported = TempFile("u.json", R"({"t": [{"priority": 1, "effect": 0,
      "conditions": {"a": {"format": "email"}}, "fallback": 0}]})");
  Run bad = Cli({"import", "--from", "progent", unsupported});
  CHECK(bad.code == kExitFailed);
  CHECK(bad.err.find("format") != std::string::npos);
  CHECK(Cli({"import", progent}).code == kExitUsage);
}

TEST_CASE("replay runs policy files and imported Progent policies") {
  const std::string data = kSource + "/bench/agentdojo/data";
  const std::string criteria = kSource + "/bench/agentdojo/criteria";
  std::string progent =
      TempFile("progent_banking.json", R"({"get_balance": [{"priority": 1, "effect": 0}]})");
  Run r = Cli({"replay", "--suite", "banking", "--policy", progent, "--data", data, "--criteria",
               criteria});
  CHECK(r.code == kExitOk);
  CHECK(r.out.find("banking") != std::string::npos);
  CHECK(r.out.find("0/16") != std::string::npos);  // only get_balance is allowed
  Run all = Cli({"replay", "--policy-dir", kSource + "/policies/agentdojo", "--data", data,
                 "--criteria", criteria, "--require-all"});
  CHECK(all.code == kExitOk);
  CHECK(all.out.find("40/40") != std::string::npos);
  CHECK(Cli({"replay", "--suite", "banking", "--policy", progent, "--data", data, "--criteria",
             criteria, "--require-all"})
            .code == kExitFailed);
  CHECK(Cli({"replay", "--suite", "banking"}).code == kExitUsage);
  CHECK(Cli({"replay", "--policy-dir", "/nonexistent"}).code == kExitUsage);
}

TEST_CASE("unknown commands and help") {
  CHECK(Cli({}).code == kExitUsage);
  CHECK(Cli({"frobnicate"}).code == kExitUsage);
  CHECK(Cli({"help"}).code == kExitOk);
}

}  // namespace
}  // namespace toolwarden
