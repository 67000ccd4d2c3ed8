#include "cli/mcp.h"

#include <memory>
#include <utility>

#include "adapters/log/decision_log.h"
#include "adapters/mcp/proxy.h"
#include "adapters/mcp/stdio.h"
#include "cli/commands.h"
#include "interpreter/loader.h"

namespace toolwarden {

int RunMcp(const McpOptions& options, std::ostream& err) {
  auto report = [&err](const std::string& text) {
    err << "toolwarden mcp: " << text << "\n";
    err.flush();
  };
  LoadOptions load;
  load.tools_path = options.tools;
  LoadedPolicy loaded = LoadPolicyFile(options.policy, load);
  if (!loaded.ok()) {
    report("the policy does not load:");
    err << loaded.ErrorText();
    return kExitFailed;
  }
  if (!loaded.diagnostics.Sorted().empty())
    err << FormatDiagnostics(loaded.source, loaded.diagnostics);
  std::unique_ptr<DecisionLog> log;
  if (options.decision_log) {
    LogOptions log_options;
    log_options.fsync_each = options.fsync_each;
    StatusOr<std::unique_ptr<DecisionLog>> opened =
        DecisionLog::Open(*options.decision_log, log_options);
    if (!opened.ok()) {
      report("decision log: " + opened.status().message());
      return kExitFailed;
    }
    log = std::move(*opened);
  }
  mcp::ProxyOptions proxy_options;
  proxy_options.program = loaded.program;
  proxy_options.policy_source = loaded.source;
  proxy_options.query = options.query;
  proxy_options.log = log.get();
  proxy_options.report = report;
  mcp::Proxy proxy(std::move(proxy_options));
  mcp::StdioOptions stdio;
  stdio.command = options.command;
  stdio.grace = options.grace;
  int code = mcp::RunStdio(proxy, stdio, report);
  if (log) {
    Status flushed = log->Flush();
    if (!flushed.ok()) report("decision log: " + flushed.message());
  }
  return code;
}

}  // namespace toolwarden
