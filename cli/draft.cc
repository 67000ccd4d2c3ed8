#include "cli/draft.h"

#include "cli/commands.h"
#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "policy/json_limits.h"
#include "policy/source.h"

namespace toolwarden {

namespace {

// `text` as comment lines, each starting with `prefix`.
std::string Commented(const std::string& text, const std::string& prefix) {
  std::string out = prefix;
  for (char c : text) {
    if (c == '\n') {
      out += "\n" + prefix;
    } else if (c != '\r') {
      out += c;
    }
  }
  return out + "\n";
}

}  // namespace

int RunDraft(const DraftOptions& options, std::ostream& out, std::ostream& err,
             const llm::TransportHooks& hooks) {
  Status config = llm::ValidateConfig(options.llm);
  if (!config.ok()) {
    err << "error: " << config.message() << "\n";
    return kExitUsage;
  }
  std::string base;
  std::string name = "drafted";
  std::string dir;
  if (options.policy_path) {
    StatusOr<std::string> text = ReadTextFile(*options.policy_path, kMaxSourceBytes);
    if (!text.ok()) {
      err << "error: " << text.status().message() << "\n";
      return kExitUsage;
    }
    base = *text;
    name = *options.policy_path;
    const size_t slash = name.rfind('/');
    dir = slash == std::string::npos ? "" : name.substr(0, slash);
  } else {
    base = "policy drafted;\n\ntools " + nlohmann::json(options.tools_path).dump() + ";\n";
  }
  LoadOptions load;
  load.tools_path = options.tools_path;
  LoadedPolicy loaded = LoadPolicyText(name, base, dir, load);
  if (!loaded.ok()) {
    err << loaded.ErrorText();
    return kExitUsage;
  }
  Session session(loaded.program, options.query);
  llm::Drafter drafter(options.llm, hooks);
  llm::DraftOutcome draft = drafter.Draft(session);
  if (!draft.ok()) {
    err << "error: no rules drafted, nothing printed: " << draft.status.message() << "\n";
    for (const std::string& p : draft.problems) err << "  " << p << "\n";
    return kExitFailed;
  }
  for (const std::string& p : draft.problems) err << "warning: drafted rules: " << p << "\n";
  out << base;
  if (!base.empty() && base.back() != '\n') out << "\n";
  out << "\n"
      << Commented("Drafted by " + options.llm.endpoint.model + " (" +
                       std::string(llm::ProtocolName(options.llm.endpoint.protocol)) +
                       ") for the task:",
                   "# ")
      << Commented(options.query, "#   ") << draft.text;
  return kExitOk;
}

}  // namespace toolwarden
