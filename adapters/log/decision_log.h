// The decision log: an append-only, tamper-evident JSON-lines file of what the
// engine decided (docs/decision-log.md). Every line is one JSON object whose
// first keys are
//   "seq":  the line's 0-based number in the file,
//   "time": when it was appended, RFC 3339 UTC with milliseconds
//           ("2025-01-31T09:15:02.123Z"),
//   "prev": "sha256:<hex>" of the previous line's exact bytes (without its
//           newline); for the first line, the hash of the empty string,
// followed by the entry's own fields, for example
//   {"seq":3,"time":"...","prev":"sha256:...","kind":"decide","session":"s1",
//    "decision":"deny","tool":"send_money","rule":null,...}
//
// The chain makes edits, insertions, removals and reordering of lines
// detectable by VerifyLog (and `toolwarden verify-log`), except at the end:
// dropping the last lines, or editing the last line, leaves a chain that still
// verifies. To catch that, keep the head (DecisionLog::Anchor) somewhere the
// log's writer cannot rewrite, and check it with `verify-log --expect-head`.
// Anyone who can rewrite the whole file can forge a whole new chain; only an
// anchor kept elsewhere detects that. SHA-256 here is a fingerprint, not a MAC.
//
//   StatusOr<std::unique_ptr<DecisionLog>> log = DecisionLog::Open("decisions.jsonl");
//   if (!log.ok()) return log.status();
//   Status s = (*log)->Append(DecisionLogEntry("decide", id, args, DecisionToJson(d)));
//   ...
//   (*log)->Flush();  // at shutdown
#ifndef TOOLWARDEN_ADAPTERS_LOG_DECISION_LOG_H_
#define TOOLWARDEN_ADAPTERS_LOG_DECISION_LOG_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "interpreter/decision.h"
#include "nlohmann/json.hpp"
#include "policy/json_limits.h"  // kMaxJsonDepth
#include "policy/status.h"

namespace toolwarden {

// The longest line, in bytes without its newline, that Append writes and
// VerifyLog reads. Stops memory exhaustion: a verifier holds one line (and its
// parsed JSON) at a time, and a hostile or corrupt file with no newline for
// gigabytes must not be read into memory whole. Lines also nest at most
// kMaxJsonDepth (policy/json_limits.h) levels, which stops stack exhaustion
// when they are parsed and printed.
inline constexpr size_t kMaxLogLineBytes = 16 << 20;

// "sha256:" and the SHA-256 of the empty string: the `prev` of the first line,
// and the head of an empty log.
inline constexpr char kEmptyLogHead[] =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// True when `text` is "sha256:" followed by 64 lower-case hex digits.
bool IsLogHash(std::string_view text);

struct LogOptions {
  // fsync after every line: a line that Append reported written survives a
  // crash of the machine. Costs a disk flush per decision; off by default,
  // when only Flush() syncs (lines still survive a crash of the process).
  bool fsync_each = false;
};

// The state of a log's chain: how many lines it holds and the hash of the last.
struct LogHead {
  uint64_t lines = 0;                // also the `seq` the next line will carry
  std::string hash = kEmptyLogHead;  // "sha256:<hex>" of the last line
};

class DecisionLog {
 public:
  // Opens the log at `path` for appending, creating it (mode 0600: decisions
  // quote argument values) when missing. An existing file is verified first,
  // with VerifyLog's rules, and its head becomes the chain's head, so opening
  // reads the whole file. Errors:
  //   - the file cannot be opened or created -> kNotFound "cannot open `path`: ..."
  //   - it is not a regular file -> kInvalidArgument "`path` is not a regular file"
  //   - another DecisionLog, in this process or another, has it open (an
  //     advisory flock(2): two writers would fork the chain) -> kFailedPrecondition
  //   - it does not verify to its end -> kFailedPrecondition
  //     "`path`:LINE: <the problem>; not extending a broken chain"
  //     (a torn last line after a crash: see docs/decision-log.md)
  //   - a read error -> kUnavailable
  static StatusOr<std::unique_ptr<DecisionLog>> Open(const std::string& path,
                                                     const LogOptions& options = {});

  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;
  // Closes the file without syncing it; call Flush() first for durability.
  ~DecisionLog();

  // Appends one line: `seq`, `time` and `prev`, then the fields of `entry`, in
  // their order. Strings that are not valid UTF-8 are written with U+FFFD in
  // place of the bad bytes. The line is written with one write(2) on a file
  // opened O_APPEND (continued after a partial write), so concurrent readers
  // never see half a line unless the disk fills. Safe to call from many
  // threads; lines are ordered as the calls take the log's lock. Errors, after
  // which the file and the head are as before the call:
  //   - `entry` is not an object, or sets `seq`, `time` or `prev`
  //     -> kInvalidArgument
  //   - `entry` nests deeper than kMaxJsonDepth -> kResourceExhausted
  //   - the line would be longer than kMaxLogLineBytes -> kResourceExhausted
  //     "log line is N bytes; the limit is M"
  //   - the write fails (disk full, file size limit, I/O error) -> kUnavailable
  //     "cannot write `path`: <strerror text>"; the partial line is cut off
  //     again. If even that fails, every later Append fails with
  //     kFailedPrecondition rather than write after a torn line.
  //   - with fsync_each, the fsync fails -> kUnavailable; the line was written
  //     and the head includes it
  Status Append(const nlohmann::ordered_json& entry);

  // fsync(2)s the file (and, the first time, the directory of a file this
  // object created). Call at shutdown. kUnavailable on failure.
  Status Flush();

  // "sha256:<hex>" of the last line (kEmptyLogHead for an empty log).
  std::string head() const;
  // The number of lines, which is the `seq` the next line will carry.
  uint64_t seq() const;
  // Both at once, consistent with each other while other threads append: the
  // value to keep elsewhere and check with `verify-log --expect-head`.
  LogHead Anchor() const;

  const std::string& path() const { return path_; }

 private:
  DecisionLog(std::string path, int fd, LogOptions options, bool created, LogHead head,
              uint64_t bytes);

  const std::string path_;
  const int fd_;
  const LogOptions options_;
  mutable std::mutex mutex_;
  LogHead head_;       // guarded by mutex_
  uint64_t bytes_;     // file size after the last whole line; guarded by mutex_
  bool dir_unsynced_;  // created here and the directory not yet synced; guarded by mutex_
  Status broken_;      // not ok after a partial line could not be removed; guarded by mutex_
};

// The log entry of one decision, the same from every front door:
// {"kind": KIND ("decide" or "check"), "session": SESSION (null when empty),
//  "args": ARGS, then the fields of the decision record (DecisionToJson)}.
nlohmann::ordered_json DecisionLogEntry(std::string_view kind, std::string_view session,
                                        const nlohmann::json& args, nlohmann::ordered_json record);

// The first problem VerifyLog found.
struct LogProblem {
  size_t line = 0;  // 1-based line number in the file (so `seq` + 1)
  std::string message;
};

struct LogVerification {
  uint64_t lines = 0;                 // lines that verified, from the first
  uint64_t bytes = 0;                 // their length in bytes, newlines included
  std::string head = kEmptyLogHead;   // "sha256:<hex>" of the last line that verified
  std::optional<LogProblem> problem;  // none when the whole file verifies

  bool intact() const { return !problem.has_value(); }
};

// Reads the log at `path` line by line (holding one line at a time) and checks
// that each line is at most kMaxLogLineBytes, ends with a newline, is a JSON
// object within kMaxJsonDepth, carries `seq` equal to its 0-based line number,
// a `time` in the form Append writes, and `prev` equal to the hash of the line
// before (the empty string's for the first line). Stops at the first problem:
//   - an edited line: its content is no longer JSON, or the next line's `prev`
//     no longer matches it
//   - lines removed, inserted or reordered: a `seq` out of order, or a `prev`
//     mismatch
//   - the first lines removed: the first line's `seq` is not 0 or its `prev`
//     is not kEmptyLogHead
//   - a truncated (or torn) last line: no newline at the end of the file
// Cannot detect the loss of lines at the end, nor an edit of the last line;
// compare `head` with an anchor for that. An empty file verifies, with 0 lines.
// Errors (the file could not be read at all), as ReadTextFile's: kNotFound,
// kInvalidArgument for a directory, kUnavailable for a read error.
StatusOr<LogVerification> VerifyLog(const std::string& path);

}  // namespace toolwarden

#endif  // TOOLWARDEN_ADAPTERS_LOG_DECISION_LOG_H_
