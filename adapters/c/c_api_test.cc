// Tests of the C API (toolwarden.h), linked only against libtoolwarden.so: what
// a C host sees, including the conformance corpus run through the API.
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/llm/fake_llm.h"
#include "toolwarden.h"

namespace {

using nlohmann::json;
using toolwarden::testing::FakeLlm;

const std::string kSourceDir = TOOLWARDEN_SOURCE_DIR;
const std::string kBankingPolicy = kSourceDir + "/policies/examples/banking.policy";
const std::string kBankingTools = kSourceDir + "/policies/examples/banking.tools.json";

struct PolicyDeleter {
  void operator()(tw_policy* p) const { tw_policy_free(p); }
};
struct SessionDeleter {
  void operator()(tw_session* s) const { tw_session_free(s); }
};
using PolicyPtr = std::unique_ptr<tw_policy, PolicyDeleter>;
using SessionPtr = std::unique_ptr<tw_session, SessionDeleter>;

// One call's status and its `*out`, parsed (every reply must be JSON).
struct Reply {
  tw_status status = TW_INTERNAL;
  json body;
  bool ok() const { return status == TW_OK; }
  std::string code() const { return body.at("error").at("code").get<std::string>(); }
  std::string message() const { return body.at("error").at("message").get<std::string>(); }
};

template <typename F>
Reply Capture(F&& call) {
  char* out = nullptr;
  Reply reply;
  reply.status = call(&out);
  REQUIRE(out != nullptr);
  std::string text = out;
  tw_free(out);
  INFO(text);
  REQUIRE(json::accept(text));
  reply.body = json::parse(text);
  if (reply.status != TW_OK) {
    REQUIRE(reply.body.contains("error"));
    REQUIRE(reply.body["diagnostics"].is_array());
  }
  return reply;
}

Reply FromText(const std::string& text, PolicyPtr* policy, const char* tools_path = nullptr,
               const std::string& name = "t.policy") {
  tw_policy* raw = nullptr;
  Reply reply = Capture([&](char** out) {
    return tw_policy_from_text(name.c_str(), text.data(), text.size(), nullptr, tools_path, &raw,
                               out);
  });
  CHECK((reply.ok() == (raw != nullptr)));
  policy->reset(raw);
  return reply;
}

PolicyPtr MustCompile(const std::string& text) {
  PolicyPtr policy;
  Reply reply = FromText(text, &policy);
  INFO(reply.body.dump());
  REQUIRE(reply.ok());
  return policy;
}

SessionPtr MustStart(const tw_policy* policy, const char* query = "",
                     const char* trusted_json = nullptr) {
  tw_session* raw = nullptr;
  Reply reply =
      Capture([&](char** out) { return tw_session_new(policy, query, trusted_json, &raw, out); });
  INFO(reply.body.dump());
  REQUIRE(reply.ok());
  REQUIRE(raw != nullptr);
  return SessionPtr(raw);
}

Reply Decide(tw_session* session, const char* tool, const std::string& args) {
  return Capture([&](char** out) { return tw_session_decide(session, tool, args.c_str(), out); });
}

Reply Check(tw_session* session, const char* tool, const std::string& args) {
  return Capture([&](char** out) { return tw_session_check(session, tool, args.c_str(), out); });
}

Reply Approve(tw_session* session, const char* tool, const std::string& args) {
  return Capture([&](char** out) { return tw_session_approve(session, tool, args.c_str(), out); });
}

Reply State(tw_session* session) {
  return Capture([&](char** out) { return tw_session_state(session, out); });
}

Reply AddRules(tw_session* session, const std::string& text, const char* mode,
               const char* name = "added") {
  return Capture([&](char** out) {
    return tw_session_add_rules(session, name, text.data(), text.size(), mode, out);
  });
}

// `depth` nested arrays: "[[]]" for 2.
std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST_CASE("tw_version is the project's version, and tw_free takes NULL") {
  CHECK(std::string(tw_version()) == TOOLWARDEN_EXPECTED_VERSION);
  tw_free(nullptr);
  tw_policy_free(nullptr);
  tw_session_free(nullptr);
}

TEST_CASE("a policy compiles from text") {
  PolicyPtr policy;
  Reply reply = FromText("policy demo;\nallow read;\nforbid write;\n", &policy);
  REQUIRE(reply.ok());
  CHECK(reply.body["name"] == "demo");
  CHECK(reply.body["hash"].get<std::string>().rfind("sha256:", 0) == 0);
  CHECK(reply.body["rules"] == 2);
  CHECK(reply.body["warnings"] == json::array());

  SECTION("only text_len bytes are read") {
    const char buffer[] = "allow read;GARBAGE";
    tw_policy* raw = nullptr;
    Reply sized = Capture([&](char** out) {
      return tw_policy_from_text("t.policy", buffer, std::strlen("allow read;"), nullptr, nullptr,
                                 &raw, out);
    });
    PolicyPtr owned(raw);
    INFO(sized.body.dump());
    CHECK(sized.ok());
  }
  SECTION("the name goes into rule ids") {
    SessionPtr session = MustStart(policy.get());
    Reply d = Decide(session.get(), "read", "{}");
    CHECK(d.body["rule"]["id"] == "t.policy:2");
  }
}

TEST_CASE("a policy compiles from a file, with its own tools item or another") {
  tw_policy* raw = nullptr;
  Reply reply = Capture(
      [&](char** out) { return tw_policy_from_file(kBankingPolicy.c_str(), nullptr, &raw, out); });
  PolicyPtr policy(raw);
  INFO(reply.body.dump());
  REQUIRE(reply.ok());
  CHECK(reply.body["name"] == "banking");
  CHECK(reply.body["rules"] == 5);

  SECTION("a relative tools item is resolved against base_dir") {
    PolicyPtr from_text;
    std::string text = "tools \"banking.tools.json\";\nallow send_mony;\n";
    tw_policy* p = nullptr;
    std::string dir = kSourceDir + "/policies/examples";
    Reply bad = Capture([&](char** out) {
      return tw_policy_from_text("x.policy", text.data(), text.size(), dir.c_str(), nullptr, &p,
                                 out);
    });
    from_text.reset(p);
    CHECK(bad.status == TW_POLICY_ERROR);
    CHECK(bad.message().find("unknown tool `send_mony`") != std::string::npos);
  }
  SECTION("tools_path overrides the tools item") {
    PolicyPtr other;
    Reply bad = FromText("allow send_mony;", &other, kBankingTools.c_str());
    CHECK(bad.status == TW_POLICY_ERROR);
    CHECK(other == nullptr);
  }
  SECTION("a missing tools file is TW_NOT_FOUND") {
    PolicyPtr other;
    Reply bad = FromText("allow x;", &other, "/nonexistent/tools.json");
    CHECK(bad.status == TW_NOT_FOUND);
    CHECK(bad.code() == "not_found");
  }
  SECTION("a missing policy file is TW_NOT_FOUND") {
    tw_policy* p = reinterpret_cast<tw_policy*>(0x1);  // must be reset to NULL
    Reply missing = Capture(
        [&](char** out) { return tw_policy_from_file("/nonexistent/x.policy", nullptr, &p, out); });
    CHECK(missing.status == TW_NOT_FOUND);
    CHECK(missing.message().find("/nonexistent/x.policy") != std::string::npos);
    CHECK(p == nullptr);
  }
}

TEST_CASE("a bad policy gives TW_POLICY_ERROR and positioned diagnostics") {
  PolicyPtr policy;
  Reply reply = FromText("allow read;\nallow write when x == ;\nallow t when unknown_c > 1;\n",
                         &policy, nullptr, "bad.policy");
  REQUIRE(reply.status == TW_POLICY_ERROR);
  CHECK(policy == nullptr);
  CHECK(reply.code() == "policy_error");
  CHECK(reply.message().rfind("policy `bad.policy` has", 0) == 0);
  const json& diagnostics = reply.body["diagnostics"];
  REQUIRE(diagnostics.size() >= 1);
  const json& first = diagnostics[0];
  CHECK(first["file"] == "bad.policy");
  CHECK(first["line"] == 2);
  CHECK(first["column"].get<int>() > 0);
  CHECK(first["severity"] == "error");
  CHECK(first["message"].get<std::string>().find("syntax error") != std::string::npos);
  CHECK(reply.message().find("bad.policy:2:") != std::string::npos);

  SECTION("a policy with only warnings loads and lists them") {
    PolicyPtr warned;
    Reply ok = FromText("trust get_nothing;\nallow get_balance;\n", &warned, kBankingTools.c_str());
    INFO(ok.body.dump());
    REQUIRE(ok.ok());
    REQUIRE(ok.body["warnings"].size() >= 1);
    CHECK(ok.body["warnings"][0]["severity"] == "warning");
    CHECK(ok.body["warnings"][0]["line"] == 1);
  }
}

TEST_CASE("decide records allowed calls, check changes nothing") {
  PolicyPtr policy = MustCompile("allow read;\nallow send when count(send) < 1;\n");
  SessionPtr session = MustStart(policy.get(), "read my notes");

  Reply checked = Check(session.get(), "send", "{}");
  REQUIRE(checked.ok());
  CHECK(checked.body["decision"] == "allow");
  CHECK_FALSE(checked.body.contains("call"));
  CHECK(State(session.get()).body["history"].empty());

  Reply first = Decide(session.get(), "send", R"({"to": "bob"})");
  REQUIRE(first.ok());
  CHECK(first.body["decision"] == "allow");
  CHECK(first.body["call"] == 0);
  CHECK(first.body["rule"]["id"] == "t.policy:2");
  CHECK(first.body["rule"]["effect"] == "allow");
  CHECK(first.body["eval_ns"].is_number());
  CHECK(first.body["policy"].get<std::string>().rfind("sha256:", 0) == 0);

  Reply second = Decide(session.get(), "send", R"({"to": "bob"})");
  CHECK(second.body["decision"] == "deny");
  CHECK(second.body["rule"].is_null());
  CHECK(second.body["fallback"] == "block");
  CHECK(second.body["reason"].get<std::string>().find("count(send) < 1") != std::string::npos);
  CHECK_FALSE(second.body.contains("call"));

  Reply unknown = Decide(session.get(), "delete", "{}");
  CHECK(unknown.body["decision"] == "deny");

  Reply state = State(session.get());
  REQUIRE(state.ok());
  CHECK(state.body["query"] == "read my notes");
  CHECK(state.body["history"].size() == 1);
  CHECK(state.body["history"][0]["tool"] == "send");
  CHECK(state.body["history"][0]["args"] == json{{"to", "bob"}});
  CHECK_FALSE(state.body["history"][0].contains("result"));
}

TEST_CASE("an approved ask is recorded; approval never overrides a deny") {
  PolicyPtr policy = MustCompile(
      "allow pay;\nforbid pay when count(pay) >= 1 priority 1 fallback ask;\nforbid wipe;\n");
  SessionPtr session = MustStart(policy.get());
  REQUIRE(Decide(session.get(), "pay", "{}").body["decision"] == "allow");
  CHECK(Decide(session.get(), "pay", "{}").body["decision"] == "ask");
  Reply approved = Approve(session.get(), "pay", "{}");
  REQUIRE(approved.ok());
  CHECK(approved.body["decision"] == "allow");
  CHECK(approved.body["call"] == 1);
  CHECK(approved.body["rule"]["id"] == "t.policy:2");
  CHECK(Approve(session.get(), "wipe", "{}").body["decision"] == "deny");
  CHECK(State(session.get()).body["history"].size() == 2);
  CHECK(Approve(nullptr, "pay", "{}").status == TW_INVALID_ARGUMENT);
}

TEST_CASE("results attach once to a recorded call") {
  PolicyPtr policy = MustCompile("allow read;");
  SessionPtr session = MustStart(policy.get());
  REQUIRE(Decide(session.get(), "read", "{}").body["call"] == 0);
  auto attach = [&](size_t call, const char* result) {
    return Capture(
        [&](char** out) { return tw_session_attach_result(session.get(), call, result, out); });
  };
  Reply ok = attach(0, R"({"text": "hello"})");
  REQUIRE(ok.ok());
  CHECK(ok.body == json::object());
  CHECK(State(session.get()).body["history"][0]["result"] == json{{"text", "hello"}});
  CHECK(attach(0, "1").status == TW_FAILED_PRECONDITION);
  CHECK(attach(0, "1").code() == "failed_precondition");
  CHECK(attach(7, "1").status == TW_NOT_FOUND);
  Reply malformed = attach(0, "{oops");
  CHECK(malformed.status == TW_INVALID_ARGUMENT);
  CHECK(malformed.message().find("`result_json`: invalid JSON") == 0);
}

TEST_CASE("trusted values come from tw_session_new and tw_session_add_trusted") {
  PolicyPtr policy = MustCompile("allow send when to from trusted;");
  const std::string args = R"({"to": "DE89370400440532013000"})";
  SECTION("added later") {
    SessionPtr session = MustStart(policy.get());
    CHECK(Decide(session.get(), "send", args).body["decision"] == "deny");
    Reply added = Capture([&](char** out) {
      return tw_session_add_trusted(session.get(), "IBAN DE89370400440532013000", out);
    });
    REQUIRE(added.ok());
    CHECK(added.body == json::object());
    CHECK(Decide(session.get(), "send", args).body["decision"] == "allow");
    CHECK(State(session.get()).body["trusted"] == json{"IBAN DE89370400440532013000"});
  }
  SECTION("given at the start") {
    SessionPtr session = MustStart(policy.get(), "", R"(["DE89370400440532013000"])");
    CHECK(Decide(session.get(), "send", args).body["decision"] == "allow");
  }
  SECTION("trusted_json must be an array of strings") {
    for (const char* bad : {"{}", "[1]", "\"x\"", "[\"a\", null]"}) {
      tw_session* raw = nullptr;
      Reply reply =
          Capture([&](char** out) { return tw_session_new(policy.get(), "", bad, &raw, out); });
      INFO(bad);
      CHECK(reply.status == TW_INVALID_ARGUMENT);
      CHECK(raw == nullptr);
    }
    tw_session* raw = nullptr;
    Reply malformed =
        Capture([&](char** out) { return tw_session_new(policy.get(), "", "[", &raw, out); });
    CHECK(malformed.status == TW_INVALID_ARGUMENT);
    CHECK(malformed.message().find("`trusted_json`: invalid JSON") == 0);
  }
  SECTION("more trusted values than the limit") {
    std::string many = "[";
    for (int i = 0; i < 10001; ++i) many += std::string(i ? "," : "") + "\"v\"";
    many += "]";
    tw_session* raw = nullptr;
    Reply reply = Capture(
        [&](char** out) { return tw_session_new(policy.get(), "", many.c_str(), &raw, out); });
    CHECK(reply.status == TW_RESOURCE_EXHAUSTED);
    CHECK(raw == nullptr);
  }
}

TEST_CASE("rules added to one session") {
  PolicyPtr policy = MustCompile("allow read;\nallow send;\n");
  SessionPtr session = MustStart(policy.get());
  SessionPtr other = MustStart(policy.get());
  const std::string hash = State(session.get()).body["policy"].get<std::string>();

  SECTION("a narrowing forbid applies to that session only") {
    Reply added = AddRules(session.get(), "# no sending now\nforbid send when to == \"eve\";\n",
                           "narrow-only");
    INFO(added.body.dump());
    REQUIRE(added.ok());
    CHECK(added.body["rules"] == json{"added:2"});
    CHECK(added.body["policy"].is_string());
    Reply denied = Decide(session.get(), "send", R"({"to": "eve"})");
    CHECK(denied.body["decision"] == "deny");
    CHECK(denied.body["rule"]["id"] == "added:2");
    CHECK(Decide(session.get(), "send", R"({"to": "bob"})").body["decision"] == "allow");
    CHECK(Decide(other.get(), "send", R"({"to": "eve"})").body["decision"] == "allow");
    CHECK(State(session.get()).body["policy"] == added.body["policy"]);
    CHECK(State(session.get()).body["added_rules"] == json{"added:2"});
    CHECK(State(other.get()).body["added_rules"] == json::array());
    CHECK(State(other.get()).body["policy"] == hash);
  }
  SECTION("errors in the added text are positioned in it, and nothing is added") {
    Reply bad = AddRules(session.get(), "forbid send;\nforbid read when ;\n", "any");
    REQUIRE(bad.status == TW_POLICY_ERROR);
    REQUIRE(bad.body["diagnostics"].size() >= 1);
    CHECK(bad.body["diagnostics"][0]["line"] == 2);
    CHECK(bad.body["diagnostics"][0]["file"] == "added");
    CHECK(Decide(session.get(), "send", "{}").body["decision"] == "allow");
  }
  SECTION("narrow-only refuses an allow, and nothing is added") {
    PolicyPtr narrow = MustCompile("allow read;");
    SessionPtr s = MustStart(narrow.get());
    Reply refused = AddRules(s.get(), "allow write;", "narrow-only");
    CHECK(refused.status == TW_POLICY_ERROR);
    REQUIRE(refused.body["diagnostics"].size() == 1);
    CHECK(refused.body["diagnostics"][0]["message"].get<std::string>().find("narrow-only") == 0);
    CHECK(Decide(s.get(), "write", "{}").body["decision"] == "deny");
    Reply any = AddRules(s.get(), "allow write;", "any");
    INFO(any.body.dump());
    REQUIRE(any.ok());
    CHECK(Decide(s.get(), "write", "{}").body["decision"] == "allow");
  }
  SECTION("a name with `:` is refused") {
    Reply bad = AddRules(session.get(), "forbid send;", "any", "a:b");
    CHECK(bad.status == TW_INVALID_ARGUMENT);
    CHECK(Decide(session.get(), "send", "{}").body["decision"] == "allow");
  }
  SECTION("mode must be narrow-only or any") {
    Reply bad = AddRules(session.get(), "forbid send;", "wide");
    CHECK(bad.status == TW_INVALID_ARGUMENT);
    CHECK(bad.message().find("narrow-only") != std::string::npos);
  }
}

TEST_CASE("malformed arguments are TW_INVALID_ARGUMENT, unacceptable ones are denied") {
  PolicyPtr policy = MustCompile("allow *;");
  SessionPtr session = MustStart(policy.get());

  SECTION("text that is not JSON") {
    for (const char* bad : {"", "{", "{\"a\": }", "{'a': 1}", "nul", "{} x", "{\"a\": 1e400}",
                            "{\"a\": \"\xff\"}", "{\"a\": \"\\ud800\"}"}) {
      INFO(bad);
      Reply reply = Decide(session.get(), "t", bad);
      CHECK(reply.status == TW_INVALID_ARGUMENT);
      CHECK(reply.code() == "invalid_argument");
      CHECK(reply.message().find("`args_json`: invalid JSON") == 0);
      Reply checked = Check(session.get(), "t", bad);
      CHECK(checked.status == TW_INVALID_ARGUMENT);
    }
    CHECK(State(session.get()).body["history"].empty());
  }
  SECTION("JSON past the parser's nesting limit") {
    std::string deep = "{\"a\":" + Nested(200) + "}";
    Reply reply = Decide(session.get(), "t", deep);
    CHECK(reply.status == TW_RESOURCE_EXHAUSTED);
    CHECK(reply.message().find("nests deeper than 128") != std::string::npos);
  }
  SECTION("JSON that is not an object is denied") {
    for (const char* args : {"[1]", "3", "\"x\"", "null", "true"}) {
      INFO(args);
      Reply reply = Decide(session.get(), "t", args);
      REQUIRE(reply.ok());
      CHECK(reply.body["decision"] == "deny");
      CHECK(reply.body["reason"] == "the arguments are not a JSON object");
      CHECK(reply.body["errors"].size() == 1);
    }
    CHECK(State(session.get()).body["history"].empty());
  }
  SECTION("arguments deeper than the session's limit are denied") {
    std::string deep = "{\"a\":" + Nested(64) + "}";  // 65 levels
    Reply reply = Decide(session.get(), "t", deep);
    REQUIRE(reply.ok());
    CHECK(reply.body["decision"] == "deny");
    CHECK(reply.body["reason"].get<std::string>().find("64 levels") != std::string::npos);
    std::string within = "{\"a\":" + Nested(63) + "}";  // 64 levels
    CHECK(Decide(session.get(), "t", within).body["decision"] == "allow");
  }
  SECTION("a tool name that is not UTF-8 is denied, and the reply is still JSON") {
    Reply reply = Decide(session.get(), "bad\xff", "{}");
    REQUIRE(reply.ok());
    CHECK(reply.body["decision"] == "deny");
  }
  SECTION("a query that is not UTF-8 gives JSON replies") {
    SessionPtr s = MustStart(policy.get(), "pay \xc3 now");
    Reply state = State(s.get());
    REQUIRE(state.ok());
    CHECK(state.body["query"].get<std::string>().find("pay ") == 0);
  }
}

TEST_CASE("NULL arguments give TW_INVALID_ARGUMENT, never a crash") {
  PolicyPtr policy = MustCompile("allow *;");
  SessionPtr session = MustStart(policy.get());
  const std::string text = "allow x;";
  auto invalid = [](tw_status status) { return status == TW_INVALID_ARGUMENT; };

  // With an `out` to read the message from, and without one.
  for (bool with_out : {true, false}) {
    char* message = nullptr;
    char** out = with_out ? &message : nullptr;
    auto check_out = [&](const char* parameter) {
      if (!with_out) return;
      REQUIRE(message != nullptr);
      json body = json::parse(message);
      CHECK(body["error"]["code"] == "invalid_argument");
      CHECK(body["error"]["message"] == std::string("`") + parameter + "` is NULL");
      tw_free(message);
      message = nullptr;
    };
    tw_policy* p = nullptr;
    CHECK(
        invalid(tw_policy_from_text(nullptr, text.data(), text.size(), nullptr, nullptr, &p, out)));
    check_out("name");
    CHECK(invalid(tw_policy_from_text("n", nullptr, 0, nullptr, nullptr, &p, out)));
    check_out("text");
    CHECK(invalid(
        tw_policy_from_text("n", text.data(), text.size(), nullptr, nullptr, nullptr, out)));
    check_out("policy");
    CHECK(invalid(tw_policy_from_file(nullptr, nullptr, &p, out)));
    check_out("path");
    CHECK(invalid(tw_policy_from_file(kBankingPolicy.c_str(), nullptr, nullptr, out)));
    check_out("policy");
    CHECK(p == nullptr);

    tw_session* s = nullptr;
    CHECK(invalid(tw_session_new(nullptr, "", nullptr, &s, out)));
    check_out("policy");
    CHECK(invalid(tw_session_new(policy.get(), nullptr, nullptr, &s, out)));
    check_out("query");
    CHECK(invalid(tw_session_new(policy.get(), "", nullptr, nullptr, out)));
    check_out("session");
    CHECK(s == nullptr);

    CHECK(invalid(tw_session_decide(nullptr, "t", "{}", out)));
    check_out("session");
    CHECK(invalid(tw_session_decide(session.get(), nullptr, "{}", out)));
    check_out("tool");
    CHECK(invalid(tw_session_decide(session.get(), "t", nullptr, out)));
    check_out("args_json");
    CHECK(invalid(tw_session_check(nullptr, "t", "{}", out)));
    check_out("session");
    CHECK(invalid(tw_session_check(session.get(), nullptr, "{}", out)));
    check_out("tool");
    CHECK(invalid(tw_session_check(session.get(), "t", nullptr, out)));
    check_out("args_json");
    CHECK(invalid(tw_session_attach_result(nullptr, 0, "{}", out)));
    check_out("session");
    CHECK(invalid(tw_session_attach_result(session.get(), 0, nullptr, out)));
    check_out("result_json");
    CHECK(invalid(tw_session_add_trusted(nullptr, "v", out)));
    check_out("session");
    CHECK(invalid(tw_session_add_trusted(session.get(), nullptr, out)));
    check_out("value");
    CHECK(invalid(tw_session_add_rules(nullptr, "n", text.data(), text.size(), "any", out)));
    check_out("session");
    CHECK(invalid(
        tw_session_add_rules(session.get(), nullptr, text.data(), text.size(), "any", out)));
    check_out("name");
    CHECK(invalid(tw_session_add_rules(session.get(), "n", nullptr, 0, "any", out)));
    check_out("text");
    CHECK(
        invalid(tw_session_add_rules(session.get(), "n", text.data(), text.size(), nullptr, out)));
    check_out("mode");
    CHECK(invalid(tw_session_state(nullptr, out)));
    check_out("session");
    CHECK(invalid(tw_session_draft(nullptr, "{}", out)));
    check_out("session");
    CHECK(invalid(tw_session_update(nullptr, 0, "any", "{}", out)));
    check_out("session");
    CHECK(invalid(tw_session_update(session.get(), 0, nullptr, "{}", out)));
    check_out("mode");
    CHECK(invalid(tw_session_apply_update(nullptr, "{}", nullptr, out)));
    check_out("session");
    CHECK(invalid(tw_session_apply_update(session.get(), nullptr, nullptr, out)));
    check_out("change_json");
  }
  CHECK(State(session.get()).body["history"].empty());
  CHECK(State(session.get()).body["trusted"].empty());
}

TEST_CASE("a NULL out is fine for calls that succeed") {
  PolicyPtr policy = MustCompile("allow *;");
  tw_session* raw = nullptr;
  REQUIRE(tw_session_new(policy.get(), "q", nullptr, &raw, nullptr) == TW_OK);
  SessionPtr session(raw);
  CHECK(tw_session_decide(session.get(), "t", "{}", nullptr) == TW_OK);
  CHECK(tw_session_check(session.get(), "t", "{}", nullptr) == TW_OK);
  CHECK(tw_session_attach_result(session.get(), 0, "{}", nullptr) == TW_OK);
  CHECK(tw_session_add_trusted(session.get(), "v", nullptr) == TW_OK);
  CHECK(tw_session_state(session.get(), nullptr) == TW_OK);
  CHECK(State(session.get()).body["history"].size() == 1);
}

TEST_CASE("a session outlives the policy it was made from") {
  PolicyPtr policy = MustCompile("allow read;\nallow send when count(send) < 1;\n");
  SessionPtr session = MustStart(policy.get());
  policy.reset();
  CHECK(Decide(session.get(), "read", "{}").body["decision"] == "allow");
  CHECK(Decide(session.get(), "send", "{}").body["decision"] == "allow");
  CHECK(Decide(session.get(), "send", "{}").body["decision"] == "deny");
  CHECK(Decide(session.get(), "write", "{}").body["decision"] == "deny");
  CHECK(State(session.get()).body["history"].size() == 2);
}

TEST_CASE("8 threads deciding on one shared session") {
  // The budget makes the count exact only if the session's calls never overlap.
  PolicyPtr policy = MustCompile("allow read;\nallow t when count(t) < 400;\n");
  SessionPtr session = MustStart(policy.get());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 60;  // 480 attempts at `t`, 400 of them allowed
  std::atomic<int> allowed{0}, denied{0}, failures{0};
  std::vector<std::vector<size_t>> calls(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kPerThread; ++k) {
        std::string args =
            "{\"thread\": " + std::to_string(i) + ", \"k\": " + std::to_string(k) + "}";
        char* out = nullptr;
        if (tw_session_decide(session.get(), "t", args.c_str(), &out) != TW_OK) {
          failures++;
          tw_free(out);
          continue;
        }
        json d = json::parse(out);
        tw_free(out);
        if (d["decision"] == "allow") {
          allowed++;
          calls[i].push_back(d["call"].get<size_t>());
        } else {
          denied++;
        }
        // Mix in the other calls on the same session.
        if (tw_session_check(session.get(), "read", "{}", nullptr) != TW_OK) failures++;
        if (k % 10 == 0 && tw_session_state(session.get(), nullptr) != TW_OK) failures++;
        if (k % 7 == 0 && tw_session_add_trusted(session.get(), "x", nullptr) != TW_OK) failures++;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(allowed == 400);
  CHECK(denied == kThreads * kPerThread - 400);
  std::vector<size_t> all;
  for (const auto& c : calls) all.insert(all.end(), c.begin(), c.end());
  std::sort(all.begin(), all.end());
  REQUIRE(all.size() == 400);
  for (size_t i = 0; i < all.size(); ++i) REQUIRE(all[i] == i);  // each index handed out once
  Reply state = State(session.get());
  CHECK(state.body["history"].size() == 400);
  CHECK(state.body["trusted"].size() == kThreads * ((kPerThread + 6) / 7));
}

TEST_CASE("8 threads, each with its own session over one shared policy") {
  PolicyPtr policy =
      MustCompile("allow read;\nallow t when count(t) < 50 and n >= 0;\nforbid t when n == 13;\n");
  constexpr int kThreads = 8;
  std::vector<SessionPtr> sessions;
  for (int i = 0; i < kThreads; ++i) sessions.push_back(MustStart(policy.get()));
  policy.reset();  // the sessions keep the compiled policy alive
  std::atomic<int> failures{0};
  std::vector<int> allowed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < 100; ++n) {
        std::string args = "{\"n\": " + std::to_string(n) + "}";
        char* out = nullptr;
        if (tw_session_decide(sessions[i].get(), "t", args.c_str(), &out) != TW_OK) {
          failures++;
        } else if (json::parse(out)["decision"] == "allow") {
          allowed[i]++;
        }
        tw_free(out);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == 0);
  for (int i = 0; i < kThreads; ++i) {
    CHECK(allowed[i] == 50);  // n = 0..50 but 13 is forbidden
    CHECK(State(sessions[i].get()).body["history"].size() == 50);
  }
}

// --- the conformance corpus (tests/conformance/*.json, the format of cli/policy_tests.cc) ---

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Everything a load error says, as one text to search.
std::string ErrorText(const json& error) {
  std::string text = error["error"]["message"].get<std::string>() + "\n";
  for (const json& d : error["diagnostics"]) {
    text += d["file"].get<std::string>() + ":" + std::to_string(d["line"].get<int>()) + ":" +
            std::to_string(d["column"].get<int>()) + ": " + d["severity"].get<std::string>() +
            ": " + d["message"].get<std::string>() + "\n";
  }
  return text;
}

// Runs one case through the C API; returns "" when it passed, else what went wrong.
std::string RunCase(const json& c, const tw_policy* policy) {
  std::string trusted = c.contains("trusted") ? c["trusted"].dump() : std::string();
  tw_session* raw = nullptr;
  char* out = nullptr;
  tw_status status = tw_session_new(policy, Str(c, "query").c_str(),
                                    trusted.empty() ? nullptr : trusted.c_str(), &raw, &out);
  std::string text = out != nullptr ? out : "";
  tw_free(out);
  if (status != TW_OK) return "tw_session_new: " + text;
  SessionPtr session(raw);
  const json& calls = c.at("calls");
  for (size_t i = 0; i < calls.size(); ++i) {
    const json& call = calls[i];
    const std::string where = "call #" + std::to_string(i + 1) + " `" + Str(call, "tool") + "`";
    const std::string args = call.contains("args") ? call["args"].dump() : "{}";
    status = tw_session_decide(session.get(), Str(call, "tool").c_str(), args.c_str(), &out);
    text = out != nullptr ? out : "";
    tw_free(out);
    if (status != TW_OK) return where + ": status " + std::to_string(status) + ": " + text;
    json d = json::parse(text);
    const std::string summary = " (got " + d.dump() + ")";
    if (d["decision"] != call.at("expect")) {
      return where + ": expected " + Str(call, "expect") + summary;
    }
    if (call.contains("rule")) {
      json actual = d["rule"].is_null() ? json() : d["rule"]["id"];
      if (actual != call["rule"]) return where + ": expected rule " + call["rule"].dump() + summary;
    }
    const std::string message = Str(call, "message");
    if (!message.empty() && d["message"].get<std::string>().find(message) == std::string::npos) {
      return where + ": expected a message containing \"" + message + "\"" + summary;
    }
    const std::string reason = Str(call, "reason");
    if (!reason.empty() && d["reason"].get<std::string>().find(reason) == std::string::npos) {
      return where + ": expected a reason containing \"" + reason + "\"" + summary;
    }
    if (call.contains("error")) {
      bool found = false;
      for (const json& e : d["errors"]) {
        found = found || e.get<std::string>().find(Str(call, "error")) != std::string::npos;
      }
      if (!found) return where + ": expected an error containing " + call["error"].dump() + summary;
    } else if (!d["errors"].empty()) {
      return where + ": unexpected errors" + summary;
    }
    if (call.contains("result") && d["decision"] == "allow") {
      std::string result = call["result"].dump();
      status =
          tw_session_attach_result(session.get(), d["call"].get<size_t>(), result.c_str(), &out);
      text = out != nullptr ? out : "";
      tw_free(out);
      if (status != TW_OK) return where + ": attaching the result: " + text;
    }
  }
  return "";
}

TEST_CASE("the conformance corpus through the C API") {
  const std::string dir = kSourceDir + "/tests/conformance";
  std::vector<std::string> files;
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  while (dirent* entry = readdir(d)) {
    std::string name = entry->d_name;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) files.push_back(name);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 100);

  int passed = 0, skipped = 0;
  std::vector<std::string> failures;
  for (const std::string& name : files) {
    const std::string path = dir + "/" + name;
    json doc = json::parse(ReadFile(path));
    std::string tools = doc.contains("tools") ? dir + "/" + Str(doc, "tools") : "";
    const char* tools_path = tools.empty() ? nullptr : tools.c_str();
    tw_policy* raw = nullptr;
    char* out = nullptr;
    tw_status status;
    if (doc.contains("policy_text")) {
      std::string text = Str(doc, "policy_text");
      status = tw_policy_from_text("policy_text", text.data(), text.size(), dir.c_str(), tools_path,
                                   &raw, &out);
    } else if (doc.contains("policy")) {
      std::string policy_path = dir + "/" + Str(doc, "policy");
      status = tw_policy_from_file(policy_path.c_str(), tools_path, &raw, &out);
    } else {
      skipped++;  // a format this runner does not know
      tw_free(out);
      continue;
    }
    PolicyPtr policy(raw);
    json reply = json::parse(out);
    tw_free(out);
    if (doc.contains("expect_load_error")) {
      const std::string wanted = Str(doc, "expect_load_error");
      if (status != TW_OK && ErrorText(reply).find(wanted) != std::string::npos) {
        passed++;
      } else {
        failures.push_back(name + ": expected a load error containing \"" + wanted + "\", got " +
                           reply.dump());
      }
      continue;
    }
    if (status != TW_OK) {
      failures.push_back(name + ": the policy does not load: " + reply.dump());
      continue;
    }
    for (const json& c : doc.at("cases")) {
      std::string failure = RunCase(c, policy.get());
      if (failure.empty()) {
        passed++;
      } else {
        failures.push_back(name + ": case \"" + Str(c, "name") + "\": " + failure);
      }
    }
  }
  for (const std::string& f : failures) UNSCOPED_INFO(f.substr(0, 2000));
  CHECK(failures.empty());
  CHECK(skipped == 0);
  CHECK(passed > 300);
  WARN("conformance through the C API: " << files.size() << " files, " << passed << " passed, "
                                         << failures.size() << " failed, " << skipped
                                         << " skipped");
}

// ---- drafting, against tests/llm/fake_llm.py ---------------------------------

// The banking tools with no rules of their own: whatever is allowed, a draft allowed.
constexpr char kDraftPolicy[] =
    "policy drafted;\n"
    "tools \"banking.tools.json\";\n"
    "default block \"blocked: {reason}\";\n";
const std::string kIban = "GB29NWBK60161331926819";
const std::string kOtherIban = "US133000000121212121212";

// A Progent-form reply: get_balance (if `balance`), and send_money to
// `recipients` up to `maximum`.
std::string ProgentReply(bool balance, const std::vector<std::string>& recipients, int maximum) {
  json rules = json::array();
  if (balance) rules.push_back({{"name", "get_balance"}, {"args", json::object()}});
  rules.push_back({{"name", "send_money"},
                   {"args",
                    {{"recipient", {{"enum", recipients}}},
                     {"amount", {{"minimum", nullptr}, {"maximum", maximum}}}}}});
  return json{{"rules", rules}}.dump();
}

// The draft, a narrower update and a wider one. The updates leave out
// get_balance: an update that keeps a rule of the draft unchanged draws a
// spurious "this rule can never decide" warning from the check against the
// draft it replaces, which costs repairs.
const std::string kDraftReply = ProgentReply(true, {kIban}, 100);
const std::string kNarrowerReply = ProgentReply(false, {kIban}, 50);
const std::string kWiderReply = ProgentReply(false, {kIban, kOtherIban}, 100);

json ReplyStep(const std::string& content) {
  return {{"reply", {{"content", content}, {"finish", "stop"}}}};
}

std::string Settings(const FakeLlm& fake, int timeout_ms = 10000) {
  return json{{"url", fake.url()}, {"model", "fake"}, {"timeout_ms", timeout_ms}}.dump();
}

std::string Pay(const std::string& recipient, double amount) {
  return json{
      {"recipient", recipient}, {"amount", amount}, {"subject", "rent"}, {"date", "2024-01-01"}}
      .dump();
}

PolicyPtr DraftPolicy() {
  PolicyPtr policy;
  const std::string base = kSourceDir + "/policies/examples";
  tw_policy* raw = nullptr;
  Reply reply = Capture([&](char** out) {
    return tw_policy_from_text("drafted.policy", kDraftPolicy, sizeof(kDraftPolicy) - 1,
                               base.c_str(), nullptr, &raw, out);
  });
  INFO(reply.body.dump());
  REQUIRE(reply.ok());
  policy.reset(raw);
  return policy;
}

Reply Draft(tw_session* session, const std::string& settings) {
  return Capture([&](char** out) { return tw_session_draft(session, settings.c_str(), out); });
}

Reply Update(tw_session* session, size_t call, const char* mode, const std::string& settings) {
  return Capture(
      [&](char** out) { return tw_session_update(session, call, mode, settings.c_str(), out); });
}

Reply ApplyUpdate(tw_session* session, const std::string& change, const char* settings = nullptr) {
  return Capture(
      [&](char** out) { return tw_session_apply_update(session, change.c_str(), settings, out); });
}

std::string DecisionOf(tw_session* session, const std::string& args) {
  Reply reply = Check(session, "send_money", args);
  REQUIRE(reply.ok());
  return reply.body["decision"].get<std::string>();
}

// A drafted session with one allowed get_balance call whose result is attached.
void DraftAndCall(tw_session* session, const FakeLlm& fake) {
  Reply drafted = Draft(session, Settings(fake));
  INFO(drafted.body.dump());
  REQUIRE(drafted.ok());
  REQUIRE(drafted.body["ok"] == true);
  Reply call = Decide(session, "get_balance", "{}");
  REQUIRE(call.body["decision"] == "allow");
  REQUIRE(call.body["call"] == 0);
  char* out = nullptr;
  REQUIRE(tw_session_attach_result(session, 0, R"({"balance": 1810})", &out) == TW_OK);
  tw_free(out);
}

TEST_CASE("tw_session_draft adds the model's rules, and decisions follow them") {
  auto fake = FakeLlm::Start({{"steps", {ReplyStep(kDraftReply)}}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "Pay 100 to GB29NWBK60161331926819");
  const json before = State(session.get()).body["policy"];
  CHECK(Decide(session.get(), "send_money", Pay(kIban, 50)).body["decision"] == "deny");

  Reply drafted = Draft(session.get(), Settings(*fake));
  INFO(drafted.body.dump());
  REQUIRE(drafted.ok());
  CHECK(drafted.body["ok"] == true);
  CHECK(drafted.body["name"] == "draft");
  CHECK(drafted.body["model_calls"] == 1);
  CHECK(drafted.body["rules"].get<std::string>().find("allow send_money") != std::string::npos);
  REQUIRE(drafted.body["rule_ids"].size() == 2);
  CHECK(drafted.body["policy"] != before);
  CHECK(State(session.get()).body["policy"] == drafted.body["policy"]);
  CHECK(State(session.get()).body["drafted"] == json{"draft"});

  Reply allowed = Decide(session.get(), "send_money", Pay(kIban, 50));
  CHECK(allowed.body["decision"] == "allow");
  CHECK(allowed.body["rule"]["id"].get<std::string>().rfind("draft:", 0) == 0);
  CHECK(Decide(session.get(), "send_money", Pay(kIban, 500)).body["decision"] == "deny");
  CHECK(Decide(session.get(), "send_money", Pay(kOtherIban, 50)).body["decision"] == "deny");
  CHECK(Decide(session.get(), "get_balance", "{}").body["decision"] == "allow");
  CHECK(Decide(session.get(), "get_iban", "{}").body["decision"] == "deny");

  const std::vector<json> sent = fake->Requests();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0]["path"] == "/v1/chat/completions");
  CHECK(sent[0]["body"]["model"] == "fake");

  SECTION("a second draft is refused before any model call") {
    Reply again = Draft(session.get(), Settings(*fake));
    CHECK(again.status == TW_FAILED_PRECONDITION);
    CHECK(fake->Requests().size() == 1);
  }
}

TEST_CASE("a failing model server leaves the session's rules as they were") {
  // 500s, retried at once (retry-after-ms: 0) until the transport gives up.
  json failure = {{"status", 500},
                  {"headers", {{"retry-after-ms", "0"}}},
                  {"json", {{"error", {{"message", "overloaded"}, {"type", "server_error"}}}}}};
  auto fake = FakeLlm::Start({{"steps", {failure}}, {"repeat_last", true}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "Pay 100 to GB29NWBK60161331926819");
  const json before = State(session.get()).body["policy"];

  const auto start = std::chrono::steady_clock::now();
  Reply drafted = Draft(session.get(), Settings(*fake, 500));
  INFO(drafted.body.dump());
  REQUIRE(drafted.ok());
  CHECK(drafted.body["ok"] == false);
  CHECK(drafted.body["error"].get<std::string>().find("overloaded") != std::string::npos);
  CHECK(drafted.body["model_calls"] == 1);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
  CHECK(fake->Requests().size() >= 2);  // retried

  CHECK(State(session.get()).body["policy"] == before);
  CHECK(State(session.get()).body["drafted"] == json::array());
  CHECK(Decide(session.get(), "send_money", Pay(kIban, 50)).body["decision"] == "deny");
  CHECK(Decide(session.get(), "get_balance", "{}").body["decision"] == "deny");

  SECTION("and a dead one too") {
    const std::string dead =
        json{{"url", "http://127.0.0.1:1"}, {"model", "fake"}, {"timeout_ms", 200}}.dump();
    Reply reply = Draft(session.get(), dead);
    REQUIRE(reply.ok());
    CHECK(reply.body["ok"] == false);
    CHECK(State(session.get()).body["policy"] == before);
  }
}

TEST_CASE("tw_session_update applies a narrower update in narrow-only mode") {
  auto fake = FakeLlm::Start(
      {{"steps",
        {ReplyStep(kDraftReply), ReplyStep(R"({"update": true})"), ReplyStep(kNarrowerReply)}}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "Pay GB29NWBK60161331926819 what I owe");
  DraftAndCall(session.get(), *fake);
  CHECK(DecisionOf(session.get(), Pay(kIban, 80)) == "allow");

  Reply updated = Update(session.get(), 0, "narrow-only", Settings(*fake));
  INFO(updated.body.dump());
  REQUIRE(updated.ok());
  CHECK(updated.body["result"] == "applied");
  CHECK(updated.body["model_calls"] == 2);
  const json& change = updated.body["change"];
  CHECK(change["kind"] == "update");
  CHECK(change["replaces"] == "draft");
  CHECK(change["mode"] == "narrow-only");
  CHECK(change["policy"] == State(session.get()).body["policy"]);
  CHECK(State(session.get()).body["drafted"] == json{change["name"]});
  CHECK(DecisionOf(session.get(), Pay(kIban, 80)) == "deny");
  CHECK(DecisionOf(session.get(), Pay(kIban, 40)) == "allow");
  CHECK(Check(session.get(), "get_balance", "{}").body["decision"] == "deny");  // left out

  // The first question was asked without the result; the second showed it.
  const std::vector<json> sent = fake->Requests();
  REQUIRE(sent.size() == 3);
  CHECK(sent[1]["body"].dump().find("1810") == std::string::npos);
  CHECK(sent[2]["body"].dump().find("1810") != std::string::npos);
}

TEST_CASE("tw_session_update refuses a widening update in narrow-only mode") {
  auto fake = FakeLlm::Start(
      {{"steps",
        {ReplyStep(kDraftReply), ReplyStep(R"({"update": true})"), ReplyStep(kWiderReply)}}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "Pay GB29NWBK60161331926819 what I owe");
  DraftAndCall(session.get(), *fake);
  const json before = State(session.get()).body["policy"];

  Reply updated = Update(session.get(), 0, "narrow-only", Settings(*fake));
  INFO(updated.body.dump());
  REQUIRE(updated.ok());
  CHECK(updated.body["result"] == "refused");
  CHECK(updated.body["change"]["after"].get<std::string>().find(kOtherIban) != std::string::npos);
  CHECK_FALSE(updated.body["problems"].empty());
  CHECK(State(session.get()).body["policy"] == before);
  CHECK(DecisionOf(session.get(), Pay(kOtherIban, 50)) == "deny");
  CHECK(DecisionOf(session.get(), Pay(kIban, 80)) == "allow");
}

TEST_CASE("an update the model says is not needed changes nothing") {
  auto fake =
      FakeLlm::Start({{"steps", {ReplyStep(kDraftReply), ReplyStep(R"({"update": false})")}}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "Pay GB29NWBK60161331926819 what I owe");
  DraftAndCall(session.get(), *fake);
  const json before = State(session.get()).body["policy"];
  Reply updated = Update(session.get(), 0, "any", Settings(*fake));
  INFO(updated.body.dump());
  REQUIRE(updated.ok());
  CHECK(updated.body["result"] == "no-update");
  CHECK(updated.body["change"].is_null());
  CHECK(State(session.get()).body["policy"] == before);
  CHECK(fake->Requests().size() == 2);
}

TEST_CASE("a pending update applies with tw_session_apply_update, once") {
  auto fake = FakeLlm::Start(
      {{"steps",
        {ReplyStep(kDraftReply), ReplyStep(R"({"update": true})"), ReplyStep(kWiderReply)}}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "Pay GB29NWBK60161331926819 what I owe");
  DraftAndCall(session.get(), *fake);
  const json before = State(session.get()).body["policy"];

  Reply pending = Update(session.get(), 0, "ask", Settings(*fake));
  INFO(pending.body.dump());
  REQUIRE(pending.ok());
  REQUIRE(pending.body["result"] == "pending");
  CHECK(State(session.get()).body["policy"] == before);
  CHECK(DecisionOf(session.get(), Pay(kOtherIban, 50)) == "deny");

  const std::string change = pending.body["change"].dump();
  Reply applied = ApplyUpdate(session.get(), change);
  INFO(applied.body.dump());
  REQUIRE(applied.ok());
  CHECK(applied.body["result"] == "applied");
  CHECK(applied.body["model_calls"] == 0);
  CHECK(applied.body["change"]["policy"] == State(session.get()).body["policy"]);
  CHECK(DecisionOf(session.get(), Pay(kOtherIban, 50)) == "allow");
  CHECK(fake->Requests().size() == 3);  // no model call to apply

  // The rules it replaced are gone: applying it again fails and changes nothing.
  const json after = State(session.get()).body["policy"];
  Reply again = ApplyUpdate(session.get(), change);
  REQUIRE(again.ok());
  CHECK(again.body["result"] == "failed");
  CHECK(again.body["error"].get<std::string>().find("no longer") != std::string::npos);
  CHECK(State(session.get()).body["policy"] == after);
}

TEST_CASE("drafting calls reject bad input before any model call") {
  auto fake = FakeLlm::Start({{"steps", {ReplyStep(kDraftReply)}}});
  PolicyPtr policy = DraftPolicy();
  SessionPtr session = MustStart(policy.get(), "q");
  const std::string settings = Settings(*fake);

  SECTION("model settings") {
    for (const std::string& bad :
         {std::string("{"), std::string("[]"), std::string(R"({"api_key": "sk-x"})"),
          std::string(R"({"url": 3})"), std::string(R"({"protocol": "smoke"})"),
          std::string(R"({"max_repairs": 9})"), std::string(R"({"timeout_ms": 0})")}) {
      INFO(bad);
      Reply reply = Draft(session.get(), bad);
      CHECK(reply.status == TW_INVALID_ARGUMENT);
      CHECK(reply.message().find("llm_json") != std::string::npos);
    }
  }
  SECTION("no server or no model anywhere") {
    unsetenv("TOOLWARDEN_LLM_URL");
    unsetenv("TOOLWARDEN_LLM_MODEL");
    Reply no_url = Draft(session.get(), R"({"model": "fake"})");
    CHECK(no_url.status == TW_INVALID_ARGUMENT);
    CHECK(no_url.message().find("TOOLWARDEN_LLM_URL") != std::string::npos);
    Reply no_model = Draft(session.get(), json{{"url", fake->url()}}.dump());
    CHECK(no_model.status == TW_INVALID_ARGUMENT);
    Reply none = Capture([&](char** out) { return tw_session_draft(session.get(), nullptr, out); });
    CHECK(none.status == TW_INVALID_ARGUMENT);
  }
  SECTION("the environment's settings, with llm_json NULL") {
    setenv("TOOLWARDEN_LLM_URL", fake->url().c_str(), 1);
    setenv("TOOLWARDEN_LLM_MODEL", "fake-from-env", 1);
    Reply drafted =
        Capture([&](char** out) { return tw_session_draft(session.get(), nullptr, out); });
    unsetenv("TOOLWARDEN_LLM_URL");
    unsetenv("TOOLWARDEN_LLM_MODEL");
    INFO(drafted.body.dump());
    REQUIRE(drafted.ok());
    CHECK(drafted.body["ok"] == true);
    REQUIRE(fake->Requests().size() == 1);
    CHECK(fake->Requests()[0]["body"]["model"] == "fake-from-env");
  }
  SECTION("update mode, call and state") {
    Reply bad_mode = Update(session.get(), 0, "wide", settings);
    CHECK(bad_mode.status == TW_INVALID_ARGUMENT);
    CHECK(bad_mode.message().find("narrow-only") != std::string::npos);
    Reply no_call = Update(session.get(), 0, "any", settings);
    CHECK(no_call.status == TW_NOT_FOUND);
    REQUIRE(Decide(session.get(), "get_balance", "{}").body["decision"] == "deny");
    PolicyPtr open = MustCompile("allow *;");
    SessionPtr s = MustStart(open.get());
    REQUIRE(Decide(s.get(), "t", "{}").body["decision"] == "allow");
    Reply no_tools = Update(s.get(), 0, "any", settings);
    CHECK(no_tools.status == TW_FAILED_PRECONDITION);
    CHECK(Draft(s.get(), settings).status == TW_FAILED_PRECONDITION);
    CHECK(fake->Requests().empty());
  }
  SECTION("update before a result, and before a draft") {
    Reply drafted = Draft(session.get(), settings);
    REQUIRE(drafted.body["ok"] == true);
    REQUIRE(Decide(session.get(), "get_balance", "{}").body["call"] == 0);
    Reply no_result = Update(session.get(), 0, "any", settings);
    CHECK(no_result.status == TW_FAILED_PRECONDITION);
    CHECK(no_result.message().find("no result") != std::string::npos);

    PolicyPtr open = MustCompile("tools \"" + kBankingTools + "\";\nallow get_balance;\n");
    SessionPtr undrafted = MustStart(open.get(), "q");
    REQUIRE(Decide(undrafted.get(), "get_balance", "{}").body["call"] == 0);
    char* out = nullptr;
    REQUIRE(tw_session_attach_result(undrafted.get(), 0, "{}", &out) == TW_OK);
    tw_free(out);
    Reply no_draft = Update(undrafted.get(), 0, "any", settings);
    CHECK(no_draft.status == TW_FAILED_PRECONDITION);
    CHECK(no_draft.message().find("no drafted rules") != std::string::npos);
    CHECK(fake->Requests().size() == 1);
  }
  SECTION("a change that is not one") {
    for (const char* bad : {"{", "[]", "{}", R"({"name": "u"})", R"({"name": 1, "after": "x"})"}) {
      INFO(bad);
      CHECK(ApplyUpdate(session.get(), bad).status == TW_INVALID_ARGUMENT);
    }
    CHECK(ApplyUpdate(session.get(), R"({"name": "u", "after": "allow get_iban;"})", "{\"x\": 1}")
              .status == TW_INVALID_ARGUMENT);
  }
}

}  // namespace
