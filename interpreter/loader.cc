#include "interpreter/loader.h"

#include <algorithm>

#include "policy/checker.h"
#include "policy/json_limits.h"

namespace toolwarden {

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string JoinPath(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return base_dir.back() == '/' ? base_dir + path : base_dir + "/" + path;
}

namespace {

// Whether `path` is relative and has no `..` segment.
bool StaysInside(const std::string& path) {
  if (path.empty() || path[0] == '/') return false;
  for (size_t begin = 0; begin <= path.size();) {
    size_t end = std::min(path.find('/', begin), path.size());
    if (path.compare(begin, end - begin, "..") == 0) return false;
    begin = end + 1;
  }
  return true;
}

}  // namespace

std::string LoadedPolicy::ErrorText() const {
  std::string out;
  if (!status.ok()) out += "error: " + status.message() + "\n";
  out += FormatDiagnostics(source, diagnostics);
  return out;
}

LoadedPolicy LoadPolicyText(std::string name, std::string text, const std::string& base_dir,
                            const LoadOptions& options) {
  LoadedPolicy loaded;
  loaded.source = Source(std::move(name), std::move(text));
  ParseResult parsed = Parse(loaded.source, options.parse_limits);
  loaded.diagnostics.Append(parsed.diagnostics);
  if (parsed.diagnostics.HasErrors()) return loaded;

  std::optional<ToolCatalog> catalog;
  std::optional<std::string> tools_path = options.tools_path;
  Position tools_position;
  if (!tools_path) {
    for (const Item& item : parsed.ast.items) {
      if (item.kind == ItemKind::kTools) {
        if (options.tools_inside_base_dir && !StaysInside(item.path)) {
          loaded.diagnostics.Error(item.position,
                                   "`tools` may name only a file inside the policy directory here: "
                                   "a relative path without `..`");
          return loaded;
        }
        tools_path = JoinPath(base_dir, item.path);
        tools_position = item.position;
        break;
      }
    }
  }
  if (tools_path) {
    StatusOr<ToolCatalog> loaded_catalog = LoadToolCatalog(*tools_path);
    if (!loaded_catalog.ok()) {
      if (tools_position.line > 0) {
        loaded.diagnostics.Error(tools_position,
                                 "cannot load tool schemas: " + loaded_catalog.status().message());
      } else {
        loaded.status = loaded_catalog.status();
      }
      return loaded;
    }
    catalog = std::move(*loaded_catalog);
  }

  CheckResult checked = Check(std::move(parsed.ast), loaded.source, catalog ? &*catalog : nullptr);
  loaded.diagnostics.Append(checked.diagnostics);
  if (checked.policy == nullptr) return loaded;
  StatusOr<std::shared_ptr<const Program>> program = Compile(checked.policy);
  if (!program.ok()) {
    loaded.status = program.status();
    return loaded;
  }
  loaded.program = *program;
  return loaded;
}

LoadedPolicy LoadPolicyFile(const std::string& path, const LoadOptions& options) {
  StatusOr<std::string> text = ReadTextFile(path, options.parse_limits.max_source_bytes);
  if (!text.ok()) {
    LoadedPolicy loaded;
    loaded.source = Source(path, "");
    loaded.status = text.status();
    return loaded;
  }
  return LoadPolicyText(path, std::move(*text), DirName(path), options);
}

}  // namespace toolwarden
