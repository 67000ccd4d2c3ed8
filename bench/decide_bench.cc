// Micro-benchmarks of deciding calls against the example banking policy.
//
//   build/decide_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Results and the exact command are in docs/performance.md.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>

#include "interpreter/loader.h"
#include "interpreter/session.h"

namespace toolwarden {
namespace {

std::shared_ptr<const Program> Banking() {
  static std::shared_ptr<const Program> program = [] {
    LoadedPolicy loaded =
        LoadPolicyFile(std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/examples/banking.policy");
    if (!loaded.ok()) {
      std::cerr << loaded.ErrorText();
      std::abort();
    }
    return loaded.program;
  }();
  return program;
}

void Run(benchmark::State& state, const char* tool, const nlohmann::json& args) {
  Session session(Banking(), "Pay the bill, then update my password to hunter2");
  Outcome expected = session.Check(tool, args).outcome;
  for (auto _ : state) {
    Decision d = session.Check(tool, args);
    if (d.outcome != expected) state.SkipWithError("decision changed");
    benchmark::DoNotOptimize(d);
  }
}

void BM_AllowSendMoney(benchmark::State& state) {
  Run(state, "send_money",
      {{"recipient", "UK12345678901234567890"},
       {"amount", 100},
       {"subject", "rent"},
       {"date", "2024-01-01"}});
}
BENCHMARK(BM_AllowSendMoney);

void BM_AllowReadTool(benchmark::State& state) {
  Run(state, "get_balance", nlohmann::json::object());
}
BENCHMARK(BM_AllowReadTool);

void BM_AllowProvenance(benchmark::State& state) {
  Run(state, "update_password", {{"password", "hunter2"}});
}
BENCHMARK(BM_AllowProvenance);

void BM_DenyWithExplanation(benchmark::State& state) {
  Run(state, "send_money",
      {{"recipient", "US133000000121212121212"}, {"amount", 100}, {"subject", "x"}, {"date", "d"}});
}
BENCHMARK(BM_DenyWithExplanation);

void BM_DenyUnknownTool(benchmark::State& state) {
  Run(state, "delete_account", nlohmann::json::object());
}
BENCHMARK(BM_DenyUnknownTool);

void BM_Compile(benchmark::State& state) {
  for (auto _ : state) {
    LoadedPolicy loaded =
        LoadPolicyFile(std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/examples/banking.policy");
    benchmark::DoNotOptimize(loaded);
  }
}
BENCHMARK(BM_Compile);

}  // namespace
}  // namespace toolwarden

BENCHMARK_MAIN();
