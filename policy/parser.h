// Parse: policy text -> AST plus diagnostics.
//
//   Source source("banking.policy", text);
//   ParseResult parsed = Parse(source);
//   if (parsed.diagnostics.HasErrors()) print FormatDiagnostics(source, parsed.diagnostics);
//
// Parsing never throws and never recurses deeper than ParseLimits::max_nesting:
// hostile text (huge, deeply nested, invalid UTF-8, endless errors) gets a
// positioned diagnostic. When there are errors, the AST holds what could be
// recovered and must not be compiled.
#ifndef TOOLWARDEN_POLICY_PARSER_H_
#define TOOLWARDEN_POLICY_PARSER_H_

#include <cstddef>

#include "policy/ast.h"
#include "policy/diagnostic.h"
#include "policy/source.h"

namespace toolwarden {

// Largest policy text. Stops memory and time exhaustion by a huge file.
inline constexpr size_t kMaxSourceBytes = 8u << 20;
// Deepest expression nesting: open brackets plus the operators chained at each
// open level (each one is a level of the parse tree). Checked on the token
// stream before the recursive-descent parser runs, so it cannot overflow the stack.
inline constexpr int kMaxNesting = 256;
// Syntax errors reported before the parser gives up. Stops error-recovery loops
// on garbage input from taking unbounded time.
inline constexpr int kMaxSyntaxErrors = 20;
// Most items (rules, lets, ...) in one file, counting rules in update blocks.
inline constexpr size_t kMaxRules = 100000;
// Most elements in one list literal. Stops a single literal from exhausting memory.
inline constexpr size_t kMaxListElements = 100000;

struct ParseLimits {
  size_t max_source_bytes = kMaxSourceBytes;
  int max_nesting = kMaxNesting;
  int max_syntax_errors = kMaxSyntaxErrors;
  size_t max_rules = kMaxRules;
  size_t max_list_elements = kMaxListElements;
};

struct ParseResult {
  PolicyAst ast;
  Diagnostics diagnostics;
};

ParseResult Parse(const Source& source, const ParseLimits& limits = {});

// The byte offset of the first invalid UTF-8 sequence in text, or npos.
size_t FindInvalidUtf8(std::string_view text);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_PARSER_H_
