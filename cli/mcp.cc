#include "cli/mcp.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "adapters/log/decision_log.h"
#include "adapters/mcp/http.h"
#include "adapters/mcp/proxy.h"
#include "adapters/mcp/stdio.h"
#include "cli/commands.h"
#include "interpreter/loader.h"

namespace toolwarden {

int RunMcp(const McpOptions& options, std::ostream& err) {
  // A closed stdin, stdout or stderr would be reused by the first pipe the
  // proxy makes, and the proxy would read its own signals as the client.
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      int null = open("/dev/null", O_RDWR);
      if (null >= 0 && null != fd) {
        dup2(null, fd);
        close(null);
      }
    }
  }
  // Lines may come from many threads (one per HTTP connection): one at a time.
  std::mutex mutex;
  std::function<void(const std::string&)> report = [&err, &mutex](const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex);
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
  int code;
  if (options.upstream) {
    mcp::HttpProxyOptions http;
    http.host = options.listen_host;
    http.port = options.listen_port;
    http.upstream = *options.upstream;
    std::atomic<size_t> sessions{0};
    http.new_session = [&proxy_options, &sessions] {
      mcp::ProxyOptions each = proxy_options;
      each.elicitation = false;
      each.session_name = "mcp-" + std::to_string(++sessions);
      return each;
    };
    code = mcp::RunHttp(http, report);
  } else {
    mcp::Proxy proxy(std::move(proxy_options));
    mcp::StdioOptions stdio;
    stdio.command = options.command;
    stdio.grace = options.grace;
    code = mcp::RunStdio(proxy, stdio, report);
  }
  if (log) {
    Status flushed = log->Flush();
    if (!flushed.ok()) report("decision log: " + flushed.message());
  }
  return code;
}

}  // namespace toolwarden
