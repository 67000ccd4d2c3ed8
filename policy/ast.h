// The policy AST: plain data produced by the parser (parser.h) and read by the
// checker, the formatter and the compiler. It mirrors the source closely enough
// to be printed back (formatter.h); meaning is given in docs/language.md.
#ifndef TOOLWARDEN_POLICY_AST_H_
#define TOOLWARDEN_POLICY_AST_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "policy/source.h"

namespace toolwarden {

enum class ExprKind {
  kLiteral,  // literal: null, boolean, number or string
  kList,     // children: the elements
  kName,     // name: an argument, a `let` constant or a built-in (tool, args, query)
  kField,    // children[0].name
  kIndex,    // children[0][children[1]]
  kCall,     // name(children...)
  kUnary,    // op children[0]
  kBinary,   // children[0] op children[1]
  kFrom,     // children[0] from name ("query" or "trusted")
};

enum class Op {
  kNone,
  kNeg,
  kNot,  // unary
  kMul,
  kDiv,
  kMod,
  kAdd,
  kSub,  // arithmetic
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,  // comparison
  kIn,
  kNotIn,  // membership
  kMatches,
  kContains,
  kStartsWith,
  kEndsWith,  // strings
  kAnd,
  kOr,  // boolean
};

// The operator's spelling in the language ("==", "not in", "matches", ...).
const char* OpSpelling(Op op);

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  Op op = Op::kNone;
  Position position;        // where the expression starts
  size_t end_offset = 0;    // byte offset just past its last character
  nlohmann::json literal;   // kLiteral
  bool raw_string = false;  // kLiteral written as r"..."
  std::string name;         // kName, kField, kCall, kFrom
  std::vector<std::unique_ptr<Expr>> children;
};

enum class Effect { kAllow, kForbid };
enum class FallbackKind { kBlock, kAsk, kTerminate };

struct Target {
  std::string text;     // a tool name, a glob, or "*"
  bool quoted = false;  // written as a string literal
  Position position;
  bool IsGlob() const { return text.find_first_of("*?") != std::string::npos; }
};

struct Fallback {
  FallbackKind kind = FallbackKind::kBlock;
  std::optional<std::string> message;
  Position position;
};

inline constexpr int64_t kDefaultPriority = 10;

struct Rule {
  Effect effect = Effect::kAllow;
  Position position;
  std::vector<Target> targets;
  std::unique_ptr<Expr> condition;  // null: always true
  std::optional<int64_t> priority;  // as written; kDefaultPriority when absent
  Position priority_position;
  std::optional<Fallback> fallback;
  bool has_update = false;  // an `update { }` block was written (possibly empty)
  std::vector<Rule> updates;
};

enum class ItemKind { kPolicy, kTools, kTrust, kLet, kDefault, kRule };

// One top-level item. Only the fields of its kind are set.
struct Item {
  ItemKind kind = ItemKind::kRule;
  Position position;
  Position end;                 // position of the closing ';'
  std::string name;             // kPolicy: policy name; kLet: constant name
  std::string path;             // kTools
  std::vector<Target> trust;    // kTrust
  std::unique_ptr<Expr> value;  // kLet
  Fallback fallback;            // kDefault
  Rule rule;                    // kRule
};

struct Comment {
  Position position;
  std::string text;  // from '#' to the end of the line
};

struct PolicyAst {
  std::vector<Item> items;
  std::vector<Comment> comments;  // in source order, for the formatter
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_AST_H_
