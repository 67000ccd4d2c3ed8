// The MCP proxy over stdio (docs/mcp.md): runs an MCP server as a child
// process and a Proxy (proxy.h) between it and the client.
//
//   Proxy proxy(options);
//   int code = RunStdio(proxy, {.command = {"npx", "-y", "server"}}, report);
//
// Messages are newline-delimited JSON-RPC. The client is `client_in` and
// `client_out` (the process's own stdin and stdout); the server is the child's
// stdin and stdout; the child's stderr is the process's own, so it passes
// through unchanged. The child runs in a process group of its own; SIGINT,
// SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to this process are
// forwarded to that group, and the child gets SIGTERM if this process dies.
// Neither side can block the other: writes wait for poll(2), and a side stops
// being read while more than kMaxQueuedBytes wait to be written to the other.
//
// The session ends when the server exits or closes its stdout, when the
// client closes its stdin (or its stdout), or on a `terminate`: the server's
// stdin is closed, and it gets `grace` to exit before SIGTERM, and `grace`
// again before SIGKILL. Requests still waiting are then answered with errors
// (Proxy::ServerGone) and the child is reaped, so no zombie is left.
#ifndef TOOLWARDEN_ADAPTERS_MCP_STDIO_H_
#define TOOLWARDEN_ADAPTERS_MCP_STDIO_H_

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "adapters/mcp/proxy.h"

namespace toolwarden::mcp {

// Bytes waiting to be written to one side before the other side stops being
// read. Bounds the proxy's buffers when one side reads slower than the other
// writes (one message may still be up to kMaxMcpMessageBytes).
inline constexpr size_t kMaxQueuedBytes = 16 << 20;

// The exit code when the command cannot be started (as a shell's).
inline constexpr int kExitCannotRun = 127;

struct StdioOptions {
  std::vector<std::string> command;  // the server: program (searched in PATH) and arguments
  int client_in = 0;
  int client_out = 1;
  std::chrono::milliseconds grace{5000};
};

// Runs until the session ends, then returns the child's exit code (128 + N
// when signal N ended it), or kExitCannotRun when it could not be started.
// `report` gets lines for the operator (no final newline).
int RunStdio(Proxy& proxy, const StdioOptions& options,
             const std::function<void(const std::string&)>& report);

}  // namespace toolwarden::mcp

#endif  // TOOLWARDEN_ADAPTERS_MCP_STDIO_H_
