#include "interpreter/loader.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "tests/testing.h"

namespace toolwarden {
namespace {

using testing::TempFile;

TEST_CASE("paths") {
  CHECK(DirName("a/b/c.policy") == "a/b");
  CHECK(DirName("c.policy") == "");
  CHECK(DirName("/c.policy") == "/");
  CHECK(JoinPath("a", "b.json") == "a/b.json");
  CHECK(JoinPath("a/", "b.json") == "a/b.json");
  CHECK(JoinPath("a", "/b.json") == "/b.json");
  CHECK(JoinPath("", "b.json") == "b.json");
}

TEST_CASE("the tools item is read relative to the policy; --tools overrides it") {
  TempFile("tools.json", R"({"t": {"type": "object", "properties": {"x": {"type": "string"}}}})");
  std::string policy =
      TempFile("p.policy", "tools \"toolwarden_test_tools.json\";\nallow t when y == 1;\n");
  LoadedPolicy loaded = LoadPolicyFile(policy);
  CHECK_FALSE(loaded.ok());
  CHECK(loaded.ErrorText().find("unknown argument `y` of tool `t`") != std::string::npos);
  std::string other =
      TempFile("other.json", R"({"t": {"type": "object", "properties": {"y": {}}}})");
  LoadOptions options;
  options.tools_path = other;
  CHECK(LoadPolicyFile(policy, options).ok());
}

TEST_CASE("tools_inside_base_dir: a `tools` item cannot leave the base directory") {
  std::string dir = DirName(TempFile("confined.policy", "allow t;\n"));
  LoadOptions confined;
  confined.tools_inside_base_dir = true;
  for (const char* path : {"/etc/passwd", "../x.json", "a/../../x.json", "..", "a/..", ""}) {
    INFO(path);
    LoadedPolicy loaded =
        LoadPolicyText("inline", std::string("tools \"") + path + "\";\nallow t;\n", dir, confined);
    CHECK_FALSE(loaded.ok());
    CHECK(loaded.status.ok());  // a diagnostic at the item, nothing was read
    REQUIRE(loaded.diagnostics.HasErrors());
    CHECK(loaded.ErrorText().find("inline:1:1: error: `tools` may name only a file inside the "
                                  "policy directory") != std::string::npos);
  }
  std::string tools = TempFile("confined_tools.json", R"({"t": {"type": "object"}})");
  std::string inside = "tools \"" + tools.substr(dir.size() + 1) + "\";\nallow t;\n";
  CHECK(LoadPolicyText("inline", inside, dir, confined).ok());
  // Without the option (a policy file the operator wrote), any path is read.
  CHECK(LoadPolicyText("inline", "tools \"" + tools + "\";\nallow t;\n", dir).ok());
  CHECK_FALSE(LoadPolicyText("inline", "tools \"" + tools + "\";\nallow t;\n", dir, confined).ok());
}

TEST_CASE("load failures are statuses or diagnostics, never exceptions") {
  LoadedPolicy missing = LoadPolicyFile("/nonexistent/p.policy");
  CHECK(missing.status.code() == StatusCode::kNotFound);
  std::string bad_tools = TempFile("q.policy", "tools \"nope.json\";\nallow t;\n");
  LoadedPolicy no_tools = LoadPolicyFile(bad_tools);
  CHECK(no_tools.ErrorText().find("q.policy:1:1: error: cannot load tool schemas") !=
        std::string::npos);
  LoadOptions options;
  options.tools_path = "/nonexistent/tools.json";
  CHECK(LoadPolicyText("x", "allow t;", "", options).status.code() == StatusCode::kNotFound);
  std::string big = TempFile("big.policy", std::string(kMaxSourceBytes + 1, '#'));
  CHECK(LoadPolicyFile(big).status.code() == StatusCode::kResourceExhausted);
  std::remove(big.c_str());
}

}  // namespace
}  // namespace toolwarden
