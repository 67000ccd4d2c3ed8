// `toolwarden draft`: asks a model server to draft least-privilege rules for
// one task (adapters/llm/drafter.h) and prints the policy with them: the
// `--policy` file, or a minimal one naming the `--tools` file, followed by the
// drafted rules. Nothing is printed on stdout unless the draft succeeded.
#ifndef TOOLWARDEN_CLI_DRAFT_H_
#define TOOLWARDEN_CLI_DRAFT_H_

#include <optional>
#include <ostream>
#include <string>

#include "adapters/llm/drafter.h"

namespace toolwarden {

struct DraftOptions {
  std::string tools_path;                  // the tools the agent has
  std::string query;                       // the user's task
  std::optional<std::string> policy_path;  // hand-written rules that come first
  llm::LlmConfig llm;
};

// Returns the process exit code: 0 drafted, 1 the model gave no usable rules
// (the reason on `err`), 2 bad input (policy, tools, configuration).
int RunDraft(const DraftOptions& options, std::ostream& out, std::ostream& err,
             const llm::TransportHooks& hooks = {});

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_DRAFT_H_
