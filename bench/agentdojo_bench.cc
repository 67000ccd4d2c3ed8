// Deciding AgentDojo's own calls against the four suite policies
// (policies/agentdojo/SUITE.policy), from the replay data in the repository
// (bench/agentdojo/data/traces.json, AgentDojo v1.2.2, ETH Zurich SPY Lab, MIT
// licence).
//
// For each suite two call sets, each cycled through by one benchmark:
//   - allowed: every ground-truth call of every user task, in the session the
//     offline replay builds for it (the task's prompt as the query, the earlier
//     calls recorded with their benign results attached);
//   - denied: every injection-task call the policy denies, for every (user
//     task, injection task) pair, in the session of that pair (the user task's
//     calls with the attacked results first, as `toolwarden replay` does).
// Each benchmark iteration is one Session::Check of the next call (the
// session is a copy taken just before the call, so Check sees exactly the
// history the replay had). Besides Google Benchmark's time per call (the mean
// over the cycle), the counters `call_p50_ns` and `call_max_ns` give the
// median and the largest of the per-call times (each call timed alone,
// repeated, in thread CPU time), since the mean hides which calls are slow.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli/replay.h"
#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "policy/json_limits.h"

namespace toolwarden {
namespace {

using nlohmann::json;

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "agentdojo_bench: " << message << "\n";
  std::abort();
}

struct Call {
  const Session* session;
  std::string tool;
  json args;
  Outcome expected;
};

struct SuiteCalls {
  std::shared_ptr<const Program> program;
  std::deque<Session> sessions;  // stable addresses
  std::vector<Call> allowed;
  std::vector<Call> denied;
};

const json& Traces() {
  static const json traces = [] {
    const std::string path =
        std::string(TOOLWARDEN_SOURCE_DIR) + "/bench/agentdojo/data/traces.json";
    StatusOr<std::string> text = ReadTextFile(path, kMaxJsonBytes);
    if (!text.ok()) Die(path + ": " + text.status().message());
    StatusOr<json> parsed = ParseJson(*text);
    if (!parsed.ok()) Die(path + ": " + parsed.status().message());
    return std::move(*parsed);
  }();
  return traces;
}

SuiteCalls BuildSuite(const std::string& suite) {
  SuiteCalls out;
  const std::string policy =
      std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/agentdojo/" + suite + ".policy";
  LoadedPolicy loaded = LoadPolicyFile(policy);
  if (!loaded.ok()) Die(loaded.ErrorText());
  out.program = loaded.program;

  const json& traces = Traces();
  const json& s = traces["suites"][suite];
  const ReplayMarkers benign = BenignMarkers(s["injection_vectors"]);
  const std::string tmpl = traces["attack"]["template"].get<std::string>();

  // Runs `calls` in `session` (Decide, then the result attached); `keep`
  // says which calls to benchmark, with the session as it was just before.
  auto run = [&](Session& session, const json& calls, const ReplayMarkers& markers,
                 std::vector<Call>* kept, bool want_allowed) {
    for (const json& call : calls) {
      json args, result;
      Materialize(call, markers, &args, &result);
      const std::string tool = call["function"].get<std::string>();
      Session before = session;
      Decision d = session.Decide(tool, args);
      if (d.allowed()) (void)session.AttachResult(*d.call, result);
      if (kept != nullptr && d.allowed() == want_allowed) {
        out.sessions.push_back(std::move(before));
        kept->push_back(Call{&out.sessions.back(), tool, args, d.outcome});
      }
    }
  };

  for (const json& u : s["user_tasks"]) {
    Session session(out.program, u.value("prompt", ""));
    run(session, u["calls"], benign, &out.allowed, true);
    if (out.allowed.size() != out.sessions.size()) Die(suite + ": a user-task call was denied");
  }
  size_t user_calls = 0;
  for (const json& u : s["user_tasks"]) user_calls += u["calls"].size();
  if (out.allowed.size() != user_calls) Die(suite + ": not every user-task call is allowed");

  for (const json& u : s["user_tasks"]) {
    for (const json& inj : s["injection_tasks"]) {
      std::string attack = tmpl;
      const std::string goal = inj.value("goal", "");
      for (size_t at; (at = attack.find("{goal}")) != std::string::npos;)
        attack.replace(at, 6, goal);
      ReplayMarkers markers = benign;
      for (const json& v : u["vectors_read"]) {
        markers.text[v.get<std::string>()] = attack;
        markers.attacked.insert(v.get<std::string>());
      }
      Session session(out.program, u.value("prompt", ""));
      run(session, u["calls"], markers, nullptr, true);
      run(session, inj["calls"], markers, &out.denied, false);
    }
  }
  return out;
}

const SuiteCalls& Suite(const std::string& name) {
  static std::map<std::string, SuiteCalls> suites;
  auto it = suites.find(name);
  if (it == suites.end()) it = suites.emplace(name, BuildSuite(name)).first;
  return it->second;
}

// Median and largest per-call time: each call alone, `repeat` times in a row.
void PerCallCounters(benchmark::State& state, const std::vector<Call>& calls, int repeat) {
  std::vector<double> ns;
  ns.reserve(calls.size());
  const bool show = std::getenv("TOOLWARDEN_BENCH_SHOW_SLOW") != nullptr;
  // Thread CPU time, so a call during which the thread was preempted (this
  // machine is shared) is not counted as slow.
  auto now = [] {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
  };
  for (const Call& c : calls) {
    const double start = now();
    for (int i = 0; i < repeat; ++i) {
      Decision d = c.session->Check(c.tool, c.args);
      benchmark::DoNotOptimize(d);
    }
    ns.push_back((now() - start) / repeat);
    if (show && ns.back() > 20000) {
      std::cerr << ns.back() << " ns: " << c.tool << " " << c.args.dump().substr(0, 300) << "\n";
    }
  }
  std::sort(ns.begin(), ns.end());
  state.counters["calls"] = static_cast<double>(calls.size());
  state.counters["call_p50_ns"] = ns[ns.size() / 2];
  state.counters["call_max_ns"] = ns.back();
}

void Cycle(benchmark::State& state, const std::vector<Call>& calls, int repeat) {
  if (calls.empty()) {
    state.SkipWithError("no calls");
    return;
  }
  size_t i = 0;
  for (auto _ : state) {
    const Call& c = calls[i];
    i = i + 1 == calls.size() ? 0 : i + 1;
    Decision d = c.session->Check(c.tool, c.args);
    if (d.outcome != c.expected) state.SkipWithError("decision changed");
    benchmark::DoNotOptimize(d);
  }
  PerCallCounters(state, calls, repeat);
}

void BM_AgentDojoAllowed(benchmark::State& state, const char* suite) {
  Cycle(state, Suite(suite).allowed, 32);
}
void BM_AgentDojoDenied(benchmark::State& state, const char* suite) {
  Cycle(state, Suite(suite).denied, 8);
}

BENCHMARK_CAPTURE(BM_AgentDojoAllowed, banking, "banking");
BENCHMARK_CAPTURE(BM_AgentDojoAllowed, slack, "slack");
BENCHMARK_CAPTURE(BM_AgentDojoAllowed, travel, "travel");
BENCHMARK_CAPTURE(BM_AgentDojoAllowed, workspace, "workspace");
BENCHMARK_CAPTURE(BM_AgentDojoDenied, banking, "banking");
BENCHMARK_CAPTURE(BM_AgentDojoDenied, slack, "slack");
BENCHMARK_CAPTURE(BM_AgentDojoDenied, travel, "travel");
BENCHMARK_CAPTURE(BM_AgentDojoDenied, workspace, "workspace");

}  // namespace
}  // namespace toolwarden
