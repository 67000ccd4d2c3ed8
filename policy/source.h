// Source: a policy's text with its name, and positions within it.
#ifndef TOOLWARDEN_POLICY_SOURCE_H_
#define TOOLWARDEN_POLICY_SOURCE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace toolwarden {

// A place in a source: 1-based line, 1-based column counted in code points,
// and the byte offset of that code point. Line 0 means "no position".
struct Position {
  int line = 0;
  int column = 0;
  size_t offset = 0;
};

// A policy text and the name it is reported under (usually its path).
class Source {
 public:
  Source(std::string name, std::string text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }

  // The text of a 1-based line, without its line break; empty when out of range.
  std::string_view Line(int line) const;
  // The position of a byte offset (clamped to the end of the text).
  Position PositionAt(size_t offset) const;

 private:
  std::string name_;
  std::string text_;
  std::vector<size_t> line_starts_;  // byte offset of each line's first byte
};

}  // namespace toolwarden

#endif  // TOOLWARDEN_POLICY_SOURCE_H_
