// `toolwarden serve`: the HTTP sidecar (docs/sidecar.md) until SIGTERM or
// SIGINT. SIGHUP reloads the policy directory at once; it is also polled.
// With a model server (`service.llm`, from --llm/--model or TOOLWARDEN_LLM_*),
// sessions may ask for drafted rules and their updates.
#ifndef TOOLWARDEN_CLI_SERVE_H_
#define TOOLWARDEN_CLI_SERVE_H_

#include <chrono>
#include <optional>
#include <ostream>
#include <string>

#include "adapters/http/server.h"
#include "adapters/http/service.h"

namespace toolwarden {

struct ServeOptions {
  std::string policies_dir;
  ServerOptions server;    // listen address, threads, HTTP limits
  ServiceOptions service;  // sessions, body limit, the model server (optional)
  std::optional<std::string> decision_log;
  bool fsync_each = false;  // fsync the log after every line
  std::chrono::milliseconds reload_interval = std::chrono::seconds(1);
};

// "HOST:PORT" or ":PORT" (loopback) into `options`; false when malformed.
bool ParseListen(const std::string& text, ServerOptions* options);

// Runs the sidecar; returns the process exit code (0 after a clean shutdown).
// Prints "toolwarden: listening on http://HOST:PORT" on `err` once ready.
int RunServe(const ServeOptions& options, std::ostream& err);

}  // namespace toolwarden

#endif  // TOOLWARDEN_CLI_SERVE_H_
