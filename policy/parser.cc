#include "policy/parser.h"

#include <string>

#include "policy/internal/antlr_parse.h"

namespace toolwarden {

size_t FindInvalidUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return i;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= text.size()) return i;
      unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return i;
    }
    i += n + 1;
  }
  return std::string_view::npos;
}

ParseResult Parse(const Source& source, const ParseLimits& limits) {
  ParseResult result;
  const std::string& text = source.text();
  if (text.size() > limits.max_source_bytes) {
    result.diagnostics.Error(Position{1, 1, 0}, "policy is " + std::to_string(text.size()) +
                                                    " bytes; the limit is " +
                                                    std::to_string(limits.max_source_bytes));
    return result;
  }
  size_t bad = FindInvalidUtf8(text);
  if (bad != std::string_view::npos) {
    result.diagnostics.Error(source.PositionAt(bad),
                             "invalid UTF-8 at byte " + std::to_string(bad));
    return result;
  }
  internal::AntlrParse(source, limits, &result);
  return result;
}

}  // namespace toolwarden
