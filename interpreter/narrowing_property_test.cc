// ProveNarrower (policy/narrowing.h) against the engine: for pairs of rule
// sets the prover calls narrower, no generated call may be allowed by the new
// set and denied by the current one. The calls cover what the proof's
// soundness rests on: missing arguments, nulls, booleans, numbers at and
// around every bound, strings, and arrays and objects where scalars are
// expected (which make comparisons and functions raise errors).
#include <catch2/catch.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "interpreter/loader.h"
#include "interpreter/session.h"
#include "policy/narrowing.h"

namespace toolwarden {
namespace {

using nlohmann::json;

const char* const kTools[] = {"t", "u", "tx", "get_a"};

// Values an argument takes: "missing" is represented by not setting it.
std::vector<json> ValuePool() {
  return {json(nullptr),
          true,
          false,
          -1,
          0,
          0.5,
          1,
          2,
          5,
          9.5,
          10,
          10.5,
          50,
          100,
          101,
          "a",
          "b",
          "c",
          "A",
          "ab",
          "abc",
          "",
          "5",
          "x.txt",
          json::array(),
          json::array({1}),
          json::array({"a"}),
          json::object()};
}

std::shared_ptr<const Program> LoadOrNull(const std::string& text) {
  LoadedPolicy loaded = LoadPolicyText("p.policy", text, "");
  return loaded.ok() ? loaded.program : nullptr;
}

// Arguments over the keys x, y, s: each missing or one of the pool's values.
std::vector<json> Arguments(std::mt19937* rng, size_t count) {
  const std::vector<json> pool = ValuePool();
  std::uniform_int_distribution<size_t> pick(0, pool.size());  // pool.size(): missing
  std::vector<json> out;
  for (size_t i = 0; i < count; ++i) {
    json args = json::object();
    for (const char* key : {"x", "y", "s"}) {
      size_t k = pick(*rng);
      if (k < pool.size()) args[key] = pool[k];
    }
    out.push_back(std::move(args));
  }
  // Each pool value alone in x, and with the other keys at values that
  // conditions in the tests below accept (so a conjunct on one key decides).
  for (const json& v : pool) {
    out.push_back(json{{"x", v}});
    out.push_back(json{{"x", v}, {"y", 1}, {"s", "a"}});
    out.push_back(json{{"x", 1}, {"y", v}, {"s", "a"}});
    out.push_back(json{{"x", 1}, {"y", 1}, {"s", v}});
  }
  out.push_back(json::object());
  return out;
}

// Returns a call allowed by `after` and denied by `before`, or "" when none
// of `calls` is; `allowed` counts the calls `after` allowed.
std::string Counterexample(const std::shared_ptr<const Program>& before,
                           const std::shared_ptr<const Program>& after,
                           const std::vector<json>& calls, size_t* allowed) {
  Session old_session(before, "find a b and 5 in the query");
  Session new_session(after, "find a b and 5 in the query");
  for (const char* tool : kTools) {
    for (const json& args : calls) {
      if (!new_session.Check(tool, args).allowed()) continue;
      ++*allowed;
      if (!old_session.Check(tool, args).allowed()) return std::string(tool) + " " + args.dump();
    }
  }
  return "";
}

TEST_CASE("pairs proven narrower allow nothing new on the engine", "[narrowing]") {
  struct Pair {
    const char* before;
    const char* after;
  };
  const Pair pairs[] = {
      {"allow t when x in [\"a\", \"b\", \"c\"];", "allow t when x in [\"a\"];"},
      {"allow t when x >= 0 and x <= 100;", "allow t when x >= 10 and x <= 50;"},
      {"allow t when x >= 0 and x <= 100;", "allow t when x > 0 and x < 100;"},
      {"allow t when x > 0;", "allow t when x == 5 or x in [1, 2];"},
      {"allow t when x != null;", "allow t when x >= 0;"},
      {"allow t when x != null;", "allow t when x matches r\"a.*\";"},
      {"allow t when x != null;", "allow t when x startswith \"a\";"},
      {"allow t when x != null;", "allow t when x < \"b\";"},
      {"allow t when x != null;", "allow t when type(x) != \"null\";"},
      {"allow t when type(x) == \"string\";", "allow t when x in [\"a\", \"b\"];"},
      {"allow t when type(x) == \"string\";", "allow t when x matches r\"a.*\";"},
      {"allow t when type(x) == \"string\";", "allow t when \"abc\" contains x;"},
      {"allow t when type(x) == \"number\";", "allow t when x >= 0;"},
      {"allow t when type(x) == \"number\";", "allow t when 5 < x;"},
      {"allow t when type(x) == \"number\";", "allow t when x in [1, 2.5];"},
      {"allow t when type(x) in [\"null\", \"boolean\"];", "allow t when x in [null, true];"},
      {"allow t when x in [true, false];", "allow t when type(x) == \"boolean\";"},
      {"allow t when x not in [\"a\", \"b\"];", "allow t when x >= 0;"},
      {"allow t when x not in [\"a\", \"b\"];", "allow t when x not in [\"a\", \"b\", \"c\"];"},
      {"allow t when x != \"a\";", "allow t when type(x) == \"number\";"},
      {"allow t when x not in [5];", "allow t when x > 5;"},
      {"allow t when lower(s) in [\"a\", \"ab\"];", "allow t when lower(s) == \"ab\";"},
      {"allow t when len(s) >= 1;", "allow t when len(s) > 1;"},
      {"allow t when args.x == 1;", "allow t when args[\"x\"] == 1.0;"},
      {"allow t when x == 1 or y == 1;", "allow t when y == 1 and s == \"a\";"},
      {"allow t when (x != null and (type(x) == \"number\" and x >= 0 and x <= 100));",
       "allow t when x in [0, 50, 100];"},
      {"allow t when x from query;", "allow t when x from query and y == 1;"},
      {"allow \"t*\";", "allow tx, \"t?\";"},
      {"allow *;", "allow t, u, tx, get_a;"},
      {"allow \"get_?\" when x == 1;\nallow t when y == 1;",
       "allow get_a, t when x == 1 and y == 1;"},
      {"allow t when x == 1;", "allow t when false;"},
  };
  std::mt19937 rng(20240611);
  const std::vector<json> calls = Arguments(&rng, 100);
  for (const Pair& pair : pairs) {
    INFO("before: " << pair.before << "\nafter:  " << pair.after);
    StatusOr<NarrowingResult> proof = ProveNarrower(pair.before, pair.after);
    REQUIRE(proof.ok());
    REQUIRE(proof->narrower);
    auto before = LoadOrNull(pair.before);
    auto after = LoadOrNull(pair.after);
    REQUIRE(before != nullptr);
    REQUIRE(after != nullptr);
    size_t allowed = 0;
    CHECK(Counterexample(before, after, calls, &allowed) == "");
    // Except for `when false`, the new rules allow something, so the check can fail.
    if (std::string(pair.after).find("false") == std::string::npos) CHECK(allowed > 0);
  }
}

// Comparisons on `x` (and a few other subjects), each paired with each: the
// prover's verdict on "P implies G" for every pair, checked against the
// engine's verdict on every value of `x` in the pool (and missing).
TEST_CASE("every implication between two comparisons the prover claims holds on the engine",
          "[narrowing]") {
  const std::vector<std::string> atoms = {"x == null",
                                          "x == true",
                                          "x == 0",
                                          "x == 5",
                                          "x == 5.0",
                                          "x == \"a\"",
                                          "x == \"5\"",
                                          "5 == x",
                                          "x != null",
                                          "x != 5",
                                          "x != \"a\"",
                                          "null != x",
                                          "x in []",
                                          "x in [1, 5]",
                                          "x in [5, \"a\"]",
                                          "x in [\"a\", \"b\"]",
                                          "x in [null, 5]",
                                          "x in [true, false]",
                                          "x in [0, 5, 10]",
                                          "x not in [5]",
                                          "x not in [\"a\", \"b\"]",
                                          "x not in [null]",
                                          "x not in [null, 5]",
                                          "type(x) == \"number\"",
                                          "type(x) == \"string\"",
                                          "type(x) == \"null\"",
                                          "type(x) == \"boolean\"",
                                          "type(x) != \"null\"",
                                          "type(x) in [\"number\", \"string\"]",
                                          "type(x) not in [\"array\", \"object\"]",
                                          "type(x) == \"str\"",
                                          "\"number\" == type(x)",
                                          "x >= 0",
                                          "x > 0",
                                          "x >= 5",
                                          "x > 5",
                                          "x <= 5",
                                          "x < 5",
                                          "x <= 10",
                                          "x < 10",
                                          "5 < x",
                                          "5 <= x",
                                          "10 > x",
                                          "0 <= x",
                                          "x >= \"b\"",
                                          "x < \"b\"",
                                          "x matches r\"a.*\"",
                                          "x matches \"a.*\"",
                                          "x startswith \"a\"",
                                          "x endswith \"b\"",
                                          "\"abc\" contains x",
                                          "true",
                                          "false",
                                          "x == 5 or x == 10",
                                          "x > 5 and x < 10",
                                          "x in [5] or x == \"a\"",
                                          "x from query",
                                          "args.x == 5",
                                          "args[\"x\"] in [1, 5]",
                                          "args.y == 5",
                                          "y == 5",
                                          "y != null",
                                          "lower(x) == \"a\"",
                                          "lower(x) in [\"a\", \"b\"]",
                                          "len(x) >= 2",
                                          "len(x) > 1",
                                          "len(x) == 2"};
  const size_t n = atoms.size();
  // The engine's verdicts: atom j guards tool gJ.
  std::string policy;
  for (size_t j = 0; j < n; ++j) {
    policy += "allow g" + std::to_string(j) + " when " + atoms[j] + ";\n";
  }
  LoadedPolicy loaded = LoadPolicyText("atoms.policy", policy, "");
  INFO(loaded.ErrorText());
  REQUIRE(loaded.ok());
  std::vector<json> calls;
  std::vector<json> xs = ValuePool();
  for (const json& y : {json(), json(5), json("a")}) {
    for (size_t k = 0; k <= xs.size(); ++k) {
      json args = json::object();
      if (k < xs.size()) args["x"] = xs[k];
      if (!y.is_null()) args["y"] = y;
      calls.push_back(std::move(args));
    }
  }
  Session session(loaded.program, "the query names a and 5");
  std::vector<std::vector<bool>> holds(n);
  for (size_t j = 0; j < n; ++j) {
    for (const json& args : calls) {
      holds[j].push_back(session.Check("g" + std::to_string(j), args).allowed());
    }
  }
  // The prover's verdicts: rule gJ of `before` holds G; the rule on line
  // i*n+j+1 of `after` is `allow gJ when Pi`, proven exactly when Pi implies G.
  std::string after;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      after += "allow g" + std::to_string(j) + " when " + atoms[i] + ";\n";
    }
  }
  NarrowingLimits limits;
  limits.max_steps = size_t{1} << 30;  // this test is not about the budget
  StatusOr<NarrowingResult> proof = ProveNarrower(policy, after, limits);
  REQUIRE(proof.ok());
  std::vector<bool> proven(n * n, true);
  for (const Narrowing& w : proof->widening) {
    REQUIRE(w.position.line >= 1);
    proven[static_cast<size_t>(w.position.line) - 1] = false;
  }
  size_t claimed = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (!proven[i * n + j]) continue;
      ++claimed;
      for (size_t c = 0; c < calls.size(); ++c) {
        if (holds[i][c] && !holds[j][c]) {
          FAIL("`" << atoms[i] << "` was proven to imply `" << atoms[j] << "`, but "
                   << calls[c].dump() << " makes only the first true");
        }
      }
    }
  }
  // Every atom implies itself, and many imply others (856 when this was written).
  CHECK(claimed >= 800);
}

// What the generator below picks from.
constexpr const char* const kLiterals[] = {"null",  "true",  "false", "-1",   "0",
                                           "1",     "5",     "10",    "0.5",  "100",
                                           "\"a\"", "\"b\"", "\"5\"", "\"\"", "\"ab\""};
constexpr const char* const kNumbers[] = {"-1", "0", "0.5", "1", "5", "10", "10.5", "50", "100"};
constexpr const char* const kSubjects[] = {"x", "x", "y", "args[\"x\"]", "lower(s)", "len(s)", "s"};
constexpr const char* const kTypes[] = {"\"null\"",   "\"boolean\"", "\"number\"",
                                        "\"string\"", "\"array\"",   "\"object\""};
constexpr const char* const kCompare[] = {"<", "<=", ">", ">="};
constexpr const char* const kTargets[] = {"t", "u", "\"t*\"", "\"get_?\"", "*", "tx"};
constexpr const char* const kNarrower[] = {"t", "tx", "get_a"};

// Random conditions over the subjects, and updates made by mutating them.
class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  std::string Literal() { return Pick(kLiterals); }
  std::string Number() { return Pick(kNumbers); }
  std::string Subject() { return Pick(kSubjects); }
  std::string List() {
    std::string out = "[";
    int n = Int(0, 3);
    for (int i = 0; i < n; ++i) out += (i ? ", " : "") + Literal();
    return out + "]";
  }
  std::string TypeName() { return Pick(kTypes); }
  std::string TypeList() {
    std::string out = "[";
    int n = Int(1, 3);
    for (int i = 0; i < n; ++i) out += (i ? ", " : "") + TypeName();
    return out + "]";
  }

  std::string Atom(const std::string& s) {
    switch (Int(0, 15)) {
      case 0:
        return s + " == " + Literal();
      case 1:
        return Literal() + " == " + s;
      case 2:
        return s + " != " + Literal();
      case 3:
        return s + " in " + List();
      case 4:
        return s + " not in " + List();
      case 5:
        return "type(" + s + (Int(0, 1) ? ") == " : ") != ") + TypeName();
      case 6:
        return "type(" + s + ") in " + TypeList();
      case 7:
        return "type(" + s + ") not in " + TypeList();
      case 8:
        return s + " " + Pick(kCompare) + " " + Number();
      case 9:
        return Number() + " " + Pick(kCompare) + " " + s;
      case 10:
        return s + " " + Pick(kCompare) + " \"b\"";
      case 11:
        return s + (Int(0, 1) ? " matches r\"a.*\"" : " matches r\"[0-9]+\"");
      case 12:
        return s + (Int(0, 1) ? " startswith \"a\"" : " endswith \"b\"");
      case 13:
        return "\"abc\" contains " + s;
      case 14:
        return s + " != null";
      default:
        return Int(0, 1) ? "true" : "false";
    }
  }

  // A conjunct: mostly an atom, sometimes an `or` of two.
  std::string Conjunct(const std::string& s) {
    if (Int(0, 7) == 0) return "(" + Atom(s) + " or " + Atom(Int(0, 1) ? s : Subject()) + ")";
    return Atom(s);
  }

  struct RuleText {
    std::vector<std::string> targets;
    std::vector<std::pair<std::string, std::string>> conjuncts;  // subject, text
  };

  RuleText Rule() {
    RuleText r;
    int targets = Int(1, 2);
    for (int i = 0; i < targets; ++i) r.targets.push_back(Pick(kTargets));
    int n = Int(0, 3);
    for (int i = 0; i < n; ++i) {
      std::string s = Subject();
      r.conjuncts.push_back({s, Conjunct(s)});
    }
    return r;
  }

  // A variant of `r` that is often narrower and sometimes not.
  RuleText Mutate(RuleText r) {
    int steps = Int(1, 3);
    for (int i = 0; i < steps; ++i) {
      switch (Int(0, 6)) {
        case 0:  // add a conjunct
        case 1: {
          std::string s = r.conjuncts.empty() || Int(0, 1) ? Subject() : r.conjuncts[0].first;
          r.conjuncts.push_back({s, Conjunct(s)});
          break;
        }
        case 2:  // replace a conjunct by another on the same subject
        case 3:
          if (!r.conjuncts.empty()) {
            auto& c = r.conjuncts[Int(0, static_cast<int>(r.conjuncts.size()) - 1)];
            c.second = Conjunct(c.first);
          }
          break;
        case 4:  // drop a conjunct
          if (!r.conjuncts.empty()) r.conjuncts.erase(r.conjuncts.begin());
          break;
        case 5:  // an exact target
          r.targets[0] = Pick(kNarrower);
          break;
        default:  // swap the order
          if (r.conjuncts.size() > 1) std::swap(r.conjuncts[0], r.conjuncts[1]);
          break;
      }
    }
    return r;
  }

  static std::string Text(const std::vector<RuleText>& rules) {
    std::string out;
    for (const RuleText& r : rules) {
      out += "allow ";
      for (size_t i = 0; i < r.targets.size(); ++i) out += (i ? ", " : "") + r.targets[i];
      for (size_t i = 0; i < r.conjuncts.size(); ++i) {
        out += (i ? " and " : " when ") + r.conjuncts[i].second;
      }
      out += ";\n";
    }
    return out;
  }

  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

 private:
  template <size_t N>
  const char* Pick(const char* const (&items)[N]) {
    return items[Int(0, static_cast<int>(N) - 1)];
  }

  std::mt19937 rng_;
};

TEST_CASE("random updates proven narrower allow nothing new on the engine", "[narrowing]") {
  Generator gen(7);
  std::mt19937 rng(11);
  const std::vector<json> calls = Arguments(&rng, 20);
  size_t proven = 0, refused = 0, unloadable = 0, allowed = 0;
  for (int round = 0; round < 150; ++round) {
    std::vector<Generator::RuleText> before_rules = {gen.Rule()};
    if (gen.Int(0, 2) == 0) before_rules.push_back(gen.Rule());
    std::vector<Generator::RuleText> after_rules;
    after_rules.reserve(before_rules.size() + 1);
    for (const auto& r : before_rules) after_rules.push_back(gen.Mutate(r));
    if (gen.Int(0, 5) == 0) after_rules.push_back(gen.Rule());
    const std::string before = Generator::Text(before_rules);
    const std::string after = Generator::Text(after_rules);
    INFO("before:\n" << before << "after:\n" << after);
    StatusOr<NarrowingResult> proof = ProveNarrower(before, after);
    REQUIRE(proof.ok());
    if (!proof->narrower) {
      ++refused;
      continue;
    }
    auto before_program = LoadOrNull(before);
    auto after_program = LoadOrNull(after);
    if (before_program == nullptr || after_program == nullptr) {
      ++unloadable;
      continue;
    }
    ++proven;
    REQUIRE(Counterexample(before_program, after_program, calls, &allowed) == "");
  }
  INFO("proven " << proven << ", refused " << refused << ", unloadable " << unloadable
                 << ", calls allowed by the new rules " << allowed);
  // The test can only fail if the prover accepts many updates that allow calls.
  // (Some texts do not load: the checker refuses `len(s) matches ...` and the like.)
  CHECK(proven >= 40);
  CHECK(refused >= 40);
  CHECK(allowed >= 3000);
}

}  // namespace
}  // namespace toolwarden
