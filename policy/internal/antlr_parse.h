// The only bridge to the ANTLR-generated parser. Private to policy/.
#ifndef TOOLWARDEN_POLICY_INTERNAL_ANTLR_PARSE_H_
#define TOOLWARDEN_POLICY_INTERNAL_ANTLR_PARSE_H_

#include "policy/parser.h"

namespace toolwarden::internal {

// Lexes, checks nesting and list sizes on the token stream, parses, and builds
// the AST. `source` must already be valid UTF-8 within the size limit.
void AntlrParse(const Source& source, const ParseLimits& limits, ParseResult* result);

}  // namespace toolwarden::internal

#endif  // TOOLWARDEN_POLICY_INTERNAL_ANTLR_PARSE_H_
