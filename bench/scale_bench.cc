// Policies generated at start-up: a large policy (10,000 rules over 1,000
// tools) against a small one with the same rules for the tool called, regex-
// and list-heavy rules, compile time per 1,000 rules and the memory a compiled
// rule holds. Results and the command are in docs/performance.md.
//
// Every tool `tool_NNNN` gets the same ten rules with constants of its own
// (GenerateRules): five `forbid`s (a comparison, `in` a three-element list, a
// `matches`, an `any` over an array argument, an `and` of `==` and
// `endswith`) and five `allow`s (`endswith` and `<=`, `in` and `<=`,
// `startswith`, `len` and `contains`, `from query`). The allowed call used
// below passes every `forbid` and is allowed by the sixth rule, so it
// evaluates six conditions.
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "interpreter/program.h"
#include "interpreter/session.h"
#include "policy/checker.h"
#include "policy/parser.h"
#include "policy/tool_catalog.h"

namespace toolwarden {
namespace {

using nlohmann::json;

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "scale_bench: " << message << "\n";
  std::abort();
}

std::string ToolName(int k) {
  char name[32];
  std::snprintf(name, sizeof(name), "tool_%04d", k);
  return name;
}

ToolCatalog GenerateCatalog(int tools) {
  const json schema = {{"type", "object"},
                       {"properties",
                        {{"to", {{"type", "string"}}},
                         {"amount", {{"type", "number"}}},
                         {"body", {{"type", "string"}}},
                         {"mode", {{"type", "string"}}},
                         {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
                       {"required", {"to", "amount"}}};
  ToolCatalog catalog;
  for (int k = 0; k < tools; ++k) catalog.Add(ToolName(k), schema, "a generated tool");
  return catalog;
}

// The ten rules of tool k (with `regex` false, the `matches` rule compares
// with `==` instead, to tell the regexes' share of a cost).
std::string GenerateRules(int k, bool regex = true) {
  const std::string t = ToolName(k), n = std::to_string(k);
  std::string s;
  s += "forbid " + t + " when amount > " + std::to_string(10000 + k) + " priority 2;\n";
  s += "forbid " + t + " when to in [\"blocked" + n + "a@evil.example\", \"blocked" + n +
       "b@evil.example\", \"blocked" + n + "c@evil.example\"] priority 1;\n";
  s += regex ? "forbid " + t + " when body matches r\"(?i).*secret-" + n + "\\b.*\";\n"
             : "forbid " + t + " when body == \"secret-" + n + "\";\n";
  s += "forbid " + t + " when any(x in tags, x == \"danger" + n + "\");\n";
  s += "forbid " + t + " when mode == \"admin\" and not (to endswith \"@corp.example\");\n";
  s += "allow " + t +
       " when to endswith \"@corp.example\" and amount <= " + std::to_string(1000 + k) + ";\n";
  s += "allow " + t + " when to in [\"friend" + n + "@mail.example\", \"partner" + n +
       "@mail.example\"] and amount <= 100;\n";
  s += "allow " + t + " when mode startswith \"read\";\n";
  s += "allow " + t + " when len(tags) <= 3 and body contains \"invoice " + n + "\";\n";
  s += "allow " + t + " when to from query;\n";
  return s;
}

// Rules for tools [0, tools): ten per tool, 10 x tools rules.
std::string GeneratePolicy(int tools, bool regex = true) {
  std::string s = "policy generated;\n";
  s.reserve(static_cast<size_t>(tools) * 700);
  for (int k = 0; k < tools; ++k) s += GenerateRules(k, regex);
  return s;
}

std::shared_ptr<const Program> CompileText(const std::string& text, const ToolCatalog* catalog) {
  Source source("generated.policy", text);
  ParseResult parsed = Parse(source);
  if (parsed.diagnostics.HasErrors()) Die(FormatDiagnostics(source, parsed.diagnostics));
  CheckResult checked = Check(std::move(parsed.ast), source, catalog);
  if (checked.policy == nullptr) Die(FormatDiagnostics(source, checked.diagnostics));
  StatusOr<std::shared_ptr<const Program>> program = Compile(checked.policy);
  if (!program.ok()) Die(program.status().message());
  return *program;
}

const ToolCatalog& Catalog(int tools) {
  static std::map<int, ToolCatalog> catalogs;
  auto it = catalogs.find(tools);
  if (it == catalogs.end()) it = catalogs.emplace(tools, GenerateCatalog(tools)).first;
  return it->second;
}

const std::shared_ptr<const Program>& Generated(int tools, bool regex = true) {
  static std::map<std::pair<int, bool>, std::shared_ptr<const Program>> programs;
  auto it = programs.find({tools, regex});
  if (it == programs.end()) {
    it = programs
             .emplace(std::make_pair(tools, regex),
                      CompileText(GeneratePolicy(tools, regex), &Catalog(tools)))
             .first;
  }
  return it->second;
}

const json& AllowedArgs() {
  static const json args = {{"to", "alice@corp.example"},
                            {"amount", 50},
                            {"body", "please pay the attached invoice by friday"},
                            {"mode", "write"},
                            {"tags", {"finance", "q3"}}};
  return args;
}

constexpr char kQuery[] = "Pay this month's invoices for the team at corp";

// Cycles an allowed call over the first `cycle` tools of a generated policy
// of `tools` tools.
void ScaleDecide(benchmark::State& state, int tools, int cycle, bool regex = true) {
  Session session(Generated(tools, regex), kQuery);
  std::vector<std::string> names;
  for (int k = 0; k < cycle; ++k) names.push_back(ToolName(k * (tools / cycle)));
  for (const std::string& name : names) {
    if (!session.Check(name, AllowedArgs()).allowed()) Die(name + " is not allowed");
  }
  size_t i = 0;
  for (auto _ : state) {
    Decision d = session.Check(names[i], AllowedArgs());
    i = i + 1 == names.size() ? 0 : i + 1;
    if (!d.allowed()) state.SkipWithError("decision changed");
    benchmark::DoNotOptimize(d);
  }
  state.counters["rules"] = static_cast<double>(Generated(tools, regex)->rule_count());
}

// 10 rules for one tool.
void BM_ScaleSmall(benchmark::State& state) { ScaleDecide(state, 1, 1); }
BENCHMARK(BM_ScaleSmall);
// 10,000 rules over 1,000 tools; the same call to the same tool.
void BM_ScaleLargeOneTool(benchmark::State& state) { ScaleDecide(state, 1000, 1); }
BENCHMARK(BM_ScaleLargeOneTool);
// 10,000 rules over 1,000 tools; the call goes to each tool in turn.
void BM_ScaleLargeAllTools(benchmark::State& state) { ScaleDecide(state, 1000, 1000); }
BENCHMARK(BM_ScaleLargeAllTools);
// The same two without the regex rule (`==` in its place): how much of the
// cost of going round all tools is 1,000 regexes' memory.
void BM_ScaleSmallNoRegex(benchmark::State& state) { ScaleDecide(state, 1, 1, false); }
BENCHMARK(BM_ScaleSmallNoRegex);
void BM_ScaleLargeAllToolsNoRegex(benchmark::State& state) {
  ScaleDecide(state, 1000, 1000, false);
}
BENCHMARK(BM_ScaleLargeAllToolsNoRegex);

// A denial by a `forbid` (the body names tool 0's secret) in the large policy.
void BM_ScaleLargeForbid(benchmark::State& state) {
  Session session(Generated(1000), kQuery);
  json args = AllowedArgs();
  args["body"] = "here is SECRET-0 for you";
  const Outcome expected = session.Check(ToolName(0), args).outcome;
  if (expected != Outcome::kDeny) Die("forbid did not deny");
  for (auto _ : state) {
    Decision d = session.Check(ToolName(0), args);
    if (d.outcome != expected) state.SkipWithError("decision changed");
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_ScaleLargeForbid);

// --- regex-heavy: one tool, 50 `forbid ... matches` rules, then an allow -----

const std::shared_ptr<const Program>& RegexHeavy() {
  static const std::shared_ptr<const Program> program = [] {
    std::string s = "policy regex_heavy;\n";
    for (int i = 0; i < 50; ++i) {
      s += "forbid post when body matches r\"(?i).*\\b(drop|leak|exfil)[-_ ]?" + std::to_string(i) +
           "\\b.*\";\n";
    }
    s += "allow post;\n";
    return CompileText(s, nullptr);
  }();
  return program;
}

// A 200-byte body that matches none of the 50 patterns, so every one is run.
void BM_RegexHeavy50(benchmark::State& state) {
  Session session(RegexHeavy(), "post the weekly report");
  std::string body;
  while (body.size() < 200) body += "The weekly report is attached; numbers are up 7% on Q2. ";
  body.resize(200);
  const json args = {{"body", body}};
  if (!session.Check("post", args).allowed()) Die("regex-heavy call not allowed");
  for (auto _ : state) {
    Decision d = session.Check("post", args);
    if (!d.allowed()) state.SkipWithError("decision changed");
    benchmark::DoNotOptimize(d);
  }
  state.counters["regexes"] = 50;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 50 * 200);
}
BENCHMARK(BM_RegexHeavy50);

// --- list-heavy: `in` over a 10,000-element list ------------------------------

std::string Member(int i) { return "user" + std::to_string(i) + "@partner.example"; }

const std::shared_ptr<const Program>& ListHeavy() {
  static const std::shared_ptr<const Program> program = [] {
    std::string s = "policy list_heavy;\nlet big = [";
    for (int i = 0; i < 10000; ++i) s += (i ? ", \"" : "\"") + Member(i) + "\"";
    s += "];\n";
    s += "allow send when to in big;\n";
    s += "allow send_all when all(r in recipients, r in big);\n";
    return CompileText(s, nullptr);
  }();
  return program;
}

void ListCall(benchmark::State& state, const char* tool, const json& args) {
  Session session(ListHeavy(), "send it");
  const Outcome expected = session.Check(tool, args).outcome;
  for (auto _ : state) {
    Decision d = session.Check(tool, args);
    if (d.outcome != expected) state.SkipWithError("decision changed");
    benchmark::DoNotOptimize(d);
  }
}

// `to in big` with `to` in the list (allowed).
void BM_ListHeavyInHit(benchmark::State& state) { ListCall(state, "send", {{"to", Member(9876)}}); }
BENCHMARK(BM_ListHeavyInHit);
// `to in big` with `to` not in the list (denied, with the explanation).
void BM_ListHeavyInMiss(benchmark::State& state) {
  ListCall(state, "send", {{"to", "mallory@evil.example"}});
}
BENCHMARK(BM_ListHeavyInMiss);
// `all(r in recipients, r in big)` over 1,000 recipients, all in the list.
void BM_ListHeavyAll1000(benchmark::State& state) {
  json recipients = json::array();
  for (int i = 0; i < 1000; ++i) recipients.push_back(Member(i * 7));
  ListCall(state, "send_all", {{"recipients", recipients}});
}
BENCHMARK(BM_ListHeavyAll1000);

// `any(u in urls, url(u).host == ...)` over N distinct URLs, none matching: the
// parses of one decision are cached by input, and the cost must grow linearly
// with N (a list scan made it quadratic, 1.1 s at N = 9,000).
void BM_UrlDistinct(benchmark::State& state) {
  static const std::shared_ptr<const Program> program =
      CompileText("allow fetch when any(u in urls, url(u).host == \"never.example\");\n", nullptr);
  json urls = json::array();
  for (int64_t i = 0; i < state.range(0); ++i) {
    urls.push_back("https://h" + std::to_string(i) + ".example/a");
  }
  Session session(program, "fetch them");
  const json args = {{"urls", urls}};
  for (auto _ : state) {
    Decision d = session.Check("fetch", args);
    if (d.allowed() || !d.errors.empty()) state.SkipWithError("expected a plain denial");
    benchmark::DoNotOptimize(d);
  }
  state.SetComplexityN(state.range(0));
}
BENCHMARK(BM_UrlDistinct)->Arg(1000)->Arg(8000)->Complexity(benchmark::oN);

// --- compile time and memory per rule -------------------------------------------

size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Parse + check (against a 1,000-tool catalog) + compile of N generated rules
// (N/10 tools). The catalog is built once, outside the timing, as a host
// loads its tools file once.
void BM_CompileRules(benchmark::State& state) {
  const int rules = static_cast<int>(state.range(0));
  const std::string text = GeneratePolicy(rules / 10);
  const ToolCatalog& catalog = Catalog(1000);
  // Each stage timed on its own as well, to say where the time goes.
  double parse_s = 0, check_s = 0, compile_s = 0;
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    Source source("generated.policy", text);
    ParseResult parsed = Parse(source);
    parse_s += since(t0);
    auto t1 = std::chrono::steady_clock::now();
    CheckResult checked = Check(std::move(parsed.ast), source, &catalog);
    check_s += since(t1);
    if (checked.policy == nullptr) Die(FormatDiagnostics(source, checked.diagnostics));
    auto t2 = std::chrono::steady_clock::now();
    StatusOr<std::shared_ptr<const Program>> program = Compile(checked.policy);
    compile_s += since(t2);
    if (!program.ok()) Die(program.status().message());
    benchmark::DoNotOptimize(program);
  }
  const double per_iteration_ms = 1e3 / static_cast<double>(state.iterations());
  state.counters["parse_ms"] = parse_s * per_iteration_ms;
  state.counters["check_ms"] = check_s * per_iteration_ms;
  state.counters["compile_ms"] = compile_s * per_iteration_ms;
  // Memory the compiled Program holds: heap in use with it alive, less heap in
  // use before. Includes its copy of the catalog, the policy text and the AST
  // the checker keeps for AddRules.
  const size_t before = HeapInUse();
  std::shared_ptr<const Program> program = CompileText(text, &catalog);
  const size_t after = HeapInUse();
  state.counters["rules"] = rules;
  state.counters["program_bytes"] = static_cast<double>(after - before);
  if (rules > 0) {
    state.counters["bytes_per_rule"] = static_cast<double>(after - before) / rules;
    // Seconds per 1,000 rules (printed with an SI prefix: "12m" is 12 ms).
    state.counters["per_1000_rules"] =
        benchmark::Counter(rules / 1000.0, benchmark::Counter::kIsIterationInvariantRate |
                                               benchmark::Counter::kInvert);
  }
}
BENCHMARK(BM_CompileRules)->Arg(0)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace toolwarden
