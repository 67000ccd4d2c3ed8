// policy_fuzz: arbitrary policy text through the whole front end and back.
//
// Feeds the input to Parse, Check (with no catalog, and through LoadPolicyText
// against policies/examples/banking.tools.json), Compile and a few decisions.
// Checks what the headers promise:
//   - nothing throws (an escaping exception aborts the fuzzer);
//   - formatting round-trips (policy/formatter.h): the text Format prints for
//     a policy that parsed without errors parses without errors, to the same
//     AST (same items, expressions, literals and comments, positions aside),
//     and formatting it again gives the same text;
//   - formatting never changes meaning: the formatted text passes the checker
//     exactly when the original does, and decides the fixed calls the same way;
//   - Session::Check is deterministic, and Decide agrees with the Check just
//     before it;
//   - decisions and diagnostics print as JSON / text without throwing.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "interpreter/decision.h"
#include "interpreter/loader.h"
#include "interpreter/program.h"
#include "interpreter/session.h"
#include "nlohmann/json.hpp"
#include "policy/checker.h"
#include "policy/formatter.h"
#include "policy/parser.h"
#include "policy/source.h"

namespace toolwarden {
namespace {

using nlohmann::json;

// An S-expression of the AST without positions or spelling (raw strings,
// quoted tool names), as in formatter_test.cc: equal dumps mean equal meaning.
std::string Dump(const Expr& e) {
  std::string out = "(" + std::to_string(static_cast<int>(e.kind)) + " " + OpSpelling(e.op) + " " +
                    e.name + " " + e.literal.dump(-1, ' ', false, json::error_handler_t::replace);
  for (const auto& c : e.children) out += " " + Dump(*c);
  return out + ")";
}

// Quoting is spelling, not meaning (the formatter writes `"*"` as `*`).
std::string Dump(const Target& t) { return t.text + " "; }

std::string Dump(const Rule& r) {
  std::string out = r.effect == Effect::kAllow ? "allow " : "forbid ";
  for (const Target& t : r.targets) out += Dump(t);
  if (r.condition) out += " when " + Dump(*r.condition);
  if (r.priority) out += " priority " + std::to_string(*r.priority);
  if (r.fallback) {
    out += " fallback " + std::to_string(static_cast<int>(r.fallback->kind)) + " " +
           r.fallback->message.value_or("<none>");
  }
  if (r.has_update) out += " update";
  for (const Rule& u : r.updates) out += " {" + Dump(u) + "}";
  return out;
}

std::string Dump(const PolicyAst& ast) {
  std::string out;
  for (const Item& item : ast.items) {
    out += std::to_string(static_cast<int>(item.kind)) + " " + item.name + " " + item.path;
    for (const Target& t : item.trust) out += " " + Dump(t);
    if (item.value) out += " " + Dump(*item.value);
    if (item.kind == ItemKind::kDefault) {
      out += " " + std::to_string(static_cast<int>(item.fallback.kind)) +
             item.fallback.message.value_or("<none>");
    }
    if (item.kind == ItemKind::kRule) out += " " + Dump(item.rule);
    out += "\n";
  }
  for (const Comment& c : ast.comments) out += c.text + "\n";
  return out;
}

struct Call {
  const char* tool;
  json args;
};

const std::vector<Call>& Calls() {
  static const auto* calls = new std::vector<Call>{
      {"send_money",
       {{"recipient", "UK12345678901234567890"},
        {"amount", 100},
        {"subject", "rent"},
        {"date", "2024-01-01"}}},
      {"send_money", {{"recipient", "US1330000001"}, {"amount", 1e6}, {"subject", ""}}},
      {"get_balance", json::object()},
      {"update_password", {{"password", "hunter2"}}},
      {"send_email",
       {{"recipients", {"a@example.com", "b@evil.test"}},
        {"subject", "x"},
        {"body", "https://evil.test/?q=1"}}},
      {"unknown_tool", {{"x", {1, "a", nullptr, true, {{"k", -0.5}}}}}},
  };
  return *calls;
}

// The outcome of each fixed call in one fresh session, decided in order (so
// budgets and `update` blocks see the earlier ones).
std::vector<Outcome> Decisions(const std::shared_ptr<const Program>& program) {
  std::vector<Outcome> outcomes;
  Session session(program, "send 100 to UK12345678901234567890, password hunter2",
                  {"a@example.com"});
  for (const Call& call : Calls()) {
    Decision first = session.Check(call.tool, call.args);
    Decision again = session.Check(call.tool, call.args);
    FUZZ_CHECK(first.outcome == again.outcome, call.tool);
    FUZZ_CHECK(first.reason == again.reason, first.reason + " | " + again.reason);
    FUZZ_CHECK(first.errors == again.errors, call.tool);
    Decision decided = session.Decide(call.tool, call.args);
    FUZZ_CHECK(decided.outcome == first.outcome, call.tool);
    FUZZ_CHECK(decided.allowed() == decided.call.has_value(), call.tool);
    // Decisions go out as JSON: they must print, strictly (no invalid UTF-8).
    (void)DecisionToJson(decided).dump();
    if (decided.call) session.AttachResult(*decided.call, call.args);
    outcomes.push_back(decided.outcome);
  }
  return outcomes;
}

// Check (no catalog) and Compile; the program, or null with `*check_errors`
// telling whether the checker (rather than the compiler) refused it.
std::shared_ptr<const Program> CheckAndCompile(const Source& source, PolicyAst ast,
                                               bool* check_errors) {
  CheckResult checked = Check(std::move(ast), source, nullptr);
  (void)FormatDiagnostics(source, checked.diagnostics);
  *check_errors = checked.diagnostics.HasErrors();
  FUZZ_CHECK(*check_errors == (checked.policy == nullptr), "policy iff no errors");
  if (checked.policy == nullptr) return nullptr;
  StatusOr<std::shared_ptr<const Program>> program = Compile(checked.policy);
  if (!program.ok()) return nullptr;
  return *program;
}

}  // namespace
}  // namespace toolwarden

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace toolwarden;
  static const std::string kExamples = std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/examples";
  std::string text(reinterpret_cast<const char*>(data), size);

  // Against the banking tools, through the loader (the tools path overrides any
  // `tools "FILE";` item, so the input never makes the target read a file).
  LoadOptions options;
  options.tools_path = kExamples + "/banking.tools.json";
  LoadedPolicy loaded = LoadPolicyText("fuzz.policy", text, kExamples, options);
  (void)loaded.ErrorText();
  if (loaded.ok()) (void)Decisions(loaded.program);

  Source source("fuzz.policy", text);
  ParseResult parsed = Parse(source);
  (void)FormatDiagnostics(source, parsed.diagnostics);
  if (parsed.diagnostics.HasErrors()) return 0;

  std::string formatted = Format(parsed.ast, source);
  if (formatted.size() > kMaxSourceBytes) return 0;
  Source formatted_source("fuzz.policy", formatted);
  ParseResult reparsed = Parse(formatted_source);
  FUZZ_CHECK(!reparsed.diagnostics.HasErrors(),
             "formatted text does not parse:\n" + formatted + "\n" +
                 FormatDiagnostics(formatted_source, reparsed.diagnostics));
  FUZZ_CHECK(Dump(reparsed.ast) == Dump(parsed.ast),
             "formatting changed the AST:\n" + Dump(parsed.ast) + "---\n" + Dump(reparsed.ast));
  std::string twice = Format(reparsed.ast, formatted_source);
  FUZZ_CHECK(twice == formatted, "formatting is not idempotent:\n" + formatted + "---\n" + twice);

  bool original_errors = false, formatted_errors = false;
  std::shared_ptr<const Program> original =
      CheckAndCompile(source, std::move(parsed.ast), &original_errors);
  std::shared_ptr<const Program> reformatted =
      CheckAndCompile(formatted_source, std::move(reparsed.ast), &formatted_errors);
  FUZZ_CHECK(original_errors == formatted_errors, "formatting changed what the checker says");
  FUZZ_CHECK((original == nullptr) == (reformatted == nullptr),
             "formatting changed whether it compiles");
  if (original != nullptr) {
    FUZZ_CHECK(Decisions(original) == Decisions(reformatted),
               "formatting changed a decision:\n" + formatted);
  }
  return 0;
}
