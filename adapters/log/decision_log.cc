#include "adapters/log/decision_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <new>
#include <system_error>
#include <utility>
#include <vector>

#include "policy/json_limits.h"
#include "policy/sha256.h"

namespace toolwarden {
namespace {

constexpr char kHashPrefix[] = "sha256:";
constexpr size_t kHashPrefixBytes = sizeof(kHashPrefix) - 1;
constexpr size_t kReadChunkBytes = 64 << 10;
// O_NONBLOCK until the file is known to be regular: opening a FIFO for writing
// would otherwise wait for a reader.
constexpr int kOpenFlags = O_RDWR | O_APPEND | O_CLOEXEC | O_NONBLOCK;

std::string ErrnoText(int error) { return std::generic_category().message(error); }

std::string HashOfLine(std::string_view line) { return kHashPrefix + Sha256Hex(line); }

// Closes a file descriptor on every return path unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// "2025-01-31T09:15:02.123Z", from the system clock.
std::string NowRfc3339() {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count();
  const time_t seconds = static_cast<time_t>(ms / 1000);
  struct tm utc = {};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms % 1000));
  return text;
}

// The shape of the times NowRfc3339 writes; 0 stands for any digit.
constexpr std::string_view kTimeShape = "0000-00-00T00:00:00.000Z";

bool IsLogTime(std::string_view text) {
  if (text.size() != kTimeShape.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kTimeShape[i] == '0' ? !digit : text[i] != kTimeShape[i]) return false;
  }
  return true;
}

// What is wrong with `line`, the line numbered `index` (0-based) whose
// predecessor hashes to `prev`; nullopt when it is right.
std::optional<std::string> CheckLine(std::string_view line, uint64_t index,
                                     const std::string& prev) {
  StatusOr<nlohmann::json> parsed = ParseJson(line, JsonLimits{kMaxLogLineBytes, kMaxJsonDepth});
  if (!parsed.ok()) return parsed.status().message();
  if (!parsed->is_object()) return "not a JSON object";

  const auto seq = parsed->find("seq");
  if (seq == parsed->end() || !seq->is_number_unsigned()) {
    return "`seq` is missing or not a non-negative integer";
  }
  const uint64_t seq_value = seq->get<uint64_t>();
  if (seq_value != index) {
    if (index == 0) {
      return "`seq` is " + std::to_string(seq_value) +
             " but the first line's must be 0: lines before it were removed";
    }
    return "`seq` is " + std::to_string(seq_value) + ", expected " + std::to_string(index) +
           ": lines were removed, inserted or reordered";
  }

  const auto time = parsed->find("time");
  if (time == parsed->end() || !time->is_string() ||
      !IsLogTime(time->get_ref<const std::string&>())) {
    return "`time` is missing or not an RFC 3339 UTC time with milliseconds";
  }

  const auto found_prev = parsed->find("prev");
  if (found_prev == parsed->end() || !found_prev->is_string()) {
    return "`prev` is missing or not a string";
  }
  if (found_prev->get_ref<const std::string&>() != prev) {
    if (index == 0) {
      return "`prev` is not the hash of the empty string, as the first line's must be: lines "
             "before it were removed";
    }
    return "`prev` does not match the hash of line " + std::to_string(index) +
           ": that line was edited, or this one was inserted";
  }
  return std::nullopt;
}

// VerifyLog on an open file, read from its current offset to its end.
StatusOr<LogVerification> VerifyFd(int fd, const std::string& path) {
  LogVerification result;
  auto fail = [&result](std::string message) {
    result.problem = LogProblem{static_cast<size_t>(result.lines + 1), std::move(message)};
    return result;
  };
  try {
    std::vector<char> buffer(kReadChunkBytes);
    std::string line;  // the line being read, without its newline
    while (true) {
      const ssize_t got = ::read(fd, buffer.data(), buffer.size());
      if (got < 0) {
        if (errno == EINTR) continue;
        return Status(StatusCode::kUnavailable, "cannot read `" + path + "`: " + ErrnoText(errno));
      }
      if (got == 0) break;
      const char* data = buffer.data();
      const size_t size = static_cast<size_t>(got);
      size_t start = 0;
      while (start < size) {
        const void* newline = std::memchr(data + start, '\n', size - start);
        const size_t end = newline ? static_cast<const char*>(newline) - data : size;
        if (line.size() + (end - start) > kMaxLogLineBytes) {
          return fail("line is longer than the limit of " + std::to_string(kMaxLogLineBytes) +
                      " bytes");
        }
        line.append(data + start, end - start);
        if (!newline) break;
        if (std::optional<std::string> problem = CheckLine(line, result.lines, result.head)) {
          return fail(std::move(*problem));
        }
        result.head = HashOfLine(line);
        ++result.lines;
        result.bytes += line.size() + 1;
        line.clear();
        start = end + 1;
      }
    }
    if (!line.empty()) {
      return fail("the last line has no newline: the file was truncated, or a write was torn");
    }
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory verifying `" + path + "`");
  }
  return result;
}

// fsync(2)s the directory holding `path`, so that a newly created file's name
// survives a crash.
Status SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Status(StatusCode::kUnavailable, "cannot open `" + dir + "`: " + ErrnoText(errno));
  }
  FdGuard guard(fd);
  if (::fsync(fd) != 0) {
    return Status(StatusCode::kUnavailable, "cannot sync `" + dir + "`: " + ErrnoText(errno));
  }
  return OkStatus();
}

}  // namespace

bool IsLogHash(std::string_view text) {
  if (text.size() != kHashPrefixBytes + 64 || text.substr(0, kHashPrefixBytes) != kHashPrefix) {
    return false;
  }
  for (char ch : text.substr(kHashPrefixBytes)) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

DecisionLog::DecisionLog(std::string path, int fd, LogOptions options, bool created, LogHead head,
                         uint64_t bytes)
    : path_(std::move(path)),
      fd_(fd),
      options_(options),
      head_(std::move(head)),
      bytes_(bytes),
      dir_unsynced_(created) {}

DecisionLog::~DecisionLog() { ::close(fd_); }

StatusOr<std::unique_ptr<DecisionLog>> DecisionLog::Open(const std::string& path,
                                                         const LogOptions& options) {
  bool created = true;
  int fd = ::open(path.c_str(), kOpenFlags | O_CREAT | O_EXCL, 0600);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(path.c_str(), kOpenFlags);
  }
  if (fd < 0) {
    if (errno == EISDIR) return InvalidArgumentError("`" + path + "` is not a regular file");
    return NotFoundError("cannot open `" + path + "`: " + ErrnoText(errno));
  }
  FdGuard guard(fd);
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    return Status(StatusCode::kUnavailable, "cannot read `" + path + "`: " + ErrnoText(errno));
  }
  if (!S_ISREG(info.st_mode)) return InvalidArgumentError("`" + path + "` is not a regular file");
  if (::fcntl(fd, F_SETFL, O_APPEND) != 0) {
    return Status(StatusCode::kUnavailable, "cannot open `" + path + "`: " + ErrnoText(errno));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return FailedPreconditionError("`" + path +
                                     "` is already open in a decision log, in this process or "
                                     "another; two writers would fork the chain");
    }
    return Status(StatusCode::kUnavailable, "cannot lock `" + path + "`: " + ErrnoText(errno));
  }

  StatusOr<LogVerification> verified = VerifyFd(fd, path);
  if (!verified.ok()) return verified.status();
  if (verified->problem) {
    return FailedPreconditionError("`" + path + "`:" + std::to_string(verified->problem->line) +
                                   ": " + verified->problem->message +
                                   "; not extending a broken chain");
  }
  if (created && options.fsync_each) {
    if (Status synced = SyncDirectoryOf(path); !synced.ok()) return synced;
    created = false;
  }
  LogHead head{verified->lines, verified->head};
  std::unique_ptr<DecisionLog> log(
      new DecisionLog(path, guard.Release(), options, created, std::move(head), verified->bytes));
  return log;
}

Status DecisionLog::Append(const nlohmann::ordered_json& entry) {
  if (!entry.is_object()) return InvalidArgumentError("a log entry must be a JSON object");
  for (const char* key : {"seq", "time", "prev"}) {
    if (entry.contains(key)) {
      return InvalidArgumentError(std::string("`") + key + "` is set by the log, not the entry");
    }
  }
  if (!JsonWithinDepth(entry, kMaxJsonDepth)) {
    return ResourceExhaustedError("log entry nests deeper than " + std::to_string(kMaxJsonDepth));
  }
  std::string body;
  try {
    body = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory writing a log entry");
  } catch (const std::exception& e) {
    return InternalError(std::string("cannot serialize a log entry: ") + e.what());
  }
  if (body.size() > kMaxLogLineBytes) {
    return ResourceExhaustedError("log line is more than " + std::to_string(body.size()) +
                                  " bytes; the limit is " + std::to_string(kMaxLogLineBytes));
  }

  std::lock_guard<std::mutex> lock(mutex_);
  if (!broken_.ok()) return broken_;
  // body is "{...}": the chain fields go first, then body's fields.
  std::string line;
  line.reserve(body.size() + 160);
  line += "{\"seq\":";
  line += std::to_string(head_.lines);
  line += ",\"time\":\"";
  line += NowRfc3339();
  line += "\",\"prev\":\"";
  line += head_.hash;
  line += '"';
  if (body.size() > 2) {
    line += ',';
    line.append(body, 1, std::string::npos);
  } else {
    line += '}';
  }
  if (line.size() > kMaxLogLineBytes) {
    return ResourceExhaustedError("log line is " + std::to_string(line.size()) +
                                  " bytes; the limit is " + std::to_string(kMaxLogLineBytes));
  }
  std::string hash = HashOfLine(line);
  line += '\n';

  size_t written = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
    if (n > 0) {
      written += static_cast<size_t>(n);
      continue;
    }
    const int error = n < 0 ? errno : EIO;  // 0 bytes for a non-empty write: treat as an I/O error
    if (n < 0 && error == EINTR) continue;
    if (written > 0 && ::ftruncate(fd_, static_cast<off_t>(bytes_)) != 0) {
      broken_ = FailedPreconditionError("`" + path_ +
                                        "` ends with a partial line that could not be cut off (" +
                                        ErrnoText(errno) + "); not appending after it");
    }
    return Status(StatusCode::kUnavailable, "cannot write `" + path_ + "`: " + ErrnoText(error));
  }
  head_.hash = std::move(hash);
  ++head_.lines;
  bytes_ += line.size();

  if (options_.fsync_each && ::fdatasync(fd_) != 0) {
    return Status(StatusCode::kUnavailable, "cannot sync `" + path_ + "`: " + ErrnoText(errno));
  }
  return OkStatus();
}

Status DecisionLog::Flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (::fsync(fd_) != 0) {
    return Status(StatusCode::kUnavailable, "cannot sync `" + path_ + "`: " + ErrnoText(errno));
  }
  if (dir_unsynced_) {
    if (Status synced = SyncDirectoryOf(path_); !synced.ok()) return synced;
    dir_unsynced_ = false;
  }
  return OkStatus();
}

std::string DecisionLog::head() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return head_.hash;
}

uint64_t DecisionLog::seq() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return head_.lines;
}

LogHead DecisionLog::Anchor() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return head_;
}

nlohmann::ordered_json DecisionLogEntry(std::string_view kind, std::string_view session,
                                        const nlohmann::json& args, nlohmann::ordered_json record) {
  nlohmann::ordered_json entry = nlohmann::ordered_json::object();
  entry["kind"] = std::string(kind);
  entry["session"] = session.empty() ? nlohmann::ordered_json(nullptr)
                                     : nlohmann::ordered_json(std::string(session));
  entry["args"] = args;
  for (auto& field : record.items()) entry[field.key()] = std::move(field.value());
  return entry;
}

StatusOr<LogVerification> VerifyLog(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open `" + path + "`: " + ErrnoText(errno));
  FdGuard guard(fd);
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    return Status(StatusCode::kUnavailable, "cannot read `" + path + "`: " + ErrnoText(errno));
  }
  if (S_ISDIR(info.st_mode)) return InvalidArgumentError("`" + path + "` is a directory");
  return VerifyFd(fd, path);
}

}  // namespace toolwarden
