// Format: AST -> canonical policy text (`toolwarden fmt`).
//
// One item per line, two-space continuation indent, minimal parentheses, the
// canonical spelling of every literal; comments are kept (a comment inside an
// item moves to just before it). Formatting never changes meaning: parsing the
// output gives the same AST, and formatting it again gives the same text.
#ifndef TOOLWARDEN_POLICY_FORMATTER_H_
#define TOOLWARDEN_POLICY_FORMATTER_H_

#include <string>

#include "policy/ast.h"
#include "policy/source.h"

namespace toolwarden {

// Lines longer than this are broken before `when`, `priority` and `fallback`; a
// condition still too long is broken before each operand of its top-level
// `and`/`or` chain, and a long `let` list is written one element per line.
inline constexpr size_t kFormatLineWidth = 100;

// `ast` must come from parsing `source` without errors.
std::string Format(const PolicyAst& ast, const Source& source);
// The canonical text of one expression, e.g. for messages and tests.
std::string FormatExpr(const Expr& expr);
// A rule target naming exactly the tool `name`: bare when it is an identifier
// and not a reserved word, else a string literal. (`*` and `?` in it would be
// read as a glob; callers that need an exact name check for them.)
std::string FormatToolName(const std::string& name);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_FORMATTER_H_
