#include "policy/tool_catalog.h"

#include <catch2/catch.hpp>

namespace toolwarden {
namespace {

using nlohmann::json;

TEST_CASE("reads the three catalog forms") {
  json schema = {{"type", "object"}, {"properties", {{"email", {{"type", "string"}}}}}};
  json openai = json::array(
      {{{"type", "function"}, {"function", {{"name", "share_file"}, {"parameters", schema}}}}});
  json functions = json::array({{{"name", "share_file"}, {"parameters", schema}}});
  json mcp = {{"tools", json::array({{{"name", "share_file"}, {"inputSchema", schema}}})}};
  json rpc = {{"jsonrpc", "2.0"}, {"id", 1}, {"result", mcp}};
  json map = {{"share_file", schema}};
  for (const json& doc : {openai, functions, mcp, rpc, map}) {
    StatusOr<ToolCatalog> catalog = ToolCatalogFromJson(doc);
    REQUIRE(catalog.ok());
    REQUIRE(catalog->Find("share_file") != nullptr);
    CHECK((*catalog->Find("share_file"))["properties"].contains("email"));
    CHECK(catalog->Find("other") == nullptr);
  }
}

TEST_CASE("keeps each tool's description for the drafter") {
  json schema = {{"type", "object"}};
  json openai = json::array(
      {{{"type", "function"},
        {"function",
         {{"name", "send_money"}, {"description", "Sends money."}, {"parameters", schema}}}}});
  json mcp = {{"tools", json::array({{{"name", "send_money"},
                                      {"description", "Sends money."},
                                      {"inputSchema", schema}}})}};
  for (const json& doc : {openai, mcp}) {
    StatusOr<ToolCatalog> catalog = ToolCatalogFromJson(doc);
    REQUIRE(catalog.ok());
    CHECK(catalog->Description("send_money") == "Sends money.");
    CHECK(catalog->Description("other").empty());
  }
  StatusOr<ToolCatalog> bare = ToolCatalogFromJson(json{{"send_money", schema}});
  REQUIRE(bare.ok());
  CHECK(bare->Description("send_money").empty());
}

TEST_CASE("rejects malformed catalogs") {
  CHECK_FALSE(ToolCatalogFromJson(json(3)).ok());
  CHECK_FALSE(ToolCatalogFromJson(json::array({json(1)})).ok());
  CHECK_FALSE(ToolCatalogFromJson(json::array({{{"description", "x"}}})).ok());
  CHECK_FALSE(ToolCatalogFromJson(json::array({{{"name", "a"}, {"parameters", 1}}})).ok());
  CHECK_FALSE(ToolCatalogFromJson(json::array({{{"name", "a"}}, {{"name", "a"}}})).ok());
  CHECK_FALSE(ToolCatalogFromJson(json{{"a", 1}}).ok());
  CHECK(LoadToolCatalog("/nonexistent/tools.json").status().code() == StatusCode::kNotFound);
}

TEST_CASE("limit: tools per catalog") {
  json many = json::object();
  for (size_t i = 0; i <= kMaxTools; ++i) many["t" + std::to_string(i)] = json::object();
  CHECK(ToolCatalogFromJson(many).status().code() == StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace toolwarden
