#include "adapters/log/decision_log.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "interpreter/session.h"
#include "policy/sha256.h"
#include "tests/testing.h"

namespace toolwarden {
namespace {

// A path in the temporary directory, unique to this process, with no file at it.
std::string FreshPath(const std::string& name) {
  std::string path = std::string(P_tmpdir) + "/toolwarden_log_test_" + std::to_string(::getpid()) +
                     "_" + name + ".jsonl";
  std::remove(path.c_str());
  return path;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// The file's lines, without their newlines; a last line without one is kept.
std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

std::unique_ptr<DecisionLog> MustOpen(const std::string& path, const LogOptions& options = {}) {
  StatusOr<std::unique_ptr<DecisionLog>> log = DecisionLog::Open(path, options);
  INFO(log.status().message());
  REQUIRE(log.ok());
  return std::move(*log);
}

LogVerification MustVerify(const std::string& path) {
  StatusOr<LogVerification> verified = VerifyLog(path);
  INFO(verified.status().message());
  REQUIRE(verified.ok());
  return *verified;
}

// A log of `lines` entries {"kind": "note", "n": I}.
std::string WriteGoodLog(const std::string& name, int lines) {
  std::string path = FreshPath(name);
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  for (int i = 0; i < lines; ++i) {
    REQUIRE(log->Append({{"kind", "note"}, {"n", i}}).ok());
  }
  return path;
}

TEST_CASE("appended lines carry seq, time and prev first, and verify") {
  std::string path = FreshPath("round_trip");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  CHECK(log->seq() == 0);
  CHECK(log->head() == kEmptyLogHead);
  CHECK(kEmptyLogHead == "sha256:" + Sha256Hex(""));

  Session session(testing::MustLoad("allow send_money when amount < 10;\n"), "pay");
  Decision denied = session.Decide("send_money", {{"amount", 100}});
  Decision allowed = session.Decide("send_money", {{"amount", 5}});
  REQUIRE(log->Append(DecisionLogEntry("decide", "s1", {{"amount", 100}}, DecisionToJson(denied)))
              .ok());
  REQUIRE(
      log->Append(DecisionLogEntry("decide", "s1", {{"amount", 5}}, DecisionToJson(allowed))).ok());
  REQUIRE(log->Append(nlohmann::ordered_json::object()).ok());
  REQUIRE(log->Flush().ok());

  std::vector<std::string> lines = SplitLines(ReadAll(path));
  REQUIRE(lines.size() == 3);
  const std::regex first(
      R"(\{"seq":0,"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","prev":"sha256:e3b0c442[0-9a-f]{56}",)"
      R"("kind":"decide","session":"s1","args":\{"amount":100\},"decision":"deny","tool":"send_money",)"
      R"("rule":null,)"
      R"("fallback":"block",.*"policy":"sha256:[0-9a-f]{64}","eval_ns":\d+\})");
  CHECK(std::regex_match(lines[0], first));
  CHECK(lines[1].find(R"({"seq":1,)") == 0);
  CHECK(lines[1].find(R"("prev":"sha256:)" + Sha256Hex(lines[0]) + "\"") != std::string::npos);
  CHECK(lines[1].find(R"("decision":"allow","tool":"send_money","rule":{"id":"t.policy:1")") !=
        std::string::npos);
  CHECK(lines[1].find(R"("call":0})") != std::string::npos);
  // An empty entry: only the chain fields.
  CHECK(std::regex_match(lines[2],
                         std::regex(R"(\{"seq":2,"time":"[^"]+","prev":"sha256:[0-9a-f]{64}"\})")));

  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == 3);
  CHECK(verified.bytes == ReadAll(path).size());
  CHECK(verified.head == "sha256:" + Sha256Hex(lines[2]));
  CHECK(verified.head == log->head());
  LogHead anchor = log->Anchor();
  CHECK(anchor.lines == 3);
  CHECK(anchor.hash == verified.head);
}

TEST_CASE("reopening a log continues its chain") {
  std::string path = FreshPath("reopen");
  std::string head;
  {
    std::unique_ptr<DecisionLog> log = MustOpen(path);
    REQUIRE(log->Append({{"n", 0}}).ok());
    REQUIRE(log->Append({{"n", 1}}).ok());
    head = log->head();
  }
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  CHECK(log->seq() == 2);
  CHECK(log->head() == head);
  REQUIRE(log->Append({{"n", 2}}).ok());
  std::vector<std::string> lines = SplitLines(ReadAll(path));
  REQUIRE(lines.size() == 3);
  CHECK(lines[2].find(R"({"seq":2,)") == 0);
  CHECK(lines[2].find("\"prev\":\"" + head + "\"") != std::string::npos);
  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == 3);
}

TEST_CASE("an empty file is an intact log of no lines") {
  std::string path = FreshPath("empty");
  WriteAll(path, "");
  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == 0);
  CHECK(verified.head == kEmptyLogHead);
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  CHECK(log->seq() == 0);
  REQUIRE(log->Append({{"n", 0}}).ok());
  CHECK(MustVerify(path).lines == 1);
}

// Forges a line that is right for position `seq` after a line hashing to `prev`.
std::string ForgedLine(uint64_t seq, const std::string& prev) {
  return R"({"seq":)" + std::to_string(seq) + R"(,"time":"2025-01-01T00:00:00.000Z","prev":")" +
         prev + R"(","kind":"note","n":99})";
}

TEST_CASE("VerifyLog finds each kind of tampering at its line") {
  struct Case {
    const char* name;
    std::function<void(std::vector<std::string>&)> tamper;
    bool newline_at_end;
    size_t line;          // of the problem, 1-based
    const char* message;  // a substring of it
  };
  const std::vector<Case> cases = {
      {"edit one byte of a middle line, keeping it JSON",
       [](std::vector<std::string>& l) { l[2].replace(l[2].find("\"n\":2"), 5, "\"n\":7"); }, true,
       4,
       "`prev` does not match the hash of line 3: that line was edited, or this one was inserted"},
      {"edit one byte of a middle line, breaking its JSON",
       [](std::vector<std::string>& l) { l[2].back() = ']'; }, true, 3, "invalid JSON at byte"},
      {"edit one byte of the first line",
       [](std::vector<std::string>& l) { l[0].replace(l[0].find("note"), 4, "nope"); }, true, 2,
       "`prev` does not match the hash of line 1"},
      {"swap two lines", [](std::vector<std::string>& l) { std::swap(l[1], l[2]); }, true, 2,
       "`seq` is 2, expected 1: lines were removed, inserted or reordered"},
      {"delete a middle line", [](std::vector<std::string>& l) { l.erase(l.begin() + 2); }, true, 3,
       "`seq` is 3, expected 2"},
      {"delete the first line", [](std::vector<std::string>& l) { l.erase(l.begin()); }, true, 1,
       "`seq` is 1 but the first line's must be 0: lines before it were removed"},
      {"replace the first line with a forged seq 0",
       [](std::vector<std::string>& l) { l[0] = ForgedLine(0, "sha256:" + Sha256Hex("x")); }, true,
       1, "`prev` is not the hash of the empty string"},
      {"insert a forged line that fits its predecessor",
       [](std::vector<std::string>& l) {
         l.insert(l.begin() + 2, ForgedLine(2, "sha256:" + Sha256Hex(l[1])));
       },
       true, 4, "`seq` is 2, expected 3"},
      {"insert a forged line and renumber the rest",
       [](std::vector<std::string>& l) {
         l.insert(l.begin() + 2, ForgedLine(2, "sha256:" + Sha256Hex(l[1])));
         for (size_t i = 3; i < l.size(); ++i) {
           l[i].replace(l[i].find("\"seq\":"), 7, "\"seq\":" + std::to_string(i));
         }
       },
       true, 4, "`prev` does not match the hash of line 3"},
      {"truncate the last line",
       [](std::vector<std::string>& l) { l.back().resize(l.back().size() - 3); }, false, 5,
       "the last line has no newline: the file was truncated, or a write was torn"},
      {"cut only the final newline", [](std::vector<std::string>&) {}, false, 5,
       "the last line has no newline"},
      {"an empty line", [](std::vector<std::string>& l) { l.insert(l.begin() + 1, ""); }, true, 2,
       "invalid JSON"},
      {"a line that is not an object",
       [](std::vector<std::string>& l) { l.insert(l.begin() + 1, "[1]"); }, true, 2,
       "not a JSON object"},
      {"a line without seq",
       [](std::vector<std::string>& l) { l[1].replace(l[1].find("\"seq\""), 5, "\"sek\""); }, true,
       2, "`seq` is missing or not a non-negative integer"},
      {"a line with a bad time",
       [](std::vector<std::string>& l) { l[1].replace(l[1].find("Z\""), 1, "+"); }, true, 2,
       "`time` is missing or not an RFC 3339 UTC time"},
      {"a line without prev",
       [](std::vector<std::string>& l) { l[1].replace(l[1].find("\"prev\""), 6, "\"pre_\""); },
       true, 2, "`prev` is missing or not a string"},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      std::string path = WriteGoodLog("tamper", 5);
      std::vector<std::string> lines = SplitLines(ReadAll(path));
      c.tamper(lines);
      std::string text = JoinLines(lines);
      if (!c.newline_at_end) text.pop_back();
      WriteAll(path, text);
      LogVerification verified = MustVerify(path);
      REQUIRE(verified.problem.has_value());
      CHECK(verified.problem->line == c.line);
      CHECK_THAT(verified.problem->message, Catch::Contains(c.message));
      CHECK(verified.lines == c.line - 1);
      CHECK(!verified.intact());
      // Opening refuses to extend it, and leaves it as it was.
      StatusOr<std::unique_ptr<DecisionLog>> log = DecisionLog::Open(path);
      REQUIRE(!log.ok());
      CHECK(log.status().code() == StatusCode::kFailedPrecondition);
      CHECK_THAT(log.status().message(),
                 Catch::StartsWith("`" + path + "`:" + std::to_string(c.line) + ": ") &&
                     Catch::EndsWith("; not extending a broken chain"));
      CHECK(ReadAll(path) == text);
    }
  }
}

TEST_CASE("removing the last lines is not detected by the chain, only by an anchor") {
  std::string path = WriteGoodLog("drop_tail", 5);
  std::vector<std::string> lines = SplitLines(ReadAll(path));
  lines.pop_back();
  WriteAll(path, JoinLines(lines));
  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == 4);
  CHECK(verified.head == "sha256:" + Sha256Hex(lines.back()));
}

TEST_CASE("a line longer than kMaxLogLineBytes is refused by Append and by VerifyLog") {
  std::string path = FreshPath("long");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  REQUIRE(log->Append({{"pad", ""}}).ok());
  const size_t short_line = ReadAll(path).size() - 1;
  // Line 1 has the same length as line 0 plus the padding.
  const size_t fill = kMaxLogLineBytes - short_line;
  REQUIRE(log->Append({{"pad", std::string(fill, 'a')}}).ok());
  Status too_long = log->Append({{"pad", std::string(fill + 1, 'a')}});
  CHECK(too_long.code() == StatusCode::kResourceExhausted);
  CHECK(too_long.message() == "log line is " + std::to_string(kMaxLogLineBytes + 1) +
                                  " bytes; the limit is " + std::to_string(kMaxLogLineBytes));
  Status way_too_long = log->Append({{"pad", std::string(kMaxLogLineBytes + 1, 'a')}});
  CHECK(way_too_long.code() == StatusCode::kResourceExhausted);
  CHECK(log->seq() == 2);
  log.reset();
  // A line of exactly the limit verifies.
  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == 2);
  CHECK(verified.bytes == short_line + 1 + kMaxLogLineBytes + 1);

  // One byte more does not, and the verifier stops reading it there.
  std::string text = ReadAll(path);
  text.insert(text.size() - 3, "a");
  WriteAll(path, text);
  verified = MustVerify(path);
  REQUIRE(verified.problem.has_value());
  CHECK(verified.problem->line == 2);
  CHECK(verified.problem->message ==
        "line is longer than the limit of " + std::to_string(kMaxLogLineBytes) + " bytes");
  CHECK(!DecisionLog::Open(path).ok());
}

// {"a": [[...[1]...]]}, nesting `depth` levels counting the object.
nlohmann::ordered_json Nested(int depth) {
  nlohmann::ordered_json value = 1;
  for (int i = 1; i < depth; ++i) value = nlohmann::ordered_json::array({value});
  return {{"a", value}};
}

TEST_CASE("entries nest at most kMaxJsonDepth levels") {
  std::string path = FreshPath("deep");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  REQUIRE(log->Append(Nested(kMaxJsonDepth)).ok());
  Status deep = log->Append(Nested(kMaxJsonDepth + 1));
  CHECK(deep.code() == StatusCode::kResourceExhausted);
  CHECK(deep.message() == "log entry nests deeper than " + std::to_string(kMaxJsonDepth));
  CHECK(MustVerify(path).lines == 1);
  log.reset();

  // A line nested deeper, written by someone else, is reported.
  std::string text = ReadAll(path);
  std::vector<std::string> lines = SplitLines(text);
  std::string deeper = lines[0];
  deeper.replace(deeper.find("\"a\":["), 5, "\"a\":[[");
  deeper.replace(deeper.rfind("]}"), 2, "]]}");
  WriteAll(path, text + deeper + "\n");
  LogVerification verified = MustVerify(path);
  REQUIRE(verified.problem.has_value());
  CHECK(verified.problem->line == 2);
  CHECK_THAT(verified.problem->message,
             Catch::StartsWith("JSON nests deeper than " + std::to_string(kMaxJsonDepth)));
}

TEST_CASE("Append refuses entries that are not objects or set the chain fields") {
  std::string path = FreshPath("bad_entries");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  CHECK(log->Append(nlohmann::ordered_json::array()).code() == StatusCode::kInvalidArgument);
  CHECK(log->Append("text").code() == StatusCode::kInvalidArgument);
  for (const char* key : {"seq", "time", "prev"}) {
    Status status = log->Append({{"kind", "x"}, {key, 1}});
    CHECK(status.code() == StatusCode::kInvalidArgument);
    CHECK(status.message() == std::string("`") + key + "` is set by the log, not the entry");
  }
  CHECK(log->seq() == 0);
  CHECK(ReadAll(path).empty());
}

TEST_CASE("invalid UTF-8 in an entry is written as U+FFFD, and the line verifies") {
  std::string path = FreshPath("utf8");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  REQUIRE(log->Append({{"tool", "bad\xff\xfe"}, {"arg", "line\nbreak"}}).ok());
  std::string text = ReadAll(path);
  CHECK(text.find("\"tool\":\"bad\xEF\xBF\xBD\xEF\xBF\xBD\"") != std::string::npos);
  CHECK(text.find("\"arg\":\"line\\nbreak\"") != std::string::npos);
  CHECK(SplitLines(text).size() == 1);
  CHECK(MustVerify(path).intact());
}

constexpr int kThreads = 8;
constexpr int kEach = 1000;

TEST_CASE("8 threads appending 1000 entries each make one intact chain") {
  std::string path = FreshPath("threads");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // Long enough that an interleaved write would show.
        if (!log->Append({{"thread", t},
                          {"i", i},
                          {"pad", std::string(200, static_cast<char>('a' + t))}})
                 .ok()) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(failures == std::vector<int>(kThreads, 0));
  CHECK(log->seq() == uint64_t{kThreads} * kEach);

  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == uint64_t{kThreads} * kEach);
  CHECK(verified.head == log->head());
  // Every line is whole, and each thread's entries appear once each, in its order.
  std::vector<int> next(kThreads, 0);
  for (const std::string& line : SplitLines(ReadAll(path))) {
    nlohmann::json j = nlohmann::json::parse(line);
    const int t = j["thread"].get<int>();
    REQUIRE(t >= 0);
    REQUIRE(t < kThreads);
    CHECK(j["i"].get<int>() == next[t]);
    CHECK(j["pad"] == std::string(200, static_cast<char>('a' + t)));
    ++next[t];
  }
  CHECK(next == std::vector<int>(kThreads, kEach));
}

TEST_CASE("a log is open in one DecisionLog at a time") {
  std::string path = FreshPath("locked");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  StatusOr<std::unique_ptr<DecisionLog>> second = DecisionLog::Open(path);
  REQUIRE(!second.ok());
  CHECK(second.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(second.status().message(), Catch::Contains("already open"));
  log.reset();
  CHECK(DecisionLog::Open(path).ok());
}

TEST_CASE("Open and VerifyLog on what is not a log file") {
  StatusOr<std::unique_ptr<DecisionLog>> dir = DecisionLog::Open(P_tmpdir);
  CHECK(dir.status().code() == StatusCode::kInvalidArgument);
  StatusOr<std::unique_ptr<DecisionLog>> device = DecisionLog::Open("/dev/null");
  CHECK(device.status().code() == StatusCode::kInvalidArgument);
  CHECK(device.status().message() == "`/dev/null` is not a regular file");
  StatusOr<std::unique_ptr<DecisionLog>> nowhere = DecisionLog::Open("/nonexistent/dir/log.jsonl");
  CHECK(nowhere.status().code() == StatusCode::kNotFound);
  CHECK_THAT(nowhere.status().message(),
             Catch::StartsWith("cannot open `/nonexistent/dir/log.jsonl`"));

  CHECK(VerifyLog("/nonexistent.jsonl").status().code() == StatusCode::kNotFound);
  CHECK(VerifyLog(P_tmpdir).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("a failed write is reported and leaves the chain whole") {
  std::string path = FreshPath("full");
  std::unique_ptr<DecisionLog> log = MustOpen(path);
  REQUIRE(log->Append({{"n", 0}}).ok());
  const std::string before = ReadAll(path);

  // A file size limit stands in for a full disk: the write stops part way.
  struct rlimit saved;
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  void (*saved_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limited = saved;
  limited.rlim_cur = before.size() + 100;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
  Status failed = log->Append({{"n", 1}, {"pad", std::string(1000, 'x')}});
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &saved) == 0);
  ::signal(SIGXFSZ, saved_handler);

  CHECK(failed.code() == StatusCode::kUnavailable);
  CHECK_THAT(failed.message(), Catch::StartsWith("cannot write `" + path + "`: "));
  CHECK(ReadAll(path) == before);  // the partial line was cut off
  CHECK(log->seq() == 1);
  REQUIRE(log->Append({{"n", 1}}).ok());
  LogVerification verified = MustVerify(path);
  CHECK(verified.intact());
  CHECK(verified.lines == 2);
}

TEST_CASE("fsync_each syncs every line, Flush syncs at shutdown") {
  std::string path = FreshPath("fsync");
  LogOptions options;
  options.fsync_each = true;
  std::unique_ptr<DecisionLog> log = MustOpen(path, options);
  REQUIRE(log->Append({{"n", 0}}).ok());
  REQUIRE(log->Flush().ok());
  REQUIRE(log->Flush().ok());
  CHECK(MustVerify(path).lines == 1);
  struct stat info;
  REQUIRE(::stat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 0077) == 0);  // decisions quote arguments: not for other users
}

TEST_CASE("IsLogHash") {
  CHECK(IsLogHash(kEmptyLogHead));
  CHECK(IsLogHash("sha256:" + Sha256Hex("x")));
  CHECK_FALSE(IsLogHash(""));
  CHECK_FALSE(IsLogHash(Sha256Hex("x")));
  CHECK_FALSE(IsLogHash("sha256:" + Sha256Hex("x").substr(1)));
  CHECK_FALSE(IsLogHash("sha256:" + Sha256Hex("x") + "0"));
  CHECK_FALSE(IsLogHash("SHA256:" + Sha256Hex("x")));
  std::string upper = Sha256Hex("x");
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  REQUIRE(upper != Sha256Hex("x"));
  CHECK_FALSE(IsLogHash("sha256:" + upper));
}

}  // namespace
}  // namespace toolwarden
