#include "cli/policy_tests.h"

#include <dirent.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "tests/testing.h"

namespace toolwarden {
namespace {

using testing::TempFile;

// The conformance corpus, through the library (the CLI runs it too, from CTest).
TEST_CASE("conformance corpus through the library") {
  const std::string dir = std::string(TOOLWARDEN_SOURCE_DIR) + "/tests/conformance/";
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  size_t passed = 0;
  while (dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name.size() < 6 || name.substr(name.size() - 5) != ".json") continue;
    PolicyTestReport report = RunPolicyTestFile(dir + name);
    for (const std::string& failure : report.failures) FAIL_CHECK(failure);
    passed += report.passed;
  }
  closedir(d);
  CHECK(passed >= 200);
}

TEST_CASE("test files: expectations that must hold") {
  std::string file = TempFile(
      "a.json",
      R"({"policy_text": "forbid t when x == 1 fallback ask;\nallow t;\nallow r when x from trusted;\ntrust src;\nallow src;",
    "cases": [
      {"name": "rule and reason", "calls": [
        {"tool": "t", "args": {"x": 1}, "expect": "ask", "rule": "policy_text:1", "reason": "`x == 1` holds"},
        {"tool": "t", "args": {"x": 2}, "expect": "allow", "rule": "policy_text:2"},
        {"tool": "u", "expect": "deny", "rule": null}]},
      {"name": "results attach", "calls": [
        {"tool": "src", "result": {"v": "k9"}, "expect": "allow"},
        {"tool": "r", "args": {"x": "k9"}, "expect": "allow"}]},
      {"name": "trusted values", "trusted": ["k7"], "calls": [{"tool": "r", "args": {"x": "k7"}, "expect": "allow"}]},
      {"name": "errors are named", "calls": [{"tool": "t", "args": {"x": [1]}, "expect": "allow"},
                                             {"tool": "r", "args": {"x": true}, "expect": "deny", "error": "`from` needs strings"}]}
    ]})");
  PolicyTestReport report = RunPolicyTestFile(file);
  for (const std::string& f : report.failures) FAIL_CHECK(f);
  CHECK(report.passed == 4);
}

TEST_CASE("test files: failures are reported, one line per case") {
  std::string file = TempFile("b.json", R"({"policy_text": "allow t when x == 1;",
    "cases": [
      {"name": "wrong outcome", "calls": [{"tool": "t", "args": {"x": 2}, "expect": "allow"}]},
      {"name": "wrong rule", "calls": [{"tool": "t", "args": {"x": 1}, "expect": "allow", "rule": "policy_text:9"}]},
      {"name": "unexpected error", "calls": [{"tool": "t", "args": {"x": 1}, "expect": "allow", "error": "nope"}]},
      {"name": "bad expect", "calls": [{"tool": "t", "expect": "maybe"}]},
      {"name": "no calls"}
    ]})");
  PolicyTestReport report = RunPolicyTestFile(file);
  CHECK(report.passed == 0);
  CHECK(report.failed == 5);
  REQUIRE(report.failures.size() == 5);
  CHECK(report.failures[0].find("case \"wrong outcome\": call #1 `t`: expected allow (got deny") !=
        std::string::npos);
  CHECK(report.failures[1].find("expected rule \"policy_text:9\"") != std::string::npos);
}

TEST_CASE("test files: load errors and malformed files") {
  CHECK(RunPolicyTestFile(
            TempFile("c.json",
                     R"({"policy_text": "allow t when ;", "expect_load_error": "syntax error"})"))
            .passed == 1);
  CHECK(
      RunPolicyTestFile(
          TempFile("d.json", R"({"policy_text": "allow t;", "expect_load_error": "syntax error"})"))
          .failed == 1);
  CHECK(RunPolicyTestFile(TempFile("e.json", R"({"policy_text": "allow t when ;", "cases": []})"))
            .failed == 1);
  CHECK(RunPolicyTestFile(TempFile("f.json", "[1")).failed == 1);
  CHECK(RunPolicyTestFile(TempFile("g.json", R"({"cases": []})")).failed == 1);
  CHECK(RunPolicyTestFile("/nonexistent.json").failed == 1);
}

}  // namespace
}  // namespace toolwarden
