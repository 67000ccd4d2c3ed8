// Diagnostics: problems in a user's policy text, each tied to a position.
//
// Every front-end stage (parser, checker) returns its diagnostics as data. They
// print one way: `file:line:col: error: message`, then the source line and a
// caret under the column. Lists are sorted by position and capped, so hostile
// input cannot produce unbounded output.
#ifndef TOOLWARDEN_POLICY_DIAGNOSTIC_H_
#define TOOLWARDEN_POLICY_DIAGNOSTIC_H_

#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "policy/source.h"

namespace toolwarden {

// At most this many diagnostics are kept per policy; the last one kept says how
// many were dropped. Stops a pathological file from flooding a terminal or log.
inline constexpr size_t kMaxDiagnostics = 100;

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  Position position;
  std::string message;  // lower-case start, no final period, user text in `backticks`
};

class Diagnostics {
 public:
  void Error(Position position, std::string message);
  void Warning(Position position, std::string message);
  void Append(const Diagnostics& other);

  bool HasErrors() const { return errors_ > 0; }
  size_t error_count() const { return errors_; }
  // Sorted by position (then errors before warnings), capped at kMaxDiagnostics.
  std::vector<Diagnostic> Sorted() const;

 private:
  std::vector<Diagnostic> items_;
  size_t errors_ = 0;
};

// `text` cut to at most `max_bytes` (ending in "..."), never inside a UTF-8
// sequence, for quoting user text and values in messages.
std::string Abbreviate(std::string_view text, size_t max_bytes);

// `name:line:col: error: message`, the source line and a caret, for each diagnostic.
std::string FormatDiagnostics(const Source& source, const Diagnostics& diagnostics);
// [{"file","line","column","severity","message"}...]
nlohmann::json DiagnosticsToJson(const Source& source, const Diagnostics& diagnostics);

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_DIAGNOSTIC_H_
