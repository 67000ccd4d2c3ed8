#include "cli/commands.h"

#include <chrono>
#include <fstream>
#include <map>
#include <optional>

#include "adapters/log/decision_log.h"
#include "cli/draft.h"
#include "cli/mcp.h"
#include "cli/policy_tests.h"
#include "cli/replay.h"
#include "cli/serve.h"
#include "cli/verify_log.h"
#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "policy/formatter.h"
#include "policy/json_limits.h"
#include "policy/progent_import.h"

namespace toolwarden {
namespace {

constexpr char kUsage[] =
    "usage: toolwarden COMMAND ...\n"
    "  lint FILE... [--tools FILE] [--format text|json]\n"
    "  check --policy FILE --tool NAME --args JSON [--query TEXT] [--tools FILE] [--trusted "
    "VALUE]...\n"
    "  test FILE.json...\n"
    "  fmt FILE [--check | --write]\n"
    "  import --from progent FILE.json\n"
    "  replay (--suite SUITE --policy FILE | --policy-dir DIR) [--data DIR] [--criteria DIR]\n"
    "         [--json FILE] [--require-all]\n"
    "         [--llm URL --model NAME [--protocol P] [--draft-format json|policy]\n"
    "          [--update narrow-only|ask|any|off]]\n"
    "  verify-log FILE [--expect-head HASH] [--json]\n"
    "  serve --policies DIR [--listen HOST:PORT] [--decision-log FILE] [--fsync] [--threads N]\n"
    "        [--max-sessions N] [--session-idle SECONDS] [--reload-interval MS]\n"
    "        [--llm URL --model NAME [--protocol P] [--draft-format json|policy]]\n"
    "  draft --tools FILE --query TEXT [--policy FILE] [--llm URL] [--model NAME]\n"
    "        [--protocol openai|llama.cpp|anthropic|ollama] [--format json|policy]\n"
    "        [--repairs N] [--timeout SECONDS] [--max-tokens N]\n"
    "  mcp --policy FILE [--tools FILE] [--query TEXT] [--decision-log FILE] [--fsync]\n"
    "      ([--shutdown-grace MS] -- COMMAND ARGS... | [--listen HOST:PORT] --upstream URL)\n"
    "See docs/cli.md.\n";

// Flags of the form --name VALUE (repeatable ones collect every value), plus
// positional arguments. Boolean flags are listed in `switches`.
struct Flags {
  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> switches_set;
  std::vector<std::string> positional;
  std::string error;

  std::optional<std::string> Get(const std::string& name) const {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
  bool Has(const std::string& name) const {
    for (const auto& s : switches_set) {
      if (s == name) return true;
    }
    return false;
  }
};

Flags ParseFlags(const std::vector<std::string>& args, size_t start,
                 const std::vector<std::string>& with_value,
                 const std::vector<std::string>& switches) {
  Flags flags;
  for (size_t i = start; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      std::string name = a.substr(2);
      std::optional<std::string> inline_value;
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      if (std::find(with_value.begin(), with_value.end(), name) != with_value.end()) {
        if (!inline_value && i + 1 >= args.size()) {
          flags.error = "flag --" + name + " needs a value";
          return flags;
        }
        flags.values[name].push_back(inline_value ? *inline_value : args[++i]);
      } else if (std::find(switches.begin(), switches.end(), name) != switches.end() &&
                 !inline_value) {
        flags.switches_set.push_back(name);
      } else {
        flags.error = "unknown flag --" + name;
        return flags;
      }
    } else {
      flags.positional.push_back(a);
    }
  }
  return flags;
}

int Usage(std::ostream& err, const std::string& message) {
  err << "toolwarden: " << message << "\n" << kUsage;
  return kExitUsage;
}

template <typename Json>
std::string Dump(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

int Lint(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1, {"tools", "format"}, {});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (flags.positional.empty()) return Usage(err, "lint needs at least one policy file");
  const std::string format = flags.Get("format").value_or("text");
  if (format != "text" && format != "json") return Usage(err, "--format is text or json");
  LoadOptions options;
  options.tools_path = flags.Get("tools");
  bool any_errors = false;
  nlohmann::json all = nlohmann::json::array();
  for (const std::string& path : flags.positional) {
    LoadedPolicy loaded = LoadPolicyFile(path, options);
    any_errors = any_errors || !loaded.ok();
    if (format == "json") {
      if (!loaded.status.ok()) {
        all.push_back({{"file", path},
                       {"line", 0},
                       {"column", 0},
                       {"severity", "error"},
                       {"message", loaded.status.message()}});
      }
      for (const auto& d : DiagnosticsToJson(loaded.source, loaded.diagnostics)) all.push_back(d);
      continue;
    }
    std::string text = loaded.ErrorText();
    if (text.empty()) {
      out << path << ": ok\n";
    } else {
      out << text;
    }
  }
  if (format == "json") out << Dump(all, 2) << "\n";
  return any_errors ? kExitFailed : kExitOk;
}

int Check(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1, {"policy", "tool", "args", "query", "tools", "trusted"}, {});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (!flags.positional.empty()) return Usage(err, "check takes no positional arguments");
  auto policy = flags.Get("policy");
  auto tool = flags.Get("tool");
  auto args_text = flags.Get("args");
  if (!policy || !tool || !args_text) return Usage(err, "check needs --policy, --tool and --args");
  StatusOr<nlohmann::json> call_args = ParseJson(*args_text);
  if (!call_args.ok()) return Usage(err, "--args: " + call_args.status().message());
  if (!call_args->is_object()) return Usage(err, "--args must be a JSON object");
  LoadOptions options;
  options.tools_path = flags.Get("tools");
  LoadedPolicy loaded = LoadPolicyFile(*policy, options);
  if (!loaded.ok()) {
    err << loaded.ErrorText();
    return kExitUsage;
  }
  std::vector<std::string> trusted;
  auto it = flags.values.find("trusted");
  if (it != flags.values.end()) trusted = it->second;
  Session session(loaded.program, flags.Get("query").value_or(""), std::move(trusted));
  Decision decision = session.Check(*tool, *call_args);
  out << Dump(DecisionToJson(decision), 2) << "\n";
  return decision.allowed() ? kExitOk : kExitFailed;
}

int Test(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1, {}, {});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (flags.positional.empty()) return Usage(err, "test needs at least one test file");
  size_t passed = 0, failed = 0;
  for (const std::string& path : flags.positional) {
    PolicyTestReport report = RunPolicyTestFile(path);
    passed += report.passed;
    failed += report.failed;
    for (const std::string& f : report.failures) out << "FAIL " << f << "\n";
  }
  out << passed << " passed, " << failed << " failed\n";
  return failed > 0 ? kExitFailed : kExitOk;
}

int Fmt(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1, {}, {"check", "write"});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (flags.positional.size() != 1) return Usage(err, "fmt takes one policy file");
  if (flags.Has("check") && flags.Has("write"))
    return Usage(err, "--check and --write exclude each other");
  const std::string& path = flags.positional[0];
  StatusOr<std::string> text = ReadTextFile(path, kMaxSourceBytes);
  if (!text.ok()) {
    err << "error: " << text.status().message() << "\n";
    return kExitUsage;
  }
  Source source(path, *text);
  ParseResult parsed = Parse(source);
  if (parsed.diagnostics.HasErrors()) {
    err << FormatDiagnostics(source, parsed.diagnostics);
    return kExitFailed;
  }
  std::string formatted = Format(parsed.ast, source);
  if (flags.Has("check")) {
    if (formatted == *text) return kExitOk;
    out << path << ": not formatted; run `toolwarden fmt --write " << path << "`\n";
    return kExitFailed;
  }
  if (flags.Has("write")) {
    if (formatted == *text) return kExitOk;
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    file << formatted;
    if (!file.good()) {
      err << "error: cannot write `" << path << "`\n";
      return kExitUsage;
    }
    return kExitOk;
  }
  out << formatted;
  return kExitOk;
}

int Import(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1, {"from"}, {});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (flags.Get("from").value_or("") != "progent") return Usage(err, "import needs --from progent");
  if (flags.positional.size() != 1) return Usage(err, "import takes one JSON file");
  const std::string& path = flags.positional[0];
  StatusOr<std::string> text = ReadTextFile(path, kMaxJsonBytes);
  if (!text.ok()) {
    err << "error: " << text.status().message() << "\n";
    return kExitUsage;
  }
  StatusOr<std::string> policy = ImportProgent(*text, path);
  if (!policy.ok()) {
    err << path << ": error: " << policy.status().message() << "\n";
    return kExitFailed;
  }
  out << *policy;
  return kExitOk;
}

// Loads a replay policy: a policy file, or a Progent JSON policy imported on the fly.
LoadedPolicy LoadReplayPolicy(const std::string& path) {
  if (path.size() < 5 || path.compare(path.size() - 5, 5, ".json") != 0)
    return LoadPolicyFile(path);
  StatusOr<std::string> json = ReadTextFile(path, kMaxJsonBytes);
  StatusOr<std::string> text =
      json.ok() ? ImportProgent(*json, path) : StatusOr<std::string>(json.status());
  if (!text.ok()) {
    LoadedPolicy failed;
    failed.source = Source(path, "");
    failed.status = Status(text.status().code(), path + ": " + text.status().message());
    return failed;
  }
  return LoadPolicyText(path, std::move(*text), DirName(path));
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

// Reads the model server flags shared by `draft` and `serve` over the
// TOOLWARDEN_LLM_* environment; "" or a usage message.
std::string LlmFlags(const Flags& flags, const char* format_flag, llm::LlmConfig* config) {
  Status env = llm::ConfigFromEnvironment(config);
  if (!env.ok()) return env.message();
  if (auto v = flags.Get("llm")) config->endpoint.base_url = *v;
  if (auto v = flags.Get("model")) config->endpoint.model = *v;
  if (auto v = flags.Get("protocol")) {
    StatusOr<llm::Protocol> protocol = llm::ParseProtocol(*v);
    if (!protocol.ok()) return protocol.status().message();
    config->endpoint.protocol = *protocol;
  }
  if (auto v = flags.Get(format_flag)) {
    StatusOr<llm::DraftFormat> format = llm::ParseDraftFormat(*v);
    if (!format.ok()) return format.status().message();
    config->format = *format;
  }
  return "";
}

// A whole number in [min, max], or nullopt.
std::optional<int64_t> Whole(const std::string& text, int64_t min, int64_t max) {
  if (text.empty() || text.size() > 12 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  const int64_t v = std::stoll(text);
  if (v < min || v > max) return std::nullopt;
  return v;
}

int Replay(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1,
                           {"suite", "policy", "policy-dir", "data", "criteria", "json", "llm",
                            "model", "protocol", "draft-format", "update"},
                           {"require-all"});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (!flags.positional.empty()) return Usage(err, "replay takes no positional arguments");
  std::vector<std::pair<std::string, std::string>> runs;  // suite, policy file
  auto dirs = flags.values.find("policy-dir");
  if (dirs != flags.values.end()) {
    if (flags.Get("suite") || flags.Get("policy")) {
      return Usage(err, "--policy-dir excludes --suite and --policy");
    }
    for (const std::string& dir : dirs->second) {
      for (const char* suite : {"banking", "slack", "travel", "workspace"}) {
        std::string policy = JoinPath(dir, std::string(suite) + ".policy");
        std::string progent = JoinPath(dir, std::string(suite) + ".json");
        if (FileExists(policy)) {
          runs.push_back({suite, policy});
        } else if (FileExists(progent)) {
          runs.push_back({suite, progent});
        } else {
          err << "error: no `" << policy << "` or `" << progent << "`\n";
          return kExitUsage;
        }
      }
    }
  } else if (flags.Get("suite") && flags.Get("policy")) {
    runs.push_back({*flags.Get("suite"), *flags.Get("policy")});
  } else {
    return Usage(err, "replay needs --suite and --policy, or --policy-dir");
  }
  StatusOr<ReplayData> data =
      LoadReplayData(flags.Get("data").value_or("bench/agentdojo/data"),
                     flags.Get("criteria").value_or("bench/agentdojo/criteria"));
  if (!data.ok()) {
    err << "error: " << data.status().message() << "\n";
    return kExitUsage;
  }
  // With a model server, every session is drafted and updated (Progent's full loop).
  std::optional<llm::Drafter> drafter;
  ReplayDrafting drafting;
  if (flags.Get("llm") || flags.Get("model")) {
    llm::LlmConfig config;
    std::string problem = LlmFlags(flags, "draft-format", &config);
    if (problem.empty()) problem = llm::ValidateConfig(config).message();
    if (!problem.empty()) return Usage(err, problem);
    drafter.emplace(config);
    drafting.drafter = &*drafter;
    drafting.update = llm::UpdateMode::kNarrowOnly;
  }
  if (auto mode = flags.Get("update")) {
    if (!drafter) return Usage(err, "--update needs --llm and --model");
    if (*mode == "off") {
      drafting.update.reset();
    } else {
      StatusOr<llm::UpdateMode> parsed = llm::ParseUpdateMode(*mode);
      if (!parsed.ok()) return Usage(err, parsed.status().message());
      drafting.update = *parsed;
    }
  }
  nlohmann::json reports = nlohmann::json::array();
  bool all_good = true;
  out << ReplayTableHeader();
  for (const auto& [suite, path] : runs) {
    LoadedPolicy loaded = LoadReplayPolicy(path);
    if (!loaded.ok()) {
      err << loaded.ErrorText();
      return kExitUsage;
    }
    // Label: the file name, with its folder when that is not the suite policies' own.
    std::string label = path;
    size_t slash = path.find_last_of('/');
    if (slash != std::string::npos) {
      size_t parent = path.find_last_of('/', slash - 1);
      std::string folder = path.substr(parent == std::string::npos ? 0 : parent + 1,
                                       slash - (parent == std::string::npos ? 0 : parent + 1));
      label = (folder == "agentdojo" ? "" : folder + "/") + path.substr(slash + 1);
    }
    StatusOr<nlohmann::json> report =
        ReplaySuite(*data, suite, loaded.program, label, drafter ? &drafting : nullptr);
    if (!report.ok()) {
      err << "error: " << report.status().message() << "\n";
      return kExitUsage;
    }
    out << ReplayTableRow(*report);
    if (report->contains("drafting")) {
      out << "           drafting:";
      for (const auto& [key, count] : (*report)["drafting"].items()) {
        out << " " << key << " " << count.get<size_t>();
      }
      out << "\n";
    }
    all_good = all_good && (*report)["user_tasks_allowed"] == (*report)["user_tasks"] &&
               (*report)["pairs_defended"] == (*report)["blockable_pairs"];
    reports.push_back(std::move(*report));
  }
  if (auto json_path = flags.Get("json")) {
    std::ofstream file(*json_path, std::ios::binary | std::ios::trunc);
    file << Dump(nlohmann::json{{"reports", reports}}, 1) << "\n";
    if (!file.good()) {
      err << "error: cannot write `" << *json_path << "`\n";
      return kExitUsage;
    }
  }
  return flags.Has("require-all") && !all_good ? kExitFailed : kExitOk;
}

int VerifyLogCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1, {"expect-head"}, {"json"});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (flags.positional.size() != 1) return Usage(err, "verify-log takes one log file");
  VerifyLogOptions options;
  options.expect_head = flags.Get("expect-head");
  if (options.expect_head && !IsLogHash(*options.expect_head)) {
    return Usage(err, "--expect-head is `sha256:` and 64 lower-case hex digits");
  }
  options.json = flags.Has("json");
  return RunVerifyLog(flags.positional[0], options, out, err);
}

int Draft(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags flags = ParseFlags(args, 1,
                           {"tools", "query", "policy", "llm", "model", "protocol", "format",
                            "repairs", "timeout", "max-tokens"},
                           {});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (!flags.positional.empty()) return Usage(err, "draft takes no positional arguments");
  DraftOptions options;
  std::optional<std::string> tools = flags.Get("tools");
  std::optional<std::string> query = flags.Get("query");
  if (!tools || !query) return Usage(err, "draft needs --tools FILE and --query TEXT");
  options.tools_path = *tools;
  options.query = *query;
  options.policy_path = flags.Get("policy");
  std::string problem = LlmFlags(flags, "format", &options.llm);
  if (!problem.empty()) return Usage(err, problem);
  if (auto v = flags.Get("repairs")) {
    std::optional<int64_t> n = Whole(*v, 0, llm::kMaxRepairs);
    if (!n) return Usage(err, "--repairs is 0 to " + std::to_string(llm::kMaxRepairs));
    options.llm.max_repairs = static_cast<int>(*n);
  }
  if (auto v = flags.Get("timeout")) {
    std::optional<int64_t> n = Whole(*v, 1, 3600);
    if (!n) return Usage(err, "--timeout is 1 to 3600 seconds");
    options.llm.transport.attempt_timeout = std::chrono::seconds(*n);
    options.llm.transport.deadline = std::chrono::seconds(*n * 2);
  }
  if (auto v = flags.Get("max-tokens")) {
    std::optional<int64_t> n = Whole(*v, 1, 1000000);
    if (!n) return Usage(err, "--max-tokens is a positive number");
    options.llm.max_tokens = static_cast<int>(*n);
  }
  return RunDraft(options, out, err);
}

// `mcp ... -- COMMAND ARGS...`: the flags come before `--`, the server after.
int Mcp(const std::vector<std::string>& args, std::ostream& err) {
  auto dashes = std::find(args.begin(), args.end(), "--");
  std::vector<std::string> before(args.begin(), dashes);
  Flags flags = ParseFlags(
      before, 1,
      {"policy", "tools", "query", "decision-log", "shutdown-grace", "listen", "upstream"},
      {"fsync"});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (!flags.positional.empty()) return Usage(err, "mcp takes no arguments before `--` but flags");
  McpOptions options;
  std::optional<std::string> policy = flags.Get("policy");
  if (!policy) return Usage(err, "mcp needs --policy FILE");
  options.policy = *policy;
  options.tools = flags.Get("tools");
  options.query = flags.Get("query");
  options.decision_log = flags.Get("decision-log");
  options.fsync_each = flags.Has("fsync");
  if (std::optional<std::string> grace = flags.Get("shutdown-grace")) {
    if (grace->empty() || grace->size() > 7 ||
        grace->find_first_not_of("0123456789") != std::string::npos) {
      return Usage(err, "--shutdown-grace is milliseconds, up to 9999999");
    }
    options.grace = std::chrono::milliseconds(std::stoll(*grace));
  }
  options.upstream = flags.Get("upstream");
  if (options.upstream) {
    if (dashes != args.end())
      return Usage(err, "mcp takes --upstream URL or `-- COMMAND`, not both");
    ServerOptions listen;
    listen.port = 0;
    if (!ParseListen(flags.Get("listen").value_or("127.0.0.1:0"), &listen)) {
      return Usage(err, "--listen is HOST:PORT");
    }
    if (options.upstream->rfind("http://", 0) != 0 && options.upstream->rfind("https://", 0) != 0) {
      return Usage(err, "--upstream is an http:// or https:// URL");
    }
    options.listen_host = listen.host;
    options.listen_port = listen.port;
    return RunMcp(options, err);
  }
  if (flags.Get("listen")) return Usage(err, "--listen needs --upstream URL");
  if (dashes == args.end() || dashes + 1 == args.end()) {
    return Usage(err, "mcp needs the server's command after `--`, or --upstream URL");
  }
  options.command.assign(dashes + 1, args.end());
  return RunMcp(options, err);
}

int Serve(const std::vector<std::string>& args, std::ostream& err) {
  Flags flags =
      ParseFlags(args, 1,
                 {"policies", "listen", "decision-log", "threads", "max-sessions", "session-idle",
                  "reload-interval", "llm", "model", "protocol", "draft-format"},
                 {"fsync"});
  if (!flags.error.empty()) return Usage(err, flags.error);
  if (!flags.positional.empty()) return Usage(err, "serve takes no positional arguments");
  std::optional<std::string> dir = flags.Get("policies");
  if (!dir) return Usage(err, "serve needs --policies DIR");
  ServeOptions options;
  options.policies_dir = *dir;
  if (!ParseListen(flags.Get("listen").value_or("127.0.0.1:8181"), &options.server)) {
    return Usage(err, "--listen is HOST:PORT");
  }
  options.decision_log = flags.Get("decision-log");
  options.fsync_each = flags.Has("fsync");
  // Positive integers up to `max`, or a usage error.
  auto number = [&](const char* name, int64_t max, int64_t* out) {
    std::optional<std::string> text = flags.Get(name);
    if (!text) return true;
    if (text->empty() || text->size() > 12 ||
        text->find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    *out = std::stoll(*text);
    return *out > 0 && *out <= max;
  };
  int64_t threads = 0, max_sessions = static_cast<int64_t>(options.service.max_sessions);
  int64_t idle = 1800, reload = 1000;
  if (!number("threads", 1024, &threads)) return Usage(err, "--threads is 1 to 1024");
  if (!number("max-sessions", 100000000, &max_sessions)) {
    return Usage(err, "--max-sessions is a positive number");
  }
  if (!number("session-idle", 86400 * 365, &idle)) return Usage(err, "--session-idle is seconds");
  if (!number("reload-interval", 3600000, &reload)) {
    return Usage(err, "--reload-interval is milliseconds");
  }
  options.server.threads = static_cast<int>(threads);
  options.server.max_body_bytes = options.service.max_body_bytes;
  options.service.max_sessions = static_cast<size_t>(max_sessions);
  options.service.session_idle_timeout = std::chrono::seconds(idle);
  options.reload_interval = std::chrono::milliseconds(reload);
  // The model server is optional: without one, requests for a draft get 400 no_llm.
  llm::LlmConfig llm_config;
  std::string problem = LlmFlags(flags, "draft-format", &llm_config);
  if (!problem.empty()) return Usage(err, problem);
  if (!llm_config.endpoint.base_url.empty() || !llm_config.endpoint.model.empty()) {
    Status valid = llm::ValidateConfig(llm_config);
    if (!valid.ok()) return Usage(err, valid.message());
    options.service.llm = std::move(llm_config);
  }
  return RunServe(options, err);
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) return Usage(err, "no command");
  const std::string& command = args[0];
  try {
    if (command == "lint") return Lint(args, out, err);
    if (command == "check") return Check(args, out, err);
    if (command == "test") return Test(args, out, err);
    if (command == "fmt") return Fmt(args, out, err);
    if (command == "import") return Import(args, out, err);
    if (command == "replay") return Replay(args, out, err);
    if (command == "verify-log") return VerifyLogCommand(args, out, err);
    if (command == "serve") return Serve(args, err);
    if (command == "draft") return Draft(args, out, err);
    if (command == "mcp") return Mcp(args, err);
    if (command == "help" || command == "--help" || command == "-h") {
      out << kUsage;
      return kExitOk;
    }
  } catch (const std::exception& e) {
    // A bug, not an input problem: nothing should throw this far.
    err << "toolwarden: internal error: " << e.what() << "\n";
    return kExitUsage;
  }
  return Usage(err, "unknown command `" + command + "`");
}

}  // namespace toolwarden
