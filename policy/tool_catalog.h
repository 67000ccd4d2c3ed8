// ToolCatalog: the tools an agent can call, with the JSON Schema of each one's
// arguments. The checker uses it to find unknown tools, unknown argument names
// and type errors before a policy is ever run.
//
// Accepted documents (detected by shape):
//   - an OpenAI tool list: [{"type": "function", "function": {"name", "parameters"}}...],
//     or the older function list [{"name", "parameters"}...];
//   - an MCP `tools/list` result: {"tools": [{"name", "inputSchema"}...]}, bare or
//     inside a JSON-RPC response {"result": {"tools": [...]}};
//   - a map {"tool_name": JSON Schema of its arguments, ...}.
#ifndef TOOLWARDEN_POLICY_TOOL_CATALOG_H_
#define TOOLWARDEN_POLICY_TOOL_CATALOG_H_

#include <map>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "policy/status.h"

namespace toolwarden {

// Most tools in one catalog; stops a hostile tools file from exhausting memory.
inline constexpr size_t kMaxTools = 100000;

class ToolCatalog {
 public:
  // The argument schema of `name` (an object schema), or null when unknown.
  const nlohmann::json* Find(const std::string& name) const;
  bool Contains(const std::string& name) const { return Find(name) != nullptr; }
  const std::map<std::string, nlohmann::json>& tools() const { return tools_; }

  // What the tools file says the tool does ("" when it says nothing); the
  // drafter shows it to the model.
  std::string Description(const std::string& name) const;

  // Adds or replaces a tool.
  void Add(std::string name, nlohmann::json parameters, std::string description = {});

 private:
  std::map<std::string, nlohmann::json> tools_;
  std::map<std::string, std::string> descriptions_;
};

StatusOr<ToolCatalog> ToolCatalogFromJson(const nlohmann::json& document);
// Reads and parses a tools file under the JSON limits of json_limits.h.
StatusOr<ToolCatalog> LoadToolCatalog(const std::string& path);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_TOOL_CATALOG_H_
