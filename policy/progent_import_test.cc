#include "policy/progent_import.h"

#include <re2/re2.h>

#include <catch2/catch.hpp>
#include <string>

namespace toolwarden {
namespace {

constexpr char kHeader[] = "# imported from Progent JSON: test.json\n\n";

// The rules that `json` imports to, without the header line.
std::string Rules(const std::string& json) {
  StatusOr<std::string> out = ImportProgent(json, "test.json");
  INFO(json);
  INFO(out.status().message());
  REQUIRE(out.ok());
  REQUIRE(out->rfind(kHeader, 0) == 0);
  return out->substr(sizeof(kHeader) - 1);
}

// The one rule line (without ";\n") of a policy with the single entry `entry`
// for tool `t`.
std::string Rule(const std::string& entry) {
  const std::string rules = Rules(R"({"t": [)" + entry + "]}");
  REQUIRE(rules.size() > 2);
  REQUIRE(rules.substr(rules.size() - 2) == ";\n");
  std::string line = rules.substr(0, rules.size() - 2);
  REQUIRE(line.find('\n') == std::string::npos);
  return line;
}

// The rule of an allow (forbid) entry at priority 1 whose only condition is
// `schema` on the argument `v`.
std::string Allow(const std::string& schema) {
  return Rule(R"({"priority": 1, "effect": 0, "conditions": {"v": )" + schema + "}}");
}
std::string Forbid(const std::string& schema) {
  return Rule(R"({"priority": 1, "effect": 1, "conditions": {"v": )" + schema + "}}");
}

// The error message for `json`, which must fail with `code`.
std::string Error(const std::string& json, StatusCode code = StatusCode::kInvalidArgument) {
  StatusOr<std::string> out = ImportProgent(json, "test.json");
  INFO(json);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == code);
  return out.status().message();
}

std::string EntryError(const std::string& entry) { return Error(R"({"t": [)" + entry + "]}"); }
std::string SchemaError(const std::string& schema) {
  return EntryError(R"({"priority": 1, "effect": 0, "conditions": {"v": )" + schema + "}}");
}

TEST_CASE("output starts with the source name and a blank line", "[progent_import]") {
  StatusOr<std::string> out = ImportProgent("{}", "banking.json");
  REQUIRE(out.ok());
  CHECK(*out == "# imported from Progent JSON: banking.json\n\n");
}

TEST_CASE("control characters in the source name cannot break out of the comment",
          "[progent_import]") {
  StatusOr<std::string> out = ImportProgent("{}", "a\nallow *;\r\xff.json");
  REQUIRE(out.ok());
  CHECK(*out == "# imported from Progent JSON: a?allow *;??.json\n\n");
}

TEST_CASE("entries without conditions", "[progent_import]") {
  CHECK(Rule(R"({"priority": 1, "effect": 0})") == "allow t priority 1");
  CHECK(Rule(R"({"priority": 0, "effect": 0, "conditions": {}})") == "allow t priority 0");
  CHECK(Rule(R"({"priority": 1000000, "effect": 1})") ==
        "forbid t priority 1000000 fallback block");
}

TEST_CASE("effect encodings", "[progent_import]") {
  CHECK(Rule(R"({"priority": 1, "effect": 0})") == "allow t priority 1");
  CHECK(Rule(R"({"priority": 1, "effect": "allow"})") == "allow t priority 1");
  CHECK(Rule(R"({"priority": 1, "effect": 1})") == "forbid t priority 1 fallback block");
  CHECK(Rule(R"({"priority": 1, "effect": "forbid"})") == "forbid t priority 1 fallback block");
  CHECK(Rule(R"({"priority": 1, "effect": "deny"})") == "forbid t priority 1 fallback block");
}

TEST_CASE("fallback encodings", "[progent_import]") {
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback": 0})") ==
        "forbid t priority 1 fallback block");
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback": "block"})") ==
        "forbid t priority 1 fallback block");
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback": 1})") ==
        "forbid t priority 1 fallback terminate");
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback": "terminate"})") ==
        "forbid t priority 1 fallback terminate");
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback": 2})") ==
        "forbid t priority 1 fallback ask");
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback": "ask"})") ==
        "forbid t priority 1 fallback ask");
}

TEST_CASE("fallback messages are JSON-escaped strings", "[progent_import]") {
  CHECK(
      Rule(
          R"({"priority": 1, "effect": 1, "fallback": 2, "fallback_msg": "say \"hi\"\n\u00e9"})") ==
      "forbid t priority 1 fallback ask \"say \\\"hi\\\"\\n\xc3\xa9\"");
  // An empty message is no message.
  CHECK(Rule(R"({"priority": 1, "effect": 1, "fallback_msg": ""})") ==
        "forbid t priority 1 fallback block");
}

TEST_CASE("fallback messages may hold only toolwarden placeholders", "[progent_import]") {
  CHECK(
      Rule(R"({"priority": 1, "effect": 1, "fallback_msg": "{tool} is blocked: {reason} { x"})") ==
      R"(forbid t priority 1 fallback block "{tool} is blocked: {reason} { x")");
  CHECK(EntryError(R"({"priority": 1, "effect": 1, "fallback_msg": "over {amount} {tool}"})") ==
        "`/t/0/fallback_msg`: `{amount}` is not a toolwarden message placeholder (`{tool}`, "
        "`{query}`, `{rule}` or `{reason}`) and toolwarden messages cannot hold other `{...}`");
  CHECK(EntryError(R"({"priority": 1, "effect": 1, "fallback_msg": "{tool}{}"})") ==
        "`/t/0/fallback_msg`: `{}` is not a toolwarden message placeholder (`{tool}`, "
        "`{query}`, `{rule}` or `{reason}`) and toolwarden messages cannot hold other `{...}`");
}

TEST_CASE("an allow entry drops a plain block fallback", "[progent_import]") {
  CHECK(Rule(R"({"priority": 1, "effect": 0, "fallback": 0})") == "allow t priority 1");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "fallback": "block", "fallback_msg": ""})") ==
        "allow t priority 1");
}

TEST_CASE("rules follow the input order of tools and entries", "[progent_import]") {
  CHECK(Rules(R"({"zeta": [{"priority": 5, "effect": 0}, {"priority": 1, "effect": 1}],
                  "alpha": [{"priority": 3, "effect": 0}]})") ==
        "allow zeta priority 5;\n"
        "forbid zeta priority 1 fallback block;\n"
        "allow alpha priority 3;\n");
  CHECK(Rules(R"({"t": []})").empty());
}

TEST_CASE("tool names that are not plain identifiers are quoted", "[progent_import]") {
  CHECK(Rules(R"({"allow": [{"priority": 1, "effect": 0}]})") == "allow \"allow\" priority 1;\n");
  CHECK(Rules(R"({"my tool": [{"priority": 1, "effect": 0}]})") ==
        "allow \"my tool\" priority 1;\n");
  CHECK(Rules(R"({"mcp.fs-read": [{"priority": 1, "effect": 0}]})") ==
        "allow \"mcp.fs-read\" priority 1;\n");
  CHECK(Rules(R"({"9lives": [{"priority": 1, "effect": 0}]})") == "allow \"9lives\" priority 1;\n");
  // Built-in names are fine as tool names.
  CHECK(Rules(R"({"query": [{"priority": 1, "effect": 0}]})") == "allow query priority 1;\n");
}

TEST_CASE("argument names that are keywords or built-ins use args[...]", "[progent_import]") {
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"from": {"const": 1}}})") ==
        R"(allow t when args["from"] != null and args["from"] == 1 priority 1)");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"query": {"const": 1}}})") ==
        R"(allow t when args["query"] != null and args["query"] == 1 priority 1)");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"tool": {"const": 1}}})") ==
        R"(allow t when args["tool"] != null and args["tool"] == 1 priority 1)");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"args": {"const": 1}}})") ==
        R"(allow t when args["args"] != null and args["args"] == 1 priority 1)");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"file-name": {"const": 1}}})") ==
        R"(allow t when args["file-name"] != null and args["file-name"] == 1 priority 1)");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"": {"const": 1}}})") ==
        R"(allow t when args[""] != null and args[""] == 1 priority 1)");
  // The element variables of all(...) cannot be shadowed by an argument.
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"item1": {"const": 1}}})") ==
        R"(allow t when args["item1"] != null and args["item1"] == 1 priority 1)");
  // Other identifiers stay bare, including function names.
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"type": {"const": 1}}})") ==
        R"(allow t when type != null and type == 1 priority 1)");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "conditions": {"items": {"const": 1}}})") ==
        R"(allow t when items != null and items == 1 priority 1)");
}

TEST_CASE("conditions on several arguments are ANDed in input order", "[progent_import]") {
  CHECK(
      Rule(R"({"priority": 2, "effect": 0,
                 "conditions": {"b": {"const": 1}, "a": {"type": "string"}}})") ==
      R"(allow t when (b != null and b == 1) and (a != null and type(a) == "string") priority 2)");
}

TEST_CASE("a missing argument fails an allow entry and matches a forbid entry",
          "[progent_import]") {
  CHECK(Allow(R"({"const": "x"})") == R"(allow t when v != null and v == "x" priority 1)");
  CHECK(Forbid(R"({"const": "x"})") ==
        R"(forbid t when v == null or v == "x" priority 1 fallback block)");
  // Unless the schema's type admits null: then the schema decides.
  CHECK(Allow(R"({"type": ["string", "null"]})") ==
        R"(allow t when type(v) in ["string", "null"] priority 1)");
  CHECK(Forbid(R"({"type": "null"})") ==
        R"(forbid t when type(v) == "null" priority 1 fallback block)");
  // An enum holding null does not count: only `type` does.
  // Progent's own banking schema for update_scheduled_transaction's recipient.
  CHECK(Allow(R"({"anyOf": [{"enum": ["A", "B"]}, {"type": "null"}]})") ==
        R"(allow t when v in ["A", "B"] or type(v) == "null" priority 1)");
  CHECK(Allow(R"({"enum": [null, 1]})") == R"(allow t when v in [null, 1] priority 1)");
}

TEST_CASE("a string condition is a regex on a string", "[progent_import]") {
  CHECK(
      Allow(R"("^US\\d+")") ==
      R"~(allow t when v != null and (type(v) == "string" and v matches r"(?s:.*)(?:^US\d+)(?s:.*)") priority 1)~");
  CHECK(
      Forbid(R"("x")") ==
      R"~(forbid t when v == null or (type(v) == "string" and v matches r"(?s:.*)(?:x)(?s:.*)") priority 1 fallback block)~");
}

TEST_CASE("keyword type", "[progent_import]") {
  CHECK(Allow(R"({"type": "string"})") ==
        R"(allow t when v != null and type(v) == "string" priority 1)");
  CHECK(Allow(R"({"type": "number"})") ==
        R"(allow t when v != null and type(v) == "number" priority 1)");
  CHECK(Allow(R"({"type": "boolean"})") ==
        R"(allow t when v != null and type(v) == "boolean" priority 1)");
  CHECK(Allow(R"({"type": "array"})") ==
        R"(allow t when v != null and type(v) == "array" priority 1)");
  CHECK(Allow(R"({"type": "object"})") ==
        R"(allow t when v != null and type(v) == "object" priority 1)");
  CHECK(Allow(R"({"type": "null"})") == R"(allow t when type(v) == "null" priority 1)");
  CHECK(Allow(R"({"type": "integer"})") ==
        R"(allow t when v != null and (type(v) == "number" and v % 1 == 0) priority 1)");
  CHECK(
      Allow(R"({"type": ["integer", "string"]})") ==
      R"(allow t when v != null and (type(v) == "string" or (type(v) == "number" and v % 1 == 0)) priority 1)");
  // number already admits every integer.
  CHECK(Allow(R"({"type": ["integer", "number"]})") ==
        R"(allow t when v != null and type(v) == "number" priority 1)");
  CHECK(Allow(R"({"type": ["boolean", "array", "object"]})") ==
        R"(allow t when v != null and type(v) in ["boolean", "array", "object"] priority 1)");
}

TEST_CASE("keywords enum and const", "[progent_import]") {
  CHECK(Allow(R"({"enum": ["a"]})") == R"(allow t when v != null and v == "a" priority 1)");
  CHECK(Allow(R"({"enum": ["a", 2, 2.5, -3, true, null, [1, "b"]]})") ==
        R"(allow t when v in ["a", 2, 2.5, -3, true, null, [1, "b"]] priority 1)");
  CHECK(Allow(R"({"enum": []})") == "allow t when false priority 1");
  CHECK(Allow(R"({"const": null})") == R"(allow t when v == null priority 1)");
  CHECK(Allow(R"({"const": [1, [2]]})") ==
        R"(allow t when v != null and v == [1, [2]] priority 1)");
  CHECK(Allow(R"({"const": 1e100})") == R"(allow t when v != null and v == 1e+100 priority 1)");
  CHECK(Allow(R"({"const": "tab\there"})") ==
        R"(allow t when v != null and v == "tab\there" priority 1)");
}

TEST_CASE("keyword pattern", "[progent_import]") {
  CHECK(
      Allow(R"({"pattern": "a.c"})") ==
      R"~(allow t when v != null and (type(v) != "string" or v matches r"(?s:.*)(?:a.c)(?s:.*)") priority 1)~");
  CHECK(
      Allow(R"({"type": "string", "pattern": "^\\w+$"})") ==
      R"~(allow t when v != null and (type(v) == "string" and v matches r"(?s:.*)(?:^\w+$)(?s:.*)") priority 1)~");
  // A pattern with a double quote or a control character cannot be a raw string.
  CHECK(
      Allow(R"({"type": "string", "pattern": "say \"(hi|yo)\""})") ==
      R"~(allow t when v != null and (type(v) == "string" and v matches "(?s:.*)(?:say \"(hi|yo)\")(?s:.*)") priority 1)~");
  CHECK(
      Allow(R"({"type": "string", "pattern": "a\nb"})") ==
      R"~(allow t when v != null and (type(v) == "string" and v matches "(?s:.*)(?:a\nb)(?s:.*)") priority 1)~");
}

TEST_CASE("keywords minLength and maxLength", "[progent_import]") {
  CHECK(Allow(R"({"minLength": 2})") ==
        R"(allow t when v != null and (type(v) != "string" or len(v) >= 2) priority 1)");
  CHECK(Allow(R"({"maxLength": 8.0})") ==
        R"(allow t when v != null and (type(v) != "string" or len(v) <= 8) priority 1)");
  CHECK(
      Allow(R"({"type": "string", "minLength": 2, "maxLength": 8})") ==
      R"(allow t when v != null and (type(v) == "string" and len(v) >= 2 and len(v) <= 8) priority 1)");
}

TEST_CASE("keywords minimum, maximum, exclusiveMinimum, exclusiveMaximum", "[progent_import]") {
  CHECK(Allow(R"({"minimum": 0.01})") ==
        R"(allow t when v != null and (type(v) != "number" or v >= 0.01) priority 1)");
  CHECK(Allow(R"({"maximum": -5})") ==
        R"(allow t when v != null and (type(v) != "number" or v <= -5) priority 1)");
  CHECK(Allow(R"({"exclusiveMinimum": 0})") ==
        R"(allow t when v != null and (type(v) != "number" or v > 0) priority 1)");
  CHECK(Allow(R"({"exclusiveMaximum": 100})") ==
        R"(allow t when v != null and (type(v) != "number" or v < 100) priority 1)");
  CHECK(Allow(R"({"type": "number", "minimum": 0, "maximum": 10})") ==
        R"(allow t when v != null and (type(v) == "number" and v >= 0 and v <= 10) priority 1)");
  CHECK(
      Allow(R"({"type": "integer", "minimum": 0})") ==
      R"(allow t when v != null and ((type(v) == "number" and v % 1 == 0) and v >= 0) priority 1)");
  // Guarded keywords of one type share one guard; other keywords keep their place.
  CHECK(
      Allow(R"({"minimum": 1, "const": 3, "maximum": 5})") ==
      R"(allow t when v != null and ((type(v) != "number" or (v >= 1 and v <= 5)) and v == 3) priority 1)");
}

TEST_CASE("keyword multipleOf", "[progent_import]") {
  CHECK(Allow(R"({"multipleOf": 5})") ==
        R"(allow t when v != null and (type(v) != "number" or v % 5 == 0) priority 1)");
  CHECK(Allow(R"({"type": "number", "multipleOf": 0.5})") ==
        R"(allow t when v != null and (type(v) == "number" and v % 0.5 == 0) priority 1)");
}

TEST_CASE("keywords items, minItems, maxItems", "[progent_import]") {
  CHECK(
      Allow(R"({"items": {"type": "string"}})") ==
      R"(allow t when v != null and (type(v) != "array" or all(item1 in v, type(item1) == "string")) priority 1)");
  CHECK(
      Allow(R"({"type": "array", "minItems": 1, "maxItems": 3})") ==
      R"(allow t when v != null and (type(v) == "array" and len(v) >= 1 and len(v) <= 3) priority 1)");
  CHECK(
      Allow(R"({"type": "array", "items": {"items": {"const": 0}}})") ==
      R"(allow t when v != null and (type(v) == "array" and all(item1 in v, type(item1) != "array" or all(item2 in item1, item2 == 0))) priority 1)");
  // items that constrain nothing disappear.
  CHECK(Allow(R"({"type": "array", "items": {}})") ==
        R"(allow t when v != null and type(v) == "array" priority 1)");
}

TEST_CASE("keywords anyOf, allOf, oneOf, not", "[progent_import]") {
  CHECK(Allow(R"({"anyOf": [{"const": 1}, {"type": "string"}]})") ==
        R"(allow t when v != null and (v == 1 or type(v) == "string") priority 1)");
  CHECK(
      Allow(R"({"allOf": [{"type": "string"}, {"minLength": 1}]})") ==
      R"(allow t when v != null and (type(v) == "string" and (type(v) != "string" or len(v) >= 1)) priority 1)");
  CHECK(
      Allow(R"({"oneOf": [{"const": 1}, {"const": 2}, {"type": "number"}]})") ==
      R"(allow t when v != null and ((v == 1 and (not (v == 2)) and (not (type(v) == "number"))) or (v == 2 and (not (v == 1)) and (not (type(v) == "number"))) or (type(v) == "number" and (not (v == 1)) and (not (v == 2)))) priority 1)");
  CHECK(Allow(R"({"oneOf": [{"const": 1}]})") == R"(allow t when v != null and v == 1 priority 1)");
  CHECK(Allow(R"({"not": {"enum": ["a", "b"]}})") ==
        R"(allow t when v != null and (not (v in ["a", "b"])) priority 1)");
  CHECK(Forbid(R"({"not": {"const": "a"}})") ==
        R"(forbid t when v == null or (not (v == "a")) priority 1 fallback block)");
}

TEST_CASE("nesting: items inside anyOf inside not", "[progent_import]") {
  CHECK(
      Forbid(R"({"not": {"anyOf": [{"type": "string"},
                                      {"type": "array", "items": {"pattern": "^/tmp/"}}]}})") ==
      R"~(forbid t when v == null or (not (type(v) == "string" or (type(v) == "array" and all(item1 in v, type(item1) != "string" or item1 matches r"(?s:.*)(?:^/tmp/)(?s:.*)")))) priority 1 fallback block)~");
}

TEST_CASE("annotations, empty and boolean schemas constrain nothing", "[progent_import]") {
  CHECK(Allow(R"({})") == "allow t priority 1");
  CHECK(Allow(R"(true)") == "allow t priority 1");
  CHECK(Allow(R"({"title": "T", "description": "D", "$comment": "C", "examples": [1],
                  "default": {"a": 1}})") == "allow t priority 1");
  CHECK(Allow(R"({"description": "amount", "minimum": 0})") ==
        R"(allow t when v != null and (type(v) != "number" or v >= 0) priority 1)");
  CHECK(Allow(R"(false)") == "allow t when false priority 1");
  CHECK(Forbid(R"(false)") == "forbid t when v == null priority 1 fallback block");
  CHECK(Allow(R"({"anyOf": [false, {"const": 1}]})") ==
        R"(allow t when v != null and v == 1 priority 1)");
  CHECK(Allow(R"({"not": {}})") == "allow t when false priority 1");
}

TEST_CASE("update blocks", "[progent_import]") {
  CHECK(
      Rule(R"({"priority": 1, "effect": 0, "update": {
                   "send_email": [{"priority": 1, "effect": 1, "conditions": {"to": {"const": "x"}},
                                   "fallback": 2}],
                   "read": [{"priority": 2, "effect": 0,
                             "update": {"read": [{"priority": 3, "effect": "deny"}]}}]}})") ==
      R"(allow t priority 1 update { forbid send_email when to == null or to == "x" priority 1 fallback ask; allow read priority 2 update { forbid read priority 3 fallback block; }; })");
  CHECK(Rule(R"({"priority": 1, "effect": 1, "update": {"u": [{"priority": 1, "effect": 0}]}})") ==
        "forbid t priority 1 fallback block update { allow u priority 1; }");
  CHECK(Rule(R"({"priority": 1, "effect": 0, "update": {}})") == "allow t priority 1");
}

TEST_CASE("the AgentDojo banking policy", "[progent_import]") {
  // Progent's AgentDojo banking policy: money goes only to known IBANs.
  const std::string policy = R"({
    "send_money": [
      {"priority": 1, "effect": 0, "fallback": 0,
       "conditions": {"recipient": {"type": "string", "enum": [
         "UK12345678901234567890", "GB29NWBK60161331926819", "SE3550000000054910000003",
         "US122000000121212121212", "CA133012400231215421872"]}}}
    ],
    "schedule_transaction": [
      {"priority": 1, "effect": "forbid", "fallback": "block",
       "fallback_msg": "scheduled payments to this account are not allowed",
       "conditions": {"recipient": {"const": "US133000000121212121212"}}},
      {"priority": 2, "effect": "allow",
       "conditions": {"amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 5000}}}
    ],
    "get_balance": [{"priority": 1, "effect": 0}],
    "get_iban": [{"priority": 1, "effect": 0}]
  })";
  StatusOr<std::string> out = ImportProgent(policy, "banking.json");
  REQUIRE(out.ok());
  CHECK(
      *out ==
      "# imported from Progent JSON: banking.json\n"
      "\n"
      R"(allow send_money when recipient != null and (type(recipient) == "string" and recipient in ["UK12345678901234567890", "GB29NWBK60161331926819", "SE3550000000054910000003", "US122000000121212121212", "CA133012400231215421872"]) priority 1;)"
      "\n"
      R"(forbid schedule_transaction when recipient == null or recipient == "US133000000121212121212" priority 1 fallback block "scheduled payments to this account are not allowed";)"
      "\n"
      R"(allow schedule_transaction when amount != null and (type(amount) == "number" and amount > 0 and amount <= 5000) priority 2;)"
      "\n"
      "allow get_balance priority 1;\n"
      "allow get_iban priority 1;\n");
  // Deterministic.
  StatusOr<std::string> again = ImportProgent(policy, "banking.json");
  REQUIRE(again.ok());
  CHECK(*again == *out);
}

TEST_CASE("the worked example of docs/progent-import.md", "[progent_import]") {
  StatusOr<std::string> out = ImportProgent(R"({
    "send_money": [
      {"priority": 1, "effect": "forbid", "fallback": "ask",
       "fallback_msg": "large transfers need the user's approval",
       "conditions": {"amount": {"type": "number", "minimum": 1000}}},
      {"priority": 2, "effect": 0,
       "conditions": {
         "recipient": {"type": "string",
                       "enum": ["UK12345678901234567890", "GB29NWBK60161331926819"]},
         "subject": "^[A-Za-z0-9 .,-]*$"}}
    ],
    "read_file": [
      {"priority": 1, "effect": 0, "conditions": {"file_path": {"pattern": "\\.txt$"}},
       "update": {"send_email": [{"priority": 1, "effect": 1, "fallback": 1}]}}
    ],
    "get_balance": [{"priority": 1, "effect": 0}]
  })",
                                            "banking.json");
  REQUIRE(out.ok());
  CHECK(
      *out ==
      "# imported from Progent JSON: banking.json\n"
      "\n"
      R"(forbid send_money when amount == null or (type(amount) == "number" and amount >= 1000) priority 1 fallback ask "large transfers need the user's approval";)"
      "\n"
      R"~(allow send_money when (recipient != null and (type(recipient) == "string" and recipient in ["UK12345678901234567890", "GB29NWBK60161331926819"])) and (subject != null and (type(subject) == "string" and subject matches r"(?s:.*)(?:^[A-Za-z0-9 .,-]*$)(?s:.*)")) priority 2;)~"
      "\n"
      R"~(allow read_file when file_path != null and (type(file_path) != "string" or file_path matches r"(?s:.*)(?:\.txt$)(?s:.*)") priority 1 update { forbid send_email priority 1 fallback terminate; };)~"
      "\n"
      "allow get_balance priority 1;\n");
}

TEST_CASE("unsupported JSON Schema keywords are errors", "[progent_import]") {
  CHECK(Error(R"({"send_money": [{"priority": 1, "effect": 0,
                  "conditions": {"recipient": {"type": "string", "format": "iban"}}}]})") ==
        "`/send_money/0/conditions/recipient/format`: unsupported JSON Schema keyword `format`");
  for (const char* keyword : {"properties", "$ref", "additionalProperties", "uniqueItems",
                              "prefixItems", "required", "contains", "if", "$schema"}) {
    CHECK(SchemaError(std::string(R"({")") + keyword + R"(": {}})") ==
          std::string("`/t/0/conditions/v/") + keyword + "`: unsupported JSON Schema keyword `" +
              keyword + "`");
  }
  // Also deep inside, with ~ and / escaped in the pointer.
  CHECK(SchemaError(R"({"anyOf": [{"items": {"not": {"a/b~c": 1}}}]})") ==
        "`/t/0/conditions/v/anyOf/0/items/not/a~1b~0c`: unsupported JSON Schema keyword "
        "`a/b~c`");
}

TEST_CASE("keyword values of the wrong type are errors", "[progent_import]") {
  CHECK(SchemaError(R"({"type": 1})") ==
        "`/t/0/conditions/v/type`: `type` must be a type name or a non-empty array of them, got "
        "a number");
  CHECK(SchemaError(R"({"type": []})") ==
        "`/t/0/conditions/v/type`: `type` must be a type name or a non-empty array of them, got "
        "an empty array");
  CHECK(SchemaError(R"({"type": ["string", 1]})") ==
        "`/t/0/conditions/v/type/1`: a `type` name must be a string, got a number");
  CHECK(SchemaError(R"({"type": "str"})") ==
        "`/t/0/conditions/v/type`: unknown type `str` (expected null, boolean, number, integer, "
        "string, array or object)");
  CHECK(SchemaError(R"({"type": ["string", "string"]})") ==
        "`/t/0/conditions/v/type/1`: type `string` is repeated");
  CHECK(SchemaError(R"({"enum": "a"})") ==
        "`/t/0/conditions/v/enum`: `enum` must be an array, got a string");
  CHECK(SchemaError(R"({"enum": [1, {"a": 1}]})") ==
        "`/t/0/conditions/v/enum/1`: objects cannot be written as toolwarden literals, so `enum` "
        "and `const` cannot hold them");
  CHECK(SchemaError(R"({"const": [{"a": 1}]})") ==
        "`/t/0/conditions/v/const/0`: objects cannot be written as toolwarden literals, so "
        "`enum` and `const` cannot hold them");
  CHECK(SchemaError(R"({"pattern": 5})") ==
        "`/t/0/conditions/v/pattern`: `pattern` must be a string, got a number");
  CHECK(SchemaError(R"({"minimum": "5"})") ==
        "`/t/0/conditions/v/minimum`: `minimum` must be a number, got a string");
  CHECK(SchemaError(R"({"maximum": null})") ==
        "`/t/0/conditions/v/maximum`: `maximum` must be a number, got null");
  CHECK(SchemaError(R"({"exclusiveMinimum": true})") ==
        "`/t/0/conditions/v/exclusiveMinimum`: `exclusiveMinimum` must be a number, got a "
        "boolean (the draft-04 boolean form is not supported)");
  CHECK(SchemaError(R"({"exclusiveMaximum": [1]})") ==
        "`/t/0/conditions/v/exclusiveMaximum`: `exclusiveMaximum` must be a number, got an "
        "array");
  CHECK(SchemaError(R"({"multipleOf": 0})") ==
        "`/t/0/conditions/v/multipleOf`: `multipleOf` must be greater than 0, got `0`");
  CHECK(SchemaError(R"({"multipleOf": "2"})") ==
        "`/t/0/conditions/v/multipleOf`: `multipleOf` must be a number, got a string");
  CHECK(SchemaError(R"({"minLength": -1})") ==
        "`/t/0/conditions/v/minLength`: `minLength` must be a non-negative integer, got `-1`");
  CHECK(SchemaError(R"({"maxLength": 1.5})") ==
        "`/t/0/conditions/v/maxLength`: `maxLength` must be a non-negative integer, got `1.5`");
  CHECK(SchemaError(R"({"minItems": "1"})") ==
        "`/t/0/conditions/v/minItems`: `minItems` must be a non-negative integer, got `\"1\"`");
  CHECK(SchemaError(R"({"maxItems": true})") ==
        "`/t/0/conditions/v/maxItems`: `maxItems` must be a non-negative integer, got `true`");
  CHECK(SchemaError(R"({"items": [{}]})") ==
        "`/t/0/conditions/v/items`: `items` must be a single schema (the array form is not "
        "supported)");
  CHECK(SchemaError(R"({"items": 1})") ==
        "`/t/0/conditions/v/items`: a JSON Schema must be an object or a boolean, got a number");
  CHECK(SchemaError(R"({"anyOf": []})") ==
        "`/t/0/conditions/v/anyOf`: `anyOf` must be a non-empty array of schemas, got an empty "
        "one");
  CHECK(SchemaError(R"({"allOf": {}})") ==
        "`/t/0/conditions/v/allOf`: `allOf` must be a non-empty array of schemas, got an object");
  CHECK(SchemaError(R"({"oneOf": ["a"]})") ==
        "`/t/0/conditions/v/oneOf/0`: a JSON Schema must be an object or a boolean, got a "
        "string");
  CHECK(SchemaError(R"({"not": null})") ==
        "`/t/0/conditions/v/not`: a JSON Schema must be an object or a boolean, got null");
  CHECK(SchemaError(R"({"title": 1})") ==
        "`/t/0/conditions/v/title`: `title` must be a string, got a number");
  CHECK(SchemaError(R"({"description": []})") ==
        "`/t/0/conditions/v/description`: `description` must be a string, got an array");
  CHECK(SchemaError(R"({"$comment": false})") ==
        "`/t/0/conditions/v/$comment`: `$comment` must be a string, got a boolean");
  CHECK(SchemaError(R"({"examples": 1})") ==
        "`/t/0/conditions/v/examples`: `examples` must be an array, got a number");
  CHECK(SchemaError("5") ==
        "`/t/0/conditions/v`: a condition must be a JSON Schema object or a regex string, got a "
        "number");
  CHECK(SchemaError("null") ==
        "`/t/0/conditions/v`: a condition must be a JSON Schema object or a regex string, got "
        "null");
}

TEST_CASE("regexes that RE2 rejects are errors", "[progent_import]") {
  CHECK(SchemaError(R"~({"pattern": "(?=x)"})~") ==
        "`/t/0/conditions/v/pattern`: RE2 rejects the regex `(?=x)`: invalid perl operator: (?=");
  CHECK(SchemaError(R"("a)(b")") ==
        "`/t/0/conditions/v`: RE2 rejects the regex `a)(b`: unexpected ): a)(b");
  CHECK(SchemaError(R"({"anyOf": [{"pattern": "(a"}]})") ==
        "`/t/0/conditions/v/anyOf/0/pattern`: RE2 rejects the regex `(a`: missing ): (a");
  CHECK(SchemaError(R"({"pattern": "\\1"})").find("`/t/0/conditions/v/pattern`: RE2 rejects") == 0);
}

TEST_CASE("bad priorities are errors", "[progent_import]") {
  CHECK(EntryError(R"({"effect": 0})") == "`/t/0`: the entry has no `priority`");
  CHECK(EntryError(R"({"priority": -1, "effect": 0})") ==
        "`/t/0/priority`: `priority` must be an integer from 0 to 1000000, got `-1`");
  CHECK(EntryError(R"({"priority": 1000001, "effect": 0})") ==
        "`/t/0/priority`: `priority` must be an integer from 0 to 1000000, got `1000001`");
  CHECK(EntryError(R"({"priority": 1.5, "effect": 0})") ==
        "`/t/0/priority`: `priority` must be an integer from 0 to 1000000, got `1.5`");
  CHECK(EntryError(R"({"priority": "1", "effect": 0})") ==
        "`/t/0/priority`: `priority` must be an integer from 0 to 1000000, got `\"1\"`");
  CHECK(EntryError(R"({"priority": 18446744073709551615, "effect": 0})") ==
        "`/t/0/priority`: `priority` must be an integer from 0 to 1000000, got "
        "`18446744073709551615`");
}

TEST_CASE("bad entries are errors", "[progent_import]") {
  CHECK(EntryError(R"({"priority": 1})") == "`/t/0`: the entry has no `effect`");
  CHECK(EntryError(R"({"priority": 1, "effect": 2})") ==
        "`/t/0/effect`: `effect` must be 0, 1, \"allow\", \"forbid\" or \"deny\", got `2`");
  CHECK(EntryError(R"({"priority": 1, "effect": "Allow"})") ==
        "`/t/0/effect`: `effect` must be 0, 1, \"allow\", \"forbid\" or \"deny\", got "
        "`\"Allow\"`");
  CHECK(EntryError(R"({"priority": 1, "effect": 0.0})") ==
        "`/t/0/effect`: `effect` must be 0, 1, \"allow\", \"forbid\" or \"deny\", got `0.0`");
  CHECK(EntryError(R"({"priority": 1, "effect": false})") ==
        "`/t/0/effect`: `effect` must be 0, 1, \"allow\", \"forbid\" or \"deny\", got `false`");
  CHECK(EntryError(R"({"priority": 1, "effect": 1, "fallback": 3})") ==
        "`/t/0/fallback`: `fallback` must be 0, 1, 2, \"block\", \"terminate\" or \"ask\", got "
        "`3`");
  CHECK(EntryError(R"({"priority": 1, "effect": 1, "fallback": "deny"})") ==
        "`/t/0/fallback`: `fallback` must be 0, 1, 2, \"block\", \"terminate\" or \"ask\", got "
        "`\"deny\"`");
  CHECK(EntryError(R"({"priority": 1, "effect": 1, "fallback_msg": 7})") ==
        "`/t/0/fallback_msg`: `fallback_msg` must be a string, got a number");
  CHECK(EntryError(R"({"priority": 1, "effect": 0, "fallback": 2})") ==
        "`/t/0/fallback`: an allow entry cannot have fallback `ask`: fallbacks apply only to "
        "forbid entries");
  CHECK(EntryError(R"({"priority": 1, "effect": "allow", "fallback": "terminate"})") ==
        "`/t/0/fallback`: an allow entry cannot have fallback `terminate`: fallbacks apply only "
        "to forbid entries");
  CHECK(EntryError(R"({"priority": 1, "effect": 0, "fallback": 0, "fallback_msg": "no"})") ==
        "`/t/0/fallback_msg`: an allow entry cannot have a `fallback_msg`: fallbacks apply only "
        "to forbid entries");
  CHECK(EntryError(R"({"priority": 1, "effect": 0, "comment": "x"})") ==
        "`/t/0/comment`: unknown entry key `comment` (expected `priority`, `effect`, "
        "`conditions`, `fallback`, `fallback_msg` or `update`)");
  CHECK(EntryError(R"({"priority": 1, "effect": 0, "conditions": []})") ==
        "`/t/0/conditions`: `conditions` must be an object mapping argument names to JSON "
        "Schemas or regexes, got an array");
  CHECK(EntryError(R"({"priority": 1, "effect": 0, "update": []})") ==
        "`/t/0/update`: `update` must be an object mapping tool names to lists of entries, got "
        "an array");
  CHECK(EntryError(R"({"priority": 1, "effect": 0, "update": {"u": [{"priority": 1}]}})") ==
        "`/t/0/update/u/0`: the entry has no `effect`");
  CHECK(EntryError(R"([1, 0, {}, 0])") ==
        "`/t/0`: an entry must be an object, got an array (the tuple form is not supported)");
  CHECK(EntryError(R"("allow")") == "`/t/0`: an entry must be an object, got a string");
}

TEST_CASE("bad documents and tool maps are errors", "[progent_import]") {
  CHECK(Error("[]") ==
        "the top level must be a JSON object mapping tool names to lists of entries, got an "
        "array");
  CHECK(Error("\"x\"") ==
        "the top level must be a JSON object mapping tool names to lists of entries, got a "
        "string");
  CHECK(Error(R"({"t": {"priority": 1, "effect": 0}})") ==
        "`/t`: the entries of tool `t` must be a list, got an object");
  CHECK(Error(R"({"send_*": [{"priority": 1, "effect": 0}]})") ==
        "`/send_*`: tool name `send_*` contains `*` or `?`, which toolwarden reads as a glob");
  CHECK(Error(R"({"get?": []})") ==
        "`/get?`: tool name `get?` contains `*` or `?`, which toolwarden reads as a glob");
  CHECK(Error(R"({"t": [], "u": [{"priority": 1, "effect": 0,
                  "update": {"a*b": [{"priority": 1, "effect": 0}]}}]})") ==
        "`/u/0/update/a*b`: tool name `a*b` contains `*` or `?`, which toolwarden reads as a "
        "glob");
  CHECK(Error(R"({"": []})") == "`/`: a tool name cannot be empty");
}

TEST_CASE("duplicate keys are errors, not silently merged", "[progent_import]") {
  CHECK(Error(R"({"t": [{"priority": 1, "effect": 1}], "t": [{"priority": 1, "effect": 0}]})") ==
        "`/t`: duplicate key `t` (a JSON parser keeps only one of them)");
  CHECK(Error(R"({"t": [{"priority": 1, "effect": 0}, {"priority": 2, "effect": 0,
                  "conditions": {"a": {"items": [1, {"x": 1, "x": 2}]}}}]})") ==
        "`/t/1/conditions/a/items/1/x`: duplicate key `x` (a JSON parser keeps only one of "
        "them)");
  CHECK(Error(R"({"t": [{"priority": 1, "priority": 2, "effect": 0}]})") ==
        "`/t/0/priority`: duplicate key `priority` (a JSON parser keeps only one of them)");
}

TEST_CASE("invalid JSON is an error", "[progent_import]") {
  const std::string message = Error(R"({"t": [)");
  CHECK(message.rfind("the input is not valid JSON: parse error at line 1, column 8", 0) == 0);
  CHECK(Error("").rfind("the input is not valid JSON: ", 0) == 0);
  CHECK(Error(R"({"t": [{"priority": 1e400}]})") ==
        "the input is not valid JSON: number overflow parsing '1e400'");
  CHECK(Error("{\"t\xff\": []}").rfind("the input is not valid JSON: ", 0) == 0);
}

TEST_CASE("over-deep input is rejected before parsing", "[progent_import]") {
  CHECK(Error(std::string(100000, '['), StatusCode::kResourceExhausted) ==
        "the input nests arrays and objects deeper than 128 levels (at byte 128)");
  // Five levels of policy around a const of n nested arrays.
  const std::string prefix =
      R"({"t": [{"priority": 1, "effect": 0, "conditions": {"v": {"const": )";
  const auto nested = [&](int n) {
    return prefix + std::string(n, '[') + std::string(n, ']') + "}}}]}";
  };
  CHECK(Rules(nested(123)).rfind("allow t when v != null and v == [[[", 0) == 0);
  CHECK(Error(nested(124), StatusCode::kResourceExhausted) ==
        "the input nests arrays and objects deeper than 128 levels (at byte " +
            std::to_string(prefix.size() + 123) + ")");
  // Brackets inside strings do not count.
  CHECK(SchemaError("\"" + std::string(1000, '[') + "\"")
            .rfind("`/t/0/conditions/v`: RE2 rejects the regex `[[[[", 0) == 0);
  CHECK(Rules(R"({"t": [{"priority": 1, "effect": 1, "fallback_msg": ")" + std::string(1000, '{') +
              "\\\"" + std::string(1000, '[') + "\"}]}")
            .rfind("forbid t priority 1 fallback block \"{{{", 0) == 0);
}

TEST_CASE("oversize input is rejected", "[progent_import]") {
  const size_t limit = ProgentImportLimits().max_input_bytes;
  CHECK(limit == size_t{16} << 20);
  CHECK(Error(std::string(limit + 1, ' '), StatusCode::kResourceExhausted) ==
        "the input is 16777217 bytes, over the limit of 16777216");
  // Exactly at the limit the input is read (and here is not JSON).
  CHECK(Error(std::string(limit, ' ')).rfind("the input is not valid JSON", 0) == 0);
}

TEST_CASE("objects with very many members are rejected before parsing", "[progent_import]") {
  std::string json = "{";
  for (int i = 0; i < 10000; ++i) {
    json += (i > 0 ? ",\"t" : "\"t") + std::to_string(i) + "\":[]";
  }
  json += "}";
  const std::string message = Error(json, StatusCode::kResourceExhausted);
  CHECK(message.rfind("the input's objects have too many members: parsing them takes more than "
                      "33554432 key comparisons",
                      0) == 0);
  // 1000 tools are fine.
  std::string small = "{";
  for (int i = 0; i < 1000; ++i) {
    small += (i > 0 ? ",\"t" : "\"t") + std::to_string(i) + "\":[]";
  }
  small += "}";
  CHECK(Rules(small).empty());
}

TEST_CASE("exponential growth from nested oneOf hits the output limit", "[progent_import]") {
  std::string schema = R"({"const": 1})";
  for (int i = 0; i < 40; ++i) {
    schema.insert(0, R"({"oneOf": [{"const": 2}, )");
    schema += "]}";
  }
  const std::string message =
      Error(R"({"t": [{"priority": 1, "effect": 0, "conditions": {"v": )" + schema + "}}]}",
            StatusCode::kResourceExhausted);
  CHECK(message.find("the translation grows past the limit of 8388608 bytes") != std::string::npos);
  CHECK(message.rfind("`/t/0/conditions/v/oneOf/1/", 0) == 0);

  ProgentImportLimits limits;
  limits.max_output_bytes = 100;
  StatusOr<std::string> out =
      ImportProgent(R"({"t": [{"priority": 1, "effect": 0, "conditions": {"v": {"enum": [
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                      "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]}}}]})",
                    "x", limits);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == StatusCode::kResourceExhausted);
  CHECK(out.status().message() ==
        "`/t/0/conditions/v`: the translation grows past the limit of 100 bytes");
}

TEST_CASE("the output limit counts every rule once, update rules included", "[progent_import]") {
  ProgentImportLimits limits;
  limits.max_output_bytes = 200;
  const std::string entry = R"({"priority": 1, "effect": 0})";  // "allow t priority 1"
  std::string entries = entry;
  for (int i = 0; i < 5; ++i) entries += ", " + entry;
  StatusOr<std::string> out = ImportProgent(R"({"t": [)" + entries + "]}", "x", limits);
  CHECK(out.ok());
  for (int i = 0; i < 5; ++i) entries += ", " + entry;
  out = ImportProgent(R"({"t": [)" + entries + "]}", "x", limits);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == StatusCode::kResourceExhausted);
  CHECK(out.status().message() == "`/t/6`: the translation grows past the limit of 200 bytes");
  out = ImportProgent(
      R"({"t": [{"priority": 1, "effect": 0, "update": {"u": [)" + entries + "]}}]}", "x", limits);
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().message() ==
        "`/t/0/update/u/6`: the translation grows past the limit of 200 bytes");
}

// The regex in the single `matches` of `rule`.
std::string RegexOf(const std::string& rule) {
  const size_t begin = rule.find("matches r\"");
  REQUIRE(begin != std::string::npos);
  const size_t end = rule.find('"', begin + 10);
  REQUIRE(end != std::string::npos);
  return rule.substr(begin + 10, end - begin - 10);
}

TEST_CASE("a pattern under a full match behaves like Python re.search", "[progent_import]") {
  const auto search = [](const std::string& pattern, const std::string& text) {
    const RE2 re(RegexOf(Allow(R"({"type": "string", "pattern": ")" + pattern + R"("})")));
    REQUIRE(re.ok());
    return RE2::FullMatch(text, re);
  };
  CHECK(search("b", "abc"));
  CHECK(search("b", "a\nb\nc"));  // the added ends cross newlines
  CHECK_FALSE(search("x", "abc"));
  CHECK(search("^a", "abc"));
  CHECK_FALSE(search("^b", "abc"));
  CHECK(search("c$", "abc"));
  CHECK_FALSE(search("b$", "abc"));
  CHECK(search("a.c", "abc"));
  CHECK_FALSE(search("a.c", "a\nc"));  // `.` in the pattern still excludes newline
  CHECK(search("(?i)B", "abc"));
  CHECK(search("a|x", "zzx"));  // alternation stays inside the group
  CHECK_FALSE(search("^a|^x", "zzx"));
}

TEST_CASE("long user text in messages is cut", "[progent_import]") {
  const std::string key(500, 'k');
  const std::string message = SchemaError(R"({")" + key + R"(": 1})");
  CHECK(message == "`/t/0/conditions/v/" + key.substr(0, 160 - 18) +
                       "...`: unsupported JSON "
                       "Schema keyword `" +
                       key.substr(0, 80) + "...`");
}

}  // namespace
}  // namespace toolwarden
