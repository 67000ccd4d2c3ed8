#include "policy/diagnostic.h"

#include <algorithm>
#include <tuple>

namespace toolwarden {

void Diagnostics::Error(Position position, std::string message) {
  items_.push_back({Severity::kError, position, std::move(message)});
  ++errors_;
}

void Diagnostics::Warning(Position position, std::string message) {
  items_.push_back({Severity::kWarning, position, std::move(message)});
}

void Diagnostics::Append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
  errors_ += other.errors_;
}

std::vector<Diagnostic> Diagnostics::Sorted() const {
  std::vector<Diagnostic> sorted = items_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::make_tuple(a.position.line, a.position.column, a.severity) <
           std::make_tuple(b.position.line, b.position.column, b.severity);
  });
  if (sorted.size() > kMaxDiagnostics) {
    size_t dropped = sorted.size() - kMaxDiagnostics + 1;
    Position last = sorted[kMaxDiagnostics - 1].position;
    // The note is an error only when an error is among what it stands for.
    const bool errors_dropped =
        std::any_of(sorted.begin() + (kMaxDiagnostics - 1), sorted.end(),
                    [](const Diagnostic& d) { return d.severity == Severity::kError; });
    sorted.resize(kMaxDiagnostics - 1);
    sorted.push_back({errors_dropped ? Severity::kError : Severity::kWarning, last,
                      "too many diagnostics; " + std::to_string(dropped) + " more not shown"});
  }
  return sorted;
}

std::string Abbreviate(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes > 3 ? max_bytes - 3 : 0;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

namespace {

const char* SeverityName(Severity s) { return s == Severity::kError ? "error" : "warning"; }

}  // namespace

std::string FormatDiagnostics(const Source& source, const Diagnostics& diagnostics) {
  std::string out;
  for (const Diagnostic& d : diagnostics.Sorted()) {
    out += source.name() + ":" + std::to_string(d.position.line) + ":" +
           std::to_string(d.position.column) + ": " + SeverityName(d.severity) + ": " + d.message +
           "\n";
    std::string_view line = source.Line(d.position.line);
    if (d.position.line == 0 || line.size() > 500) continue;
    out += "  ";
    out += line;
    out += "\n  ";
    // Keep tabs so the caret lines up; count code points like the column does.
    int column = 1;
    for (size_t i = 0; i < line.size() && column < d.position.column; ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      if ((c & 0xC0) == 0x80) continue;
      out += c == '\t' ? '\t' : ' ';
      ++column;
    }
    out += "^\n";
  }
  return out;
}

nlohmann::json DiagnosticsToJson(const Source& source, const Diagnostics& diagnostics) {
  nlohmann::json out = nlohmann::json::array();
  for (const Diagnostic& d : diagnostics.Sorted()) {
    out.push_back({{"file", source.name()},
                   {"line", d.position.line},
                   {"column", d.position.column},
                   {"severity", SeverityName(d.severity)},
                   {"message", d.message}});
  }
  return out;
}

}  // namespace toolwarden
