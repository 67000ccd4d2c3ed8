#include "policy/checker.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "re2/re2.h"

namespace toolwarden {

bool GlobMatch(std::string_view pattern, std::string_view name) {
  // Iterative matcher with one backtrack point: no recursion. `?` and the
  // backtracking step move by whole UTF-8 code points.
  auto next = [&](size_t i) {
    ++i;
    while (i < name.size() && (static_cast<unsigned char>(name[i]) & 0xC0) == 0x80) ++i;
    return i;
  };
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '?') {
      ++p, n = next(n);
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p, ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1, n = mark = next(mark);
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool IsMessagePlaceholder(std::string_view name) {
  return name == "tool" || name == "query" || name == "rule" || name == "reason";
}

namespace {

// JSON types as a bit set, for the checker's type inference.
enum : unsigned {
  kNull = 1,
  kBool = 2,
  kNumber = 4,
  kString = 8,
  kArray = 16,
  kObject = 32,
  kAny = 63,
};

unsigned MaskOfValue(const nlohmann::json& v) {
  if (v.is_null()) return kNull;
  if (v.is_boolean()) return kBool;
  if (v.is_number()) return kNumber;
  if (v.is_string()) return kString;
  if (v.is_array()) return kArray;
  return kObject;
}

std::string MaskName(unsigned mask) {
  static const char* const kNames[] = {"null", "boolean", "number", "string", "array", "object"};
  std::string out;
  for (int i = 0; i < 6; ++i) {
    if (mask & (1u << i)) {
      if (!out.empty()) out += " or ";
      out += kNames[i];
    }
  }
  return out.empty() ? "nothing" : out;
}

unsigned MaskOfTypeName(const std::string& t) {
  if (t == "null") return kNull;
  if (t == "boolean") return kBool;
  if (t == "number" || t == "integer") return kNumber;
  if (t == "string") return kString;
  if (t == "array") return kArray;
  if (t == "object") return kObject;
  return kAny;
}

unsigned MaskOfSchema(const nlohmann::json* schema, int depth = 0) {
  if (schema == nullptr || !schema->is_object() || depth > 16) return kAny;
  const nlohmann::json& s = *schema;
  if (s.contains("type")) {
    const nlohmann::json& t = s["type"];
    if (t.is_string()) return MaskOfTypeName(t.get<std::string>());
    if (t.is_array()) {
      unsigned m = 0;
      for (const auto& e : t) m |= e.is_string() ? MaskOfTypeName(e.get<std::string>()) : kAny;
      return m == 0 ? kAny : m;
    }
  }
  if (s.contains("const")) return MaskOfValue(s["const"]);
  if (s.contains("enum") && s["enum"].is_array() && !s["enum"].empty()) {
    unsigned m = 0;
    for (const auto& e : s["enum"]) m |= MaskOfValue(e);
    return m;
  }
  for (const char* key : {"anyOf", "oneOf"}) {
    if (s.contains(key) && s[key].is_array() && !s[key].empty()) {
      unsigned m = 0;
      for (const auto& e : s[key]) m |= MaskOfSchema(&e, depth + 1);
      return m;
    }
  }
  if (s.contains("properties")) return kObject;
  if (s.contains("items")) return kArray;
  return kAny;
}

// The schema of property `name` of an object schema, or null.
const nlohmann::json* PropertySchema(const nlohmann::json* schema, const std::string& name) {
  if (schema == nullptr || !schema->is_object()) return nullptr;
  auto props = schema->find("properties");
  if (props == schema->end() || !props->is_object()) return nullptr;
  auto it = props->find(name);
  return it == props->end() ? nullptr : &*it;
}

bool IsRequired(const nlohmann::json* schema, const std::string& name) {
  if (schema == nullptr) return false;
  auto req = schema->find("required");
  if (req == schema->end() || !req->is_array()) return false;
  return std::find(req->begin(), req->end(), nlohmann::json(name)) != req->end();
}

// Whether an object schema declares its properties, so that an unknown one is a mistake.
bool DeclaresProperties(const nlohmann::json* schema) {
  return schema != nullptr && schema->is_object() && schema->contains("properties") &&
         (*schema)["properties"].is_object();
}

bool IsBuiltin(const std::string& name) {
  return name == "tool" || name == "args" || name == "query";
}

// What the checker knows about an expression: its possible JSON types, the
// schema it came from (for field access), its constant value if it has one, and
// for arrays the types of their items.
struct Info {
  unsigned mask = kAny;
  const nlohmann::json* schema = nullptr;
  // Borrowed from the AST or the checked constants, never copied: a big `let`
  // list used in many rules must not be copied for each use.
  const nlohmann::json* constant = nullptr;
  unsigned items = kAny;
  std::string what;  // how to name it in a message, e.g. "`amount`"
};

struct Scope {
  const std::string* tool = nullptr;            // the tool being checked against, if known
  const nlohmann::json* tool_schema = nullptr;  // its argument schema
  Effect effect = Effect::kAllow;
  std::vector<std::pair<std::string, Info>> locals;  // quantifier variables, innermost last
};

// Schemas of the values url() and email() return, so field names are checked.
const nlohmann::json& UrlSchema() {
  static const nlohmann::json* const kSchema = new nlohmann::json(nlohmann::json::parse(R"({
    "type": "object", "properties": {"scheme": {"type": "string"}, "host": {"type": "string"},
    "port": {"type": ["number", "null"]}, "path": {"type": "string"}, "query": {"type": "string"}},
    "required": ["scheme", "host", "port", "path", "query"]})"));
  return *kSchema;
}
const nlohmann::json& EmailSchema() {
  static const nlohmann::json* const kSchema = new nlohmann::json(nlohmann::json::parse(R"({
    "type": "object", "properties": {"local": {"type": "string"}, "domain": {"type": "string"}},
    "required": ["local", "domain"]})"));
  return *kSchema;
}

class Checker {
 public:
  Checker(const Source& source, const ToolCatalog* catalog, Diagnostics* diagnostics)
      : source_(source), catalog_(catalog), diagnostics_(diagnostics) {}

  void Run(CheckedPolicy* out) {
    out_ = out;
    bool seen_rule = false;
    for (size_t i = 0; i < out->ast.items.size(); ++i) {
      Item& item = out->ast.items[i];
      switch (item.kind) {
        case ItemKind::kPolicy:
          if (i != 0) Error(item.position, "`policy` must be the first item");
          out->name = item.name;
          break;
        case ItemKind::kTools:
          if (out->tools_path) Error(item.position, "more than one `tools` item");
          out->tools_path = item.path;
          break;
        case ItemKind::kTrust:
          for (const Target& t : item.trust) {
            CheckTarget(t, /*warn_only=*/true);
            out->trusted_tools.push_back(t);
          }
          break;
        case ItemKind::kLet:
          CheckLet(item);
          break;
        case ItemKind::kDefault:
          if (out->default_fallback) Error(item.position, "more than one `default` item");
          if (seen_rule) Warning(item.position, "`default` after rules; it applies to all of them");
          CheckMessage(item.fallback);
          out->default_fallback = item.fallback;
          break;
        case ItemKind::kRule:
          seen_rule = true;
          CheckRule(item.rule, /*in_update=*/false);
          break;
      }
    }
    if (uses_from_trusted_ && out->trusted_tools.empty()) {
      Warning(from_trusted_position_,
              "`from trusted` but no `trust` item: only values the host registers count");
    }
    CheckShadowing();
  }

 private:
  void Error(Position p, std::string message) {
    if (seen_.insert({p.offset, message}).second) diagnostics_->Error(p, std::move(message));
  }
  void Warning(Position p, std::string message) {
    if (seen_.insert({p.offset, message}).second) diagnostics_->Warning(p, std::move(message));
  }

  std::string Text(const Expr& e) const {
    const std::string& text = source_.text();
    if (e.end_offset <= e.position.offset || e.end_offset > text.size()) return "expression";
    std::string snippet = text.substr(e.position.offset, e.end_offset - e.position.offset);
    snippet = Abbreviate(snippet, 60);
    return "`" + snippet + "`";
  }

  void CheckTarget(const Target& t, bool warn_only) {
    if (catalog_ == nullptr || t.text == "*") return;
    if (t.IsGlob()) {
      for (const auto& entry : catalog_->tools()) {
        if (GlobMatch(t.text, entry.first)) return;
      }
      Warning(t.position, "glob `" + t.text + "` matches no known tool");
    } else if (!catalog_->Contains(t.text)) {
      std::string message = "unknown tool `" + t.text + "`";
      if (warn_only) {
        Warning(t.position, message);
      } else {
        Error(t.position, message);
      }
    }
  }

  void CheckLet(Item& item) {
    if (IsBuiltin(item.name)) {
      Error(item.position, "`" + item.name + "` is a built-in name and cannot be redefined");
      return;
    }
    if (out_->constants.count(item.name)) {
      Error(item.position, "`" + item.name + "` is already defined");
      return;
    }
    std::optional<nlohmann::json> value = ConstantValue(*item.value);
    if (value) out_->constants[item.name] = std::move(*value);
  }

  // Evaluates a `let` value: literals, lists, earlier constants, and arithmetic.
  std::optional<nlohmann::json> ConstantValue(const Expr& e) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.literal;
      case ExprKind::kList: {
        nlohmann::json list = nlohmann::json::array();
        for (const auto& c : e.children) {
          auto v = ConstantValue(*c);
          if (!v) return std::nullopt;
          list.push_back(std::move(*v));
        }
        return list;
      }
      case ExprKind::kName: {
        auto it = out_->constants.find(e.name);
        if (it != out_->constants.end()) return it->second;
        Error(e.position, "unknown constant `" + e.name +
                              "`; `let` values may use only literals and earlier constants");
        return std::nullopt;
      }
      case ExprKind::kUnary:
      case ExprKind::kBinary: {
        std::vector<double> operands;
        for (const auto& c : e.children) {
          auto v = ConstantValue(*c);
          if (!v) return std::nullopt;
          if (!v->is_number()) {
            Error(c->position, "`let` arithmetic needs numbers, got " + MaskName(MaskOfValue(*v)));
            return std::nullopt;
          }
          operands.push_back(v->get<double>());
        }
        double r = 0;
        switch (e.op) {
          case Op::kNeg:
            r = -operands[0];
            break;
          case Op::kAdd:
            r = operands[0] + operands[1];
            break;
          case Op::kSub:
            r = operands[0] - operands[1];
            break;
          case Op::kMul:
            r = operands[0] * operands[1];
            break;
          case Op::kDiv:
          case Op::kMod:
            if (operands[1] == 0) {
              Error(e.position, "division by zero");
              return std::nullopt;
            }
            r = e.op == Op::kDiv ? operands[0] / operands[1] : std::fmod(operands[0], operands[1]);
            break;
          default:
            Error(e.position, "`let` values may use only literals, lists, constants and + - * / %");
            return std::nullopt;
        }
        if (!std::isfinite(r)) {
          Error(e.position, "`let` arithmetic overflows");
          return std::nullopt;
        }
        if (std::abs(r) < 9e15 && r == static_cast<double>(static_cast<int64_t>(r))) {
          return nlohmann::json(static_cast<int64_t>(r));
        }
        return nlohmann::json(r);
      }
      default:
        Error(e.position, "`let` values may use only literals, lists, constants and + - * / %");
        return std::nullopt;
    }
  }

  void CheckMessage(const Fallback& f) {
    if (!f.message) return;
    const std::string& m = *f.message;
    for (size_t i = 0; i < m.size(); ++i) {
      if (m[i] != '{') continue;
      size_t close = m.find('}', i);
      if (close == std::string::npos) break;
      std::string name = m.substr(i + 1, close - i - 1);
      if (!IsMessagePlaceholder(name)) {
        Error(f.position, "unknown placeholder `{" + name +
                              "}` in message; use {tool}, {query}, {rule} or {reason}");
      }
      i = close;
    }
  }

  void CheckRule(const Rule& rule, bool in_update) {
    if (rule.priority && (*rule.priority < 0 || *rule.priority > kMaxPriority)) {
      Error(rule.priority_position,
            "priority must be between 0 and " + std::to_string(kMaxPriority));
    }
    if (rule.fallback) {
      if (rule.effect == Effect::kAllow) {
        Error(rule.fallback->position,
              "`fallback` on an `allow` rule; only `forbid` rules have one");
      }
      CheckMessage(*rule.fallback);
    }
    std::vector<std::pair<const std::string*, const nlohmann::json*>> tools;
    for (const Target& t : rule.targets) {
      CheckTarget(t, /*warn_only=*/false);
      if (catalog_ != nullptr && !t.IsGlob() && t.text != "*") {
        if (const nlohmann::json* schema = catalog_->Find(t.text))
          tools.push_back({&t.text, schema});
      }
    }
    if (rule.condition != nullptr) {
      current_condition_ = rule.condition.get();
      CollectNullGuards(current_condition_);
      // Check once per known target tool, so argument names and types are checked
      // against each; once without a tool when none is known.
      bool any_unknown = tools.empty();
      for (const auto& [name, schema] : tools) {
        Scope scope;
        scope.tool = name;
        scope.tool_schema = schema;
        scope.effect = rule.effect;
        ExpectBool(*rule.condition, scope, "a condition");
      }
      if (any_unknown) {
        Scope scope;
        scope.effect = rule.effect;
        ExpectBool(*rule.condition, scope, "a condition");
      }
    }
    for (const Rule& update : rule.updates) CheckRule(update, /*in_update=*/true);
    if (!in_update) top_rules_.push_back(&rule);
  }

  void ExpectBool(const Expr& e, Scope& scope, const char* what) {
    Info info = CheckExpr(e, scope);
    if (!(info.mask & kBool)) {
      Error(e.position, std::string(what) + " must be a boolean, but " + Text(e) + " is " +
                            MaskName(info.mask));
    }
  }

  // Reports an error when `info` cannot have any of the types in `wanted`.
  bool Expect(const Expr& e, const Info& info, unsigned wanted, const std::string& context) {
    if (info.mask & wanted) return true;
    Error(e.position, context + " needs " + MaskName(wanted) + ", but " + Text(e) + " is " +
                          MaskName(info.mask));
    return false;
  }

  Info FromSchema(const nlohmann::json* schema, bool optional) {
    Info info;
    info.schema = schema;
    info.mask = MaskOfSchema(schema) | (optional ? unsigned{kNull} : 0u);
    if (schema != nullptr && schema->is_object() && schema->contains("items")) {
      info.items = MaskOfSchema(&(*schema)["items"]);
    }
    return info;
  }

  Info ConstantInfo(const nlohmann::json& value) {
    Info info;
    info.mask = MaskOfValue(value);
    info.constant = &value;
    if (value.is_array()) {
      auto cached = items_mask_.find(&value);
      if (cached == items_mask_.end()) {
        unsigned items = 0;
        for (const auto& e : value) items |= MaskOfValue(e);
        cached = items_mask_.emplace(&value, value.empty() ? unsigned{kAny} : items).first;
      }
      info.items = cached->second;
    }
    return info;
  }

  Info CheckName(const Expr& e, Scope& scope) {
    for (auto it = scope.locals.rbegin(); it != scope.locals.rend(); ++it) {
      if (it->first == e.name) return it->second;
    }
    bool is_argument = PropertySchema(scope.tool_schema, e.name) != nullptr;
    if (IsBuiltin(e.name)) {
      if (is_argument) {
        Warning(e.position, "`" + e.name + "` is the built-in, not the argument of `" +
                                *scope.tool + "`; write `args." + e.name + "` for the argument");
      }
      Info info;
      info.mask = e.name == "args" ? kObject : kString;
      if (e.name == "args") info.schema = scope.tool_schema;
      return info;
    }
    auto constant = out_->constants.find(e.name);
    if (constant != out_->constants.end()) {
      if (is_argument) {
        Warning(e.position, "`" + e.name + "` is the constant, not the argument of `" +
                                *scope.tool + "`; write `args." + e.name + "` for the argument");
      }
      return ConstantInfo(constant->second);
    }
    if (scope.tool_schema == nullptr) return Info{};  // no schema: any argument name goes
    if (!is_argument) {
      if (DeclaresProperties(scope.tool_schema) || scope.tool_schema->empty()) {
        Error(e.position, "unknown argument `" + e.name + "` of tool `" + *scope.tool + "`");
      }
      return Info{};
    }
    bool optional = !IsRequired(scope.tool_schema, e.name);
    if (optional && scope.effect == Effect::kForbid && !HasNullGuard(e.name)) {
      Warning(e.position, "optional argument `" + e.name + "` of `" + *scope.tool +
                              "` may be missing (null) here; guard it with `" + e.name +
                              " != null`");
    }
    return FromSchema(PropertySchema(scope.tool_schema, e.name), optional);
  }

  // The names the rule's condition compares with null anywhere (computed once per rule).
  void CollectNullGuards(const Expr* condition) {
    null_guarded_.clear();
    std::vector<const Expr*> stack = {condition};
    while (!stack.empty()) {
      const Expr* e = stack.back();
      stack.pop_back();
      if (e == nullptr) continue;
      if (e->kind == ExprKind::kBinary && (e->op == Op::kEq || e->op == Op::kNe)) {
        const Expr& a = *e->children[0];
        const Expr& b = *e->children[1];
        auto is_null = [](const Expr& x) {
          return x.kind == ExprKind::kLiteral && x.literal.is_null();
        };
        if (a.kind == ExprKind::kName && is_null(b)) null_guarded_.insert(a.name);
        if (b.kind == ExprKind::kName && is_null(a)) null_guarded_.insert(b.name);
      }
      for (const auto& c : e->children) stack.push_back(c.get());
    }
  }

  bool HasNullGuard(const std::string& name) const { return null_guarded_.count(name) > 0; }

  Info CheckField(const Expr& e, Scope& scope) {
    Info base = CheckExpr(*e.children[0], scope);
    if (!Expect(*e.children[0], base, kObject, "field access `." + e.name + "`")) return Info{};
    if (base.constant && base.constant->is_object()) {
      auto it = base.constant->find(e.name);
      static const nlohmann::json* const kNull = new nlohmann::json();
      return it == base.constant->end() ? ConstantInfo(*kNull) : ConstantInfo(*it);
    }
    if (DeclaresProperties(base.schema)) {
      const nlohmann::json* prop = PropertySchema(base.schema, e.name);
      if (prop == nullptr) {
        Error(e.position, Text(*e.children[0]) + " has no field `" + e.name + "`");
        return Info{};
      }
      return FromSchema(prop, !IsRequired(base.schema, e.name));
    }
    return Info{};
  }

  Info CheckIndex(const Expr& e, Scope& scope) {
    Info base = CheckExpr(*e.children[0], scope);
    Info index = CheckExpr(*e.children[1], scope);
    Expect(*e.children[0], base, kArray | kObject, "indexing");
    Expect(*e.children[1], index, kNumber | kString, "an index");
    if (base.schema != nullptr && base.schema->is_object()) {
      if ((index.mask & kNumber) && base.schema->contains("items")) {
        return FromSchema(&(*base.schema)["items"], true);
      }
      if (index.constant && index.constant->is_string()) {
        const nlohmann::json* prop =
            PropertySchema(base.schema, index.constant->get<std::string>());
        if (prop != nullptr)
          return FromSchema(prop, !IsRequired(base.schema, index.constant->get<std::string>()));
        if (DeclaresProperties(base.schema) && &*base.schema == scope.tool_schema) {
          Error(e.children[1]->position, "unknown argument `" + index.constant->get<std::string>() +
                                             "` of tool `" + *scope.tool + "`");
        }
      }
    }
    Info any;
    return any;
  }

  // The tool named by count()/called()/sum(): a bare name or a string (glob).
  void CheckToolReference(const Expr& e) {
    if (e.kind == ExprKind::kName) {
      Target t{e.name, false, e.position};
      CheckTarget(t, false);
    } else if (e.kind == ExprKind::kLiteral && e.literal.is_string()) {
      Target t{e.literal.get<std::string>(), true, e.position};
      CheckTarget(t, false);
    } else {
      Error(e.position, "expected a tool name or a quoted glob, got " + Text(e));
    }
  }

  Info CheckCall(const Expr& e, Scope& scope) {
    static const std::map<std::string, size_t> kArity = {
        {"lower", 1}, {"len", 1},    {"type", 1}, {"url", 1}, {"email", 1}, {"path", 1},
        {"count", 1}, {"called", 1}, {"sum", 1},  {"all", 2}, {"any", 2}};
    auto arity = kArity.find(e.name);
    if (arity == kArity.end()) {
      Error(e.position, "unknown function `" + e.name + "`");
      return Info{};
    }
    if (e.children.size() != arity->second) {
      Error(e.position, "`" + e.name + "` takes " + std::to_string(arity->second) + " argument" +
                            (arity->second == 1 ? "" : "s") + ", got " +
                            std::to_string(e.children.size()));
      return Info{};
    }
    Info result;
    const std::string& f = e.name;
    if (f == "count" || f == "called") {
      CheckToolReference(*e.children[0]);
      result.mask = f == "count" ? kNumber : kBool;
      return result;
    }
    if (f == "sum") {
      const Expr& arg = *e.children[0];
      if (arg.kind != ExprKind::kField) {
        Error(arg.position, "`sum` takes TOOL.ARGUMENT, e.g. `sum(send_money.amount)`");
        return Info{};
      }
      CheckToolReference(*arg.children[0]);
      const Expr& tool = *arg.children[0];
      if (catalog_ != nullptr && tool.kind == ExprKind::kName) {
        const nlohmann::json* schema = catalog_->Find(tool.name);
        if (schema != nullptr && DeclaresProperties(schema) && !PropertySchema(schema, arg.name)) {
          Error(arg.position, "unknown argument `" + arg.name + "` of tool `" + tool.name + "`");
        }
      }
      result.mask = kNumber;
      return result;
    }
    if (f == "all" || f == "any") {
      const Expr& binding = *e.children[0];
      if (binding.kind != ExprKind::kBinary || binding.op != Op::kIn ||
          binding.children[0]->kind != ExprKind::kName) {
        Error(binding.position, "`" + f + "` takes `NAME in ARRAY, CONDITION`");
        return Info{};
      }
      const std::string& var = binding.children[0]->name;
      if (IsBuiltin(var)) Error(binding.position, "`" + var + "` is a built-in name");
      Info array = CheckExpr(*binding.children[1], scope);
      Expect(*binding.children[1], array, kArray, "`" + f + "`");
      Info element;
      element.mask = array.items;
      if (array.schema && array.schema->is_object() && array.schema->contains("items")) {
        element = FromSchema(&(*array.schema)["items"], false);
      }
      element.what = var;
      if (scope.locals.size() >= static_cast<size_t>(kMaxQuantifierNesting)) {
        Error(e.position, "quantifiers nest deeper than " + std::to_string(kMaxQuantifierNesting));
        return Info{};
      }
      scope.locals.push_back({var, element});
      ExpectBool(*e.children[1], scope, "the condition of `all`/`any`");
      scope.locals.pop_back();
      result.mask = kBool;
      return result;
    }
    Info arg = CheckExpr(*e.children[0], scope);
    if (f == "len") {
      Expect(*e.children[0], arg, kString | kArray | kObject, "`len`");
      result.mask = kNumber;
    } else if (f == "type") {
      result.mask = kString;
    } else {
      Expect(*e.children[0], arg, kString, "`" + f + "`");
      if (f == "url") {
        result.mask = kObject;
        result.schema = &UrlSchema();
      } else if (f == "email") {
        result.mask = kObject;
        result.schema = &EmailSchema();
      } else {
        result.mask = kString;  // lower, path
      }
    }
    return result;
  }

  void CheckRegex(const Expr& pattern_expr, const Info& pattern) {
    if (!pattern.constant || !pattern.constant->is_string()) {
      Error(pattern_expr.position, "the pattern of `matches` must be a constant string");
      return;
    }
    RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(kMaxRegexMemory);
    RE2 re(pattern.constant->get<std::string>(), options);
    if (!re.ok()) {
      Error(pattern_expr.position, "invalid regex: " + re.error());
    } else if (re.ProgramSize() > kMaxRegexProgramSize ||
               re.ReverseProgramSize() > kMaxRegexProgramSize) {
      Error(pattern_expr.position,
            "regex program is too large (" +
                std::to_string(std::max(re.ProgramSize(), re.ReverseProgramSize())) + " > " +
                std::to_string(kMaxRegexProgramSize) + ")");
    }
  }

  Info CheckBinary(const Expr& e, Scope& scope) {
    const Expr& l = *e.children[0];
    const Expr& r = *e.children[1];
    Info result;
    if (e.op == Op::kAnd || e.op == Op::kOr) {
      ExpectBool(l, scope, "an operand of `and`/`or`");
      ExpectBool(r, scope, "an operand of `and`/`or`");
      result.mask = kBool;
      return result;
    }
    Info li = CheckExpr(l, scope);
    Info ri = CheckExpr(r, scope);
    const std::string op = std::string("`") + OpSpelling(e.op) + "`";
    switch (e.op) {
      case Op::kAdd:
      case Op::kSub:
      case Op::kMul:
      case Op::kDiv:
      case Op::kMod:
        Expect(l, li, kNumber, op);
        Expect(r, ri, kNumber, op);
        result.mask = kNumber;
        return result;
      case Op::kEq:
      case Op::kNe:
        // A comparison with null is a guard, harmless even where the schema says
        // the value is always present (a host may still omit it).
        if (!(li.mask & ri.mask) && li.mask != kNull && ri.mask != kNull) {
          Error(e.position, Text(l) + " is " + MaskName(li.mask) + " and " + Text(r) + " is " +
                                MaskName(ri.mask) + ", so " + op + " is always " +
                                (e.op == Op::kEq ? "false" : "true"));
        }
        result.mask = kBool;
        return result;
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe:
        if (Expect(l, li, kNumber | kString, op) && Expect(r, ri, kNumber | kString, op) &&
            !(li.mask & ri.mask & (kNumber | kString))) {
          Error(e.position, op + " compares numbers with numbers or strings with strings, but " +
                                Text(l) + " is " + MaskName(li.mask) + " and " + Text(r) + " is " +
                                MaskName(ri.mask));
        }
        result.mask = kBool;
        return result;
      case Op::kIn:
      case Op::kNotIn:
        if (Expect(r, ri, kArray, op) && !(li.mask & ri.items)) {
          Error(e.position, Text(l) + " is " + MaskName(li.mask) + " but the items of " + Text(r) +
                                " are " + MaskName(ri.items) + ", so " + op + " never matches");
        }
        result.mask = kBool;
        return result;
      case Op::kMatches:
        Expect(l, li, kString, op);
        CheckRegex(r, ri);
        result.mask = kBool;
        return result;
      case Op::kContains:
      case Op::kStartsWith:
      case Op::kEndsWith:
        Expect(l, li, kString, op);
        Expect(r, ri, kString, op);
        result.mask = kBool;
        return result;
      default:
        return result;
    }
  }

  Info CheckExpr(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return ConstantInfo(e.literal);
      case ExprKind::kList: {
        Info info;
        info.mask = kArray;
        info.items = 0;
        for (const auto& c : e.children) info.items |= CheckExpr(*c, scope).mask;
        if (e.children.empty()) info.items = kAny;
        return info;
      }
      case ExprKind::kName:
        return CheckName(e, scope);
      case ExprKind::kField:
        return CheckField(e, scope);
      case ExprKind::kIndex:
        return CheckIndex(e, scope);
      case ExprKind::kCall:
        return CheckCall(e, scope);
      case ExprKind::kUnary: {
        Info result;
        if (e.op == Op::kNot) {
          ExpectBool(*e.children[0], scope, "the operand of `not`");
          result.mask = kBool;
        } else {
          Expect(*e.children[0], CheckExpr(*e.children[0], scope), kNumber, "unary `-`");
          result.mask = kNumber;
        }
        return result;
      }
      case ExprKind::kBinary:
        return CheckBinary(e, scope);
      case ExprKind::kFrom: {
        if (e.name != "query" && e.name != "trusted") {
          Error(e.position, "`from` takes `query` or `trusted`, got `" + e.name + "`");
        }
        if (e.name == "trusted" && !uses_from_trusted_) {
          uses_from_trusted_ = true;
          from_trusted_position_ = e.position;
        }
        Info value = CheckExpr(*e.children[0], scope);
        Expect(*e.children[0], value, kString | kNumber | kArray | kNull, "`from`");
        Info result;
        result.mask = kBool;
        return result;
      }
    }
    return Info{};
  }

  // Warns about rules that an earlier unconditional rule always pre-empts.
  void CheckShadowing() {
    struct Entry {
      const Rule* rule;
      size_t order;
    };
    std::vector<Entry> entries;
    for (size_t i = 0; i < top_rules_.size(); ++i) entries.push_back({top_rules_[i], i});
    auto priority = [](const Rule* r) { return r->priority.value_or(kDefaultPriority); };
    std::stable_sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
      if (priority(a.rule) != priority(b.rule)) return priority(a.rule) < priority(b.rule);
      if (a.rule->effect != b.rule->effect) return a.rule->effect == Effect::kForbid;
      return a.order < b.order;
    });
    std::map<std::string, const Rule*> decided;  // exact tool name -> unconditional rule
    const Rule* decides_all = nullptr;           // an unconditional `*` rule
    for (const Entry& entry : entries) {
      const Rule& rule = *entry.rule;
      std::vector<std::string> names;
      bool only_names = true;
      for (const Target& t : rule.targets) {
        if (t.text == "*" || t.IsGlob()) {
          only_names = false;
        } else {
          names.push_back(t.text);
        }
      }
      const Rule* by = decides_all;
      if (by == nullptr && only_names && !names.empty()) {
        for (const std::string& n : names) {
          auto it = decided.find(n);
          if (it == decided.end()) {
            by = nullptr;
            break;
          }
          by = it->second;
        }
      }
      if (by != nullptr) {
        Warning(rule.position, "this rule can never decide: the rule at line " +
                                   std::to_string(by->position.line) + " always decides first");
      }
      if (rule.condition == nullptr) {
        for (const Target& t : rule.targets) {
          if (t.text == "*") decides_all = decides_all ? decides_all : &rule;
          if (!t.IsGlob() && t.text != "*") decided.emplace(t.text, &rule);
        }
      }
    }
  }

  const Source& source_;
  const ToolCatalog* catalog_;
  Diagnostics* diagnostics_;
  CheckedPolicy* out_ = nullptr;
  std::set<std::pair<size_t, std::string>> seen_;
  std::vector<const Rule*> top_rules_;
  bool uses_from_trusted_ = false;
  Position from_trusted_position_;
  const Expr* current_condition_ = nullptr;
  std::set<std::string> null_guarded_;  // names the current condition compares with null
  std::map<const nlohmann::json*, unsigned> items_mask_;
};

}  // namespace

CheckResult Check(PolicyAst ast, const Source& source, const ToolCatalog* catalog) {
  CheckResult result;
  auto policy = std::make_shared<CheckedPolicy>();
  policy->name = source.name();
  policy->source_name = source.name();
  policy->source_text = source.text();
  policy->ast = std::move(ast);
  if (catalog != nullptr) policy->catalog = *catalog;
  Checker checker(source, catalog, &result.diagnostics);
  checker.Run(policy.get());
  if (!result.diagnostics.HasErrors()) result.policy = std::move(policy);
  return result;
}

}  // namespace toolwarden
