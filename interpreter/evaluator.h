// Private to interpreter/: evaluates planned conditions for one call.
#ifndef TOOLWARDEN_INTERPRETER_EVALUATOR_H_
#define TOOLWARDEN_INTERPRETER_EVALUATOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "interpreter/combine.h"
#include "interpreter/plan.h"
#include "interpreter/session.h"
#include "interpreter/structured.h"

namespace toolwarden::internal {

// A JSON value seen during evaluation. Strings, arrays and objects are borrowed
// from the call's arguments, the plan's constants, or the evaluator's scratch.
struct Value {
  enum class Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string_view string;
  const nlohmann::json* json = nullptr;  // kArray, kObject
};

Value FromJson(const nlohmann::json& j);

struct EvalContext {
  const Plan* plan = nullptr;
  std::string_view tool;
  const nlohmann::json* args = nullptr;
  std::string_view query;
  const std::vector<CallRecord>* history = nullptr;
  const std::vector<std::string>* trusted_values = nullptr;
  size_t max_steps = kMaxEvalSteps;
  // Results of `query matches R` computed once per session, by regex index
  // (1 true, 0 false); null or shorter than plan->regexes to match each time.
  const std::vector<int8_t>* query_matches = nullptr;
};

// `query matches R` for every regex R the plan applies to the query, by regex
// index: 1 or 0 where it is applied, -1 where it is not. The query is fixed for
// a session, so a Session computes this once instead of once per call.
std::vector<int8_t> QueryMatches(const Plan& plan, std::string_view query);

class Evaluator {
 public:
  explicit Evaluator(const EvalContext& context) : context_(context) {}

  // Evaluates a boolean condition. kError leaves the message in error().
  ConditionResult Condition(uint32_t node);
  // Evaluates any node; false on error.
  bool Eval(uint32_t node, Value* out);
  const std::string& error() const { return error_; }
  // Forgets the last error (between rules); the step budget carries on.
  void ClearError() { error_.clear(); }
  // The source text of a node, in backticks.
  std::string Text(uint32_t node) const;
  // A short JSON rendering of a value, for reasons.
  static std::string Describe(const Value& v);

 private:
  bool Fail(uint32_t node, std::string message);
  bool EvalBinary(const Node& n, uint32_t index, Value* out);
  bool EvalCall(const Node& n, uint32_t index, Value* out);
  bool Bool(uint32_t node, bool* out);
  bool FromQuery(const Value& v, uint32_t node, bool trusted, bool* out);
  bool OccursInTrusted(std::string_view needle, bool needle_is_number);
  // Charges the step budget for work or memory in proportion to `bytes` (one
  // step per 64 bytes), so no evaluation holds more than about
  // kMaxEvalSteps x 64 bytes of scratch. False (with an error) past the budget.
  bool Charge(size_t bytes, uint32_t node);
  // The call's argument `key`, or null. The first lookup lists the argument
  // object's members in a flat array (when it has at most kIndexedArgs), so
  // later ones compare lengths and bytes instead of walking the std::map.
  const nlohmann::json* FindArg(const std::string& key);
  // url() or email() (`op`) of `text` for node `index`, parsed once per
  // distinct input per evaluation (rules often parse the same argument more
  // than once); false (with the parser's error) when it does not parse.
  struct Parsed {
    NodeOp op;
    std::string_view input;  // borrowed, like every Value's string
    ParsedUrl url;
    ParsedEmail email;
  };
  bool ParseString(NodeOp op, std::string_view text, uint32_t index, const Parsed** out);
  // `url(x).FIELD` or `email(x).FIELD` (node `base` is the call) without
  // building the JSON object: the same value, steps and errors as evaluating
  // the object and taking its field.
  bool ParsedField(uint32_t base, const std::string& field, Value* out);
  static size_t ApproxBytes(const Value& v);
  std::string_view Keep(std::string s);
  const nlohmann::json* Keep(nlohmann::json j);

  const EvalContext& context_;
  size_t steps_ = 0;
  std::string error_;
  Value locals_[kMaxQuantifierNesting];
  static constexpr size_t kIndexedArgs = 16;
  struct ArgEntry {
    std::string_view key;
    const nlohmann::json* value;
  };
  bool args_listed_ = false;
  size_t arg_count_ = 0;         // > kIndexedArgs: not listed, use find()
  ArgEntry args_[kIndexedArgs];  // the first arg_count_ are set
  // Owned results of lower(), url(), ... for this evaluation only; empty (and
  // allocation-free) on the common path.
  std::vector<std::unique_ptr<std::string>> strings_;
  std::vector<std::unique_ptr<nlohmann::json>> values_;
  // Not a std::deque: libstdc++'s allocates when constructed, and an
  // Evaluator is made for every decision.
  std::vector<std::unique_ptr<Parsed>> parsed_;
  // parsed_ by input, one map per function (an empty map does not allocate).
  std::unordered_map<std::string_view, const Parsed*> url_cache_, email_cache_;
};

// Deep JSON equality of two values; numbers compare as doubles at any depth
// (1 == 1.0, and 2^53 == 2^53 + 1, as in JavaScript).
bool ValuesEqual(const Value& a, const Value& b);
bool JsonEqual(const nlohmann::json& a, const nlohmann::json& b);
// Whether `needle` occurs in `haystack` as a whole run of tokens: ASCII
// case-insensitive, bounded by non-alphanumeric characters or the ends.
bool OccursAsTokenRun(std::string_view haystack, std::string_view needle);
// The shortest decimal form of a number ("100", "0.5", "1e+21").
std::string ShortestNumber(double d);

}  // namespace toolwarden::internal

#endif  // TOOLWARDEN_INTERPRETER_EVALUATOR_H_
