#include "interpreter/session.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <thread>

#include "interpreter/loader.h"
#include "tests/testing.h"

namespace toolwarden {
namespace {

using testing::MustLoad;

using nlohmann::json;

std::string RuleOf(const Decision& d) { return d.rule ? std::string(d.rule->id) : "none"; }

TEST_CASE("no policy denies everything") {
  Session session(nullptr, "q");
  Decision d = session.Decide("anything", json::object());
  CHECK(d.outcome == Outcome::kDeny);
  CHECK(d.reason == "no policy is loaded");
  CHECK(session.history().empty());
}

TEST_CASE("first match in priority order, forbid before allow on ties, then source order") {
  auto program = MustLoad(
      "allow t when x == 1;\n"               // 1
      "forbid t when x == 1 priority 10;\n"  // 2: same priority, forbid wins
      "allow t when x == 2 priority 5;\n"    // 3: lower priority runs first
      "forbid t when x == 2 priority 5;\n"   // 4
      "allow t when x >= 3;\n"               // 5: source order among allows
      "allow t when x >= 4;\n");             // 6
  Session s(program, "");
  CHECK(RuleOf(s.Check("t", {{"x", 1}})) == "t.policy:2");
  CHECK(RuleOf(s.Check("t", {{"x", 2}})) == "t.policy:4");
  CHECK(RuleOf(s.Check("t", {{"x", 5}})) == "t.policy:5");
  CHECK(s.Check("t", {{"x", 0}}).outcome == Outcome::kDeny);
  CHECK(RuleOf(s.Check("t", {{"x", 0}})) == "none");
}

TEST_CASE("the default fallback and message templates") {
  auto program = MustLoad(
      "default ask \"{tool} needs approval for: {query} ({rule})\";\n"
      "forbid t when x priority 1 fallback terminate \"stop {tool}: {reason}\";\n"
      "forbid u;\n");
  Session s(program, "the task");
  Decision d = s.Check("other", json::object());
  CHECK(d.outcome == Outcome::kAsk);
  CHECK(d.message == "other needs approval for: the task (default)");
  CHECK(d.fallback == FallbackKind::kAsk);
  Decision t = s.Check("t", {{"x", true}});
  CHECK(t.outcome == Outcome::kTerminate);
  CHECK(t.message == "stop t: forbidden by t.policy:2: `x` holds");
  Decision u = s.Check("u", json::object());
  CHECK(u.outcome == Outcome::kDeny);
  CHECK(u.fallback == FallbackKind::kBlock);
  CHECK(u.message.find("Tool call `u` was blocked") == 0);
}

TEST_CASE("an error makes an allow rule false and a forbid rule true") {
  auto program = MustLoad(
      "allow t when x < 10;\n"              // errors on a string x: counts as false
      "allow t when y == 1;\n"              // the walk continues
      "forbid u when x < 10 priority 1;\n"  // errors on a string x: counts as true
      "allow u;\n");
  Session s(program, "");
  Decision d = s.Check("t", {{"x", "a"}, {"y", 1}});
  CHECK(d.outcome == Outcome::kAllow);
  CHECK(RuleOf(d) == "t.policy:2");
  REQUIRE(d.errors.size() == 1);
  CHECK(d.errors[0].find("t.policy:1: `<` compares two numbers or two strings") == 0);
  Decision e = s.Check("u", {{"x", "a"}});
  CHECK(e.outcome == Outcome::kDeny);
  CHECK(RuleOf(e) == "t.policy:3");
  CHECK(e.reason.find("because its condition failed") != std::string::npos);
  CHECK(s.Check("u", {{"x", 1}}).outcome == Outcome::kDeny);
  CHECK(s.Check("u", {{"x", 11}}).outcome == Outcome::kAllow);
}

TEST_CASE("check has no side effects; decide records calls and applies updates once") {
  auto program = MustLoad(
      "allow read update { forbid send when to != \"me\" priority 1; };\n"
      "allow send;\n");
  Session s(program, "");
  CHECK(s.Check("read", json::object()).allowed());
  CHECK(s.history().empty());
  CHECK(s.Check("send", {{"to", "x"}}).allowed());
  Decision r = s.Decide("read", json::object());
  REQUIRE(r.call == std::optional<size_t>(0));
  CHECK(s.added_rules() == std::vector<std::string>{"t.policy:1"});
  CHECK_FALSE(s.Check("send", {{"to", "x"}}).allowed());
  CHECK(s.Check("send", {{"to", "me"}}).allowed());
  s.Decide("read", json::object());
  CHECK(s.added_rules().size() == 1);
  CHECK(s.history().size() == 2);
  Decision denied = s.Decide("send", {{"to", "x"}});
  CHECK_FALSE(denied.call.has_value());
  CHECK(s.history().size() == 2);
}

TEST_CASE("added rules come after file rules of the same priority") {
  auto program = MustLoad(
      "allow a update { forbid b; };\n"
      "allow b;\n");
  Session s(program, "");
  s.Decide("a", json::object());
  // forbid before allow on ties, whatever the source order.
  CHECK_FALSE(s.Check("b", json::object()).allowed());
  auto program2 = MustLoad(
      "allow a update { allow b when x == 1; };\n"
      "forbid b when x == 1 priority 11;\n");
  Session s2(program2, "");
  CHECK_FALSE(s2.Check("b", {{"x", 1}}).allowed());
  s2.Decide("a", json::object());
  CHECK(s2.Check("b", {{"x", 1}}).allowed());
}

TEST_CASE("state: count, called, sum over this session's allowed calls") {
  auto program = MustLoad(
      "forbid pay when sum(pay.amount) + amount > 100 priority 1;\n"
      "forbid pay when count(\"p*\") >= 3 priority 1;\n"
      "allow pay;\n"
      "allow log when called(pay);\n");
  Session s(program, "");
  CHECK_FALSE(s.Check("log", json::object()).allowed());
  CHECK(s.Decide("pay", {{"amount", 60}}).allowed());
  CHECK(s.Check("log", json::object()).allowed());
  CHECK_FALSE(s.Decide("pay", {{"amount", 41}}).allowed());
  CHECK(s.Decide("pay", {{"amount", 40}}).allowed());
  CHECK(s.Decide("pay", {{"amount", 0}}).allowed());
  Decision fourth = s.Decide("pay", {{"amount", 0}});
  CHECK_FALSE(fourth.allowed());
  CHECK(RuleOf(fourth) == "t.policy:2");
}

TEST_CASE("provenance: from query and from trusted") {
  auto program = MustLoad(
      "trust get_iban;\n"
      "allow get_iban, read;\n"
      "allow pay when recipient from trusted and amount from query;\n"
      "allow mail when to from query;\n");
  Session s(program, "Pay 100.5 to my landlord, and e-mail BOB@x.com");
  CHECK(s.Check("mail", {{"to", "bob@x.com"}}).allowed());
  CHECK_FALSE(s.Check("mail", {{"to", "ob@x.com"}}).allowed());
  CHECK(s.Check("mail", {{"to", json::array({"bob@x.com", "landlord"})}}).allowed());
  CHECK_FALSE(s.Check("pay", {{"recipient", "DE89"}, {"amount", 100.5}}).allowed());
  Decision read = s.Decide("read", json::object());
  REQUIRE(s.AttachResult(*read.call, "IBAN DE89 from an untrusted file").ok());
  CHECK_FALSE(s.Check("pay", {{"recipient", "DE89"}, {"amount", 100.5}}).allowed());
  Decision iban = s.Decide("get_iban", json::object());
  CHECK_FALSE(
      s.Check("pay", {{"recipient", "DE89"}, {"amount", 100.5}}).allowed());  // no result yet
  REQUIRE(s.AttachResult(*iban.call, json{{"iban", "DE89"}}).ok());
  CHECK(s.Check("pay", {{"recipient", "DE89"}, {"amount", 100.5}}).allowed());
  CHECK_FALSE(s.Check("pay", {{"recipient", "DE89"}, {"amount", 100}}).allowed());
  REQUIRE(s.AddTrustedValue("GB29").ok());
  CHECK(s.Check("pay", {{"recipient", "GB29"}, {"amount", 100.5}}).allowed());
  CHECK(s.AttachResult(*iban.call, json(1)).code() == StatusCode::kFailedPrecondition);
  CHECK(s.AttachResult(99, json(1)).code() == StatusCode::kNotFound);
}

TEST_CASE("why not: the closest allow rule and its first failing condition") {
  auto program = MustLoad(
      "let ok = [\"A\", \"B\"];\n"
      "allow pay when amount > 0 and recipient in ok and amount < 10;\n"
      "allow pay when memo == \"x\";\n");
  Session s(program, "");
  Decision d = s.Check("pay", {{"amount", 5}, {"recipient", "C"}});
  CHECK(d.outcome == Outcome::kDeny);
  CHECK(d.reason ==
        "no rule allows this call; the closest, t.policy:2, fails because `recipient in ok` is "
        "false (`recipient` is \"C\")");
  CHECK(s.Check("nothing", json::object()).reason == "no rule allows `nothing`");
}

TEST_CASE("globs and * reach tools the index does not know") {
  auto program = MustLoad(
      "allow \"get_*\";\nforbid \"get_secret?\" priority 1;\nallow * when tool == \"x\";\n");
  Session s(program, "");
  CHECK(s.Check("get_balance", json::object()).allowed());
  CHECK_FALSE(s.Check("get_secret1", json::object()).allowed());
  CHECK(s.Check("get_secret12", json::object()).allowed());
  CHECK(s.Check("x", json::object()).allowed());
  CHECK_FALSE(s.Check("y", json::object()).allowed());
}

TEST_CASE("limit: arguments that are not an object, too deep, or too many") {
  auto program = MustLoad("allow t;\n");
  Session s(program, "");
  CHECK_FALSE(s.Decide("t", json::array()).allowed());
  json deep = json::object();
  json* cursor = &deep;
  for (int i = 0; i < 100000; ++i) {
    (*cursor)["a"] = json::object();
    cursor = &(*cursor)["a"];
  }
  Decision d = s.Decide("t", deep);
  CHECK_FALSE(d.allowed());
  CHECK(d.errors.at(0).find("exceed 64 levels") != std::string::npos);
  json wide = {{"a", json::array()}};
  for (size_t i = 0; i < kMaxArgNodes; ++i) wide["a"].push_back(1);
  CHECK_FALSE(s.Decide("t", wide).allowed());
  // The next well-formed call is decided as usual.
  CHECK(s.Decide("t", json::object()).allowed());
}

TEST_CASE("arguments a JSON parser would reject are denied: NaN, invalid UTF-8") {
  auto program = MustLoad(
      "forbid pay when amount > 5000;\nallow pay;\n"
      "forbid say when x matches r\".*evil.*\";\nallow say;\n");
  Session s(program, "");
  Decision nan = s.Decide("pay", {{"amount", std::nan("")}});
  CHECK_FALSE(nan.allowed());
  CHECK(nan.reason == "the arguments hold a number that is not finite");
  CHECK_FALSE(s.Decide("pay", {{"amount", HUGE_VAL}}).allowed());
  Decision bad = s.Decide("say", {{"x",
                                   "\xff"
                                   "evil"}});
  CHECK_FALSE(bad.allowed());
  CHECK(bad.reason == "the arguments hold a string that is not valid UTF-8");
  CHECK_FALSE(s.Decide("say", {{"nested", {{"\xc3", 1}}}}).allowed());
  Decision tool = s.Decide("say\xff", json::object());
  CHECK_FALSE(tool.allowed());
  CHECK(tool.tool == "(invalid UTF-8)");
  CHECK(DecisionToJson(tool).dump().size() > 0);  // the strict dump does not throw
  CHECK(s.Decide("say", {{"x", "fine"}}).allowed());
  CHECK(s.Decide("pay", {{"amount", 10}}).allowed());
}

TEST_CASE("reasons cut quoted values on a UTF-8 boundary") {
  Session s(MustLoad("allow t when x == \"a\";\n"), "");
  std::string value = "b";
  for (int i = 0; i < 49; ++i) value += "\xc3\xa9";  // é
  Decision d = s.Check("t", {{"x", value}});
  CHECK_FALSE(d.allowed());
  CHECK(DecisionToJson(d).dump().find("...") != std::string::npos);  // strict dump, no throw
}

TEST_CASE("limit: copies and scans are charged to the step budget") {
  auto program = MustLoad(
      "allow mail when all(r in recipients, r endswith \"@corp.com\" and not (lower(body) contains "
      "\"password\"));\n"
      "allow q when x from query;\n");
  Session s(program, std::string(200000, 'a'));
  json recipients = json::array();
  for (int i = 0; i < 5000; ++i) recipients.push_back("r@corp.com");
  Decision d = s.Decide("mail", {{"recipients", recipients}, {"body", std::string(1 << 20, 'x')}});
  CHECK_FALSE(d.allowed());
  CHECK(d.errors.at(0).find("step budget") != std::string::npos);
  Decision q = s.Decide("q", {{"x", std::string(100000, 'a')}});
  CHECK_FALSE(q.allowed());
  CHECK(q.errors.at(0).find("step budget") != std::string::npos);
  CHECK(s.Decide("mail", {{"recipients", {"a@corp.com"}}, {"body", "hello"}}).allowed());
}

TEST_CASE("limit: evaluation steps per decision") {
  auto program = MustLoad(
      "allow t when all(x in xs, all(y in xs, x == y or true));\n"
      "forbid u when all(x in xs, all(y in xs, x == y or true)) == false;\n"
      "allow u;\n");
  Session s(program, "");
  json xs = json::array();
  for (int i = 0; i < 1000; ++i) xs.push_back(i);
  Decision d = s.Decide("t", {{"xs", xs}});
  CHECK_FALSE(d.allowed());
  CHECK(d.errors.at(0).find("step budget") != std::string::npos);
  CHECK_FALSE(s.Decide("u", {{"xs", xs}}).allowed());  // the error makes the forbid hold
  CHECK(s.Decide("t", {{"xs", json::array({1, 2})}}).allowed());
}

TEST_CASE("limit: a catastrophic regex is linear under RE2") {
  // (a*)*b backtracks exponentially in PCRE-style engines; RE2 matches in linear time.
  auto program = MustLoad(
      "allow t when x matches r\"(a*)*b\";\nforbid u when not (x matches r\"(a|aa)*c\");\nallow "
      "u;\n");
  Session s(program, "");
  std::string attack(100000, 'a');
  CHECK_FALSE(s.Decide("t", {{"x", attack}}).allowed());
  CHECK(s.Decide("t", {{"x", attack + "b"}}).allowed());
  CHECK_FALSE(s.Decide("u", {{"x", attack}}).allowed());
}

TEST_CASE("limit: session history") {
  auto program = MustLoad("allow t;\n");
  SessionLimits limits;
  limits.max_history = 3;
  Session s(program, "", {}, limits);
  for (int i = 0; i < 3; ++i) CHECK(s.Decide("t", json::object()).allowed());
  Decision d = s.Decide("t", json::object());
  CHECK_FALSE(d.allowed());
  CHECK(d.reason.find("history is full") != std::string::npos);
  CHECK(s.history().size() == 3);
}

TEST_CASE("limit: trusted values per session") {
  Session s(MustLoad("allow t;\n"), "");
  for (size_t i = 0; i < kMaxTrustedValues; ++i) REQUIRE(s.AddTrustedValue("v").ok());
  CHECK(s.AddTrustedValue("v").code() == StatusCode::kResourceExhausted);
}

TEST_CASE("a program is shared by sessions on many threads") {
  auto program = MustLoad(
      "let ok = [\"a\", \"b\"];\nallow t when x in ok and url(u).host endswith \".com\";\n");
  std::vector<std::thread> threads;
  std::vector<int> allowed(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      Session s(program, "");
      for (int i = 0; i < 2000; ++i) {
        allowed[t] += s.Decide("t", {{"x", i % 2 ? "a" : "c"}, {"u", "https://x.com/"}}).allowed();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int a : allowed) CHECK(a == 1000);
}

TEST_CASE("the decision record") {
  auto program = MustLoad("policy p;\nforbid t priority 3 fallback block \"no\";\n");
  Session s(program, "");
  json j = DecisionToJson(s.Check("t", json::object()));
  CHECK(j["decision"] == "deny");
  CHECK(j["tool"] == "t");
  CHECK(j["rule"] == json{{"id", "t.policy:2"}, {"effect", "forbid"}, {"priority", 3}});
  CHECK(j["fallback"] == "block");
  CHECK(j["message"] == "no");
  CHECK(j["errors"] == json::array());
  CHECK(j["policy"].get<std::string>().rfind("sha256:", 0) == 0);
  CHECK(j["policy"].get<std::string>().size() == 7 + 64);
  CHECK(j["eval_ns"].is_number_integer());
  CHECK_FALSE(j.contains("call"));
  CHECK(program->name() == "p");
  CHECK(program->rule_count() == 1);
}

TEST_CASE("AddRules: added rules decide after the file's rules, with their own ids") {
  auto program = MustLoad(
      "let limit = 100;\n"
      "allow read;\n"
      "forbid pay when amount > limit priority 1;\n");
  Session s(program, "q");
  CHECK(s.Check("pay", {{"amount", 5}}).outcome == Outcome::kDeny);
  AddRulesResult added =
      s.AddRules("llm", "# drafted\nallow pay when amount <= limit / 2;\n", AddMode::kAny);
  INFO(FormatDiagnostics(added.source, added.diagnostics));
  REQUIRE(added.ok());
  CHECK(added.rule_ids == std::vector<std::string>{"llm:2"});
  CHECK(s.added_rules() == std::vector<std::string>{"llm:2"});
  Decision d = s.Decide("pay", {{"amount", 50}});
  CHECK(d.outcome == Outcome::kAllow);
  CHECK(RuleOf(d) == "llm:2");
  CHECK(d.policy != program->hash());  // the policy text grew
  CHECK(RuleOf(s.Check("pay", {{"amount", 51}})) == "none");
  CHECK(RuleOf(s.Check("pay", {{"amount", 500}})) == "t.policy:3");  // the file's forbid still wins
  CHECK(RuleOf(s.Check("read", json::object())) == "t.policy:2");
  // A second text builds on the first; lines count within each text.
  AddRulesResult more =
      s.AddRules("llm2", "# narrower\nforbid pay when amount > limit / 10;", AddMode::kNarrowOnly);
  REQUIRE(more.ok());
  CHECK(more.rule_ids == std::vector<std::string>{"llm2:2"});
  CHECK(RuleOf(s.Check("pay", {{"amount", 20}})) == "llm2:2");
  CHECK(s.added_rules() == std::vector<std::string>{"llm:2", "llm2:2"});
}

TEST_CASE("AddRules kDraft: allow rules only, placed after every rule of the policy") {
  auto program = MustLoad(
      "allow read;\n"
      "forbid pay when recipient == \"evil\" priority 500;\n"
      "allow open update { forbid pay when amount == 4 priority 700; };\n");
  Session s(program, "q");
  // The floor is the highest priority of any rule a person wrote, update blocks included.
  CHECK(s.DraftFloor() == 700);
  AddRulesResult drafted = s.AddRules("draft", "allow pay priority 700;\n", AddMode::kDraft);
  INFO(FormatDiagnostics(drafted.source, drafted.diagnostics));
  REQUIRE(drafted.ok());
  CHECK(s.drafted() == std::vector<std::string>{"draft"});
  Decision d = s.Check("pay", {{"recipient", "bob"}, {"amount", 50}});
  CHECK(RuleOf(d) == "draft:1");
  CHECK(d.rule->priority == 700);
  // The file's forbid still decides first, though the drafted rule allows everything.
  CHECK(RuleOf(s.Check("pay", {{"recipient", "evil"}, {"amount", 50}})) == "t.policy:2");
  // And a forbid the file adds through an update block, at the floor, too (forbid before allow).
  CHECK(RuleOf(s.Check("pay", {{"recipient", "bob"}, {"amount", 4}})) == "draft:1");
  REQUIRE(s.Decide("open", json::object()).allowed());
  CHECK(RuleOf(s.Check("pay", {{"recipient", "bob"}, {"amount", 4}})) == "t.policy:3");
}

TEST_CASE("AddRules kDraft: refuses what could get past the policy") {
  auto program = MustLoad("forbid pay when amount > 10 priority 150;\nallow read;\n");
  Session s(program, "q");
  REQUIRE(s.DraftFloor() == 150);
  const std::string hash = program->hash();
  for (const std::string text : std::vector<std::string>{
           "forbid read;",                                                 // not an allow rule
           "allow pay priority 149;",                                      // below the floor
           "allow pay priority 5;",                                        // far below it
           "allow pay priority 150 update { allow read priority 150; };",  // an update block
           "let x = 1;\nallow pay priority 150;",                          // a constant
           "allow pay;",  // no priority written out
       }) {
    INFO(text);
    AddRulesResult r = s.AddRules("draft", text, AddMode::kDraft);
    CHECK_FALSE(r.ok());
    CHECK(r.diagnostics.HasErrors());
    CHECK(s.drafted().empty());
    CHECK(s.Check("pay", {{"amount", 1}}).policy == hash);
  }
  // At the floor or above is fine.
  CHECK(s.AddRules("draft", "allow pay priority 150;\nallow pay priority 9000;", AddMode::kDraft)
            .ok());
  CHECK(RuleOf(s.Check("pay", {{"amount", 11}})) == "t.policy:1");
}

TEST_CASE("AddRules kDraft: drafted rules stay last as the session grows") {
  // Found in review: a drafted rule whose priority was filled in only in the checked AST fell back
  // to the default, 10, when a later addition parsed the whole text again. Priorities are now
  // written out, and drafted rules decide after every other rule whatever the priorities.
  auto program = MustLoad("forbid pay when amount > 10 priority 50;\nallow read;\n");
  Session s(program, "q");
  REQUIRE(s.AddRules("draft", "allow pay priority 100;", AddMode::kDraft).ok());
  CHECK(RuleOf(s.Check("pay", {{"amount", 100}})) == "t.policy:1");
  REQUIRE(s.AddRules("host", "forbid wipe;", AddMode::kNarrowOnly).ok());
  CHECK(RuleOf(s.Check("pay", {{"amount", 100}})) == "t.policy:1");
  CHECK(RuleOf(s.Check("pay", {{"amount", 5}})) == "draft:1");
  // A host rule added after the draft, at a priority above the drafted ones, still runs first.
  REQUIRE(
      s.AddRules("host2", "forbid pay when amount > 3 priority 250;", AddMode::kNarrowOnly).ok());
  CHECK(RuleOf(s.Check("pay", {{"amount", 5}})) == "host2:1");
  CHECK(RuleOf(s.Check("pay", {{"amount", 2}})) == "draft:1");
}

TEST_CASE("AddRules: added rules keep their order after a replacement") {
  // Found in review: orders were counted from the number of added rules, which falls when a
  // replacement removes some, so a later rule could sort before an earlier one of equal rank.
  auto program = MustLoad("allow read;\n");
  Session s(program, "q");
  REQUIRE(s.AddRules("draft", "allow a priority 100;\nallow b priority 100;\nallow c priority 100;",
                     AddMode::kDraft)
              .ok());
  REQUIRE(s.AddRules("host", "allow pay priority 100 update { forbid send priority 1; };",
                     AddMode::kAny)
              .ok());
  REQUIRE(
      s.AddRules("update-1", "allow pay priority 100;", AddMode::kDraft, nullptr, "draft").ok());
  Decision d = s.Decide("pay", json::object());
  CHECK(RuleOf(d) == "host:1");  // the host's rule comes first, so its update block applies
  REQUIRE(s.AddRules("host-b", "allow send priority 100;", AddMode::kAny).ok());
  CHECK_FALSE(s.Check("send", json::object()).allowed());
}

TEST_CASE("limit: drafted texts have their own budget, apart from the host's") {
  auto program = MustLoad("allow read;\n");
  Session s(program, "q");
  std::string previous = "draft-0";
  REQUIRE(s.AddRules(previous, "allow a priority 100;", AddMode::kDraft).ok());
  for (size_t i = 1; i < kMaxDraftedTexts; ++i) {
    const std::string name = "draft-" + std::to_string(i);
    REQUIRE(s.AddRules(name, "allow a priority 100;", AddMode::kDraft, nullptr, previous).ok());
    previous = name;
  }
  AddRulesResult over =
      s.AddRules("draft-x", "allow a priority 100;", AddMode::kDraft, nullptr, previous);
  CHECK(over.status.code() == StatusCode::kResourceExhausted);
  // The host can still add its rules.
  CHECK(s.AddRules("host", "forbid a;", AddMode::kNarrowOnly).ok());
  const std::string big(kMaxDraftedBytes + 1, ' ');
  Session t(program, "q");
  CHECK(t.AddRules("draft", big, AddMode::kDraft).status.code() == StatusCode::kResourceExhausted);
  CHECK(t.AddRules("host", "forbid a;", AddMode::kNarrowOnly).ok());
}

TEST_CASE("AddRules kDraft: the floor is at least 100 and ignores drafted rules") {
  auto program = MustLoad("allow read;\n");
  Session s(program, "q");
  CHECK(s.DraftFloor() == kMinDraftPriority);
  REQUIRE(s.AddRules("draft", "allow pay priority 5000;", AddMode::kDraft).ok());
  CHECK(s.DraftFloor() == kMinDraftPriority);
  // A host's added rule raises it.
  REQUIRE(s.AddRules("host", "forbid pay when amount > 3 priority 250;", AddMode::kAny).ok());
  CHECK(s.DraftFloor() == 250);
}

TEST_CASE("AddRules replaces: a drafted text replaced by a narrower one stops deciding") {
  auto program = MustLoad("allow read;\n");
  Session s(program, "q");
  REQUIRE(s.AddRules("draft", "allow pay when recipient in [\"a\", \"b\"] priority 100;",
                     AddMode::kDraft)
              .ok());
  REQUIRE(s.Check("pay", {{"recipient", "b"}}).allowed());
  // Widening is refused in kDraftNarrowing, and nothing changes.
  AddRulesResult wide =
      s.AddRules("update-1", "allow pay when recipient in [\"a\", \"c\"] priority 100;",
                 AddMode::kDraftNarrowing, nullptr, "draft");
  CHECK_FALSE(wide.ok());
  CHECK(wide.diagnostics.HasErrors());
  CHECK(s.drafted() == std::vector<std::string>{"draft"});
  CHECK_FALSE(s.Check("pay", {{"recipient", "c"}}).allowed());
  CHECK(s.Check("pay", {{"recipient", "b"}}).allowed());
  // Narrowing is taken, and the old rules stop deciding in the same step.
  AddRulesResult narrow =
      s.AddRules("update-1", "allow pay when recipient in [\"a\"] priority 100;",
                 AddMode::kDraftNarrowing, nullptr, "draft");
  INFO(FormatDiagnostics(narrow.source, narrow.diagnostics));
  REQUIRE(narrow.ok());
  CHECK(s.drafted() == std::vector<std::string>{"update-1"});
  CHECK(s.Check("pay", {{"recipient", "a"}}).allowed());
  CHECK_FALSE(s.Check("pay", {{"recipient", "b"}}).allowed());
  CHECK(s.AddedText("draft").has_value());  // still there, for the record
  // A retired text cannot be replaced again, nor can a name that is not drafted.
  CHECK(s.AddRules("update-2", "allow pay when recipient in [\"a\"] priority 100;",
                   AddMode::kDraftNarrowing, nullptr, "draft")
            .status.code() == StatusCode::kNotFound);
  REQUIRE(s.AddRules("host", "forbid pay when recipient == \"x\";", AddMode::kNarrowOnly).ok());
  CHECK_FALSE(
      s.AddRules("update-2", "allow pay priority 100;", AddMode::kDraft, nullptr, "host").ok());
  // Only drafted rules replace others; kDraftNarrowing needs something to replace.
  CHECK(s.AddRules("x", "forbid pay;", AddMode::kAny, nullptr, "update-1").status.code() ==
        StatusCode::kInvalidArgument);
  CHECK_FALSE(s.AddRules("x", "allow pay priority 100;", AddMode::kDraftNarrowing).ok());
  // kDraft with `replaces` takes a widening update (mode `any`), still only allow rules.
  REQUIRE(s.AddRules("update-2", "allow pay when recipient in [\"a\", \"z\"] priority 100;",
                     AddMode::kDraft, nullptr, "update-1")
              .ok());
  CHECK(s.drafted() == std::vector<std::string>{"update-2"});
  CHECK(s.Check("pay", {{"recipient", "z"}}).allowed());
  // A rule kept unchanged from the replaced text draws no "can never decide" warning: the
  // earlier copy no longer decides.
  REQUIRE(
      s.AddRules("draft-b", "allow read priority 100;\nallow list priority 100;", AddMode::kDraft)
          .ok());
  AddRulesResult kept = s.AddRules("update-3", "allow list priority 100;", AddMode::kDraftNarrowing,
                                   nullptr, "draft-b");
  INFO(FormatDiagnostics(kept.source, kept.diagnostics));
  REQUIRE(kept.ok());
  CHECK(kept.diagnostics.Sorted().empty());
  CHECK_FALSE(s.Check("pay", {{"recipient", "x"}}).allowed());
}

TEST_CASE("AddRules: rules added by update blocks keep their place") {
  auto program = MustLoad(
      "allow open update { allow pay when amount < 10; };\n"
      "forbid pay when amount == 7 priority 1;\n");
  Session s(program, "q");
  REQUIRE(s.Decide("open", json::object()).allowed());
  REQUIRE(s.AddRules("llm", "forbid pay when amount == 5;", AddMode::kNarrowOnly).ok());
  CHECK(s.added_rules() == std::vector<std::string>{"t.policy:1", "llm:1"});
  // Equal priority: forbid before allow, so the added forbid decides on 5.
  CHECK(RuleOf(s.Check("pay", {{"amount", 5}})) == "llm:1");
  CHECK(RuleOf(s.Check("pay", {{"amount", 3}})) == "t.policy:1");
  CHECK(RuleOf(s.Check("pay", {{"amount", 7}})) == "t.policy:2");
}

TEST_CASE("AddRules: all or nothing, with diagnostics positioned in the added text") {
  auto program = MustLoad("let x = 1;\nallow a;\n");
  Session s(program, "q");
  const std::string hash = program->hash();
  struct Bad {
    std::string text;
    AddMode mode;
    std::string expect;
  };
  std::vector<Bad> bad = {
      {"forbid a;\nallow b when", AddMode::kAny, "t:2:"},
      {"allow b;\npolicy other;", AddMode::kAny, "t:2:1: error: only rules can be added"},
      {"default ask;", AddMode::kAny, "only rules can be added"},
      {"let x = 2;", AddMode::kAny, "t:1:"},
      {"forbid a when y > z(1);", AddMode::kAny, "t:1:"},
      {"forbid a;\nallow b;", AddMode::kNarrowOnly, "t:2:1: error: narrow-only: an `allow` rule"},
      {"forbid b fallback ask;", AddMode::kNarrowOnly, "t:1:1: error: narrow-only: fallback `ask`"},
  };
  for (const Bad& b : bad) {
    INFO(b.text);
    AddRulesResult r = s.AddRules("t", b.text, b.mode);
    CHECK_FALSE(r.ok());
    std::string text = FormatDiagnostics(r.source, r.diagnostics);
    INFO(text);
    CHECK(text.find(b.expect) != std::string::npos);
  }
  CHECK(s.added_rules().empty());
  CHECK(s.program()->hash() == hash);
  CHECK(s.Check("a", json::object()).allowed());
  CHECK_FALSE(s.AddRules("", "forbid a;", AddMode::kAny).ok());
  CHECK_FALSE(s.AddRules("a:b", "forbid a;", AddMode::kAny).ok());
  CHECK_FALSE(Session(nullptr, "q").AddRules("t", "forbid a;", AddMode::kAny).ok());
  // Narrow-only takes a forbid that terminates.
  REQUIRE(s.AddRules("t", "forbid a when x == 1 fallback terminate;", AddMode::kNarrowOnly).ok());
  CHECK(s.Check("a", json::object()).outcome == Outcome::kTerminate);
}

TEST_CASE("AddRules: added rules are checked against the policy's tool schemas") {
  LoadedPolicy loaded =
      LoadPolicyFile(std::string(TOOLWARDEN_SOURCE_DIR) + "/policies/examples/banking.policy");
  REQUIRE(loaded.ok());
  Session s(loaded.program, "q");
  AddRulesResult r = s.AddRules("llm", "forbid send_money when recipent == \"x\";", AddMode::kAny);
  CHECK_FALSE(r.ok());
  CHECK(FormatDiagnostics(r.source, r.diagnostics).find("llm:1:") != std::string::npos);
  AddRulesResult ok = s.AddRules("llm", "forbid send_money when not (recipient in trusted_ibans);",
                                 AddMode::kNarrowOnly);
  INFO(FormatDiagnostics(ok.source, ok.diagnostics));
  CHECK(ok.ok());
}

TEST_CASE("Approve records an approved `ask` so budgets count it; it never overrides a deny") {
  auto program = MustLoad(
      "allow pay when amount <= 100;\n"
      "forbid pay when sum(pay.amount) + amount > 150 priority 1 fallback ask;\n"
      "forbid pay when amount > 1000 priority 0;\n");
  Session s(program, "q");
  REQUIRE(s.Decide("pay", {{"amount", 100}}).allowed());
  Decision asked = s.Decide("pay", {{"amount", 60}});
  CHECK(asked.outcome == Outcome::kAsk);
  CHECK(s.history().size() == 1);
  Decision approved = s.Approve("pay", {{"amount", 60}});
  CHECK(approved.allowed());
  CHECK(approved.call == 1u);
  CHECK(RuleOf(approved) == "t.policy:2");
  CHECK(approved.reason.rfind("approved: ", 0) == 0);
  CHECK(s.history().size() == 2);
  // The approved 60 counts: 100 + 60 + 1 > 150 asks again.
  CHECK(s.Check("pay", {{"amount", 1}}).outcome == Outcome::kAsk);
  // A deny stays a deny; an allow is decided as usual.
  CHECK(s.Approve("pay", {{"amount", 5000}}).outcome == Outcome::kDeny);
  CHECK(s.Approve("other", json::object()).outcome == Outcome::kDeny);
  CHECK(s.history().size() == 2);
  Session fresh(program, "q");
  Decision plain = fresh.Approve("pay", {{"amount", 10}});
  CHECK(plain.allowed());
  CHECK(RuleOf(plain) == "t.policy:1");
  CHECK(fresh.history().size() == 1);
}

TEST_CASE("AddRules: a `let` cannot change what the file's rules mean") {
  auto program = MustLoad("allow pay when amount > 0;\nforbid pay when amount > 1000;\n");
  Session s(program, "q");
  REQUIRE(s.Check("pay", {{"amount", 5000}}).outcome == Outcome::kDeny);
  for (AddMode mode : {AddMode::kNarrowOnly, AddMode::kAny}) {
    AddRulesResult r = s.AddRules("x", "let amount = 5;\n", mode);
    CHECK_FALSE(r.ok());
    CHECK(
        FormatDiagnostics(r.source, r.diagnostics).find("x:1:1: error: only rules can be added") !=
        std::string::npos);
  }
  CHECK(s.Check("pay", {{"amount", 5000}}).outcome == Outcome::kDeny);
}

TEST_CASE("AddRules: narrow-only never turns a terminate into a deny") {
  auto program = MustLoad("allow a;\nforbid wipe fallback terminate \"stop\";\n");
  Session s(program, "q");
  REQUIRE(s.Check("wipe", json::object()).outcome == Outcome::kTerminate);
  AddRulesResult early = s.AddRules("x", "forbid wipe priority 0;", AddMode::kNarrowOnly);
  CHECK_FALSE(early.ok());
  CHECK(FormatDiagnostics(early.source, early.diagnostics).find("could turn `terminate` into") !=
        std::string::npos);
  CHECK(s.Check("wipe", json::object()).outcome == Outcome::kTerminate);
  // At the same priority or later, file rules decide first; terminating is always fine.
  CHECK(s.AddRules("y", "forbid wipe;\nforbid a when 1 > 2;", AddMode::kNarrowOnly).ok());
  CHECK(s.AddRules("z", "forbid wipe priority 0 fallback terminate;", AddMode::kNarrowOnly).ok());
  CHECK(s.Check("wipe", json::object()).outcome == Outcome::kTerminate);
  // With a terminating default, a blocking rule could turn it into a deny.
  Session t(MustLoad("default terminate;\nallow a;\n"), "q");
  CHECK_FALSE(t.AddRules("x", "forbid b priority 99;", AddMode::kNarrowOnly).ok());
  CHECK(t.AddRules("x", "forbid b priority 99;", AddMode::kAny).ok());
  // Text with no rules adds nothing.
  AddRulesResult empty = t.AddRules("empty", "# nothing\n", AddMode::kNarrowOnly);
  CHECK(empty.ok());
  CHECK(empty.rule_ids.empty());
}

TEST_CASE("AddRules: names and the limits on added text") {
  auto program = MustLoad("allow a;\n", "bank.policy");
  Session s(program, "q");
  for (std::string bad :
       {std::string(""), std::string("a:b"), std::string("a b"), std::string("a\nb"),
        std::string("x/y"), std::string("\x1b[31m"), std::string(kMaxAddedNameBytes + 1, 'n')}) {
    INFO(bad);
    CHECK(s.AddRules(bad, "forbid a;", AddMode::kAny).status.code() ==
          StatusCode::kInvalidArgument);
  }
  // A name in use, the file's own included, cannot be taken again: ids stay unique.
  CHECK_FALSE(s.AddRules("bank.policy", "forbid a;", AddMode::kAny).ok());
  REQUIRE(s.AddRules("r1", "forbid b;", AddMode::kAny).ok());
  CHECK_FALSE(s.AddRules("r1", "forbid c;", AddMode::kAny).ok());
  CHECK(s.AddRules(std::string(kMaxAddedNameBytes, 'n'), "forbid c;", AddMode::kAny).ok());
  // Bytes: the whole session's added text is bounded.
  std::string big(kMaxAddedBytes, '#');
  CHECK(s.AddRules("big", big, AddMode::kAny).status.code() == StatusCode::kResourceExhausted);
  // Texts: at most kMaxAddedTexts per session.
  Session many(program, "q");
  size_t added = 0;
  for (size_t i = 0; i < kMaxAddedTexts + 5; ++i) {
    if (many.AddRules("t" + std::to_string(i), "forbid x;", AddMode::kAny).ok()) ++added;
  }
  CHECK(added == kMaxAddedTexts);
  CHECK(many.added_rules().size() == kMaxAddedTexts);
  CHECK(many.Check("a", json::object()).allowed());
}

TEST_CASE("a gate that refuses leaves the session as it was") {
  auto program = MustLoad(
      "allow open update { allow pay; };\n"
      "forbid pay when count(pay) >= 1 priority 1 fallback ask;\n");
  Session s(program, "q");
  std::vector<std::optional<size_t>> seen;
  auto refuse = [&](const Decision& d) {
    seen.push_back(d.call);
    return false;
  };
  Decision d = s.Decide("open", json::object(), refuse);
  CHECK(d.allowed());
  CHECK_FALSE(d.call.has_value());
  CHECK(seen == std::vector<std::optional<size_t>>{0u});
  CHECK(s.history().empty());
  CHECK(s.added_rules().empty());  // the update block did not apply
  REQUIRE(s.Decide("open", json::object(), [](const Decision&) { return true; }).call == 0u);
  REQUIRE(s.Decide("pay", json::object()).allowed());
  REQUIRE(s.Check("pay", json::object()).outcome == Outcome::kAsk);
  CHECK_FALSE(s.Approve("pay", json::object(), refuse).call.has_value());
  CHECK(s.history().size() == 2);
  AddRulesResult r =
      s.AddRules("x", "forbid pay;", AddMode::kAny, [](const AddRulesResult& pending) {
        CHECK(pending.rule_ids == std::vector<std::string>{"x:1"});
        return false;
      });
  CHECK_FALSE(r.ok());
  CHECK(s.added_rules() == std::vector<std::string>{"t.policy:1"});
  CHECK(s.program() == program);
  CHECK(s.AddRules("x", "forbid pay;", AddMode::kAny).ok());  // the name was not used up
}

}  // namespace
}  // namespace toolwarden

namespace toolwarden {
namespace {

// `url(x).f` and `email(x).f` are evaluated without building the object (and
// parse each input once per decision); `url(x)["f"]` still builds it. Both
// must give the same value and the same errors.
TEST_CASE("fields of url() and email() match the objects they come from") {
  auto program = testing::MustLoad(
      "allow u when url(x).scheme == url(x)[\"scheme\"] and url(x).host == url(x)[\"host\"]\n"
      "  and url(x).port == url(x)[\"port\"] and url(x).path == url(x)[\"path\"]\n"
      "  and url(x).query == url(x)[\"query\"] and url(x) == url(x);\n"
      "allow e when email(x).local == email(x)[\"local\"]\n"
      "  and email(x).domain == email(x)[\"domain\"] and email(x) == email(x);\n"
      "allow p when url(x).port == 443;\n");
  Session s(program, "");
  for (const char* url :
       {"https://Example.COM:8443/a/../b?q=1", "http://x.org", "https://h.example/?"}) {
    INFO(url);
    CHECK(s.Check("u", {{"x", url}}).allowed());
  }
  CHECK(s.Check("p", {{"x", "https://host/x"}}).allowed());  // the default port
  CHECK_FALSE(s.Check("p", {{"x", "http://host:8080/x"}}).allowed());
  for (const char* email : {"Bob.Smith@Example.COM", "a+b@x.org"}) {
    INFO(email);
    CHECK(s.Check("e", {{"x", email}}).allowed());
  }
  // The parser's error, and the type error, are the same either way.
  auto errors = [&](const char* tool, const json& x) {
    Decision d = s.Check(tool, {{"x", x}});
    REQUIRE(d.errors.size() == 1);
    return d.errors[0];
  };
  CHECK(errors("e", "no-at-sign").find("is not a valid email address: no `@`") !=
        std::string::npos);
  CHECK(errors("u", 5).find("`url` needs a string, but `x` is number") != std::string::npos);
  auto fused = testing::MustLoad("allow e when email(x).domain == \"a\";\n");
  auto object = testing::MustLoad("allow e when email(x)[\"domain\"] == \"a\";\n");
  for (const json& x : {json("no-at-sign"), json(5), json("a@b@c")}) {
    Decision a = Session(fused, "").Check("e", {{"x", x}});
    Decision b = Session(object, "").Check("e", {{"x", x}});
    CHECK(a.errors == b.errors);
  }
}

}  // namespace
}  // namespace toolwarden
