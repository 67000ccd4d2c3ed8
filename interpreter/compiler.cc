// Compile: CheckedPolicy -> Program (see program.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "interpreter/plan.h"
#include "interpreter/program.h"
#include "policy/sha256.h"

namespace toolwarden {

namespace internal {

bool ToolPattern::Matches(std::string_view tool) const {
  return glob ? GlobMatch(text, tool) : text == tool;
}

bool CompiledRule::Targets(std::string_view tool) const {
  for (const ToolPattern& t : targets) {
    if (t.Matches(tool)) return true;
  }
  return false;
}

const std::vector<uint32_t>& Plan::Candidates(std::string_view tool, bool* exact) const {
  auto it = by_tool.find(tool);
  if (it != by_tool.end()) {
    *exact = true;
    return it->second;
  }
  *exact = false;
  return wildcard_rules;
}

}  // namespace internal

Program::Program(std::unique_ptr<const internal::Plan> plan) : plan_(std::move(plan)) {}
Program::~Program() = default;
const std::string& Program::name() const { return plan_->name; }
const std::string& Program::hash() const { return plan_->hash; }
size_t Program::rule_count() const { return plan_->top_level_rules; }
bool Program::trusts(std::string_view tool) const {
  return std::any_of(plan_->trusted_tools.begin(), plan_->trusted_tools.end(),
                     [&](const internal::ToolPattern& t) { return t.Matches(tool); });
}
const ToolCatalog* Program::catalog() const {
  return plan_->checked != nullptr && plan_->checked->catalog ? &*plan_->checked->catalog : nullptr;
}

namespace {

using internal::ConstSet;
using internal::Node;
using internal::NodeOp;
using internal::Plan;
using internal::ToolPattern;

std::string BaseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

ToolPattern PatternOf(const std::string& text) {
  if (text == "*") return ToolPattern{"*", true};
  return ToolPattern{text, text.find_first_of("*?") != std::string::npos};
}

class Compiler {
 public:
  Compiler(const CheckedPolicy& policy, Plan* plan) : policy_(policy), plan_(plan) {}

  // The segment holding `line` (segments are in text order).
  size_t SegmentOf(int line) const {
    size_t s = 0;
    while (s + 1 < plan_->segments.size() && plan_->segments[s + 1].first_line <= line) ++s;
    return s;
  }

  Status Run() {
    plan_->name = policy_.name;
    plan_->source_name = policy_.source_name;
    plan_->source_text = policy_.source_text;
    plan_->hash = "sha256:" + Sha256Hex(policy_.source_text);
    for (const Target& t : policy_.trusted_tools) plan_->trusted_tools.push_back(PatternOf(t.text));
    if (policy_.default_fallback) {
      plan_->default_fallback = policy_.default_fallback->kind;
      plan_->default_message = policy_.default_fallback->message;
    }
    for (const Item& item : policy_.ast.items) {
      if (item.kind != ItemKind::kRule) continue;
      StatusOr<uint32_t> index = CompileRule(item.rule);
      if (!index.ok()) return index.status();
      plan_->segments[SegmentOf(item.rule.position.line)].rules.push_back(*index);
    }
    // Only the file's own rules are indexed; appended segments join a session
    // as added rules (Session::AddRules).
    const std::vector<uint32_t>& top = plan_->segments.front().rules;
    plan_->top_level_rules = top.size();
    BuildIndex(top);
    return OkStatus();
  }

 private:
  StatusOr<uint32_t> CompileRule(const Rule& rule) {
    internal::CompiledRule compiled;
    const internal::Segment& segment = plan_->segments[SegmentOf(rule.position.line)];
    compiled.id = segment.name + ":" + std::to_string(rule.position.line - segment.first_line + 1);
    compiled.line = rule.position.line;
    compiled.key = RuleKey{rule.priority.value_or(kDefaultPriority), rule.effect, order_++};
    for (const Target& t : rule.targets) compiled.targets.push_back(PatternOf(t.text));
    if (rule.fallback) {
      compiled.fallback = rule.fallback->kind;
      compiled.message = rule.fallback->message;
    }
    if (rule.condition != nullptr) {
      locals_.clear();
      StatusOr<uint32_t> root = CompileExpr(*rule.condition);
      if (!root.ok()) return root.status();
      compiled.condition = static_cast<int32_t>(*root);
      // Flatten the top-level `and` chain for "why not" explanations.
      std::vector<uint32_t> stack = {*root};
      while (!stack.empty()) {
        uint32_t n = stack.back();
        stack.pop_back();
        if (plan_->nodes[n].op == NodeOp::kAnd) {
          stack.push_back(plan_->nodes[n].b);
          stack.push_back(plan_->nodes[n].a);
        } else {
          compiled.conjuncts.push_back(n);
        }
      }
    }
    uint32_t index = static_cast<uint32_t>(plan_->rules.size());
    plan_->rules.push_back(std::move(compiled));
    for (const Rule& update : rule.updates) {
      StatusOr<uint32_t> u = CompileRule(update);
      if (!u.ok()) return u.status();
      plan_->rules[index].updates.push_back(*u);
    }
    return index;
  }

  uint32_t Add(Node node, const Expr& e) {
    node.begin = static_cast<uint32_t>(e.position.offset);
    node.end = static_cast<uint32_t>(e.end_offset);
    plan_->nodes.push_back(node);
    return static_cast<uint32_t>(plan_->nodes.size() - 1);
  }

  uint32_t AddConstant(nlohmann::json value) {
    plan_->constants.push_back(std::make_unique<nlohmann::json>(std::move(value)));
    return static_cast<uint32_t>(plan_->constants.size() - 1);
  }

  uint32_t AddString(const std::string& s) {
    auto it = string_index_.find(s);
    if (it != string_index_.end()) return it->second;
    plan_->strings.push_back(s);
    uint32_t index = static_cast<uint32_t>(plan_->strings.size() - 1);
    string_index_[s] = index;
    return index;
  }

  uint32_t AddGlob(const Expr& e) {
    std::string text = e.kind == ExprKind::kName ? e.name : e.literal.get<std::string>();
    plan_->globs.push_back(PatternOf(text));
    return static_cast<uint32_t>(plan_->globs.size() - 1);
  }

  uint32_t SetFor(uint32_t constant) {
    auto it = set_index_.find(constant);
    if (it != set_index_.end()) return it->second;
    auto set = std::make_unique<ConstSet>();
    for (const nlohmann::json& v : *plan_->constants[constant]) {
      if (v.is_string()) {
        set->strings.insert(v.get_ref<const std::string&>());
      } else if (v.is_number()) {
        set->numbers.insert(v.get<double>());
      } else if (v.is_null()) {
        set->has_null = true;
      } else if (v.is_boolean()) {
        (v.get<bool>() ? set->has_true : set->has_false) = true;
      } else {
        set->others.push_back(&v);
      }
    }
    plan_->sets.push_back(std::move(set));
    uint32_t index = static_cast<uint32_t>(plan_->sets.size() - 1);
    set_index_[constant] = index;
    return index;
  }

  StatusOr<uint32_t> RegexFor(const std::string& pattern) {
    auto it = regex_index_.find(pattern);
    if (it != regex_index_.end()) return it->second;
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(kMaxRegexMemory);
    auto re = std::make_unique<RE2>(pattern, options);
    if (!re->ok() || re->ProgramSize() > kMaxRegexProgramSize ||
        re->ReverseProgramSize() > kMaxRegexProgramSize) {
      return InvalidArgumentError("regex `" + pattern + "` does not compile within the limits");
    }
    plan_->regexes.push_back(std::move(re));
    uint32_t index = static_cast<uint32_t>(plan_->regexes.size() - 1);
    regex_index_[pattern] = index;
    return index;
  }

  // Whether an expression is constant (a literal, a `let`, a list of constants).
  // Memoized, so nested lists are walked once, not once per enclosing list.
  bool IsConstant(const Expr& e) {
    auto it = constness_.find(&e);
    if (it != constness_.end()) return it->second;
    bool constant = false;
    if (e.kind == ExprKind::kLiteral) {
      constant = true;
    } else if (e.kind == ExprKind::kName) {
      constant = !IsLocal(e.name) && e.name != "tool" && e.name != "args" && e.name != "query" &&
                 policy_.constants.count(e.name) > 0;
    } else if (e.kind == ExprKind::kList) {
      constant = true;
      for (const auto& c : e.children) constant = IsConstant(*c) && constant;
    }
    constness_[&e] = constant;
    return constant;
  }

  nlohmann::json ConstantValue(const Expr& e) {
    if (e.kind == ExprKind::kLiteral) return e.literal;
    if (e.kind == ExprKind::kName) return policy_.constants.at(e.name);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& c : e.children) list.push_back(ConstantValue(*c));
    return list;
  }

  // The constant index of an expression, if it is constant; each `let` is added once.
  std::optional<uint32_t> ConstantOf(const Expr& e) {
    if (!IsConstant(e)) return std::nullopt;
    if (e.kind == ExprKind::kName) {
      auto cached = let_index_.find(e.name);
      if (cached != let_index_.end()) return cached->second;
      uint32_t index = AddConstant(policy_.constants.at(e.name));
      let_index_[e.name] = index;
      return index;
    }
    return AddConstant(ConstantValue(e));
  }

  bool IsLocal(const std::string& name) const {
    return std::find(locals_.begin(), locals_.end(), name) != locals_.end();
  }

  StatusOr<uint32_t> Child(const Expr& e, size_t i) { return CompileExpr(*e.children[i]); }

  StatusOr<uint32_t> CompileExpr(const Expr& e) {
    if (std::optional<uint32_t> constant = ConstantOf(e)) {
      return Add(Node{NodeOp::kConst, Op::kNone, *constant}, e);
    }
    switch (e.kind) {
      case ExprKind::kLiteral:
        break;  // handled above
      case ExprKind::kList: {
        std::vector<uint32_t> items;
        for (size_t i = 0; i < e.children.size(); ++i) {
          StatusOr<uint32_t> c = Child(e, i);
          if (!c.ok()) return c;
          items.push_back(*c);
        }
        uint32_t start = static_cast<uint32_t>(plan_->list_items.size());
        plan_->list_items.insert(plan_->list_items.end(), items.begin(), items.end());
        return Add(Node{NodeOp::kList, Op::kNone, start, static_cast<uint32_t>(items.size())}, e);
      }
      case ExprKind::kName: {
        for (size_t slot = locals_.size(); slot-- > 0;) {
          if (locals_[slot] == e.name) {
            return Add(Node{NodeOp::kLocal, Op::kNone, static_cast<uint32_t>(slot)}, e);
          }
        }
        if (e.name == "tool") return Add(Node{NodeOp::kTool}, e);
        if (e.name == "args") return Add(Node{NodeOp::kArgs}, e);
        if (e.name == "query") return Add(Node{NodeOp::kQuery}, e);
        return Add(Node{NodeOp::kArg, Op::kNone, AddString(e.name)}, e);
      }
      case ExprKind::kField: {
        const Expr& base = *e.children[0];
        if (base.kind == ExprKind::kName && base.name == "args" && !IsLocal("args")) {
          return Add(Node{NodeOp::kArg, Op::kNone, AddString(e.name)}, e);
        }
        StatusOr<uint32_t> b = Child(e, 0);
        if (!b.ok()) return b;
        return Add(Node{NodeOp::kField, Op::kNone, *b, AddString(e.name)}, e);
      }
      case ExprKind::kIndex: {
        const Expr& base = *e.children[0];
        const Expr& index = *e.children[1];
        if (base.kind == ExprKind::kName && base.name == "args" &&
            index.kind == ExprKind::kLiteral && index.literal.is_string()) {
          return Add(Node{NodeOp::kArg, Op::kNone, AddString(index.literal.get<std::string>())}, e);
        }
        StatusOr<uint32_t> b = Child(e, 0);
        if (!b.ok()) return b;
        StatusOr<uint32_t> i = Child(e, 1);
        if (!i.ok()) return i;
        return Add(Node{NodeOp::kIndex, Op::kNone, *b, *i}, e);
      }
      case ExprKind::kCall:
        return CompileCall(e);
      case ExprKind::kUnary: {
        StatusOr<uint32_t> a = Child(e, 0);
        if (!a.ok()) return a;
        return Add(Node{e.op == Op::kNot ? NodeOp::kNot : NodeOp::kNeg, Op::kNone, *a}, e);
      }
      case ExprKind::kBinary:
        return CompileBinary(e);
      case ExprKind::kFrom: {
        StatusOr<uint32_t> a = Child(e, 0);
        if (!a.ok()) return a;
        return Add(
            Node{e.name == "query" ? NodeOp::kFromQuery : NodeOp::kFromTrusted, Op::kNone, *a}, e);
      }
    }
    return InternalError("unexpected expression");
  }

  StatusOr<uint32_t> CompileBinary(const Expr& e) {
    StatusOr<uint32_t> a = Child(e, 0);
    if (!a.ok()) return a;
    if (e.op == Op::kMatches) {
      std::optional<uint32_t> pattern = ConstantOf(*e.children[1]);
      if (!pattern || !plan_->constants[*pattern]->is_string()) {
        return InvalidArgumentError("the pattern of `matches` must be a constant string");
      }
      StatusOr<uint32_t> re = RegexFor(plan_->constants[*pattern]->get<std::string>());
      if (!re.ok()) return re;
      return Add(Node{NodeOp::kMatches, Op::kNone, *a, *re}, e);
    }
    if (e.op == Op::kIn || e.op == Op::kNotIn) {
      std::optional<uint32_t> list = ConstantOf(*e.children[1]);
      if (list && plan_->constants[*list]->is_array()) {
        return Add(Node{NodeOp::kInSet, Op::kNone, *a, SetFor(*list), e.op == Op::kNotIn ? 1u : 0u},
                   e);
      }
    }
    StatusOr<uint32_t> b = Child(e, 1);
    if (!b.ok()) return b;
    if (e.op == Op::kAnd) return Add(Node{NodeOp::kAnd, Op::kNone, *a, *b}, e);
    if (e.op == Op::kOr) return Add(Node{NodeOp::kOr, Op::kNone, *a, *b}, e);
    return Add(Node{NodeOp::kBinary, e.op, *a, *b}, e);
  }

  StatusOr<uint32_t> CompileCall(const Expr& e) {
    const std::string& f = e.name;
    if (f == "count" || f == "called") {
      return Add(
          Node{f == "count" ? NodeOp::kCount : NodeOp::kCalled, Op::kNone, AddGlob(*e.children[0])},
          e);
    }
    if (f == "sum") {
      const Expr& field = *e.children[0];
      return Add(Node{NodeOp::kSum, Op::kNone, AddGlob(*field.children[0]), AddString(field.name)},
                 e);
    }
    if (f == "all" || f == "any") {
      const Expr& binding = *e.children[0];
      StatusOr<uint32_t> array = CompileExpr(*binding.children[1]);
      if (!array.ok()) return array;
      if (locals_.size() >= static_cast<size_t>(internal::kMaxQuantifierNesting)) {
        return InvalidArgumentError("quantifiers nest deeper than " +
                                    std::to_string(internal::kMaxQuantifierNesting));
      }
      uint32_t slot = static_cast<uint32_t>(locals_.size());
      locals_.push_back(binding.children[0]->name);
      StatusOr<uint32_t> condition = Child(e, 1);
      locals_.pop_back();
      if (!condition.ok()) return condition;
      return Add(
          Node{f == "all" ? NodeOp::kAll : NodeOp::kAny, Op::kNone, *array, *condition, slot}, e);
    }
    static const std::map<std::string, NodeOp> kUnary = {
        {"lower", NodeOp::kLower}, {"len", NodeOp::kLen},     {"type", NodeOp::kType},
        {"url", NodeOp::kUrl},     {"email", NodeOp::kEmail}, {"path", NodeOp::kPath}};
    auto it = kUnary.find(f);
    if (it == kUnary.end()) return InvalidArgumentError("unknown function `" + f + "`");
    StatusOr<uint32_t> a = Child(e, 0);
    if (!a.ok()) return a;
    return Add(Node{it->second, Op::kNone, *a}, e);
  }

  void BuildIndex(const std::vector<uint32_t>& top) {
    auto sorted = [&](std::vector<uint32_t> v) {
      std::stable_sort(v.begin(), v.end(), [&](uint32_t x, uint32_t y) {
        return DecidesBefore(plan_->rules[x].key, plan_->rules[y].key);
      });
      return v;
    };
    // Exact names go straight to their own lists; only glob and `*` rules are
    // matched against each name, so the cost is names x wildcard rules, not
    // names x rules.
    std::map<std::string, std::vector<uint32_t>> exact;
    std::vector<uint32_t> wildcard;
    for (uint32_t r : top) {
      bool has_wildcard = false;
      for (const ToolPattern& t : plan_->rules[r].targets) {
        if (t.glob) {
          has_wildcard = true;
        } else {
          std::vector<uint32_t>& list = exact[t.text];
          if (list.empty() || list.back() != r) list.push_back(r);
        }
      }
      if (has_wildcard) wildcard.push_back(r);
    }
    std::set<std::string> names;
    for (const auto& entry : exact) names.insert(entry.first);
    for (const ToolPattern& t : plan_->trusted_tools) {
      if (!t.glob) names.insert(t.text);
    }
    if (policy_.catalog) {
      for (const auto& entry : policy_.catalog->tools()) names.insert(entry.first);
    }
    plan_->wildcard_rules = sorted(wildcard);
    plan_->tool_names.assign(names.begin(), names.end());
    plan_->by_tool.reserve(plan_->tool_names.size());
    for (const std::string& name : plan_->tool_names) {
      auto it = exact.find(name);
      std::vector<uint32_t> candidates;
      if (it != exact.end()) candidates = std::move(it->second);
      const size_t named = candidates.size();
      for (uint32_t r : wildcard) {
        bool already = std::find(candidates.begin(), candidates.begin() + named, r) !=
                       candidates.begin() + named;
        if (!already && plan_->rules[r].Targets(name)) candidates.push_back(r);
      }
      plan_->by_tool.emplace(std::string_view(name), sorted(std::move(candidates)));
    }
  }

  const CheckedPolicy& policy_;
  Plan* plan_;
  uint64_t order_ = 0;
  std::vector<std::string> locals_;
  std::map<std::string, uint32_t> string_index_;
  std::map<std::string, uint32_t> regex_index_;
  std::map<std::string, uint32_t> let_index_;
  std::map<uint32_t, uint32_t> set_index_;
  std::map<const Expr*, bool> constness_;
};

}  // namespace

StatusOr<std::shared_ptr<const Program>> Compile(std::shared_ptr<const CheckedPolicy> policy) {
  if (policy == nullptr) return InvalidArgumentError("no checked policy to compile");
  std::vector<internal::Segment> segments(1);
  segments[0].name = BaseName(policy->source_name);
  return internal::CompileSegments(std::move(policy), std::move(segments));
}

StatusOr<std::shared_ptr<const Program>> internal::CompileSegments(
    std::shared_ptr<const CheckedPolicy> policy, std::vector<Segment> segments) {
  if (policy == nullptr) return InvalidArgumentError("no checked policy to compile");
  if (segments.empty()) return InvalidArgumentError("a policy needs at least one segment");
  auto plan = std::make_unique<internal::Plan>();
  plan->checked = policy;
  plan->segments = std::move(segments);
  for (internal::Segment& segment : plan->segments) segment.rules.clear();
  Compiler compiler(*policy, plan.get());
  Status status = compiler.Run();
  if (!status.ok()) return status;
  return std::shared_ptr<const Program>(std::make_shared<Program>(std::move(plan)));
}

}  // namespace toolwarden
