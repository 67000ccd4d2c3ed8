// `toolwarden verify-log FILE [--expect-head HASH] [--json]` (docs/cli.md): checks the hash chain
// of a decision log (adapters/log/decision_log.h) and, with an anchor kept elsewhere, its end.
#ifndef TOOLWARDEN_CLI_VERIFY_LOG_H_
#define TOOLWARDEN_CLI_VERIFY_LOG_H_

#include <optional>
#include <ostream>
#include <string>

namespace toolwarden {

struct VerifyLogOptions {
  // "sha256:<64 lower-case hex>" (IsLogHash) that the last line must hash to.
  std::optional<std::string> expect_head;
  bool json = false;  // print one JSON object instead of a line of text
};

// Verifies the log at `path`. Text output, on `out`:
//   FILE: N lines, chain intact, head sha256:...      exit kExitOk
//   FILE:LINE: <what is wrong>                         exit kExitFailed
// (FILE: <what is wrong> when a head mismatch concerns an empty log). With
// `json`: {"file", "lines", "bytes", "head", "intact", "problem": {"line",
// "message"} | null[, "expected_head"]} and the same exit codes. A file that
// cannot be read: "error: ..." on `err`, kExitUsage.
int RunVerifyLog(const std::string& path, const VerifyLogOptions& options, std::ostream& out,
                 std::ostream& err);

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_VERIFY_LOG_H_
