#include "cli/serve.h"

#include <signal.h>

#include <cerrno>
#include <ctime>

#include "adapters/llm/protocol.h"
#include "adapters/log/decision_log.h"

namespace toolwarden {

bool ParseListen(const std::string& text, ServerOptions* options) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = text.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  const unsigned long value = std::stoul(port);
  if (value > 65535) return false;
  options->host = host.empty() ? "127.0.0.1" : host;
  options->port = static_cast<uint16_t>(value);
  return true;
}

namespace {

void LogReload(const ReloadReport& report, const PolicyStore& store, DecisionLog* log,
               std::ostream& err) {
  const nlohmann::json status = store.Summary();
  for (const std::string& name : report.loaded) {
    err << "toolwarden: loaded policy " << name << " (" << status[name]["hash"].get<std::string>()
        << ")\n";
  }
  for (const std::string& name : report.failed) {
    err << "toolwarden: policy " << name << " has errors; "
        << (status[name]["hash"].is_null() ? "not serving it" : "keeping the last good version")
        << ":\n"
        << status[name]["error"].get<std::string>();
  }
  for (const std::string& name : report.removed)
    err << "toolwarden: removed policy " << name << "\n";
  if (log == nullptr) return;
  nlohmann::ordered_json entry;
  entry["kind"] = "reload";
  entry["loaded"] = report.loaded;
  entry["failed"] = report.failed;
  entry["removed"] = report.removed;
  entry["policies"] = status;
  Status logged = log->Append(std::move(entry));
  if (!logged.ok())
    err << "toolwarden: cannot write the decision log: " << logged.message() << "\n";
}

}  // namespace

int RunServe(const ServeOptions& options, std::ostream& err) {
  std::unique_ptr<DecisionLog> log;
  if (options.decision_log) {
    StatusOr<std::unique_ptr<DecisionLog>> opened =
        DecisionLog::Open(*options.decision_log, LogOptions{options.fsync_each});
    if (!opened.ok()) {
      err << "error: " << opened.status().message() << "\n";
      return 2;
    }
    log = std::move(*opened);
  }
  PolicyStore store(options.policies_dir);
  Service service(&store, log.get(), options.service);
  StatusOr<ReloadReport> first = store.Reload();
  if (!first.ok()) {
    err << "error: " << first.status().message() << "\n";
    return 2;
  }
  LogReload(*first, store, log.get(), err);
  service.CountReload(first->failed.empty());
  if (options.service.llm) {
    const llm::Endpoint& endpoint = options.service.llm->endpoint;  // never the API key
    // Nor a key in the URL: no user-info, no query.
    std::string shown = endpoint.base_url.substr(0, endpoint.base_url.find_first_of("?#"));
    const size_t host = shown.find("://") == std::string::npos ? 0 : shown.find("://") + 3;
    const size_t at = shown.find('@', host);
    if (at != std::string::npos && at < shown.find('/', host)) shown.erase(host, at + 1 - host);
    err << "toolwarden: drafting with model " << endpoint.model << " at " << shown << " ("
        << llm::ProtocolName(endpoint.protocol) << ")\n";
  }

  // Signals are taken synchronously here; the server's threads inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      options.server, [&service](const HttpRequest& r) { return service.Handle(r); },
      [&service](int status) { service.CountHttpError(status); });
  if (!server.ok()) {
    err << "error: " << server.status().message() << "\n";
    return 2;
  }
  err << "toolwarden: listening on http://" << options.server.host << ":" << (*server)->port()
      << "\n"
      << std::flush;

  const int64_t interval_ns = std::chrono::nanoseconds(options.reload_interval).count();
  const timespec timeout{static_cast<time_t>(interval_ns / 1000000000),
                         static_cast<long>(interval_ns % 1000000000)};
  for (;;) {
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT) break;
    if (sig < 0 && errno != EAGAIN && errno != EINTR) break;
    StatusOr<ReloadReport> report = store.Reload();
    if (!report.ok()) {
      err << "toolwarden: " << report.status().message() << "\n";
      service.CountReload(false);
    } else if (report->changed) {
      LogReload(*report, store, log.get(), err);
      service.CountReload(report->failed.empty());
    }
    service.ExpireIdle();
  }
  err << "toolwarden: shutting down\n";
  (*server)->Stop();
  int code = 0;
  if (log != nullptr) {
    Status flushed = log->Flush();
    if (!flushed.ok()) {
      err << "error: cannot flush the decision log: " << flushed.message() << "\n";
      code = 1;
    }
  }
  err << "toolwarden: stopped\n" << std::flush;
  return code;
}

}  // namespace toolwarden
