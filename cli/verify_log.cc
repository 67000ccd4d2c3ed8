#include "cli/verify_log.h"

#include <utility>

#include "adapters/log/decision_log.h"
#include "cli/commands.h"
#include "nlohmann/json.hpp"

namespace toolwarden {

int RunVerifyLog(const std::string& path, const VerifyLogOptions& options, std::ostream& out,
                 std::ostream& err) {
  StatusOr<LogVerification> verified = VerifyLog(path);
  if (!verified.ok()) {
    err << "error: " << verified.status().message() << "\n";
    return kExitUsage;
  }
  std::optional<LogProblem> problem = verified->problem;
  if (!problem && options.expect_head && *options.expect_head != verified->head) {
    problem = LogProblem{static_cast<size_t>(verified->lines),
                         "the last line hashes to " + verified->head + ", not the expected " +
                             *options.expect_head +
                             ": lines were appended or removed at the end, or the last line "
                             "was edited, since that head was recorded"};
  }

  if (options.json) {
    nlohmann::ordered_json report = nlohmann::ordered_json::object();
    report["file"] = path;
    report["lines"] = verified->lines;
    report["bytes"] = verified->bytes;
    report["head"] = verified->head;
    report["intact"] = !problem.has_value();
    report["problem"] =
        problem ? nlohmann::ordered_json{{"line", problem->line}, {"message", problem->message}}
                : nlohmann::ordered_json();
    if (options.expect_head) report["expected_head"] = *options.expect_head;
    out << report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (problem) {
    out << path << (problem->line > 0 ? ":" + std::to_string(problem->line) : std::string()) << ": "
        << problem->message << "\n";
  } else {
    out << path << ": " << verified->lines << (verified->lines == 1 ? " line" : " lines")
        << ", chain intact, head " << verified->head << "\n";
  }
  return problem ? kExitFailed : kExitOk;
}

}  // namespace toolwarden
