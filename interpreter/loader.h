// Loading a policy end to end: read -> Parse -> Check (against the tool schemas)
// -> Compile. Each stage is the pure function of its own header; this one only
// does the file I/O between them and collects what went wrong.
//
//   LoadedPolicy loaded = LoadPolicyFile("policies/examples/banking.policy");
//   if (!loaded.ok()) { print loaded.status / FormatDiagnostics(loaded.source, ...) }
//   Session session(loaded.program, query);
#ifndef TOOLWARDEN_INTERPRETER_LOADER_H_
#define TOOLWARDEN_INTERPRETER_LOADER_H_

#include <memory>
#include <optional>
#include <string>

#include "interpreter/program.h"
#include "policy/diagnostic.h"
#include "policy/parser.h"
#include "policy/source.h"
#include "policy/status.h"
#include "policy/tool_catalog.h"

namespace toolwarden {

struct LoadOptions {
  // Tool schemas to check against; overrides the policy's `tools "FILE";` item.
  std::optional<std::string> tools_path;
  ParseLimits parse_limits;
  // For policy text from an untrusted client (the sidecar's inline `source`):
  // a `tools "FILE";` item may name only a relative path without a `..`
  // segment, so that it stays inside `base_dir`. Without this, the text could
  // make the host read any file it can open and quote it in diagnostics.
  bool tools_inside_base_dir = false;
};

struct LoadedPolicy {
  Source source{"", ""};
  Diagnostics diagnostics;                 // problems in the policy text
  Status status;                           // failures of the machinery (I/O, tools file)
  std::shared_ptr<const Program> program;  // set only when both are clean of errors

  bool ok() const { return status.ok() && !diagnostics.HasErrors() && program != nullptr; }
  // Everything wrong, formatted for a terminal: the status, then the diagnostics.
  std::string ErrorText() const;
};

// `base_dir` resolves a relative `tools "FILE";` path ("" = current directory).
LoadedPolicy LoadPolicyText(std::string name, std::string text, const std::string& base_dir,
                            const LoadOptions& options = {});
LoadedPolicy LoadPolicyFile(const std::string& path, const LoadOptions& options = {});

// The directory part of a path ("" when it has none).
std::string DirName(const std::string& path);
// `path` if absolute, else `base_dir`/`path`.
std::string JoinPath(const std::string& base_dir, const std::string& path);

}  // namespace toolwarden

#endif  // TOOLWARDEN_INTERPRETER_LOADER_H_
