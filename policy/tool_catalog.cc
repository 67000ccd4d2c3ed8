#include "policy/tool_catalog.h"

#include "policy/json_limits.h"

namespace toolwarden {

const nlohmann::json* ToolCatalog::Find(const std::string& name) const {
  auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : &it->second;
}

std::string ToolCatalog::Description(const std::string& name) const {
  auto it = descriptions_.find(name);
  return it == descriptions_.end() ? std::string() : it->second;
}

void ToolCatalog::Add(std::string name, nlohmann::json parameters, std::string description) {
  if (description.empty()) {
    descriptions_.erase(name);
  } else {
    descriptions_[name] = std::move(description);
  }
  tools_[std::move(name)] = std::move(parameters);
}

namespace {

Status AddEntry(const nlohmann::json& entry, size_t index, ToolCatalog* catalog) {
  const nlohmann::json* tool = &entry;
  const std::string where = "tool #" + std::to_string(index);
  if (!entry.is_object()) return InvalidArgumentError(where + " is not an object");
  if (entry.contains("function")) tool = &entry["function"];  // OpenAI tool list
  if (!tool->is_object() || !tool->contains("name") || !(*tool)["name"].is_string()) {
    return InvalidArgumentError(where + " has no string `name`");
  }
  const std::string name = (*tool)["name"].get<std::string>();
  nlohmann::json schema = nlohmann::json::object();
  for (const char* key : {"parameters", "inputSchema", "input_schema"}) {
    if (tool->contains(key)) schema = (*tool)[key];
  }
  if (!schema.is_object()) {
    return InvalidArgumentError("the argument schema of `" + name + "` is not an object");
  }
  if (catalog->Contains(name)) return InvalidArgumentError("tool `" + name + "` is listed twice");
  std::string description;
  if (tool->contains("description") && (*tool)["description"].is_string()) {
    description = (*tool)["description"].get<std::string>();
  }
  catalog->Add(name, std::move(schema), std::move(description));
  return OkStatus();
}

}  // namespace

StatusOr<ToolCatalog> ToolCatalogFromJson(const nlohmann::json& document) {
  ToolCatalog catalog;
  const nlohmann::json* list = nullptr;
  if (document.is_array()) {
    list = &document;
  } else if (document.is_object() && document.contains("tools") && document["tools"].is_array()) {
    list = &document["tools"];
  } else if (document.is_object() && document.contains("result") &&
             document["result"].is_object() && document["result"].contains("tools") &&
             document["result"]["tools"].is_array()) {
    list = &document["result"]["tools"];
  }
  if (list != nullptr) {
    if (list->size() > kMaxTools) {
      return ResourceExhaustedError("more than " + std::to_string(kMaxTools) + " tools");
    }
    for (size_t i = 0; i < list->size(); ++i) {
      Status status = AddEntry((*list)[i], i, &catalog);
      if (!status.ok()) return status;
    }
    return catalog;
  }
  if (!document.is_object()) {
    return InvalidArgumentError(
        "a tools file is a tool list, an MCP tools/list result, or an object of schemas");
  }
  if (document.size() > kMaxTools) {
    return ResourceExhaustedError("more than " + std::to_string(kMaxTools) + " tools");
  }
  for (const auto& [name, schema] : document.items()) {
    if (!schema.is_object()) {
      return InvalidArgumentError("the argument schema of `" + name + "` is not an object");
    }
    catalog.Add(name, schema);
  }
  return catalog;
}

StatusOr<ToolCatalog> LoadToolCatalog(const std::string& path) {
  StatusOr<std::string> text = ReadTextFile(path, kMaxJsonBytes);
  if (!text.ok()) return text.status();
  StatusOr<nlohmann::json> document = ParseJson(*text);
  if (!document.ok())
    return Status(document.status().code(), path + ": " + document.status().message());
  StatusOr<ToolCatalog> catalog = ToolCatalogFromJson(*document);
  if (!catalog.ok())
    return Status(catalog.status().code(), path + ": " + catalog.status().message());
  return catalog;
}

}  // namespace toolwarden
