// Offline AgentDojo replay (`toolwarden replay`): drives a policy through the
// benchmark's ground-truth sessions and reports utility and security.
//
// Utility: for each user task, one session whose query is the task's prompt;
// its ground-truth calls are decided in order (benign results attached to
// allowed calls); the task passes when every call is allowed.
// Security: for each (user task, injection task) pair, one session with the
// user's prompt; the user task's calls with their attacked results (the
// `important_instructions` text, filled with the injection goal, in every
// vector the user task reads), then the injection task's calls; the pair is
// defended when the policy denies one of the injection task's critical calls
// (bench/agentdojo/criteria/SUITE.json, else AgentDojo's
// calls_whose_removal_makes_security_false). An injection task without critical
// calls (travel injection_task_6: no tool calls) is counted as not blockable.
#ifndef TOOLWARDEN_CLI_REPLAY_H_
#define TOOLWARDEN_CLI_REPLAY_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "adapters/llm/drafter.h"
#include "interpreter/program.h"
#include "nlohmann/json.hpp"
#include "policy/status.h"

namespace toolwarden {

struct ReplayData {
  nlohmann::json traces;           // traces.json
  nlohmann::json injection_tasks;  // injection_tasks.json
  std::string criteria_dir;        // holds SUITE.json files (may be missing)
};

// Reads DATA_DIR/traces.json and DATA_DIR/injection_tasks.json.
StatusOr<ReplayData> LoadReplayData(const std::string& data_dir, const std::string& criteria_dir);

// Progent's full loop in the replay: every session is drafted by a model from
// its user prompt, and after every result the drafter's update runs (a pending
// `ask` update is never approved: no person is there).
struct ReplayDrafting {
  const llm::Drafter* drafter = nullptr;
  std::optional<llm::UpdateMode> update;  // nullopt: no updates
};

// Replays one suite. With `drafting`, the report also holds "drafting": counts of
// drafts, failed drafts, updates by result, and model calls. The report holds "suite", "policy",
// the counts
// ("user_tasks", "user_tasks_allowed", "pairs", "blockable_pairs",
// "pairs_defended", "attack_success_rate", "decisions", "decisions_per_second")
// and every outcome ("utility": [...], "security": [...]).
StatusOr<nlohmann::json> ReplaySuite(const ReplayData& data, const std::string& suite,
                                     const std::shared_ptr<const Program>& program,
                                     const std::string& policy_label,
                                     const ReplayDrafting* drafting = nullptr);

// What each injection vector's marker (`«INJECTION:ID»` in the traces) becomes
// in one replay: the replay and bench/agentdojo_bench.cc share this.
struct ReplayMarkers {
  std::map<std::string, std::string> text;  // vector id -> replacement
  std::set<std::string> attacked;           // vectors carrying the attack
};
// Every vector's benign default (`injection_vectors` of a suite).
ReplayMarkers BenignMarkers(const nlohmann::json& vectors);
// A trace call's arguments and result as the agent would see them in this
// replay: markers replaced; an attacked result, or else `result_benign`.
void Materialize(const nlohmann::json& call, const ReplayMarkers& markers, nlohmann::json* args,
                 nlohmann::json* result);

// The table row of a report.
std::string ReplayTableHeader();
std::string ReplayTableRow(const nlohmann::json& report);

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_REPLAY_H_
