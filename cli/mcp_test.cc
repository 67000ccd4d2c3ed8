#include "cli/mcp.h"

#include <catch2/catch.hpp>
#include <sstream>

#include "cli/commands.h"
#include "tests/testing.h"

namespace toolwarden {
namespace {

struct Run {
  int code;
  std::string err;
};

Run Cli(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = RunCli(args, out, err);
  return {code, err.str()};
}

TEST_CASE("mcp: usage errors exit 2 and say what is wrong") {
  const std::string policy = testing::TempFile("mcp_cli.policy", "allow read_file;\n");
  auto usage = [](const Run& run, const std::string& text) {
    CHECK(run.code == kExitUsage);
    CHECK(run.err.find(text) != std::string::npos);
  };
  usage(Cli({"mcp", "--policy", policy}), "the server's command after `--`, or --upstream URL");
  usage(Cli({"mcp", "--policy", policy, "--"}), "the server's command after `--`");
  usage(Cli({"mcp", "--", "cat"}), "mcp needs --policy FILE");
  usage(Cli({"mcp", "--policy", policy, "--bogus", "--", "cat"}), "unknown flag --bogus");
  usage(Cli({"mcp", "--policy", policy, "stray", "--", "cat"}), "no arguments before `--`");
  usage(Cli({"mcp", "--policy", policy, "--shutdown-grace", "soon", "--", "cat"}),
        "--shutdown-grace is milliseconds");
  usage(Cli({"mcp", "--policy", policy, "--upstream", "ftp://x/mcp"}), "http:// or https://");
  usage(Cli({"mcp", "--policy", policy, "--upstream", "http://x/mcp", "--", "cat"}), "not both");
  usage(Cli({"mcp", "--policy", policy, "--listen", "nowhere", "--upstream", "http://x/mcp"}),
        "--listen is HOST:PORT");
  usage(Cli({"mcp", "--policy", policy, "--listen", "127.0.0.1:0", "--", "cat"}),
        "--listen needs --upstream URL");
}

TEST_CASE(
    "mcp: a policy that does not load, or a log that cannot open, exits 1 before the server "
    "starts") {
  const std::string bad = testing::TempFile("mcp_cli_bad.policy", "allow read_file when;\n");
  Run run = Cli({"mcp", "--policy", bad, "--", "sh", "-c", "touch /tmp/toolwarden_mcp_cli_ran"});
  CHECK(run.code == kExitFailed);
  CHECK(run.err.find("the policy does not load") != std::string::npos);
  CHECK(run.err.find("mcp_cli_bad.policy:1:") != std::string::npos);
  CHECK(std::fopen("/tmp/toolwarden_mcp_cli_ran", "r") == nullptr);

  const std::string good = testing::TempFile("mcp_cli_good.policy", "allow read_file;\n");
  run = Cli({"mcp", "--policy", good, "--decision-log", "/nonexistent/dir/log.jsonl", "--", "cat"});
  CHECK(run.code == kExitFailed);
  CHECK(run.err.find("decision log") != std::string::npos);

  run = Cli({"mcp", "--policy", good, "--tools", "/nonexistent/tools.json", "--", "cat"});
  CHECK(run.code == kExitFailed);
}

TEST_CASE("mcp: an upstream proxy that cannot listen exits 1") {
  const std::string good = testing::TempFile("mcp_cli_listen.policy", "allow read_file;\n");
  Run run = Cli(
      {"mcp", "--policy", good, "--listen", "192.0.2.1:1", "--upstream", "http://127.0.0.1:9/mcp"});
  CHECK(run.code == kExitFailed);
  CHECK(run.err.find("cannot listen") != std::string::npos);
}

}  // namespace
}  // namespace toolwarden
