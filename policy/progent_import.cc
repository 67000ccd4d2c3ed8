#include "policy/progent_import.h"

#include <re2/re2.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/formatter.h"

namespace toolwarden {
namespace {

using Json = nlohmann::ordered_json;

constexpr int64_t kMaxPriority = 1000000;
// User text quoted in a message is cut to this many bytes, a pointer to twice that.
constexpr size_t kQuoteMaxBytes = 80;
// Integral floats above this lose precision, so they are not read as counts.
constexpr double kMaxExactDouble = 9007199254740992.0;  // 2^53

constexpr std::string_view kKeywords[] = {
    "policy",   "tools",    "trust",    "let",    "default", "allow",    "forbid",
    "when",     "priority", "fallback", "update", "block",   "ask",      "terminate",
    "and",      "or",       "not",      "in",     "matches", "contains", "startswith",
    "endswith", "from",     "true",     "false",  "null"};
constexpr std::string_view kBuiltins[] = {"tool", "args", "query"};

// ---------------------------------------------------------------------------
// Text helpers

// Length of the well-formed UTF-8 sequence at s[i], or 0 if there is none.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return len;
}

// `s` with control characters and invalid UTF-8 replaced by '?', cut to about
// `max_bytes` (with "...") at a character boundary.
std::string Sanitize(std::string_view s, size_t max_bytes) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (out.size() >= max_bytes) {
      out += "...";
      break;
    }
    const size_t len = Utf8SequenceLength(s, i);
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (len == 0 || c < 0x20 || c == 0x7F) {
      out += '?';
      i += 1;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// User text for a message: `text`.
std::string Quote(std::string_view s) { return "`" + Sanitize(s, kQuoteMaxBytes) + "`"; }

// A JSON value for a message: `["a", 1]`.
std::string QuoteValue(const Json& v) {
  return Quote(v.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string Got(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "got null";
    case Json::value_t::boolean:
      return "got a boolean";
    case Json::value_t::string:
      return "got a string";
    case Json::value_t::array:
      return "got an array";
    case Json::value_t::object:
      return "got an object";
    default:
      return "got a number";
  }
}

// The error for the place `pointer` (a JSON Pointer) in the input.
Status Fail(std::string_view pointer, const std::string& message) {
  return InvalidArgumentError("`" + Sanitize(pointer, 2 * kQuoteMaxBytes) + "`: " + message);
}

std::string Child(const std::string& pointer, std::string_view token) {
  std::string out = pointer;
  out += '/';
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Child(const std::string& pointer, size_t index) {
  return pointer + "/" + std::to_string(index);
}

// A double-quoted policy-language string: JSON escapes, UTF-8 kept.
std::string StringLiteral(const std::string& s) { return Json(s).dump(); }

// A raw string r"..." when `s` allows one (no '"', no control characters),
// otherwise a double-quoted string.
std::string RegexLiteral(const std::string& s) {
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || u < 0x20 || u == 0x7F) return StringLiteral(s);
  }
  return "r\"" + s + "\"";
}

bool IsIdentifier(std::string_view s) {
  if (s.empty()) return false;
  const auto alpha = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(s[0])) return false;
  for (char c : s.substr(1)) {
    if (!alpha(c) && !digit(c)) return false;
  }
  return true;
}

bool IsKeyword(std::string_view s) {
  for (std::string_view k : kKeywords) {
    if (s == k) return true;
  }
  return false;
}

// item1, item2, ... name the elements inside `all(...)`; an argument of that
// name is written args["item1"] so that it can never be shadowed.
bool IsItemVariable(std::string_view s) {
  if (s.size() <= 4 || s.substr(0, 4) != "item") return false;
  for (char c : s.substr(4)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// How a condition refers to the argument `name`.
std::string ArgumentRef(const std::string& name) {
  bool plain = IsIdentifier(name) && !IsKeyword(name) && !IsItemVariable(name);
  for (std::string_view b : kBuiltins) {
    if (name == b) plain = false;
  }
  return plain ? name : "args[" + StringLiteral(name) + "]";
}

// ---------------------------------------------------------------------------
// Expressions

// Binding strength of an expression's outermost operator, loosest first.
enum class Prec { kOr, kAnd, kNot, kCompare, kPrimary };

struct Expr {
  std::string text;
  Prec prec = Prec::kPrimary;
  bool too_big = false;  // the text would exceed the output limit; `text` is empty
};

Expr True() { return {"true", Prec::kPrimary}; }
Expr False() { return {"false", Prec::kPrimary}; }
Expr TooBig() { return {"", Prec::kPrimary, true}; }
bool IsTrue(const Expr& e) { return !e.too_big && e.prec == Prec::kPrimary && e.text == "true"; }
bool IsFalse(const Expr& e) { return !e.too_big && e.prec == Prec::kPrimary && e.text == "false"; }

// Builds and/or/not with constant folding and generous parentheses, refusing
// (with a too_big result) to build text longer than the output limit.
class ExprBuilder {
 public:
  explicit ExprBuilder(size_t max_bytes) : max_bytes_(max_bytes) {}

  // A comparison, membership or string test: `text` binds tighter than `not`.
  Expr Compare(std::string text) const {
    if (text.size() > max_bytes_) return TooBig();
    return {std::move(text), Prec::kCompare};
  }
  // A function call such as all(...).
  Expr Call(std::string text) const {
    if (text.size() > max_bytes_) return TooBig();
    return {std::move(text), Prec::kPrimary};
  }
  Expr And(std::vector<Expr> operands) const { return Join(std::move(operands), true); }
  Expr Or(std::vector<Expr> operands) const { return Join(std::move(operands), false); }

  Expr Not(const Expr& e) const {
    if (e.too_big) return TooBig();
    if (IsTrue(e)) return False();
    if (IsFalse(e)) return True();
    if (e.text.size() + 6 > max_bytes_) return TooBig();
    return {e.prec == Prec::kPrimary ? "not " + e.text : "not (" + e.text + ")", Prec::kNot};
  }

  // True when exactly one operand is: the OR over i of (operand i and not
  // each other operand).
  Expr ExactlyOne(const std::vector<Expr>& operands) const {
    size_t total = 0;
    for (const Expr& e : operands) {
      if (e.too_big) return TooBig();
      total += e.text.size() + 16;
    }
    if (operands.size() == 1) return operands[0];
    if (total > max_bytes_ / operands.size()) return TooBig();
    std::vector<Expr> terms;
    for (size_t i = 0; i < operands.size(); ++i) {
      std::vector<Expr> conjuncts = {operands[i]};
      for (size_t j = 0; j < operands.size(); ++j) {
        if (j != i) conjuncts.push_back(Not(operands[j]));
      }
      terms.push_back(And(std::move(conjuncts)));
    }
    return Or(std::move(terms));
  }

 private:
  static bool NeedsParens(const Expr& e) { return e.prec < Prec::kCompare; }

  Expr Join(std::vector<Expr> operands, bool is_and) const {
    std::vector<Expr> kept;
    for (Expr& e : operands) {
      if (e.too_big) return TooBig();
      if (is_and ? IsFalse(e) : IsTrue(e)) return is_and ? False() : True();
      if (is_and ? IsTrue(e) : IsFalse(e)) continue;
      kept.push_back(std::move(e));
    }
    if (kept.empty()) return is_and ? True() : False();
    if (kept.size() == 1) return std::move(kept[0]);
    const std::string_view separator = is_and ? " and " : " or ";
    size_t size = 0;
    for (const Expr& e : kept) size += e.text.size() + 2 + separator.size();
    if (size > max_bytes_) return TooBig();
    std::string text;
    text.reserve(size);
    for (size_t i = 0; i < kept.size(); ++i) {
      if (i > 0) text += separator;
      if (NeedsParens(kept[i])) {
        text += '(';
        text += kept[i].text;
        text += ')';
      } else {
        text += kept[i].text;
      }
    }
    return {std::move(text), is_and ? Prec::kAnd : Prec::kOr};
  }

  size_t max_bytes_;
};

// ---------------------------------------------------------------------------
// JSON Schema types

enum TypeBit : unsigned {
  kNullType = 1,
  kBooleanType = 2,
  kNumberType = 4,
  kIntegerType = 8,
  kStringType = 16,
  kArrayType = 32,
  kObjectType = 64,
};

unsigned TypeBitOf(std::string_view name) {
  if (name == "null") return kNullType;
  if (name == "boolean") return kBooleanType;
  if (name == "number") return kNumberType;
  if (name == "integer") return kIntegerType;
  if (name == "string") return kStringType;
  if (name == "array") return kArrayType;
  if (name == "object") return kObjectType;
  return 0;
}

// Which guard a keyword needs when `type` does not pin the value to its type.
enum class Guard { kNone, kString, kNumber, kArray };

bool IsAnnotation(std::string_view k) {
  return k == "title" || k == "description" || k == "$comment" || k == "examples" || k == "default";
}

bool IsSupportedKeyword(std::string_view k) {
  static constexpr std::string_view kSupported[] = {"type",
                                                    "enum",
                                                    "const",
                                                    "pattern",
                                                    "minimum",
                                                    "maximum",
                                                    "exclusiveMinimum",
                                                    "exclusiveMaximum",
                                                    "multipleOf",
                                                    "minLength",
                                                    "maxLength",
                                                    "items",
                                                    "minItems",
                                                    "maxItems",
                                                    "anyOf",
                                                    "allOf",
                                                    "oneOf",
                                                    "not"};
  if (IsAnnotation(k)) return true;
  for (std::string_view s : kSupported) {
    if (k == s) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The translator

class Translator {
 public:
  explicit Translator(const ProgentImportLimits& limits)
      : limits_(limits), ex_(limits.max_output_bytes) {}

  // The rules of a `{TOOL: [ENTRY, ...]}` object at `pointer`, without ';'.
  StatusOr<std::vector<std::string>> ToolMap(const Json& tools, const std::string& pointer) {
    std::vector<std::string> rules;
    for (auto it = tools.begin(); it != tools.end(); ++it) {
      const std::string tool_pointer = Child(pointer, it.key());
      StatusOr<std::string> target = ToolTarget(it.key(), tool_pointer);
      if (!target.ok()) return target.status();
      const Json& entries = it.value();
      if (!entries.is_array()) {
        return Fail(tool_pointer,
                    "the entries of tool " + Quote(it.key()) + " must be a list, " + Got(entries));
      }
      for (size_t i = 0; i < entries.size(); ++i) {
        const std::string entry_pointer = Child(tool_pointer, i);
        StatusOr<std::string> rule = Entry(entries[i], entry_pointer, *target);
        if (!rule.ok()) return rule.status();
        rules.push_back(std::move(*rule));
      }
    }
    return rules;
  }

 private:
  Status OutputTooBig(const std::string& pointer) const {
    return ResourceExhaustedError("`" + Sanitize(pointer, 2 * kQuoteMaxBytes) +
                                  "`: the translation grows past the limit of " +
                                  std::to_string(limits_.max_output_bytes) + " bytes");
  }

  static StatusOr<std::string> ToolTarget(const std::string& name, const std::string& pointer) {
    if (name.empty()) return Fail(pointer, "a tool name cannot be empty");
    if (name.find_first_of("*?") != std::string::npos) {
      return Fail(pointer, "tool name " + Quote(name) +
                               " contains `*` or `?`, which toolwarden reads as a glob");
    }
    return FormatToolName(name);
  }

  StatusOr<std::string> Entry(const Json& entry, const std::string& pointer,
                              const std::string& target) {
    if (!entry.is_object()) {
      std::string message = "an entry must be an object, " + Got(entry);
      if (entry.is_array()) message += " (the tuple form is not supported)";
      return Fail(pointer, message);
    }
    const Json* priority = nullptr;
    const Json* effect = nullptr;
    const Json* conditions = nullptr;
    const Json* fallback = nullptr;
    const Json* fallback_msg = nullptr;
    const Json* update = nullptr;
    for (auto it = entry.begin(); it != entry.end(); ++it) {
      const std::string& key = it.key();
      if (key == "priority") {
        priority = &it.value();
      } else if (key == "effect") {
        effect = &it.value();
      } else if (key == "conditions") {
        conditions = &it.value();
      } else if (key == "fallback") {
        fallback = &it.value();
      } else if (key == "fallback_msg") {
        fallback_msg = &it.value();
      } else if (key == "update") {
        update = &it.value();
      } else {
        return Fail(Child(pointer, key),
                    "unknown entry key " + Quote(key) +
                        " (expected `priority`, `effect`, `conditions`, `fallback`, "
                        "`fallback_msg` or `update`)");
      }
    }

    // priority
    if (priority == nullptr) return Fail(pointer, "the entry has no `priority`");
    const bool priority_ok =
        (priority->is_number_unsigned() && priority->get<uint64_t>() <= kMaxPriority) ||
        (priority->is_number_integer() && !priority->is_number_unsigned() &&
         priority->get<int64_t>() >= 0 && priority->get<int64_t>() <= kMaxPriority);
    if (!priority_ok) {
      return Fail(Child(pointer, "priority"),
                  "`priority` must be an integer from 0 to 1000000, got " + QuoteValue(*priority));
    }

    // effect
    if (effect == nullptr) return Fail(pointer, "the entry has no `effect`");
    bool allow = false;
    bool effect_ok = false;
    if (effect->is_number_integer()) {
      effect_ok = *effect == Json(0) || *effect == Json(1);
      allow = *effect == Json(0);
    } else if (effect->is_string()) {
      effect_ok = *effect == Json("allow") || *effect == Json("forbid") || *effect == Json("deny");
      allow = *effect == Json("allow");
    }
    if (!effect_ok) {
      return Fail(
          Child(pointer, "effect"),
          "`effect` must be 0, 1, \"allow\", \"forbid\" or \"deny\", got " + QuoteValue(*effect));
    }

    // fallback and fallback_msg
    std::string fallback_word = "block";
    if (fallback != nullptr) {
      if (fallback->is_number_integer() && *fallback == Json(0)) {
        fallback_word = "block";
      } else if (fallback->is_number_integer() && *fallback == Json(1)) {
        fallback_word = "terminate";
      } else if (fallback->is_number_integer() && *fallback == Json(2)) {
        fallback_word = "ask";
      } else if (fallback->is_string() &&
                 (*fallback == Json("block") || *fallback == Json("terminate") ||
                  *fallback == Json("ask"))) {
        fallback_word = fallback->get<std::string>();
      } else {
        return Fail(Child(pointer, "fallback"),
                    "`fallback` must be 0, 1, 2, \"block\", \"terminate\" or \"ask\", got " +
                        QuoteValue(*fallback));
      }
    }
    std::string message;
    if (fallback_msg != nullptr) {
      if (!fallback_msg->is_string()) {
        return Fail(Child(pointer, "fallback_msg"),
                    "`fallback_msg` must be a string, " + Got(*fallback_msg));
      }
      message = fallback_msg->get<std::string>();
      Status placeholders = CheckPlaceholders(message, Child(pointer, "fallback_msg"));
      if (!placeholders.ok()) return placeholders;
    }
    if (allow && fallback_word != "block") {
      return Fail(Child(pointer, "fallback"), "an allow entry cannot have fallback `" +
                                                  fallback_word +
                                                  "`: fallbacks apply only to forbid entries");
    }
    if (allow && !message.empty()) {
      return Fail(Child(pointer, "fallback_msg"),
                  "an allow entry cannot have a `fallback_msg`: fallbacks apply only to forbid "
                  "entries");
    }

    // conditions
    Expr when = True();
    if (conditions != nullptr) {
      const std::string conditions_pointer = Child(pointer, "conditions");
      if (!conditions->is_object()) {
        return Fail(conditions_pointer,
                    "`conditions` must be an object mapping argument names "
                    "to JSON Schemas or regexes, " +
                        Got(*conditions));
      }
      std::vector<Expr> parts;
      for (auto it = conditions->begin(); it != conditions->end(); ++it) {
        StatusOr<Expr> part =
            Condition(it.value(), Child(conditions_pointer, it.key()), it.key(), allow);
        if (!part.ok()) return part.status();
        parts.push_back(std::move(*part));
      }
      when = ex_.And(std::move(parts));
      if (when.too_big) return OutputTooBig(conditions_pointer);
    }

    // update
    std::vector<std::string> update_rules;
    if (update != nullptr) {
      const std::string update_pointer = Child(pointer, "update");
      if (!update->is_object()) {
        return Fail(
            update_pointer,
            "`update` must be an object mapping tool names to lists of entries, " + Got(*update));
      }
      StatusOr<std::vector<std::string>> rules = ToolMap(*update, update_pointer);
      if (!rules.ok()) return rules.status();
      update_rules = std::move(*rules);
    }

    std::string rule = (allow ? "allow " : "forbid ") + target;
    if (!IsTrue(when)) rule += " when " + when.text;
    rule += " priority " + priority->dump();
    if (!allow) {
      rule += " fallback " + fallback_word;
      if (!message.empty()) rule += " " + StringLiteral(message);
    }
    // Each rule counts its own text; its update rules counted theirs.
    output_bytes_ += rule.size() + 12;
    if (output_bytes_ > limits_.max_output_bytes) return OutputTooBig(pointer);
    if (!update_rules.empty()) {
      rule += " update {";
      for (const std::string& r : update_rules) rule += " " + r + ";";
      rule += " }";
    }
    return rule;
  }

  // toolwarden fills `{tool}`, `{query}`, `{rule}` and `{reason}` in a
  // message and rejects any other `{...}` (language.md has no escape for it),
  // so such a message is an error here rather than in the output.
  static Status CheckPlaceholders(const std::string& message, const std::string& pointer) {
    for (size_t open = message.find('{'); open != std::string::npos;
         open = message.find('{', open + 1)) {
      const size_t close = message.find('}', open);
      if (close == std::string::npos) break;
      const std::string name = message.substr(open + 1, close - open - 1);
      if (name != "tool" && name != "query" && name != "rule" && name != "reason") {
        return Fail(pointer, Quote("{" + name + "}") +
                                 " is not a toolwarden message placeholder (`{tool}`, `{query}`, "
                                 "`{rule}` or `{reason}`) and toolwarden messages cannot hold "
                                 "other `{...}`");
      }
      open = close;
    }
    return OkStatus();
  }

  // Whether a schema explicitly accepts null: `type` lists "null", `enum` or
  // `const` holds null, or an `anyOf`/`oneOf` branch (every `allOf` branch) does.
  // A schema that merely does not constrain null does not count: a missing
  // argument reads as null, and it must fail an allow entry.
  static bool NamesNull(const Json& schema, int depth) {
    if (!schema.is_object() || depth > 64) return false;
    auto type = schema.find("type");
    if (type != schema.end()) {
      if (type->is_string()) return *type == Json("null");
      bool listed = false;
      if (type->is_array()) {
        for (const Json& t : *type) listed = listed || t == Json("null");
      }
      return listed;
    }
    auto e = schema.find("enum");
    if (e != schema.end() && e->is_array()) {
      for (const Json& v : *e) {
        if (v.is_null()) return true;
      }
    }
    auto c = schema.find("const");
    if (c != schema.end() && c->is_null()) return true;
    for (const char* key : {"anyOf", "oneOf"}) {
      auto branches = schema.find(key);
      if (branches != schema.end() && branches->is_array()) {
        for (const Json& b : *branches) {
          if (NamesNull(b, depth + 1)) return true;
        }
      }
    }
    auto all = schema.find("allOf");
    if (all != schema.end() && all->is_array() && !all->empty()) {
      for (const Json& b : *all) {
        if (!NamesNull(b, depth + 1)) return false;
      }
      return true;
    }
    return false;
  }

  // The condition of one argument, failing closed on a missing argument.
  StatusOr<Expr> Condition(const Json& condition, const std::string& pointer,
                           const std::string& name, bool allow) {
    const std::string value = ArgumentRef(name);
    Expr schema;
    bool admits_null = false;
    if (condition.is_string()) {
      StatusOr<Expr> match = Pattern(condition, pointer, value);
      if (!match.ok()) return match.status();
      schema = ex_.And({ex_.Compare("type(" + value + ") == \"string\""), std::move(*match)});
    } else if (condition.is_object() || condition.is_boolean()) {
      StatusOr<Expr> compiled = Schema(condition, pointer, value, 0);
      if (!compiled.ok()) return compiled.status();
      schema = std::move(*compiled);
      admits_null = NamesNull(condition, 0);
    } else {
      return Fail(pointer,
                  "a condition must be a JSON Schema object or a regex string, " + Got(condition));
    }
    if (IsTrue(schema) || admits_null) return schema;
    Expr result = allow ? ex_.And({ex_.Compare(value + " != null"), std::move(schema)})
                        : ex_.Or({ex_.Compare(value + " == null"), std::move(schema)});
    if (result.too_big) return OutputTooBig(pointer);
    return result;
  }

  // `value` matches the Python re.search pattern `pattern` (a JSON string).
  StatusOr<Expr> Pattern(const Json& pattern, const std::string& pointer,
                         const std::string& value) {
    if (!pattern.is_string()) return Fail(pointer, "`pattern` must be a string, " + Got(pattern));
    const std::string& p = pattern.get_ref<const std::string&>();
    RE2::Options options;
    options.set_log_errors(false);
    RE2 re(p, options);
    if (!re.ok()) {
      return Fail(pointer, "RE2 rejects the regex " + Quote(p) + ": " + Sanitize(re.error(), 200));
    }
    // Unanchored like re.search; the dot-all only applies to the added ends,
    // so `.` inside the pattern still excludes newlines as it does in Python.
    const std::string full = "(?s:.*)(?:" + p + ")(?s:.*)";
    RE2 full_re(full, options);
    if (!full_re.ok()) {
      return Fail(pointer, "RE2 rejects the regex " + Quote(p) +
                               " once made unanchored: " + Sanitize(full_re.error(), 200));
    }
    return ex_.Compare(value + " matches " + RegexLiteral(full));
  }

  // A JSON value as a policy-language literal.
  static StatusOr<std::string> Literal(const Json& v, const std::string& pointer) {
    if (v.is_object()) {
      return Fail(pointer,
                  "objects cannot be written as toolwarden literals, so `enum` and "
                  "`const` cannot hold them");
    }
    if (!v.is_array()) return v.dump();  // null, boolean, number, string
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      StatusOr<std::string> item = Literal(v[i], Child(pointer, i));
      if (!item.ok()) return item;
      if (i > 0) out += ", ";
      out += *item;
    }
    out += "]";
    return out;
  }

  // A number keyword's value.
  static StatusOr<std::string> Number(const Json& v, const std::string& pointer,
                                      std::string_view keyword) {
    if (!v.is_number()) {
      std::string message = "`" + std::string(keyword) + "` must be a number, " + Got(v);
      if (v.is_boolean()) message += " (the draft-04 boolean form is not supported)";
      return Fail(pointer, message);
    }
    return v.dump();
  }

  // A count keyword's value (minLength, maxItems, ...): a non-negative integer.
  static StatusOr<std::string> Count(const Json& v, const std::string& pointer,
                                     std::string_view keyword) {
    if (v.is_number_unsigned()) return v.dump();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.dump();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (d >= 0 && d <= kMaxExactDouble && std::floor(d) == d) {
        return std::to_string(static_cast<uint64_t>(d));
      }
    }
    return Fail(pointer, "`" + std::string(keyword) + "` must be a non-negative integer, got " +
                             QuoteValue(v));
  }

  // A schema (object or boolean) or an error for anything else.
  StatusOr<Expr> SubSchema(const Json& schema, const std::string& pointer, const std::string& value,
                           int item_depth) {
    if (!schema.is_object() && !schema.is_boolean()) {
      return Fail(pointer, "a JSON Schema must be an object or a boolean, " + Got(schema));
    }
    return Schema(schema, pointer, value, item_depth);
  }

  // The schema's constraint on `value`. `item_depth` counts the `items`
  // around it, to name the element variables item1, item2, ...
  StatusOr<Expr> Schema(const Json& schema, const std::string& pointer, const std::string& value,
                        int item_depth) {
    if (schema.is_boolean()) return schema.get<bool>() ? True() : False();
    for (auto it = schema.begin(); it != schema.end(); ++it) {
      if (!IsSupportedKeyword(it.key())) {
        return Fail(Child(pointer, it.key()), "unsupported JSON Schema keyword " + Quote(it.key()));
      }
    }

    // `type` comes first, so that the keywords it lets go unguarded are only
    // evaluated (and with `and` short-circuits) on values of their type.
    Expr type_expr = True();
    unsigned types = 0;
    auto type_it = schema.find("type");
    if (type_it != schema.end()) {
      StatusOr<Expr> t = Type(*type_it, Child(pointer, "type"), value, &types);
      if (!t.ok()) return t.status();
      type_expr = std::move(*t);
    }
    const auto pinned_to = [&](unsigned allowed) { return types != 0 && (types & ~allowed) == 0; };
    const bool pins_string = pinned_to(kStringType);
    const bool pins_number = pinned_to(kNumberType | kIntegerType);
    const bool pins_array = pinned_to(kArrayType);

    // One slot per unguarded keyword, in input order; the keywords of one
    // guarded type share the slot of the first of them.
    struct Slot {
      Guard guard;
      std::vector<Expr> parts;
    };
    std::vector<Slot> slots;
    const auto add = [&](Guard guard, Expr e) {
      if ((guard == Guard::kString && pins_string) || (guard == Guard::kNumber && pins_number) ||
          (guard == Guard::kArray && pins_array)) {
        guard = Guard::kNone;
      }
      if (guard != Guard::kNone) {
        for (Slot& slot : slots) {
          if (slot.guard == guard) {
            slot.parts.push_back(std::move(e));
            return;
          }
        }
      }
      slots.push_back({guard, {}});
      slots.back().parts.push_back(std::move(e));
    };

    for (auto it = schema.begin(); it != schema.end(); ++it) {
      const std::string& key = it.key();
      const Json& v = it.value();
      const std::string kp = Child(pointer, key);
      if (key == "type") continue;
      if (key == "title" || key == "description" || key == "$comment") {
        if (!v.is_string()) return Fail(kp, "`" + key + "` must be a string, " + Got(v));
      } else if (key == "examples") {
        if (!v.is_array()) return Fail(kp, "`examples` must be an array, " + Got(v));
      } else if (key == "default") {
        // Any value; no constraint.
      } else if (key == "enum") {
        if (!v.is_array()) return Fail(kp, "`enum` must be an array, " + Got(v));
        if (v.empty()) {
          add(Guard::kNone, False());
        } else {
          StatusOr<std::string> lit = v.size() == 1 ? Literal(v[0], Child(kp, 0)) : Literal(v, kp);
          if (!lit.ok()) return lit.status();
          add(Guard::kNone, ex_.Compare(value + (v.size() == 1 ? " == " : " in ") + *lit));
        }
      } else if (key == "const") {
        StatusOr<std::string> lit = Literal(v, kp);
        if (!lit.ok()) return lit.status();
        add(Guard::kNone, ex_.Compare(value + " == " + *lit));
      } else if (key == "pattern") {
        StatusOr<Expr> match = Pattern(v, kp, value);
        if (!match.ok()) return match.status();
        add(Guard::kString, std::move(*match));
      } else if (key == "minLength" || key == "maxLength") {
        StatusOr<std::string> n = Count(v, kp, key);
        if (!n.ok()) return n.status();
        add(Guard::kString,
            ex_.Compare("len(" + value + ")" + (key == "minLength" ? " >= " : " <= ") + *n));
      } else if (key == "minItems" || key == "maxItems") {
        StatusOr<std::string> n = Count(v, kp, key);
        if (!n.ok()) return n.status();
        add(Guard::kArray,
            ex_.Compare("len(" + value + ")" + (key == "minItems" ? " >= " : " <= ") + *n));
      } else if (key == "minimum" || key == "maximum" || key == "exclusiveMinimum" ||
                 key == "exclusiveMaximum") {
        StatusOr<std::string> n = Number(v, kp, key);
        if (!n.ok()) return n.status();
        const char* op = key == "minimum"            ? " >= "
                         : key == "maximum"          ? " <= "
                         : key == "exclusiveMinimum" ? " > "
                                                     : " < ";
        add(Guard::kNumber, ex_.Compare(value + op + *n));
      } else if (key == "multipleOf") {
        StatusOr<std::string> n = Number(v, kp, key);
        if (!n.ok()) return n.status();
        if (v.get<double>() <= 0) {
          return Fail(kp, "`multipleOf` must be greater than 0, got " + QuoteValue(v));
        }
        add(Guard::kNumber, ex_.Compare(value + " % " + *n + " == 0"));
      } else if (key == "items") {
        if (v.is_array()) {
          return Fail(kp, "`items` must be a single schema (the array form is not supported)");
        }
        const std::string item = "item" + std::to_string(item_depth + 1);
        StatusOr<Expr> each = SubSchema(v, kp, item, item_depth + 1);
        if (!each.ok()) return each.status();
        if (!IsTrue(*each)) {
          if (each->too_big) return OutputTooBig(kp);
          std::string call = "all(";
          call += item;
          call += " in ";
          call += value;
          call += ", ";
          call += each->text;
          call += ")";
          add(Guard::kArray, ex_.Call(std::move(call)));
        }
      } else if (key == "anyOf" || key == "allOf" || key == "oneOf") {
        if (!v.is_array() || v.empty()) {
          return Fail(kp, "`" + key + "` must be a non-empty array of schemas, " +
                              (v.is_array() ? std::string("got an empty one") : Got(v)));
        }
        std::vector<Expr> branches;
        for (size_t i = 0; i < v.size(); ++i) {
          StatusOr<Expr> branch = SubSchema(v[i], Child(kp, i), value, item_depth);
          if (!branch.ok()) return branch.status();
          branches.push_back(std::move(*branch));
        }
        add(Guard::kNone, key == "anyOf"   ? ex_.Or(std::move(branches))
                          : key == "allOf" ? ex_.And(std::move(branches))
                                           : ex_.ExactlyOne(branches));
      } else if (key == "not") {
        StatusOr<Expr> inner = SubSchema(v, kp, value, item_depth);
        if (!inner.ok()) return inner.status();
        add(Guard::kNone, ex_.Not(*inner));
      }
    }

    std::vector<Expr> parts = {std::move(type_expr)};
    for (Slot& slot : slots) {
      if (slot.guard == Guard::kNone) {
        parts.push_back(std::move(slot.parts[0]));
        continue;
      }
      const char* type_name = slot.guard == Guard::kString   ? "string"
                              : slot.guard == Guard::kNumber ? "number"
                                                             : "array";
      Expr guard = ex_.Compare("type(" + value + ") != \"" + type_name + "\"");
      parts.push_back(ex_.Or({std::move(guard), ex_.And(std::move(slot.parts))}));
    }
    Expr result = ex_.And(std::move(parts));
    if (result.too_big) return OutputTooBig(pointer);
    return result;
  }

  // The `type` keyword: a name or a non-empty list of distinct names.
  StatusOr<Expr> Type(const Json& v, const std::string& pointer, const std::string& value,
                      unsigned* types) {
    std::vector<std::pair<std::string, std::string>> names;  // (name, pointer)
    if (v.is_string()) {
      names.emplace_back(v.get<std::string>(), pointer);
    } else if (v.is_array() && !v.empty()) {
      for (size_t i = 0; i < v.size(); ++i) {
        if (!v[i].is_string()) {
          return Fail(Child(pointer, i), "a `type` name must be a string, " + Got(v[i]));
        }
        names.emplace_back(v[i].get<std::string>(), Child(pointer, i));
      }
    } else {
      return Fail(pointer, "`type` must be a type name or a non-empty array of them, " +
                               (v.is_array() ? std::string("got an empty array") : Got(v)));
    }
    *types = 0;
    for (const auto& [name, name_pointer] : names) {
      const unsigned bit = TypeBitOf(name);
      if (bit == 0) {
        return Fail(name_pointer, "unknown type " + Quote(name) +
                                      " (expected null, boolean, number, integer, string, "
                                      "array or object)");
      }
      if ((*types & bit) != 0) return Fail(name_pointer, "type " + Quote(name) + " is repeated");
      *types |= bit;
    }
    // Plain type names in input order; integer only where number is absent.
    std::vector<std::string> plain;
    for (const auto& entry : names) {
      if (entry.first != "integer") plain.push_back(entry.first);
    }
    std::vector<Expr> alternatives;
    if (plain.size() == 1) {
      alternatives.push_back(ex_.Compare("type(" + value + ") == \"" + plain[0] + "\""));
    } else if (plain.size() > 1) {
      std::string list;
      for (const std::string& name : plain) list += (list.empty() ? "\"" : ", \"") + name + "\"";
      alternatives.push_back(ex_.Compare("type(" + value + ") in [" + list + "]"));
    }
    if ((*types & kIntegerType) != 0 && (*types & kNumberType) == 0) {
      alternatives.push_back(ex_.And(
          {ex_.Compare("type(" + value + ") == \"number\""), ex_.Compare(value + " % 1 == 0")}));
    }
    return ex_.Or(std::move(alternatives));
  }

  ProgentImportLimits limits_;
  ExprBuilder ex_;
  size_t output_bytes_ = 0;  // rule text made so far (its update blocks excluded)
};

// ---------------------------------------------------------------------------
// Input checks and parsing

// Checks nesting depth and the parser's key-comparison cost without parsing
// (and without recursion): brackets and commas outside strings.
Status ScanStructure(std::string_view text, const ProgentImportLimits& limits) {
  struct Frame {
    bool object;
    size_t members;
  };
  std::vector<Frame> stack;
  size_t comparisons = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (static_cast<int64_t>(stack.size()) >= limits.max_depth) {
        return ResourceExhaustedError("the input nests arrays and objects deeper than " +
                                      std::to_string(limits.max_depth) + " levels (at byte " +
                                      std::to_string(i) + ")");
      }
      stack.push_back({c == '{', 0});
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
    } else if (c == ',' && !stack.empty() && stack.back().object) {
      comparisons += ++stack.back().members;
      if (comparisons > limits.max_key_comparisons) {
        return ResourceExhaustedError(
            "the input's objects have too many members: parsing them takes more than " +
            std::to_string(limits.max_key_comparisons) +
            " key comparisons, n*(n-1)/2 for an object of n members (at byte " + std::to_string(i) +
            ")");
      }
    }
  }
  return OkStatus();
}

// Parses `text`, rejecting duplicate keys (a JSON parser keeps only one of
// them, which would silently drop a rule or a constraint).
StatusOr<Json> Parse(std::string_view text) {
  struct Frame {
    bool array;
    size_t index;     // children begun so far (arrays)
    std::string key;  // the current key (objects)
    std::set<std::string> keys;
  };
  std::vector<Frame> frames;
  std::optional<Status> duplicate;
  const auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (!frames.empty() && frames.back().array) ++frames.back().index;
        frames.push_back({event == Json::parse_event_t::array_start, 0, "", {}});
        break;
      case Json::parse_event_t::key: {
        Frame& top = frames.back();
        top.key = parsed.get<std::string>();
        if (!duplicate.has_value() && !top.keys.insert(top.key).second) {
          std::string pointer;
          for (const Frame& f : frames) {
            pointer = f.array ? Child(pointer, f.index - 1) : Child(pointer, f.key);
          }
          duplicate = Fail(pointer, "duplicate key " + Quote(top.key) +
                                        " (a JSON parser keeps only one of them)");
        }
        break;
      }
      case Json::parse_event_t::value:
        if (!frames.empty() && frames.back().array) ++frames.back().index;
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        frames.pop_back();
        break;
    }
    return true;
  };
  Json doc;
  try {
    doc = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::exception& e) {
    std::string what = e.what();
    const size_t bracket = what.find("] ");
    if (!what.empty() && what[0] == '[' && bracket != std::string::npos) {
      what = what.substr(bracket + 2);
    }
    return InvalidArgumentError("the input is not valid JSON: " + Sanitize(what, 300));
  }
  if (duplicate.has_value()) return *duplicate;
  return doc;
}

StatusOr<std::string> Import(std::string_view json_text, std::string_view source_name,
                             const ProgentImportLimits& limits) {
  if (json_text.size() > limits.max_input_bytes) {
    return ResourceExhaustedError("the input is " + std::to_string(json_text.size()) +
                                  " bytes, over the limit of " +
                                  std::to_string(limits.max_input_bytes));
  }
  Status scanned = ScanStructure(json_text, limits);
  if (!scanned.ok()) return scanned;
  StatusOr<Json> doc = Parse(json_text);
  if (!doc.ok()) return doc.status();
  if (!doc->is_object()) {
    return InvalidArgumentError(
        "the top level must be a JSON object mapping tool names to lists of entries, " + Got(*doc));
  }
  Translator translator(limits);
  StatusOr<std::vector<std::string>> rules = translator.ToolMap(*doc, "");
  if (!rules.ok()) return rules.status();
  std::string out =
      "# imported from Progent JSON: " + Sanitize(source_name, std::string_view::npos) + "\n\n";
  for (const std::string& rule : *rules) {
    out += rule;
    out += ";\n";
  }
  return out;
}

}  // namespace

StatusOr<std::string> ImportProgent(std::string_view json_text, std::string_view source_name,
                                    const ProgentImportLimits& limits) {
  try {
    return Import(json_text, source_name, limits);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while importing the Progent policy");
  } catch (const std::exception& e) {
    return InternalError("unexpected error while importing the Progent policy: " +
                         Sanitize(e.what(), 300));
  } catch (...) {
    return InternalError("unexpected error while importing the Progent policy");
  }
}

StatusOr<std::string> ImportProgent(std::string_view json_text, std::string_view source_name) {
  return ImportProgent(json_text, source_name, ProgentImportLimits());
}

}  // namespace toolwarden
