// Progent JSON import: turns a policy written in Progent's JSON form into
// toolwarden policy text. This is what `toolwarden import --from progent
// FILE.json` prints; docs/progent-import.md has the full mapping and an example.
//
// The input is `{TOOL: [ENTRY, ...], ...}` where each ENTRY is
//
//   {"priority": 0..1000000,                       required
//    "effect": 0 | 1 | "allow" | "forbid" | "deny", required (0 = allow)
//    "conditions": {ARG: SCHEMA_OR_REGEX, ...},    default {}
//    "fallback": 0 | 1 | 2 | "block" | "terminate" | "ask",  default block
//    "fallback_msg": STRING,                       optional
//    "update": {TOOL: [ENTRY, ...], ...}}          optional
//
// and each condition is a JSON Schema (a subset: see the doc) or a string,
// read as {"type": "string", "pattern": STRING}. Every entry becomes one rule,
// in input order of tools and then of entries:
//
//   # imported from Progent JSON: SOURCE_NAME
//
//   forbid send_money when (...) priority 1 fallback block;
//   allow send_money when (...) priority 100;
//
// The translation fails closed where Progent fails open: an argument that an
// allow entry constrains must be present, a forbid entry matches when it is
// missing, and a JSON Schema keyword that toolwarden cannot express (`format`,
// `properties`, `$ref`, ...) is an error rather than ignored. So is a
// duplicate JSON key, which a JSON parser would silently drop.
//
// Errors are InvalidArgument for a malformed or untranslatable policy and
// ResourceExhausted for a limit below; the message names the JSON Pointer of
// the offending place, e.g.
//   `/send_money/0/conditions/recipient/format`: unsupported JSON Schema keyword `format`
// Nothing here throws.
#ifndef TOOLWARDEN_POLICY_PROGENT_IMPORT_H_
#define TOOLWARDEN_POLICY_PROGENT_IMPORT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "policy/status.h"

namespace toolwarden {

// Defences against hostile input. Each stops a specific attack.
struct ProgentImportLimits {
  // Input bytes. Stops memory exhaustion by a huge file.
  size_t max_input_bytes = size_t{16} << 20;
  // Nesting of arrays and objects, checked by a scan before parsing. Stops
  // stack exhaustion in the recursive parts of the parser and the translator.
  int max_depth = 128;
  // Key comparisons the JSON parser may make while building objects, also
  // checked by the scan: an object of n members costs n*(n-1)/2 because
  // `nlohmann::ordered_json` (which keeps the input's tool order) finds keys
  // by linear search. Stops a quadratic-time parse of objects with many keys.
  size_t max_key_comparisons = size_t{1} << 25;
  // Bytes of generated policy text. `oneOf` repeats each branch once per
  // branch, so nested `oneOf`s grow exponentially; this stops that. The
  // default is the policy parser's source limit: longer output could not be
  // loaded anyway.
  size_t max_output_bytes = size_t{8} << 20;
};

// Translates `json_text` (a Progent policy) into toolwarden policy text.
// `source_name` (usually the file name) only appears in the first comment line;
// control characters and invalid UTF-8 in it are replaced by `?`.
StatusOr<std::string> ImportProgent(std::string_view json_text, std::string_view source_name);

// The same, with explicit limits.
StatusOr<std::string> ImportProgent(std::string_view json_text, std::string_view source_name,
                                    const ProgentImportLimits& limits);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_PROGENT_IMPORT_H_
