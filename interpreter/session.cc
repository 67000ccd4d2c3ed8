#include "interpreter/session.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "interpreter/evaluator.h"
#include "interpreter/plan.h"
#include "policy/json_limits.h"
#include "policy/narrowing.h"
#include "policy/parser.h"

namespace toolwarden {

using internal::CompiledRule;
using internal::EvalContext;
using internal::Evaluator;
using internal::Node;
using internal::NodeOp;
using internal::Plan;

namespace {

// Whether `text` is valid UTF-8. Most argument text is ASCII: eight bytes at a
// time are checked for a byte with the high bit set, and only text from the
// first such byte on goes through the full check (FindInvalidUtf8), which
// starts there on a character boundary since every byte before it is ASCII.
bool ValidUtf8(std::string_view text) {
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const char* p = text.data();
  const size_t n = text.size();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    if (((w[0] | w[1] | w[2] | w[3]) & kHigh) != 0) break;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    if ((word & kHigh) != 0) break;
  }
  if (i + 8 > n && n >= 8) {
    // The last 1 to 7 bytes, read as the (overlapping) last word; every byte
    // before it is ASCII, so it starts on a character boundary.
    uint64_t word;
    std::memcpy(&word, p + n - 8, 8);
    if ((word & kHigh) == 0) return true;
    i = n - 8;
  }
  for (; i < n; ++i) {
    if (static_cast<unsigned char>(p[i]) >= 0x80) break;
  }
  return i == n || FindInvalidUtf8(text.substr(i)) == std::string_view::npos;
}

// What is wrong with a call's arguments (ArgsProblem), as a code, so the
// common case (nothing) builds no string.
enum class ArgsIssue { kNone, kTooMany, kNotFinite, kBadString, kBadKey, kTooDeep };

std::string ArgsIssueText(ArgsIssue issue) {
  switch (issue) {
    case ArgsIssue::kTooMany:
      return "the arguments exceed " + std::to_string(kMaxArgNodes) + " values";
    case ArgsIssue::kNotFinite:
      return "the arguments hold a number that is not finite";
    case ArgsIssue::kBadString:
      return "the arguments hold a string that is not valid UTF-8";
    case ArgsIssue::kBadKey:
      return "the arguments hold a key that is not valid UTF-8";
    case ArgsIssue::kTooDeep:
      return "the arguments exceed " + std::to_string(kMaxArgDepth) + " levels";
    case ArgsIssue::kNone:
      break;
  }
  return "";
}

// Checks argument JSON built by a host (the JSON parsers at the front doors
// already enforce most of this): at most kMaxArgDepth containers deep (a scalar
// is 0 levels, `{}` 1), at most kMaxArgNodes values (the root included), only
// finite numbers (NaN would make `amount > limit` false and open a forbid rule),
// and only valid UTF-8 in strings and keys (RE2 cannot match invalid UTF-8, so
// a forbid pattern would miss). Returns the first problem in a depth-first
// walk (an object's keys before its values), or kNone. `enclosing` counts the
// containers around `j`; recursion stops at the limit.
ArgsIssue ArgsProblem(const nlohmann::json& j, int enclosing, size_t* nodes) {
  if (++*nodes > kMaxArgNodes) return ArgsIssue::kTooMany;
  switch (j.type()) {
    case nlohmann::json::value_t::number_float:
      return std::isfinite(j.get_ref<const double&>()) ? ArgsIssue::kNone : ArgsIssue::kNotFinite;
    case nlohmann::json::value_t::string:
      return ValidUtf8(j.get_ref<const std::string&>()) ? ArgsIssue::kNone : ArgsIssue::kBadString;
    case nlohmann::json::value_t::object:
    case nlohmann::json::value_t::array:
      break;
    default:
      return ArgsIssue::kNone;
  }
  if (enclosing + 1 > kMaxArgDepth) return ArgsIssue::kTooDeep;
  if (j.is_object()) {
    const auto& object = j.get_ref<const nlohmann::json::object_t&>();
    for (const auto& [key, value] : object) {
      if (!ValidUtf8(key)) return ArgsIssue::kBadKey;
    }
    for (const auto& [key, value] : object) {
      ArgsIssue issue = ArgsProblem(value, enclosing + 1, nodes);
      if (issue != ArgsIssue::kNone) return issue;
    }
    return ArgsIssue::kNone;
  }
  for (const nlohmann::json& child : j.get_ref<const nlohmann::json::array_t&>()) {
    ArgsIssue issue = ArgsProblem(child, enclosing + 1, nodes);
    if (issue != ArgsIssue::kNone) return issue;
  }
  return ArgsIssue::kNone;
}

std::string DefaultMessage(FallbackKind kind) {
  switch (kind) {
    case FallbackKind::kAsk:
      return "Tool call `{tool}` needs a person's approval: {reason}";
    case FallbackKind::kTerminate:
      return "Tool call `{tool}` violated the security policy and the run must end: {reason}";
    case FallbackKind::kBlock:
      break;
  }
  return "Tool call `{tool}` was blocked by the security policy: {reason}. Try other tools or "
         "arguments and continue with the user's task: {query}";
}

std::string Expand(const std::string& message, const Decision& d, std::string_view query) {
  std::string out;
  for (size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '{') {
      size_t close = message.find('}', i);
      if (close != std::string::npos) {
        std::string_view name(message.data() + i + 1, close - i - 1);
        if (name == "tool") {
          out += d.tool;
        } else if (name == "query") {
          out += query;
        } else if (name == "rule") {
          out += d.rule ? d.rule->id : std::string_view("default");
        } else if (name == "reason") {
          out += d.reason;
        } else {
          out += message.substr(i, close - i + 1);
        }
        i = close;
        continue;
      }
    }
    out += message[i];
  }
  return out;
}

Outcome OutcomeOf(FallbackKind kind) {
  switch (kind) {
    case FallbackKind::kAsk:
      return Outcome::kAsk;
    case FallbackKind::kTerminate:
      return Outcome::kTerminate;
    case FallbackKind::kBlock:
      break;
  }
  return Outcome::kDeny;
}

RuleRef RefOf(const CompiledRule& rule) {
  return RuleRef{rule.id, rule.key.effect, rule.key.priority};
}

// Values of a failed conjunct's operands, e.g. "`recipient` is \"US13...\"".
std::string OperandDetails(Evaluator& ev, const Plan& plan, uint32_t node) {
  const Node& n = plan.nodes[node];
  std::vector<uint32_t> operands;
  switch (n.op) {
    case NodeOp::kBinary:
      operands = {n.a, n.b};
      break;
    case NodeOp::kInSet:
    case NodeOp::kMatches:
    case NodeOp::kFromQuery:
    case NodeOp::kFromTrusted:
    case NodeOp::kNot:
      operands = {n.a};
      break;
    default:
      break;
  }
  std::string out;
  for (uint32_t operand : operands) {
    NodeOp op = plan.nodes[operand].op;
    if (op == NodeOp::kConst || op == NodeOp::kQuery) continue;
    internal::Value v;
    ev.ClearError();
    if (!ev.Eval(operand, &v)) continue;
    if (!out.empty()) out += ", ";
    out += ev.Text(operand) + " is " + Evaluator::Describe(v);
  }
  return out;
}

}  // namespace

Session::Session(std::shared_ptr<const Program> program, std::string query,
                 std::vector<std::string> trusted_values, SessionLimits limits)
    : program_(std::move(program)),
      query_(std::move(query)),
      trusted_values_(std::move(trusted_values)),
      limits_(limits) {
  if (trusted_values_.size() > kMaxTrustedValues) trusted_values_.resize(kMaxTrustedValues);
  if (program_ != nullptr) query_matches_ = internal::QueryMatches(program_->plan(), query_);
}

Decision Session::Check(std::string_view tool, const nlohmann::json& args) const {
  return Evaluate(tool, args, nullptr);
}

Decision Session::Decide(std::string_view tool, const nlohmann::json& args,
                         const DecisionGate& commit) {
  std::vector<uint32_t> updates;
  Decision d = Evaluate(tool, args, &updates);
  if (d.allowed()) d.call = history_.size();
  if (commit && !commit(d)) {
    d.call.reset();
    return d;
  }
  if (d.allowed()) {
    history_.push_back(CallRecord{std::string(tool), args, std::nullopt});
    for (uint32_t u : updates) {
      bool present =
          std::any_of(added_.begin(), added_.end(), [&](const Added& a) { return a.rule == u; });
      if (!present) added_.push_back(Added{u, NextOrder(), false});
    }
  }
  return d;
}

Decision Session::Approve(std::string_view tool, const nlohmann::json& args,
                          const DecisionGate& commit) {
  std::vector<uint32_t> updates;                // a `forbid` asks; it has none to apply
  Decision d = Evaluate(tool, args, &updates);  // with Decide's checks (a full history)
  if (d.allowed()) return Decide(tool, args, commit);
  if (d.outcome == Outcome::kAsk) {
    d.call = history_.size();
    d.outcome = Outcome::kAllow;
    d.fallback.reset();
    d.message.clear();
    d.reason = "approved: " + d.reason;
  }
  if (commit && !commit(d)) {
    d.call.reset();
    return d;
  }
  if (d.allowed()) history_.push_back(CallRecord{std::string(tool), args, std::nullopt});
  return d;
}

Status Session::AttachResult(size_t call, nlohmann::json result) {
  if (call >= history_.size()) {
    return NotFoundError("no recorded call #" + std::to_string(call));
  }
  if (history_[call].result) {
    return FailedPreconditionError("call #" + std::to_string(call) + " already has a result");
  }
  if (!JsonWithinDepth(result, kMaxJsonDepth)) {
    return ResourceExhaustedError("result nests deeper than " + std::to_string(kMaxJsonDepth));
  }
  history_[call].result = std::move(result);
  return OkStatus();
}

Status Session::AddTrustedValue(std::string value) {
  if (trusted_values_.size() >= kMaxTrustedValues) {
    return ResourceExhaustedError("more than " + std::to_string(kMaxTrustedValues) +
                                  " trusted values");
  }
  trusted_values_.push_back(std::move(value));
  return OkStatus();
}

namespace {

// Names for added text: they become rule ids, log fields and diagnostics.
bool ValidAddedName(const std::string& name) {
  if (name.empty() || name.size() > kMaxAddedNameBytes) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

int64_t Session::DraftFloor() const {
  int64_t floor = kMinDraftPriority;
  if (program_ == nullptr) return floor;
  const Plan& plan = program_->plan();
  std::vector<bool> drafted(plan.rules.size(), false);
  for (const internal::Segment& segment : plan.segments) {
    if (!segment.drafted) continue;
    for (uint32_t r : segment.rules) drafted[r] = true;  // drafted rules have no `update` blocks
  }
  for (size_t r = 0; r < plan.rules.size(); ++r) {
    if (!drafted[r]) floor = std::max(floor, plan.rules[r].key.priority);
  }
  return floor;
}

std::vector<std::string> Session::drafted() const {
  std::vector<std::string> names;
  if (program_ == nullptr) return names;
  for (const internal::Segment& segment : program_->plan().segments) {
    if (segment.drafted &&
        std::find(retired_.begin(), retired_.end(), segment.name) == retired_.end()) {
      names.push_back(segment.name);
    }
  }
  return names;
}

std::optional<std::string> Session::AddedText(const std::string& name) const {
  if (program_ == nullptr) return std::nullopt;
  const Plan& plan = program_->plan();
  for (size_t i = 1; i < plan.segments.size(); ++i) {
    if (plan.segments[i].name == name) return std::string(internal::SegmentText(plan, i));
  }
  return std::nullopt;
}

AddRulesResult Session::AddRules(std::string name, std::string text, AddMode mode,
                                 const std::function<bool(const AddRulesResult&)>& commit,
                                 const std::string& replaces) {
  AddRulesResult out;
  out.source = Source(name, text);
  if (program_ == nullptr) {
    out.status = FailedPreconditionError("the session has no policy to add rules to");
    return out;
  }
  const Plan& before = program_->plan();
  if (!ValidAddedName(name)) {
    out.status = InvalidArgumentError("a name for added rules is 1 to " +
                                      std::to_string(kMaxAddedNameBytes) +
                                      " letters, digits, `_`, `.` or `-`");
    return out;
  }
  for (const internal::Segment& segment : before.segments) {
    if (segment.name == name) {
      out.status = InvalidArgumentError("the name `" + name + "` is taken in this session");
      return out;
    }
  }
  const bool drafting = mode == AddMode::kDraft || mode == AddMode::kDraftNarrowing;
  const size_t texts = static_cast<size_t>(
      std::count_if(before.segments.begin() + 1, before.segments.end(),
                    [&](const internal::Segment& segment) { return segment.drafted == drafting; }));
  const size_t max_texts = drafting ? kMaxDraftedTexts : kMaxAddedTexts;
  if (texts >= max_texts) {
    out.status = ResourceExhaustedError("a session takes at most " + std::to_string(max_texts) +
                                        (drafting ? " drafted texts" : " added texts"));
    return out;
  }
  const size_t max_bytes = drafting ? kMaxDraftedBytes : kMaxAddedBytes;
  if ((drafting ? drafted_bytes_ : added_bytes_) + text.size() > max_bytes) {
    out.status =
        ResourceExhaustedError("a session takes at most " + std::to_string(max_bytes) +
                               (drafting ? " bytes of drafted rules" : " bytes of added rules"));
    return out;
  }
  std::optional<size_t> replaced;  // the segment `replaces` names
  if (!replaces.empty() || mode == AddMode::kDraftNarrowing) {
    if (!drafting) {
      out.status = InvalidArgumentError("only drafted rules can replace others");
      return out;
    }
    const std::vector<std::string> current = drafted();
    if (std::find(current.begin(), current.end(), replaces) == current.end()) {
      out.status =
          NotFoundError("no drafted rules named `" + replaces + "` decide in this session");
      return out;
    }
    for (size_t i = 1; i < before.segments.size(); ++i) {
      if (before.segments[i].name == replaces) replaced = i;
    }
  }
  if (mode == AddMode::kDraftNarrowing) {
    StatusOr<NarrowingResult> proof = ProveNarrower(internal::SegmentText(before, *replaced), text);
    if (!proof.ok()) {
      out.status = proof.status();
      return out;
    }
    if (!proof->narrower) {
      for (const Narrowing& w : proof->widening) {
        if (w.position.line > 0) {
          out.diagnostics.Error(w.position, w.message);
        } else {
          out.diagnostics.Error(Position{1, 1, 0}, w.Line());
        }
      }
      out.status =
          InvalidArgumentError("the rules are not proven to allow no more than `" + replaces + "`");
      return out;
    }
  }
  const size_t text_bytes = text.size();
  internal::ExtendOptions options;
  options.drafted = drafting;
  options.floor = DraftFloor();
  internal::Extension ext =
      internal::ExtendProgram(*program_, std::move(name), std::move(text), options);
  out.source = std::move(ext.source);
  out.diagnostics = std::move(ext.diagnostics);
  if (!ext.status.ok()) {
    out.status = ext.status;
    return out;
  }
  const Plan& plan = ext.program->plan();
  const internal::Segment& segment = plan.segments.back();
  if (mode == AddMode::kNarrowOnly) {
    std::vector<size_t> line_starts = {0};
    const std::string& added = out.source.text();
    for (size_t i = 0; i < added.size(); ++i) {
      if (added[i] == '\n') line_starts.push_back(i + 1);
    }
    // The latest priority of a rule (file or added before) that terminates: an
    // added rule tried before it could turn its `terminate` into a `deny`.
    std::optional<int64_t> terminate_priority;
    const uint32_t first_new =
        segment.rules.empty() ? static_cast<uint32_t>(plan.rules.size()) : segment.rules.front();
    for (uint32_t r = 0; r < first_new; ++r) {
      const CompiledRule& rule = plan.rules[r];
      if (rule.key.effect == Effect::kForbid && rule.fallback == FallbackKind::kTerminate) {
        terminate_priority =
            std::max(terminate_priority.value_or(rule.key.priority), rule.key.priority);
      }
    }
    for (uint32_t r : segment.rules) {
      const CompiledRule& rule = plan.rules[r];
      const size_t line = static_cast<size_t>(rule.line - segment.first_line + 1);
      Position at{static_cast<int>(line), 1, line_starts[std::min(line, line_starts.size()) - 1]};
      if (rule.key.effect == Effect::kAllow) {
        out.diagnostics.Error(at, "narrow-only: an `allow` rule can widen what the session allows");
      } else if (rule.fallback == FallbackKind::kAsk) {
        out.diagnostics.Error(at, "narrow-only: fallback `ask` can turn a denial into a question");
      } else if (rule.fallback == FallbackKind::kBlock &&
                 (plan.default_fallback == FallbackKind::kTerminate ||
                  (terminate_priority && *terminate_priority > rule.key.priority))) {
        out.diagnostics.Error(at,
                              "narrow-only: this rule runs before a rule that terminates, and "
                              "could turn `terminate` into `deny`; give it priority " +
                                  std::to_string(terminate_priority.value_or(0)) +
                                  " or more, or fallback `terminate`");
      }
    }
    if (out.diagnostics.HasErrors()) {
      out.status = InvalidArgumentError("the rules could widen the session in narrow-only mode");
      return out;
    }
  }
  for (uint32_t r : segment.rules) out.rule_ids.push_back(plan.rules[r].id);
  out.policy = plan.hash;
  if (commit && !commit(out)) {
    out.status = FailedPreconditionError("the host did not take the rules");
    out.rule_ids.clear();
    return out;
  }
  if (replaced) {
    const std::vector<uint32_t>& gone = before.segments[*replaced].rules;
    added_.erase(std::remove_if(added_.begin(), added_.end(),
                                [&](const Added& a) {
                                  return std::find(gone.begin(), gone.end(), a.rule) != gone.end();
                                }),
                 added_.end());
    retired_.push_back(replaces);
  }
  for (uint32_t r : segment.rules) added_.push_back(Added{r, NextOrder(), drafting});
  (drafting ? drafted_bytes_ : added_bytes_) += text_bytes;
  program_ = std::move(ext.program);
  query_matches_ = internal::QueryMatches(program_->plan(), query_);
  return out;
}

std::vector<std::string> Session::added_rules() const {
  std::vector<std::string> ids;
  for (const Added& a : added_) ids.push_back(program_->plan().rules[a.rule].id);
  return ids;
}

Decision Session::Evaluate(std::string_view tool, const nlohmann::json& args,
                           std::vector<uint32_t>* updates) const {
  const auto start = std::chrono::steady_clock::now();
  Decision d;
  d.tool = std::string(tool);
  auto finish = [&](Decision& decision) {
    decision.eval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  };
  auto deny = [&](FallbackKind kind, const std::optional<std::string>& message) {
    d.outcome = OutcomeOf(kind);
    d.fallback = kind;
    d.message = Expand(message ? *message : DefaultMessage(kind), d, query_);
  };
  if (program_ == nullptr) {
    d.reason = "no policy is loaded";
    deny(FallbackKind::kBlock, std::nullopt);
    finish(d);
    return d;
  }
  const Plan& plan = program_->plan();
  d.policy = plan.hash;
  d.program = program_;
  size_t nodes = 0;
  // Problems with the call itself deny it before any rule runs. A full history
  // only matters to Decide (`updates` set), which would have to record the call.
  std::string problem =
      updates != nullptr && history_.size() >= limits_.max_history
          ? "the session's history is full (" + std::to_string(limits_.max_history) + " calls)"
      : !args.is_object() ? "the arguments are not a JSON object"
      : !ValidUtf8(tool)  ? "the tool name is not valid UTF-8"
                          : ArgsIssueText(ArgsProblem(args, 0, &nodes));
  if (!problem.empty()) {
    if (FindInvalidUtf8(d.tool) != std::string_view::npos) d.tool = "(invalid UTF-8)";
    d.reason = problem;
    d.errors.push_back(d.reason);
    deny(FallbackKind::kBlock, std::nullopt);
    finish(d);
    return d;
  }

  EvalContext context;
  context.plan = &plan;
  context.tool = tool;
  context.args = &args;
  context.query = query_;
  context.history = &history_;
  context.trusted_values = &trusted_values_;
  context.max_steps = limits_.max_eval_steps;
  context.query_matches = &query_matches_;
  // Made on the first condition: a call that only unconditional rules decide
  // (most reads) needs none.
  std::optional<Evaluator> evaluator;
  auto ev = [&]() -> Evaluator& {
    if (!evaluator) evaluator.emplace(context);
    return *evaluator;
  };

  bool exact = false;
  const std::vector<uint32_t>& indexed = plan.Candidates(tool, &exact);
  // Rules added by `update` blocks join the candidates in decision order. The
  // common case, with none added, allocates nothing.
  struct Candidate {
    bool drafted;  // drafted rules come after all others
    RuleKey key;
    uint32_t rule;
  };
  std::vector<Candidate> merged;
  if (!added_.empty()) {
    for (uint32_t r : indexed) merged.push_back({false, plan.rules[r].key, r});
    for (const Added& a : added_) {
      RuleKey key = plan.rules[a.rule].key;
      key.order = a.order;
      merged.push_back({a.drafted, key, a.rule});
    }
    std::stable_sort(merged.begin(), merged.end(), [](const Candidate& x, const Candidate& y) {
      if (x.drafted != y.drafted) return y.drafted;
      return DecidesBefore(x.key, y.key);
    });
  }
  const bool use_merged = !added_.empty();
  const size_t count = use_merged ? merged.size() : indexed.size();
  auto rule_at = [&](size_t i) -> const CompiledRule& {
    return plan.rules[use_merged ? merged[i].rule : indexed[i]];
  };
  const bool filter = use_merged || !exact;
  ConditionResult last_result = ConditionResult::kFalse;  // of the last rule evaluated
  std::string last_error;
  std::optional<size_t> fired = FirstFiring(
      count, [&](size_t i) { return rule_at(i).key.effect; },
      [&](size_t i) {
        const CompiledRule& rule = rule_at(i);
        if (filter && !rule.Targets(tool)) return last_result = ConditionResult::kFalse;
        if (rule.condition < 0) return last_result = ConditionResult::kTrue;
        last_result = ev().Condition(static_cast<uint32_t>(rule.condition));
        if (last_result == ConditionResult::kError) {
          d.errors.push_back(rule.id + ": " + ev().error());
          last_error = ev().error();
          ev().ClearError();
        }
        return last_result;
      });

  if (fired) {
    const CompiledRule& rule = rule_at(*fired);
    d.rule = RefOf(rule);
    if (rule.key.effect == Effect::kAllow) {
      d.outcome = Outcome::kAllow;
      if (updates != nullptr) *updates = rule.updates;
      finish(d);
      return d;
    }
    // FirstFiring stops at the rule that fired, so the last result is its own.
    if (last_result == ConditionResult::kError) {
      d.reason = "forbidden by " + rule.id + " because its condition failed: " + last_error;
    } else if (rule.condition >= 0) {
      d.reason = "forbidden by " + rule.id + ": " +
                 ev().Text(static_cast<uint32_t>(rule.condition)) + " holds";
    } else {
      d.reason = "forbidden by " + rule.id;
    }
    deny(rule.fallback, rule.message);
    finish(d);
    return d;
  }

  // No rule decided: explain with the closest allow rule ("why not").
  const CompiledRule* closest = nullptr;
  size_t best = 0;
  std::string why;
  for (size_t i = 0; i < count; ++i) {
    const CompiledRule& rule = rule_at(i);
    if (rule.key.effect != Effect::kAllow || (filter && !rule.Targets(tool))) continue;
    size_t passed = 0;
    std::string failure;
    for (uint32_t conjunct : rule.conjuncts) {
      ev().ClearError();
      ConditionResult r = ev().Condition(conjunct);
      if (r == ConditionResult::kTrue) {
        ++passed;
        continue;
      }
      if (r == ConditionResult::kError) {
        failure = ev().Text(conjunct) + " failed: " + ev().error();
      } else {
        failure = ev().Text(conjunct) + " is false";
        std::string details = OperandDetails(ev(), plan, conjunct);
        if (!details.empty()) failure += " (" + details + ")";
      }
      break;
    }
    if (closest == nullptr || passed > best) {
      closest = &rule;
      best = passed;
      why = failure;
    }
  }
  if (closest == nullptr) {
    d.reason = "no rule allows `" + d.tool + "`";
  } else {
    d.reason = "no rule allows this call; the closest, " + closest->id + ", fails because " + why;
  }
  deny(plan.default_fallback, plan.default_message);
  finish(d);
  return d;
}

}  // namespace toolwarden
