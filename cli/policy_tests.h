// Policy test files (`toolwarden test`): data-file cases that pin decisions.
//
//   {"policy": "PATH" | "policy_text": "TEXT", "tools"?: "PATH",
//    "expect_load_error"?: "SUBSTRING",
//    "cases": [{"name": "...", "query"?: "...", "trusted"?: ["..."],
//               "calls": [{"tool": "...", "args": {...}, "result"?: ...,
//                          "expect": "allow|deny|ask|terminate",
//                          "rule"?: "FILE:LINE" | null, "reason"?: "SUBSTRING",
//                          "message"?: "SUBSTRING", "error"?: "SUBSTRING"}]}]}
//
// Paths are relative to the test file. Each case is one Session; its calls are
// decided in order and `result` is attached to an allowed call. `rule: null`
// expects no deciding rule (the default fallback). With `expect_load_error`, the
// policy must fail to load with that text in its diagnostics (one case).
#ifndef TOOLWARDEN_CLI_POLICY_TESTS_H_
#define TOOLWARDEN_CLI_POLICY_TESTS_H_

#include <string>
#include <vector>

namespace toolwarden {

struct PolicyTestReport {
  size_t passed = 0;
  size_t failed = 0;
  std::vector<std::string> failures;  // one line per failing case
};

PolicyTestReport RunPolicyTestFile(const std::string& path);

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_POLICY_TESTS_H_
