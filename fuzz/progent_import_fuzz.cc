// progent_import_fuzz: arbitrary JSON text through ImportProgent, and the
// policy text it prints back through the loader.
//
// ImportProgent (policy/progent_import.h, docs/progent-import.md) never
// throws and either fails with a Status or prints "the same policy in the
// toolwarden language". Checks:
//   - nothing throws; a failure is InvalidArgument or ResourceExhausted, as
//     the header says;
//   - the output is deterministic (the same input gives the same bytes);
//   - the output is a policy: it loads (LoadPolicyText: parse, check without a
//     catalog, compile) with no error diagnostics, and formatting it
//     round-trips like any other policy text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "nlohmann/json.hpp"
#include "policy/formatter.h"
#include "policy/parser.h"
#include "policy/progent_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace toolwarden;
  std::string_view json_text(reinterpret_cast<const char*>(data), size);
  StatusOr<std::string> imported = ImportProgent(json_text, "fuzz.json");
  if (!imported.ok()) {
    StatusCode code = imported.status().code();
    FUZZ_CHECK(code == StatusCode::kInvalidArgument || code == StatusCode::kResourceExhausted,
               imported.status().message());
    return 0;
  }
  StatusOr<std::string> again = ImportProgent(json_text, "fuzz.json");
  FUZZ_CHECK(again.ok() && *again == *imported, "the import is not deterministic");

  LoadedPolicy loaded = LoadPolicyText("imported.policy", *imported, "");
  FUZZ_CHECK(loaded.ok(),
             "the imported policy does not load:\n" + *imported + "\n" + loaded.ErrorText());

  Source source("imported.policy", *imported);
  ParseResult parsed = Parse(source);
  std::string formatted = Format(parsed.ast, source);
  Source formatted_source("imported.policy", formatted);
  ParseResult reparsed = Parse(formatted_source);
  FUZZ_CHECK(!reparsed.diagnostics.HasErrors(), "formatted import does not parse:\n" + formatted);
  FUZZ_CHECK(Format(reparsed.ast, formatted_source) == formatted, "format is not idempotent");

  // Decide one call per tool the import names, with no arguments (every allow
  // entry with a condition must then fail closed, which is not checked here:
  // only that deciding works).
  Session session(loaded.program, "");
  nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, false);
  if (doc.is_object()) {
    for (const auto& [tool, entries] : doc.items()) {
      Decision d = session.Check(tool, nlohmann::json::object());
      (void)DecisionToJson(d).dump();
    }
  }
  return 0;
}
