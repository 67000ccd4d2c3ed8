#include "policy/json_limits.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace toolwarden {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_CASE("ParseJson accepts ordinary JSON", "[json_limits]") {
  struct Case {
    std::string text;
    nlohmann::json want;
  };
  const std::vector<Case> cases = {
      {"1", 1},
      {"\"x\"", "x"},
      {"null", nullptr},
      {" [1, 2] ", nlohmann::json::array({1, 2})},
      {R"({"a": {"b": [true]}})", {{"a", {{"b", {true}}}}}},
      {R"(["\"[[[[", 1])", nlohmann::json::array({"\"[[[[", 1})},
      {R"(["\\", 2])", nlohmann::json::array({"\\", 2})},
      {R"("\u00e9")", "\xc3\xa9"},
      {"\"\xc3\xa9\"", "\xc3\xa9"},
      {"\xef\xbb\xbf[1]", nlohmann::json::array({1})},  // UTF-8 byte order mark
      {R"({"k": 1, "k": 2})", {{"k", 2}}},              // last duplicate wins
  };
  for (const Case& c : cases) {
    INFO(c.text);
    StatusOr<nlohmann::json> got = ParseJson(c.text);
    REQUIRE(got.ok());
    CHECK(*got == c.want);
  }
}

TEST_CASE("ParseJson rejects malformed JSON with the byte offset", "[json_limits]") {
  struct Case {
    std::string name;
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"empty", "",
       "invalid JSON at byte 0 (line 1, column 1): syntax error while parsing value - unexpected "
       "end of input; expected '[', '{', or a literal"},
      {"truncated array", "[1,2",
       "invalid JSON at byte 4 (line 1, column 5): syntax error while parsing array - unexpected "
       "end of input; expected ']'"},
      {"truncated object", R"({"a")",
       "invalid JSON at byte 4 (line 1, column 5): syntax error while parsing object separator - "
       "unexpected end of input; expected ':'"},
      {"truncated string", R"(["abc)",
       "invalid JSON at byte 5 (line 1, column 6): syntax error while parsing value - invalid "
       "string: missing closing quote; last read: '\"abc'"},
      {"bad literal", "tru",
       "invalid JSON at byte 3 (line 1, column 4): syntax error while parsing value - invalid "
       "literal; last read: 'tru'"},
      {"trailing garbage", "[1]x",
       "invalid JSON at byte 3 (line 1, column 4): syntax error while parsing value - invalid "
       "literal; last read: '1]x'; expected end of input"},
      {"second line", "[1,\n2,\n]",
       "invalid JSON at byte 7 (line 3, column 1): syntax error while parsing value - unexpected "
       "']'; expected '[', '{', or a literal"},
      {"comment", "[1] // no",
       "invalid JSON at byte 4 (line 1, column 5): syntax error while parsing value - invalid "
       "literal; last read: '1] /'; expected end of input"},
      {"raw newline in string", "\"a\nb\"",
       "invalid JSON at byte 2 (line 1, column 3): syntax error while parsing value - invalid "
       "string: control character U+000A (LF) must be escaped to \\u000A or \\n; last read: "
       "'\"a<U+000A>'"},
      {"number overflow", "1e400", "invalid JSON: number overflow parsing '1e400'"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    StatusOr<nlohmann::json> got = ParseJson(c.text);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    CHECK(got.status().message() == c.message);
  }
}

TEST_CASE("ParseJson rejects a NUL byte, which nlohmann would take for the end", "[json_limits]") {
  using namespace std::string_literals;
  for (const std::string& text : {"{}\0{\"a\":1}"s, "{\"a\":\"x\0y\"}"s, "\0"s, "[1,\n\0]"s}) {
    StatusOr<nlohmann::json> parsed = ParseJson(text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    CHECK(parsed.status().message().find("a NUL byte") != std::string::npos);
  }
  StatusOr<nlohmann::json> parsed = ParseJson("[1,\n\0]"s);
  CHECK(parsed.status().message() == "invalid JSON at byte 4 (line 2, column 1): a NUL byte");
  CHECK(ParseJson(R"({"a":"\u0000"})").ok());  // an escaped NUL is a character like any other
}

TEST_CASE("ParseJson rejects invalid UTF-8 and keeps the message printable", "[json_limits]") {
  const std::vector<std::string> cases = {
      "\"\xff\"",                  // never valid in UTF-8
      "\"\xc3\"",                  // truncated two-byte sequence
      "\"\xc0\xaf\"",              // overlong encoding of '/'
      "\"\xed\xa0\x80\"",          // UTF-16 surrogate encoded as UTF-8
      "\"\xf4\x90\x80\x80\"",      // above U+10FFFF
      "[\"ok\", \"\x80\"]",        // stray continuation byte
      "\xff",                      // outside a string
      R"("\ud800")",               // lone high surrogate escape
      R"("\udc00")",               // lone low surrogate escape
      std::string("\"a\0b\"", 5),  // NUL inside a string
  };
  for (const std::string& text : cases) {
    INFO(nlohmann::json(std::vector<uint8_t>(text.begin(), text.end())).dump());
    StatusOr<nlohmann::json> got = ParseJson(text);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kInvalidArgument);
    for (char ch : got.status().message()) {
      CHECK(static_cast<unsigned char>(ch) >= 0x20);
      CHECK(static_cast<unsigned char>(ch) < 0x7f);
    }
  }
  StatusOr<nlohmann::json> got = ParseJson("\"\xff\"");
  CHECK(got.status().message() ==
        "invalid JSON at byte 1 (line 1, column 2): syntax error while parsing value - invalid "
        "string: ill-formed UTF-8 byte; last read: '\"\\xff'");
}

TEST_CASE("ParseJson enforces max_bytes at and one past the limit", "[json_limits]") {
  JsonLimits limits;
  limits.max_bytes = 10;
  CHECK(ParseJson("[1,2,3,45]", limits).ok());  // 10 bytes
  StatusOr<nlohmann::json> got = ParseJson("[1,2,3,456]", limits);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "JSON text is 11 bytes; the limit is 10");
}

TEST_CASE("ParseJson enforces the default kMaxJsonBytes", "[json_limits]") {
  std::string text = "\"" + std::string(kMaxJsonBytes - 2, 'a') + "\"";
  REQUIRE(text.size() == kMaxJsonBytes);
  StatusOr<nlohmann::json> got = ParseJson(text);
  REQUIRE(got.ok());
  CHECK(got->get_ref<const std::string&>().size() == kMaxJsonBytes - 2);

  text += ' ';
  got = ParseJson(text);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "JSON text is 16777217 bytes; the limit is 16777216");
}

TEST_CASE("ParseJson checks the size before anything else", "[json_limits]") {
  JsonLimits limits;
  limits.max_bytes = 3;
  StatusOr<nlohmann::json> got = ParseJson("[[[[", limits);  // too deep and malformed too
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "JSON text is 4 bytes; the limit is 3");
}

TEST_CASE("ParseJson enforces the default kMaxJsonDepth", "[json_limits]") {
  StatusOr<nlohmann::json> got = ParseJson(Nested(kMaxJsonDepth));
  REQUIRE(got.ok());
  CHECK(JsonWithinDepth(*got, kMaxJsonDepth));
  CHECK_FALSE(JsonWithinDepth(*got, kMaxJsonDepth - 1));

  got = ParseJson(Nested(kMaxJsonDepth + 1));
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "JSON nests deeper than 128 at byte 128");
}

TEST_CASE("ParseJson depth limits count arrays and objects alike", "[json_limits]") {
  struct Case {
    std::string text;
    int max_depth;
    std::string error;  // empty: accepted
  };
  const std::vector<Case> cases = {
      {"1", 0, ""},
      {"\"[[[[[[\"", 0, ""},  // brackets inside a string do not count
      {"[]", 0, "JSON nests deeper than 0 at byte 0"},
      {"{}", 0, "JSON nests deeper than 0 at byte 0"},
      {"[]", 1, ""},
      {"[[]]", 1, "JSON nests deeper than 1 at byte 1"},
      {R"({"a": {"b": []}})", 3, ""},
      {R"({"a": {"b": []}})", 2, "JSON nests deeper than 2 at byte 12"},
      {"[[], [], [1]]", 2, ""},  // siblings do not add up
      {"[[], [], [[]]]", 2, "JSON nests deeper than 2 at byte 10"},
      {R"(["[[[[[[", "{{{{"])", 1, ""},
      {R"({"[[[[": "]]]]"})", 1, ""},
      // A scanner that ended strings at any quote would stop counting after the
      // escaped quote; one that looked only at the previous byte for a backslash
      // would think `\\"` does not end the string. Both would accept these.
      {R"(["\"", [[[1]]]])", 3, "JSON nests deeper than 3 at byte 9"},
      {R"(["\\", [[[1]]]])", 3, "JSON nests deeper than 3 at byte 9"},
      {R"(["\\\"", [[[1]]]])", 3, "JSON nests deeper than 3 at byte 11"},
      {R"(["\u005c", [[[1]]]])", 3, "JSON nests deeper than 3 at byte 13"},
  };
  for (const Case& c : cases) {
    INFO(c.text << " max_depth " << c.max_depth);
    JsonLimits limits;
    limits.max_depth = c.max_depth;
    StatusOr<nlohmann::json> got = ParseJson(c.text, limits);
    if (c.error.empty()) {
      CHECK(got.ok());
      CHECK(got.status().message() == "");
    } else {
      REQUIRE_FALSE(got.ok());
      CHECK(got.status().code() == StatusCode::kResourceExhausted);
      CHECK(got.status().message() == c.error);
    }
  }
}

TEST_CASE("ParseJson rejects 100,000-deep nesting without recursing", "[json_limits]") {
  const std::vector<std::string> cases = {
      std::string(100000, '['),
      Nested(100000),
      std::string(100000, '{'),
      "[" + std::string(100000, '{'),
  };
  for (const std::string& text : cases) {
    StatusOr<nlohmann::json> got = ParseJson(text);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().code() == StatusCode::kResourceExhausted);
    CHECK(got.status().message() == "JSON nests deeper than 128 at byte 128");
  }
}

TEST_CASE("ParseJson rejects a negative max_depth", "[json_limits]") {
  JsonLimits limits;
  limits.max_depth = -1;
  StatusOr<nlohmann::json> got = ParseJson("1", limits);
  CHECK(got.status().code() == StatusCode::kInvalidArgument);
  CHECK(got.status().message() == "max_depth is -1; it must be at least 0");
}

TEST_CASE("JsonWithinDepth measures depth", "[json_limits]") {
  struct Case {
    nlohmann::json value;
    int depth;
  };
  const std::vector<Case> cases = {
      {1, 0},
      {"[[[", 0},
      {nullptr, 0},
      {nlohmann::json::array(), 1},
      {nlohmann::json::object(), 1},
      {nlohmann::json::parse("[[1]]"), 2},
      {nlohmann::json::parse(R"({"a": [1, {"b": {}}], "c": []})"), 4},
      {nlohmann::json::parse("[1, [2], [[3]], 4]"), 3},
  };
  for (const Case& c : cases) {
    INFO(c.value.dump());
    CHECK(JsonWithinDepth(c.value, c.depth));
    CHECK(JsonWithinDepth(c.value, c.depth + 1));
    if (c.depth > 0) CHECK_FALSE(JsonWithinDepth(c.value, c.depth - 1));
    CHECK_FALSE(JsonWithinDepth(c.value, -1));
  }
}

TEST_CASE("JsonWithinDepth handles a value 100,000 deep", "[json_limits]") {
  nlohmann::json value = nlohmann::json::array();
  for (int i = 1; i < 100000; ++i) value = nlohmann::json::array({std::move(value)});
  CHECK_FALSE(JsonWithinDepth(value, kMaxJsonDepth));
  CHECK_FALSE(JsonWithinDepth(value, 99999));
  CHECK(JsonWithinDepth(value, 100000));
}

// A fresh directory under the system temp directory, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "json_limits_test_XXXXXX");
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string Write(const std::string& name, const std::string& content) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_CASE("ReadTextFile reads files up to and including the limit", "[json_limits]") {
  TempDir dir;
  const std::string binary("a\0\xff\n", 4);
  struct Case {
    std::string content;
    size_t max_bytes;
  };
  const std::vector<Case> cases = {
      {"", 0},
      {"", 10},
      {"0123456789", 10},
      {"0123456789", 100},
      {binary, 4},
      {std::string(200000, 'z'), 200000},  // several read() chunks
  };
  for (const Case& c : cases) {
    INFO(c.content.size() << " bytes, limit " << c.max_bytes);
    StatusOr<std::string> got = ReadTextFile(dir.Write("f", c.content), c.max_bytes);
    REQUIRE(got.ok());
    CHECK(*got == c.content);
  }
}

TEST_CASE("ReadTextFile rejects a file one byte over the limit", "[json_limits]") {
  TempDir dir;
  const std::string file = dir.Write("big.json", "01234567890");
  StatusOr<std::string> got = ReadTextFile(file, 10);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "`" + file + "` is 11 bytes; the limit is 10");

  got = ReadTextFile(dir.Write("one.json", "1"), 0);
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
}

TEST_CASE("ReadTextFile stops reading files of unknown size at the limit", "[json_limits]") {
  // /proc files report size 0, so only the read loop can catch them.
  StatusOr<std::string> got = ReadTextFile("/proc/self/status", 5);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kResourceExhausted);
  CHECK(got.status().message() == "`/proc/self/status` is at least 6 bytes; the limit is 5");

  got = ReadTextFile("/proc/self/status", 1 << 20);
  REQUIRE(got.ok());
  CHECK(got->find("Name:") == 0);
}

TEST_CASE("ReadTextFile reports a missing file as kNotFound", "[json_limits]") {
  TempDir dir;
  const std::string file = dir.path() + "/missing.json";
  StatusOr<std::string> got = ReadTextFile(file, 100);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kNotFound);
  CHECK(got.status().message() == "cannot open `" + file + "`: No such file or directory");
}

TEST_CASE("ReadTextFile rejects a directory", "[json_limits]") {
  TempDir dir;
  StatusOr<std::string> got = ReadTextFile(dir.path(), 100);
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == StatusCode::kInvalidArgument);
  CHECK(got.status().message() == "`" + dir.path() + "` is a directory");
}

}  // namespace
}  // namespace toolwarden
