// Parsing JSON that comes from outside toolwarden: CLI arguments, tool-schema
// files, test files and, later, HTTP bodies. Everything here treats its input
// as hostile: the size and the nesting depth are checked before nlohmann::json
// sees the text, and no exception escapes.
//
// Byte offsets in error messages count from 0. Messages never contain raw
// control or non-ASCII bytes from the input, so they are safe to print or to
// put in a JSON reply.
#ifndef TOOLWARDEN_POLICY_JSON_LIMITS_H_
#define TOOLWARDEN_POLICY_JSON_LIMITS_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "policy/status.h"

namespace toolwarden {

// Default size limit for JSON text. Stops memory exhaustion: a huge body or
// file would be held in memory and then expanded several times over into a
// nlohmann::json tree.
inline constexpr size_t kMaxJsonBytes = 16 << 20;

// Default nesting limit (`[]` is depth 1). Stops stack exhaustion: code that
// walks a value recursively (nlohmann's dump() and comparisons, the
// interpreter) would overflow its stack on `[[[[...` a million levels deep.
inline constexpr int kMaxJsonDepth = 128;

struct JsonLimits {
  size_t max_bytes = kMaxJsonBytes;
  int max_depth = kMaxJsonDepth;
};

// Parses one JSON value (RFC 8259; a UTF-8 byte order mark at the start is
// skipped, comments are not allowed). Checks, in order:
//   - size: more than limits.max_bytes -> kResourceExhausted
//     "JSON text is N bytes; the limit is M"
//   - depth: a linear, non-recursive scan that skips string contents; an
//     array or object opened deeper than limits.max_depth -> kResourceExhausted
//     "JSON nests deeper than M at byte N" (N is the offending bracket)
//   - a NUL byte anywhere (nlohmann would take it for the end of the text)
//     -> kInvalidArgument "invalid JSON at byte N (line L, column C): a NUL byte"
//   - syntax: anything nlohmann rejects, including invalid UTF-8 and lone
//     surrogate escapes in strings -> kInvalidArgument
//     "invalid JSON at byte N (line L, column C): <nlohmann's explanation>";
//     a number too large for a double -> kInvalidArgument
//     "invalid JSON: number overflow parsing '1e400'" (no offset known)
// A negative limits.max_depth is a caller bug: kInvalidArgument.
// Duplicate object keys are accepted; the last one wins (as in nlohmann and
// Python's json).
StatusOr<nlohmann::json> ParseJson(std::string_view text, const JsonLimits& limits = {});

// True when `value` nests at most `max_depth` levels: a scalar is depth 0, `[]`
// and `{}` are 1, `[[1]]` is 2. For values built in code rather than parsed by
// ParseJson. Iterative, with memory bounded by max_depth: a value nested a
// million deep cannot overflow the stack. A negative max_depth gives false.
bool JsonWithinDepth(const nlohmann::json& value, int max_depth);
bool JsonWithinDepth(const nlohmann::ordered_json& value, int max_depth);

// Reads the whole file at `path`. Errors:
//   - cannot be opened -> kNotFound "cannot open `path`: <strerror text>"
//     (also for permission denied)
//   - a directory -> kInvalidArgument "`path` is a directory"
//   - larger than max_bytes -> kResourceExhausted
//     "`path` is N bytes; the limit is M", checked from the file size before
//     reading; files whose size is not known in advance (pipes, /proc) stop
//     being read at max_bytes + 1 bytes: "`path` is at least N bytes; ..."
//   - a read error (EIO and the like) -> kUnavailable
//     "cannot read `path`: <strerror text>"
// The content is returned as bytes; it is not checked to be UTF-8.
StatusOr<std::string> ReadTextFile(const std::string& path, size_t max_bytes);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_JSON_LIMITS_H_
