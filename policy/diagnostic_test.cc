#include "policy/diagnostic.h"

#include <catch2/catch.hpp>

namespace toolwarden {
namespace {

TEST_CASE("diagnostics are sorted, formatted with a caret, and capped") {
  Source s("f.policy", "allow t;\n\tforbid é when x;\n");
  Diagnostics d;
  d.Warning(s.PositionAt(11), "second");
  d.Error(s.PositionAt(0), "first");
  d.Error(s.PositionAt(11), "same place, errors first");
  CHECK(d.HasErrors());
  CHECK(d.error_count() == 2);
  CHECK(FormatDiagnostics(s, d) ==
        "f.policy:1:1: error: first\n  allow t;\n  ^\n"
        "f.policy:2:3: error: same place, errors first\n  \tforbid é when x;\n  \t ^\n"
        "f.policy:2:3: warning: second\n  \tforbid é when x;\n  \t ^\n");
  nlohmann::json j = DiagnosticsToJson(s, d);
  CHECK(j.size() == 3);
  CHECK(j[2]["severity"] == "warning");
  CHECK(j[1]["column"] == 3);
}

TEST_CASE("limit: at most kMaxDiagnostics are kept") {
  Source s("f", "x");
  Diagnostics d;
  for (int i = 0; i < 1000; ++i) d.Error(s.PositionAt(0), "e");
  std::vector<Diagnostic> sorted = d.Sorted();
  REQUIRE(sorted.size() == kMaxDiagnostics);
  CHECK(sorted.back().message == "too many diagnostics; 901 more not shown");
  CHECK(sorted.back().severity == Severity::kError);
}

TEST_CASE("limit: the note for dropped warnings is a warning") {
  Source s("f", "x");
  Diagnostics d;
  for (int i = 0; i < 150; ++i) d.Warning(s.PositionAt(0), "w");
  std::vector<Diagnostic> sorted = d.Sorted();
  REQUIRE(sorted.size() == kMaxDiagnostics);
  CHECK(sorted.back().severity == Severity::kWarning);
  CHECK_FALSE(d.HasErrors());
}

}  // namespace
}  // namespace toolwarden
