#include "cli/verify_log.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/log/decision_log.h"
#include "cli/commands.h"
#include "policy/sha256.h"

namespace toolwarden {
namespace {

struct Run {
  int code;
  std::string out, err;
};

Run Cli(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = RunCli(args, out, err);
  return {code, out.str(), err.str()};
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A log of `lines` entries at a path unique to this process; returns its path and head.
std::pair<std::string, std::string> GoodLog(const std::string& name, int lines) {
  std::string path = std::string(P_tmpdir) + "/toolwarden_verify_log_test_" +
                     std::to_string(::getpid()) + "_" + name + ".jsonl";
  std::remove(path.c_str());
  StatusOr<std::unique_ptr<DecisionLog>> log = DecisionLog::Open(path);
  REQUIRE(log.ok());
  for (int i = 0; i < lines; ++i) REQUIRE((*log)->Append({{"kind", "note"}, {"n", i}}).ok());
  return {path, (*log)->head()};
}

TEST_CASE("verify-log on an intact log") {
  auto [path, head] = GoodLog("good", 3);
  Run r = Cli({"verify-log", path});
  CHECK(r.code == kExitOk);
  CHECK(r.out == path + ": 3 lines, chain intact, head " + head + "\n");
  CHECK(r.err.empty());

  Run anchored = Cli({"verify-log", path, "--expect-head", head});
  CHECK(anchored.code == kExitOk);
  CHECK(anchored.out == r.out);

  Run json = Cli({"verify-log", path, "--json", "--expect-head=" + head});
  CHECK(json.code == kExitOk);
  nlohmann::json report = nlohmann::json::parse(json.out);
  CHECK(report == nlohmann::json{{"file", path},
                                 {"lines", 3},
                                 {"bytes", ReadAll(path).size()},
                                 {"head", head},
                                 {"intact", true},
                                 {"problem", nullptr},
                                 {"expected_head", head}});

  auto [one, one_head] = GoodLog("one", 1);
  CHECK(Cli({"verify-log", one}).out == one + ": 1 line, chain intact, head " + one_head + "\n");
}

TEST_CASE("verify-log names the first broken line and exits 1") {
  auto [path, head] = GoodLog("tampered", 4);
  const std::string original = ReadAll(path);
  std::string text = original;
  // Line 2 (seq 1) says n 1; make it 7.
  size_t at = text.find("\"n\":1}");
  REQUIRE(at != std::string::npos);
  text[at + 4] = '7';
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;

  Run r = Cli({"verify-log", path});
  CHECK(r.code == kExitFailed);
  CHECK(r.out == path +
                     ":3: `prev` does not match the hash of line 2: that line was edited, or this "
                     "one was inserted\n");

  Run json = Cli({"verify-log", path, "--json"});
  CHECK(json.code == kExitFailed);
  nlohmann::json report = nlohmann::json::parse(json.out);
  CHECK(report["intact"] == false);
  CHECK(report["lines"] == 2);
  CHECK(report["problem"]["line"] == 3);
  const size_t first_end = text.find('\n');
  const size_t second_end = text.find('\n', first_end + 1);
  CHECK(report["head"] ==
        "sha256:" + Sha256Hex(text.substr(first_end + 1, second_end - first_end - 1)));

  // A truncated last line.
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      << original.substr(0, original.size() - 1);
  Run truncated = Cli({"verify-log", path});
  CHECK(truncated.code == kExitFailed);
  CHECK(truncated.out ==
        path + ":4: the last line has no newline: the file was truncated, or a write was torn\n");
}

TEST_CASE("verify-log --expect-head catches lines removed at the end") {
  auto [path, head] = GoodLog("anchored", 3);
  std::string text = ReadAll(path);
  text.resize(text.rfind('\n', text.size() - 2) + 1);  // drop the last line
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  CHECK(Cli({"verify-log", path}).code == kExitOk);  // the chain alone cannot tell
  Run r = Cli({"verify-log", path, "--expect-head", head});
  CHECK(r.code == kExitFailed);
  CHECK(r.out.find(path + ":2: the last line hashes to sha256:") == 0);
  CHECK(r.out.find(", not the expected " + head + ": lines were appended or removed at the end") !=
        std::string::npos);

  // Everything removed.
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "";
  Run empty = Cli({"verify-log", path, "--expect-head", head});
  CHECK(empty.code == kExitFailed);
  CHECK(empty.out.find(path + ": the last line hashes to " + std::string(kEmptyLogHead)) == 0);
}

TEST_CASE("verify-log usage errors and unreadable files exit 2") {
  auto [path, head] = GoodLog("usage", 1);
  CHECK(Cli({"verify-log"}).code == kExitUsage);
  CHECK(Cli({"verify-log", path, path}).code == kExitUsage);
  CHECK(Cli({"verify-log", path, "--bogus"}).code == kExitUsage);
  CHECK(Cli({"verify-log", path, "--expect-head"}).code == kExitUsage);
  Run bad_hash = Cli({"verify-log", path, "--expect-head", "abc"});
  CHECK(bad_hash.code == kExitUsage);
  CHECK(bad_hash.err.find("--expect-head is `sha256:` and 64 lower-case hex digits") !=
        std::string::npos);
  Run missing = Cli({"verify-log", "/nonexistent.jsonl"});
  CHECK(missing.code == kExitUsage);
  CHECK(missing.out.empty());
  CHECK(missing.err.find("error: cannot open `/nonexistent.jsonl`") == 0);
  CHECK(Cli({"verify-log", P_tmpdir}).code == kExitUsage);
  CHECK(Cli({"help"}).out.find("verify-log FILE [--expect-head HASH] [--json]") !=
        std::string::npos);
}

}  // namespace
}  // namespace toolwarden
