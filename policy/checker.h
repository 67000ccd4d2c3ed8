// Check: AST -> CheckedPolicy plus diagnostics (docs/language.md, "Static checks").
//
// The checker resolves `let` constants, validates every rule (targets, names,
// functions, regexes, message templates, priorities) and, when a ToolCatalog is
// given, the tool names, argument names and argument types that rules use. A
// policy with errors must not be compiled; warnings do not stop it.
#ifndef TOOLWARDEN_POLICY_CHECKER_H_
#define TOOLWARDEN_POLICY_CHECKER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "policy/ast.h"
#include "policy/diagnostic.h"
#include "policy/source.h"
#include "policy/tool_catalog.h"

namespace toolwarden {

inline constexpr int64_t kMaxPriority = 1000000;
// Largest RE2 program (forward and reverse) a `matches` pattern may compile to.
// Stops a pattern like `(a{100}){100}` from costing megabytes per policy.
inline constexpr int kMaxRegexProgramSize = 20000;
// Memory RE2 may use for one pattern (its compile budget).
inline constexpr int64_t kMaxRegexMemory = 8 << 20;
// Deepest nesting of all()/any() quantifiers. Each level multiplies the work of
// a decision by its array's size and needs a variable slot in the evaluator.
inline constexpr int kMaxQuantifierNesting = 16;

// A policy that passed the checker: everything the compiler needs, owned.
struct CheckedPolicy {
  std::string name;         // from `policy NAME;`, else the source name
  std::string source_name;  // the file name, for rule ids "file:line"
  std::string source_text;  // for explanations and the policy hash
  PolicyAst ast;
  std::map<std::string, nlohmann::json> constants;  // `let` values
  std::vector<Target> trusted_tools;                // `trust` items
  std::optional<Fallback> default_fallback;         // `default` item
  std::optional<ToolCatalog> catalog;               // the schemas it was checked against
  std::optional<std::string> tools_path;            // `tools "FILE";` as written
};

struct CheckResult {
  std::shared_ptr<const CheckedPolicy> policy;  // null when diagnostics has errors
  Diagnostics diagnostics;
};

// `catalog` may be null (no schema checks). The AST is consumed.
CheckResult Check(PolicyAst ast, const Source& source, const ToolCatalog* catalog);

// True when `name` matches `pattern`, where `*` matches any run of characters
// and `?` any one character (the language's tool globs).
bool GlobMatch(std::string_view pattern, std::string_view name);

// The placeholders a fallback message may use: {tool}, {query}, {rule}, {reason}.
bool IsMessagePlaceholder(std::string_view name);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_CHECKER_H_
