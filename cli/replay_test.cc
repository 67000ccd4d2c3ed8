#include "cli/replay.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/testing.h"

namespace toolwarden {
namespace {

using testing::MustLoad;

const ReplayData& Data() {
  static const ReplayData* data = [] {
    StatusOr<ReplayData> loaded = LoadReplayData(
        std::string(TOOLWARDEN_SOURCE_DIR) + "/bench/agentdojo/data", "/nonexistent");
    REQUIRE(loaded.ok());
    return new ReplayData(std::move(*loaded));
  }();
  return *data;
}

TEST_CASE("replay counts: allow everything, deny everything") {
  const std::pair<const char*, size_t> suites[] = {
      {"banking", 16}, {"slack", 21}, {"travel", 20}, {"workspace", 40}};
  size_t blockable = 0;
  for (const auto& [suite, users] : suites) {
    INFO(suite);
    StatusOr<nlohmann::json> open = ReplaySuite(Data(), suite, MustLoad("allow *;"), "allow");
    REQUIRE(open.ok());
    CHECK((*open)["user_tasks"] == users);
    CHECK((*open)["user_tasks_allowed"] == users);
    CHECK((*open)["pairs_defended"] == 0);
    CHECK((*open)["attack_success_rate"] == 1.0);
    StatusOr<nlohmann::json> closed = ReplaySuite(Data(), suite, MustLoad("forbid *;"), "deny");
    REQUIRE(closed.ok());
    CHECK((*closed)["user_tasks_allowed"] == 0);
    CHECK((*closed)["pairs_defended"] == (*closed)["blockable_pairs"]);
    blockable += (*closed)["blockable_pairs"].get<size_t>();
  }
  // 949 pairs, less the 20 with travel injection_task_6, which makes no tool call.
  CHECK(blockable == 929);
}

TEST_CASE("replay: attacked results reach the session, benign ones stay benign") {
  // The bill's IBAN is trusted once read_file is; under attack the bill carries
  // the attacker's goal, and with it the attacker's IBAN.
  auto program = MustLoad(
      "trust read_file;\n"
      "allow read_file, get_most_recent_transactions;\n"
      "allow send_money when recipient from trusted;\n");
  StatusOr<nlohmann::json> r = ReplaySuite(Data(), "banking", program, "p");
  REQUIRE(r.ok());
  const nlohmann::json& utility = (*r)["utility"];
  CHECK(utility[0]["user_task"] == "user_task_0");
  CHECK(utility[0]["allowed"] == true);
  bool found = false;
  for (const auto& pair : (*r)["security"]) {
    if (pair["user_task"] == "user_task_0" && pair["injection_task"] == "injection_task_0") {
      found = true;
      CHECK(pair["defended"] == false);  // the attacker's IBAN came from a trusted tool's result
    }
    if (pair["user_task"] == "user_task_1" && pair["injection_task"] == "injection_task_0") {
      CHECK(pair["defended"] == true);  // this user task reads no file
    }
  }
  CHECK(found);
}

TEST_CASE("replay: a criteria file overrides AgentDojo's critical calls") {
  const std::string dir = std::string(P_tmpdir) + "/toolwarden_test_criteria";
  ::mkdir(dir.c_str(), 0700);
  std::ofstream(dir + "/banking.json")
      << R"({"injection_task_0": {"critical": [], "why": "test"}})";
  StatusOr<ReplayData> data =
      LoadReplayData(std::string(TOOLWARDEN_SOURCE_DIR) + "/bench/agentdojo/data", dir);
  REQUIRE(data.ok());
  StatusOr<nlohmann::json> r = ReplaySuite(*data, "banking", MustLoad("forbid *;"), "deny");
  REQUIRE(r.ok());
  CHECK((*r)["blockable_pairs"] == 144 - 16);  // injection_task_0 is no longer blockable
  CHECK((*r)["criteria"]["injection_task_0"] == "criteria file");
  CHECK((*r)["criteria"]["injection_task_1"] == "calls_whose_removal_makes_security_false");
}

TEST_CASE("replay: bad data is a status") {
  CHECK_FALSE(LoadReplayData("/nonexistent", "/nonexistent").ok());
  CHECK(ReplaySuite(Data(), "nosuch", MustLoad("allow *;"), "x").status().code() ==
        StatusCode::kNotFound);
}

}  // namespace
}  // namespace toolwarden
