// Private to interpreter/: the flat, planned form of a policy inside a Program.
#ifndef TOOLWARDEN_INTERPRETER_PLAN_H_
#define TOOLWARDEN_INTERPRETER_PLAN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "interpreter/combine.h"
#include "nlohmann/json.hpp"
#include "policy/ast.h"
#include "policy/checker.h"
#include "policy/diagnostic.h"
#include "policy/source.h"
#include "policy/status.h"
#include "re2/re2.h"

namespace toolwarden {
class Program;
}  // namespace toolwarden

namespace toolwarden::internal {

// Deepest nesting of all()/any() quantifiers; each needs a variable slot. The
// checker reports a deeper policy with its position; the compiler checks again.
inline constexpr int kMaxQuantifierNesting = ::toolwarden::kMaxQuantifierNesting;

enum class NodeOp : uint8_t {
  kConst,    // constants[a]
  kArg,      // the call's argument named strings[a]
  kTool,     // the tool's name
  kArgs,     // the whole argument object
  kQuery,    // the session's query
  kLocal,    // quantifier variable in slot a
  kField,    // node a, field strings[b]
  kIndex,    // node a [ node b ]
  kList,     // elements: node indices list_items[a .. a+b)
  kNot,      // not node a
  kNeg,      // - node a
  kAnd,      // node a and node b
  kOr,       // node a or node b
  kBinary,   // node a `op` node b (arithmetic, comparison, in, string ops)
  kInSet,    // node a in sets[b]; c = 1 for `not in`
  kMatches,  // node a matches regexes[b]
  kLower,
  kLen,
  kType,
  kUrl,
  kEmail,
  kPath,    // f(node a)
  kCount,   // count(globs[a])
  kCalled,  // called(globs[a])
  kSum,     // sum(globs[a].strings[b])
  kAll,
  kAny,          // slot c; array node a; condition node b
  kFromQuery,    // node a from query
  kFromTrusted,  // node a from trusted
};

struct Node {
  NodeOp op = NodeOp::kConst;
  Op binary = Op::kNone;  // for kBinary
  uint32_t a = 0, b = 0, c = 0;
  uint32_t begin = 0, end = 0;  // source bytes, for explanations
};

// A literal list, prepared for O(1) membership of scalars.
struct ConstSet {
  std::unordered_set<std::string_view> strings;  // views into Plan::constants
  std::unordered_set<double> numbers;
  bool has_null = false, has_true = false, has_false = false;
  std::vector<const nlohmann::json*> others;  // arrays and objects: deep equality
};

// A tool-name pattern: exact name or glob.
struct ToolPattern {
  std::string text;
  bool glob = false;
  bool Matches(std::string_view tool) const;
};

struct CompiledRule {
  std::string id;  // "FILE:LINE"
  int line = 0;
  RuleKey key;
  std::vector<ToolPattern> targets;
  int32_t condition = -1;           // root node; -1: always true
  std::vector<uint32_t> conjuncts;  // top-level `and` operands, for explanations
  FallbackKind fallback = FallbackKind::kBlock;
  std::optional<std::string> message;
  std::vector<uint32_t> updates;  // rules this rule's `update` block adds
  bool Targets(std::string_view tool) const;
};

// A part of the policy text: the file itself (segments[0]) or a text that
// Session::AddRules appended to it. Rule ids count lines from the segment's
// first line and use its name.
struct Segment {
  std::string name;             // base name for rule ids
  int first_line = 1;           // in the combined text
  size_t first_offset = 0;      // byte offset in the combined text
  std::vector<uint32_t> rules;  // its top-level rules, in order
  bool drafted = false;         // added with AddMode::kDraft or kDraftNarrowing
};

struct Plan {
  std::shared_ptr<const CheckedPolicy> checked;  // for extending the policy (AddRules)
  std::vector<Segment> segments;                 // at least one
  std::string name;
  std::string hash;
  std::string source_name;
  std::string source_text;
  std::vector<Node> nodes;
  std::vector<uint32_t> list_items;
  std::vector<std::unique_ptr<nlohmann::json>> constants;  // stable addresses
  std::vector<std::string> strings;
  std::vector<std::unique_ptr<ConstSet>> sets;
  std::vector<std::unique_ptr<RE2>> regexes;
  std::vector<ToolPattern> globs;   // for count/called/sum
  std::vector<CompiledRule> rules;  // file order; update-block rules after their parent
  size_t top_level_rules = 0;
  // Candidates per tool, sorted by DecidesBefore: for every tool name that the
  // policy or its catalog names, and for any other name (glob and `*` rules).
  std::unordered_map<std::string_view, std::vector<uint32_t>> by_tool;
  std::vector<std::string> tool_names;  // owns the keys of by_tool
  std::vector<uint32_t> wildcard_rules;
  std::vector<ToolPattern> trusted_tools;
  FallbackKind default_fallback = FallbackKind::kBlock;
  std::optional<std::string> default_message;

  // Candidate rules of `tool`, sorted; for unknown names, wildcard_rules
  // (callers filter with CompiledRule::Targets).
  const std::vector<uint32_t>& Candidates(std::string_view tool, bool* exact) const;
};

// Appends `text` (rules and `let`s in the policy language) to `base`'s policy
// as a new segment named `name`, and checks and compiles the whole again.
// Diagnostics are positioned in `source` (the appended text alone).
struct Extension {
  std::shared_ptr<const Program> program;  // set only when ok
  Source source{"", ""};
  Diagnostics diagnostics;
  Status status;
};
//
// A `drafted` text (rules a model wrote) may hold only `allow` rules without
// `update` blocks, each with a priority written out, at `floor` or above.
struct ExtendOptions {
  bool drafted = false;
  int64_t floor = 0;
};
Extension ExtendProgram(const Program& base, std::string name, std::string text,
                        const ExtendOptions& options = {});

// The text of segment `i` of `plan`.
std::string_view SegmentText(const Plan& plan, size_t i);

// Compiles `policy` whose text is split into `segments` (names and starts).
StatusOr<std::shared_ptr<const Program>> CompileSegments(
    std::shared_ptr<const CheckedPolicy> policy, std::vector<Segment> segments);

}  // namespace toolwarden::internal

#endif  // TOOLWARDEN_INTERPRETER_PLAN_H_
