#include "policy/json_limits.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <new>
#include <system_error>
#include <utility>
#include <vector>

namespace toolwarden {
namespace {

// Rewrites control and non-ASCII bytes as \xNN so that a message quoting
// hostile input (nlohmann's "last read: '...'") is printable, valid UTF-8, and
// cannot carry terminal escape sequences.
std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte >= 0x20 && byte < 0x7f) {
      out += ch;
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    }
  }
  return out;
}

// nlohmann's what() reads "[json.exception.parse_error.101] parse error at line
// 1, column 4: syntax error ...". Keeps only the explanation after the position.
std::string ExplanationOf(const nlohmann::json::exception& e) {
  std::string_view what = e.what();
  if (!what.empty() && what.front() == '[') {
    const size_t close = what.find("] ");
    if (close != std::string_view::npos) what.remove_prefix(close + 2);
  }
  if (what.substr(0, 11) == "parse error") {
    const size_t colon = what.find(": ");
    if (colon != std::string_view::npos) what.remove_prefix(colon + 2);
  }
  return Printable(what);
}

// 1-based line and column of byte `offset` (which may be text.size()).
std::string LineAndColumn(std::string_view text, size_t offset) {
  size_t line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(offset - line_start + 1);
}

// Finds the first array or object opened deeper than max_depth without
// recursing. String contents are skipped: a backslash skips the byte after it,
// so `"\"[["` and `"\\"` are read correctly. On text that is not valid JSON
// the count may be off, but then nlohmann rejects the text anyway.
Status CheckDepth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (in_string) {
      if (ch == '\\') {
        ++i;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    switch (ch) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (depth >= max_depth) {
          return ResourceExhaustedError("JSON nests deeper than " + std::to_string(max_depth) +
                                        " at byte " + std::to_string(i));
        }
        ++depth;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return OkStatus();
}

std::string ErrnoText(int error) { return std::generic_category().message(error); }

// Closes a file descriptor on every return path.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { ::close(fd_); }

 private:
  int fd_;
};

}  // namespace

StatusOr<nlohmann::json> ParseJson(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return ResourceExhaustedError("JSON text is " + std::to_string(text.size()) +
                                  " bytes; the limit is " + std::to_string(limits.max_bytes));
  }
  if (limits.max_depth < 0) {
    return InvalidArgumentError("max_depth is " + std::to_string(limits.max_depth) +
                                "; it must be at least 0");
  }
  if (Status depth = CheckDepth(text, limits.max_depth); !depth.ok()) return depth;
  // nlohmann stops at a NUL byte as if the text ended there, so "{}\0<more>"
  // would parse as {} while another reader sees <more>. A NUL is never valid
  // JSON (not even inside a string, unescaped): refuse it.
  if (size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return InvalidArgumentError("invalid JSON at byte " + std::to_string(nul) + " (" +
                                LineAndColumn(text, nul) + "): a NUL byte");
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based: the position of the last byte read.
    const size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    return InvalidArgumentError("invalid JSON at byte " + std::to_string(offset) + " (" +
                                LineAndColumn(text, offset) + "): " + ExplanationOf(e));
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("invalid JSON: " + ExplanationOf(e));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory parsing " + std::to_string(text.size()) +
                                  " bytes of JSON");
  } catch (...) {
    return InternalError("unexpected exception parsing JSON");
  }
}

namespace {

template <typename Json>
bool WithinDepth(const Json& value, int max_depth) {
  if (max_depth < 0) return false;
  if (!value.is_structured()) return true;
  // One frame per open container on the current path: at most max_depth.
  struct Frame {
    const Json* container;
    typename Json::const_iterator next;
  };
  std::vector<Frame> path;
  if (max_depth == 0) return false;
  path.push_back({&value, value.cbegin()});
  while (!path.empty()) {
    Frame& top = path.back();
    if (top.next == top.container->cend()) {
      path.pop_back();
      continue;
    }
    const Json& child = *top.next;
    ++top.next;
    if (!child.is_structured()) continue;
    if (static_cast<int>(path.size()) >= max_depth) return false;
    path.push_back({&child, child.cbegin()});
  }
  return true;
}

}  // namespace

bool JsonWithinDepth(const nlohmann::json& value, int max_depth) {
  return WithinDepth(value, max_depth);
}

bool JsonWithinDepth(const nlohmann::ordered_json& value, int max_depth) {
  return WithinDepth(value, max_depth);
}

StatusOr<std::string> ReadTextFile(const std::string& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open `" + path + "`: " + ErrnoText(errno));
  FdCloser closer(fd);

  struct stat info;
  if (::fstat(fd, &info) != 0) {
    return Status(StatusCode::kUnavailable, "cannot read `" + path + "`: " + ErrnoText(errno));
  }
  if (S_ISDIR(info.st_mode)) return InvalidArgumentError("`" + path + "` is a directory");
  if (S_ISREG(info.st_mode) && static_cast<uintmax_t>(info.st_size) > max_bytes) {
    return ResourceExhaustedError("`" + path + "` is " + std::to_string(info.st_size) +
                                  " bytes; the limit is " + std::to_string(max_bytes));
  }

  // Read to end of file even for regular files (they may grow meanwhile, and
  // /proc files report size 0), but never more than max_bytes + 1 bytes.
  std::string content;
  constexpr size_t kChunkBytes = 64 << 10;
  try {
    while (true) {
      // One byte past the limit is enough to know the file is too large.
      const size_t allowed = max_bytes - content.size();
      const size_t want = allowed < kChunkBytes ? allowed + 1 : kChunkBytes;
      const size_t old_size = content.size();
      content.resize(old_size + want);
      const ssize_t got = ::read(fd, content.data() + old_size, want);
      const int read_errno = errno;
      if (got < 0) {
        content.resize(old_size);
        if (read_errno == EINTR) continue;
        return Status(StatusCode::kUnavailable,
                      "cannot read `" + path + "`: " + ErrnoText(read_errno));
      }
      content.resize(old_size + static_cast<size_t>(got));
      if (got == 0) break;
      if (content.size() > max_bytes) {
        return ResourceExhaustedError("`" + path + "` is at least " +
                                      std::to_string(content.size()) + " bytes; the limit is " +
                                      std::to_string(max_bytes));
      }
    }
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory reading `" + path + "`");
  }
  return content;
}

}  // namespace toolwarden
