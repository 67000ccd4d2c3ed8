// `toolwarden mcp`: the MCP proxy over stdio (docs/mcp.md). Runs an MCP server
// as a child and decides every tools/call the client sends it, with the
// process's own stdin and stdout as the client's side.
#ifndef TOOLWARDEN_CLI_MCP_H_
#define TOOLWARDEN_CLI_MCP_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace toolwarden {

struct McpOptions {
  std::string policy;                       // the policy file
  std::optional<std::string> tools;         // tool schemas to check it against at start
  std::optional<std::string> query;         // the user's query, fixed for the session
  std::optional<std::string> decision_log;  // the hash-chained log (docs/decision-log.md)
  bool fsync_each = false;                  // fsync the log after every line
  std::chrono::milliseconds grace{5000};    // before SIGTERM, and again before SIGKILL
  std::vector<std::string> command;         // the server and its arguments, or
  std::optional<std::string> upstream;      // the upstream server's Streamable HTTP endpoint
  std::string listen_host = "127.0.0.1";    // where to serve it (with `upstream`)
  uint16_t listen_port = 0;
};

// Over stdio, runs the proxy until the session ends and returns the server's
// exit code (128 + N when signal N ended it), or 127 when it cannot be
// started. Over HTTP (`upstream` set), serves until SIGINT or SIGTERM and
// returns 0, or kExitFailed when it cannot listen. Both return kExitFailed (1)
// when the policy does not load or the log cannot be opened. Problems and
// notes go to `err`, each line starting "toolwarden mcp: ".
int RunMcp(const McpOptions& options, std::ostream& err);

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_MCP_H_
