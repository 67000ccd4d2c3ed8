#include "interpreter/evaluator.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "interpreter/structured.h"
#include "policy/diagnostic.h"

namespace toolwarden::internal {

Value FromJson(const nlohmann::json& j) {
  Value v;
  switch (j.type()) {
    case nlohmann::json::value_t::boolean:
      v.kind = Value::Kind::kBool;
      v.boolean = j.get<bool>();
      break;
    // The same conversions as j.get<double>(), without its generic dispatch.
    case nlohmann::json::value_t::number_integer:
      v.kind = Value::Kind::kNumber;
      v.number = static_cast<double>(j.get_ref<const nlohmann::json::number_integer_t&>());
      break;
    case nlohmann::json::value_t::number_unsigned:
      v.kind = Value::Kind::kNumber;
      v.number = static_cast<double>(j.get_ref<const nlohmann::json::number_unsigned_t&>());
      break;
    case nlohmann::json::value_t::number_float:
      v.kind = Value::Kind::kNumber;
      v.number = j.get_ref<const nlohmann::json::number_float_t&>();
      break;
    case nlohmann::json::value_t::string:
      v.kind = Value::Kind::kString;
      v.string = j.get_ref<const std::string&>();
      break;
    case nlohmann::json::value_t::array:
      v.kind = Value::Kind::kArray;
      v.json = &j;
      break;
    case nlohmann::json::value_t::object:
      v.kind = Value::Kind::kObject;
      v.json = &j;
      break;
    default:
      break;  // null, discarded, binary
  }
  return v;
}

namespace {

Value BoolValue(bool b) {
  Value v;
  v.kind = Value::Kind::kBool;
  v.boolean = b;
  return v;
}

Value Number(double d) {
  Value v;
  v.kind = Value::Kind::kNumber;
  v.number = d;
  return v;
}

Value String(std::string_view s) {
  Value v;
  v.kind = Value::Kind::kString;
  v.string = s;
  return v;
}

const char* KindName(Value::Kind k) {
  switch (k) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kBool:
      return "boolean";
    case Value::Kind::kNumber:
      return "number";
    case Value::Kind::kString:
      return "string";
    case Value::Kind::kArray:
      return "array";
    case Value::Kind::kObject:
      return "object";
  }
  return "null";
}

bool IsAlnum(unsigned char c) {
  // Bytes of multi-byte UTF-8 sequences count as letters, so words in any
  // script are never split.
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// A JSON value that equals `v`, for deep comparisons.
nlohmann::json ToJson(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kBool:
      return v.boolean;
    case Value::Kind::kNumber:
      return v.number;
    case Value::Kind::kString:
      return std::string(v.string);
    default:
      return *v.json;
  }
}

}  // namespace

bool JsonEqual(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (!JsonEqual(a[i], b[i])) return false;
    }
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto other = b.find(it.key());
      if (other == b.end() || !JsonEqual(*it, *other)) return false;
    }
    return true;
  }
  return a == b;
}

bool ValuesEqual(const Value& a, const Value& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::kNull:
      return true;
    case Value::Kind::kBool:
      return a.boolean == b.boolean;
    case Value::Kind::kNumber:
      return a.number == b.number;
    case Value::Kind::kString:
      return a.string == b.string;
    default:
      return JsonEqual(*a.json, *b.json);
  }
}

bool OccursAsTokenRun(std::string_view haystack, std::string_view needle) {
  if (needle.empty() || needle.size() > haystack.size()) return false;
  const size_t n = haystack.size();
  // Letters, digits and the characters that join the parts of an address, a
  // host name or a number (. - _ @ +) continue a token; everything else ends it.
  auto joiner = [&](size_t i) {
    unsigned char c = static_cast<unsigned char>(haystack[i]);
    return IsAlnum(c) || c == '.' || c == '-' || c == '_' || c == '@' || c == '+';
  };
  auto digit = [&](size_t i) { return i < n && haystack[i] >= '0' && haystack[i] <= '9'; };
  const bool starts_digit = needle.front() >= '0' && needle.front() <= '9';
  const bool ends_digit = needle.back() >= '0' && needle.back() <= '9';
  // Candidates are the positions of the needle's first character in either
  // case, found with memchr (the next of each case is kept, so the scan is
  // linear); every other position fails on its first character anyway.
  const char first = Lower(needle.front());
  const char first_upper =
      first >= 'a' && first <= 'z' ? static_cast<char>(first - 'a' + 'A') : first;
  const size_t stop = n - needle.size() + 1;  // candidates are in [0, stop)
  auto find = [&](char c, size_t from) -> size_t {
    if (from >= stop) return stop;
    const void* p = std::memchr(haystack.data() + from, c, stop - from);
    return p == nullptr ? stop : static_cast<size_t>(static_cast<const char*>(p) - haystack.data());
  };
  size_t next_lower = find(first, 0);
  size_t next_upper = first_upper == first ? stop : find(first_upper, 0);
  for (size_t i = 0; i < stop; ++i) {
    if (next_lower < i) next_lower = find(first, i);
    if (first_upper != first && next_upper < i) next_upper = find(first_upper, i);
    i = std::min(next_lower, next_upper);
    if (i >= stop) break;
    if (i > 0 && joiner(i - 1)) continue;
    // A digit after "3," is inside a number: "5" is not in "1,5".
    if (starts_digit && i >= 2 && haystack[i - 1] == ',' && digit(i - 2)) continue;
    size_t k = 0;
    while (k < needle.size() && Lower(haystack[i + k]) == Lower(needle[k])) ++k;
    if (k != needle.size()) continue;
    const size_t end = i + needle.size();
    if (end < n && joiner(end)) {
      // A "." or "-" that ends the token (a sentence's full stop) is not a joiner.
      const bool closing =
          (haystack[end] == '.' || haystack[end] == '-') && (end + 1 == n || !joiner(end + 1));
      if (!closing) continue;
    }
    if (ends_digit && end < n && haystack[end] == ',' && digit(end + 1)) continue;
    return true;
  }
  return false;
}

std::string ShortestNumber(double d) {
  // Shortest round-trip digits, always in positional (not scientific) form, as
  // people write numbers in a query: 1000000, not 1e+06.
  char buffer[400];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), d, std::chars_format::fixed);
  return std::string(buffer, result.ptr);
}

std::string Evaluator::Describe(const Value& v) {
  std::string text;
  switch (v.kind) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kBool:
      return v.boolean ? "true" : "false";
    case Value::Kind::kNumber:
      return ShortestNumber(v.number);
    case Value::Kind::kString:
      text = nlohmann::json(std::string(v.string))
                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      break;
    default:
      text = v.json->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      break;
  }
  text = Abbreviate(text, 80);
  return text;
}

std::string Evaluator::Text(uint32_t node) const {
  const Node& n = context_.plan->nodes[node];
  const std::string& source = context_.plan->source_text;
  if (n.end <= n.begin || n.end > source.size()) return "`expression`";
  std::string text = source.substr(n.begin, n.end - n.begin);
  text = Abbreviate(text, 60);
  return "`" + text + "`";
}

bool Evaluator::Fail(uint32_t node, std::string message) {
  if (error_.empty()) error_ = std::move(message);
  return false;
}

std::string_view Evaluator::Keep(std::string s) {
  strings_.push_back(std::make_unique<std::string>(std::move(s)));
  return *strings_.back();
}

const nlohmann::json* Evaluator::Keep(nlohmann::json j) {
  values_.push_back(std::make_unique<nlohmann::json>(std::move(j)));
  return values_.back().get();
}

ConditionResult Evaluator::Condition(uint32_t node) {
  bool b = false;
  if (!Bool(node, &b)) return ConditionResult::kError;
  return b ? ConditionResult::kTrue : ConditionResult::kFalse;
}

bool Evaluator::Bool(uint32_t node, bool* out) {
  Value v;
  if (!Eval(node, &v)) return false;
  if (v.kind != Value::Kind::kBool) {
    return Fail(node,
                Text(node) + " is " + KindName(v.kind) + " (" + Describe(v) + "), not a boolean");
  }
  *out = v.boolean;
  return true;
}

bool Evaluator::Eval(uint32_t index, Value* out) {
  if (++steps_ > context_.max_steps) {
    return Fail(index,
                "evaluation step budget of " + std::to_string(context_.max_steps) + " exceeded");
  }
  const Plan& plan = *context_.plan;
  const Node& n = plan.nodes[index];
  switch (n.op) {
    case NodeOp::kConst:
      *out = FromJson(*plan.constants[n.a]);
      return true;
    case NodeOp::kArg: {
      const nlohmann::json* value = FindArg(plan.strings[n.a]);
      *out = value == nullptr ? Value() : FromJson(*value);
      return true;
    }
    case NodeOp::kTool:
      *out = String(context_.tool);
      return true;
    case NodeOp::kArgs:
      *out = FromJson(*context_.args);
      return true;
    case NodeOp::kQuery:
      *out = String(context_.query);
      return true;
    case NodeOp::kLocal:
      *out = locals_[n.a];
      return true;
    case NodeOp::kField: {
      const NodeOp base_op = plan.nodes[n.a].op;
      if (base_op == NodeOp::kUrl || base_op == NodeOp::kEmail) {
        return ParsedField(n.a, plan.strings[n.b], out);
      }
      Value base;
      if (!Eval(n.a, &base)) return false;
      if (base.kind == Value::Kind::kNull) {
        *out = Value();
        return true;
      }
      if (base.kind != Value::Kind::kObject) {
        return Fail(index, Text(n.a) + " is " + KindName(base.kind) + ", which has no fields");
      }
      auto it = base.json->find(plan.strings[n.b]);
      *out = it == base.json->end() ? Value() : FromJson(*it);
      return true;
    }
    case NodeOp::kIndex: {
      Value base, key;
      if (!Eval(n.a, &base) || !Eval(n.b, &key)) return false;
      if (base.kind == Value::Kind::kNull) {
        *out = Value();
        return true;
      }
      if (base.kind == Value::Kind::kArray && key.kind == Value::Kind::kNumber) {
        double i = key.number;
        if (i != std::floor(i)) return Fail(index, "index " + Describe(key) + " is not an integer");
        *out = (i < 0 || i >= static_cast<double>(base.json->size()))
                   ? Value()
                   : FromJson((*base.json)[static_cast<size_t>(i)]);
        return true;
      }
      if (base.kind == Value::Kind::kObject && key.kind == Value::Kind::kString) {
        auto it = base.json->find(std::string(key.string));
        *out = it == base.json->end() ? Value() : FromJson(*it);
        return true;
      }
      return Fail(index, "cannot index " + std::string(KindName(base.kind)) + " " + Text(n.a) +
                             " with " + KindName(key.kind) + " " + Describe(key));
    }
    case NodeOp::kList: {
      nlohmann::json list = nlohmann::json::array();
      for (uint32_t i = 0; i < n.b; ++i) {
        Value element;
        if (!Eval(plan.list_items[n.a + i], &element)) return false;
        // Copying costs in proportion to its size, so copies cannot outgrow the budget.
        if (!Charge(ApproxBytes(element), index)) return false;
        list.push_back(ToJson(element));
      }
      out->kind = Value::Kind::kArray;
      out->json = Keep(std::move(list));
      return true;
    }
    case NodeOp::kNot: {
      bool b;
      if (!Bool(n.a, &b)) return false;
      *out = BoolValue(!b);
      return true;
    }
    case NodeOp::kNeg: {
      Value v;
      if (!Eval(n.a, &v)) return false;
      if (v.kind != Value::Kind::kNumber) {
        return Fail(index,
                    "unary `-` needs a number, but " + Text(n.a) + " is " + KindName(v.kind));
      }
      *out = Number(-v.number);
      return true;
    }
    case NodeOp::kAnd:
    case NodeOp::kOr: {
      bool left;
      if (!Bool(n.a, &left)) return false;
      if (left == (n.op == NodeOp::kOr)) {
        *out = BoolValue(left);  // short-circuit
        return true;
      }
      bool right;
      if (!Bool(n.b, &right)) return false;
      *out = BoolValue(right);
      return true;
    }
    case NodeOp::kBinary:
      return EvalBinary(n, index, out);
    case NodeOp::kInSet: {
      Value v;
      if (!Eval(n.a, &v)) return false;
      const ConstSet& set = *plan.sets[n.b];
      bool found = false;
      switch (v.kind) {
        case Value::Kind::kNull:
          found = set.has_null;
          break;
        case Value::Kind::kBool:
          found = v.boolean ? set.has_true : set.has_false;
          break;
        case Value::Kind::kNumber:
          found = set.numbers.count(v.number) > 0;
          break;
        case Value::Kind::kString:
          found = set.strings.count(v.string) > 0;
          break;
        default:
          for (const nlohmann::json* other : set.others) {
            if (JsonEqual(*other, *v.json)) {
              found = true;
              break;
            }
          }
      }
      *out = BoolValue(n.c ? !found : found);
      return true;
    }
    case NodeOp::kMatches: {
      Value v;
      if (!Eval(n.a, &v)) return false;
      if (v.kind != Value::Kind::kString) {
        return Fail(index,
                    "`matches` needs a string, but " + Text(n.a) + " is " + KindName(v.kind));
      }
      if (plan.nodes[n.a].op == NodeOp::kQuery && context_.query_matches != nullptr &&
          n.b < context_.query_matches->size() && (*context_.query_matches)[n.b] >= 0) {
        *out = BoolValue((*context_.query_matches)[n.b] == 1);
        return true;
      }
      *out = BoolValue(
          RE2::FullMatch(re2::StringPiece(v.string.data(), v.string.size()), *plan.regexes[n.b]));
      return true;
    }
    case NodeOp::kFromQuery:
    case NodeOp::kFromTrusted: {
      Value v;
      if (!Eval(n.a, &v)) return false;
      bool b;
      if (!FromQuery(v, n.a, n.op == NodeOp::kFromTrusted, &b)) return false;
      *out = BoolValue(b);
      return true;
    }
    default:
      return EvalCall(n, index, out);
  }
}

bool Evaluator::EvalBinary(const Node& n, uint32_t index, Value* out) {
  Value l, r;
  if (!Eval(n.a, &l) || !Eval(n.b, &r)) return false;
  // The operator's name, for error messages only (never built on the common path).
  auto op_name = [&] { return std::string("`") + OpSpelling(n.binary) + "`"; };
  switch (n.binary) {
    case Op::kEq:
      *out = BoolValue(ValuesEqual(l, r));
      return true;
    case Op::kNe:
      *out = BoolValue(!ValuesEqual(l, r));
      return true;
    case Op::kLt:
    case Op::kLe:
    case Op::kGt:
    case Op::kGe: {
      int c;
      if (l.kind == Value::Kind::kNumber && r.kind == Value::Kind::kNumber) {
        c = l.number < r.number ? -1 : (l.number > r.number ? 1 : 0);
      } else if (l.kind == Value::Kind::kString && r.kind == Value::Kind::kString) {
        c = l.string.compare(r.string);  // UTF-8 byte order is code point order
      } else {
        return Fail(index, op_name() + " compares two numbers or two strings, but " + Text(n.a) +
                               " is " + KindName(l.kind) + " and " + Text(n.b) + " is " +
                               KindName(r.kind));
      }
      bool b = n.binary == Op::kLt   ? c < 0
               : n.binary == Op::kLe ? c <= 0
               : n.binary == Op::kGt ? c > 0
                                     : c >= 0;
      *out = BoolValue(b);
      return true;
    }
    case Op::kAdd:
    case Op::kSub:
    case Op::kMul:
    case Op::kDiv:
    case Op::kMod: {
      if (l.kind != Value::Kind::kNumber || r.kind != Value::Kind::kNumber) {
        return Fail(index, op_name() + " needs numbers, but " + Text(n.a) + " is " +
                               KindName(l.kind) + " and " + Text(n.b) + " is " + KindName(r.kind));
      }
      if ((n.binary == Op::kDiv || n.binary == Op::kMod) && r.number == 0) {
        return Fail(index, "division by zero in " + Text(index));
      }
      double v = n.binary == Op::kAdd   ? l.number + r.number
                 : n.binary == Op::kSub ? l.number - r.number
                 : n.binary == Op::kMul ? l.number * r.number
                 : n.binary == Op::kDiv ? l.number / r.number
                                        : std::fmod(l.number, r.number);
      if (!std::isfinite(v)) return Fail(index, Text(index) + " overflows");
      *out = Number(v);
      return true;
    }
    case Op::kIn:
    case Op::kNotIn: {
      if (r.kind != Value::Kind::kArray) {
        return Fail(index, op_name() + " needs an array on the right, but " + Text(n.b) + " is " +
                               KindName(r.kind));
      }
      bool found = false;
      for (const nlohmann::json& element : *r.json) {
        if (++steps_ > context_.max_steps) return Fail(index, "evaluation step budget exceeded");
        if (ValuesEqual(l, FromJson(element))) {
          found = true;
          break;
        }
      }
      *out = BoolValue(n.binary == Op::kIn ? found : !found);
      return true;
    }
    case Op::kContains:
    case Op::kStartsWith:
    case Op::kEndsWith: {
      if (l.kind != Value::Kind::kString || r.kind != Value::Kind::kString) {
        return Fail(index, op_name() + " needs strings, but " + Text(n.a) + " is " +
                               KindName(l.kind) + " and " + Text(n.b) + " is " + KindName(r.kind));
      }
      const std::string_view s = l.string, t = r.string;
      bool b = n.binary == Op::kContains ? s.find(t) != std::string_view::npos
               : n.binary == Op::kStartsWith
                   ? s.substr(0, t.size()) == t
                   : s.size() >= t.size() && s.substr(s.size() - t.size()) == t;
      *out = BoolValue(b);
      return true;
    }
    default:
      return Fail(index, "unsupported operator " + op_name());
  }
}

bool Evaluator::EvalCall(const Node& n, uint32_t index, Value* out) {
  const Plan& plan = *context_.plan;
  switch (n.op) {
    case NodeOp::kCount:
    case NodeOp::kCalled: {
      size_t count = 0;
      for (const CallRecord& call : *context_.history) {
        if (plan.globs[n.a].Matches(call.tool)) ++count;
      }
      steps_ += context_.history->size() / 16;
      *out = n.op == NodeOp::kCount ? Number(static_cast<double>(count)) : BoolValue(count > 0);
      return true;
    }
    case NodeOp::kSum: {
      double total = 0;
      for (const CallRecord& call : *context_.history) {
        if (!plan.globs[n.a].Matches(call.tool)) continue;
        auto it = call.args.find(plan.strings[n.b]);
        if (it == call.args.end() || !it->is_number()) {
          return Fail(index, "`sum`: a recorded `" + call.tool + "` call has a non-number `" +
                                 plan.strings[n.b] + "`");
        }
        total += it->get<double>();
      }
      steps_ += context_.history->size() / 16;
      *out = Number(total);
      return true;
    }
    case NodeOp::kAll:
    case NodeOp::kAny: {
      Value array;
      if (!Eval(n.a, &array)) return false;
      if (array.kind != Value::Kind::kArray) {
        return Fail(index, std::string(n.op == NodeOp::kAll ? "`all`" : "`any`") +
                               " needs an array, but " + Text(n.a) + " is " + KindName(array.kind));
      }
      const bool want = n.op == NodeOp::kAny;  // the value that ends the loop early
      for (const nlohmann::json& element : *array.json) {
        locals_[n.c] = FromJson(element);
        bool b;
        if (!Bool(n.b, &b)) return false;
        if (b == want) {
          *out = BoolValue(want);
          return true;
        }
      }
      *out = BoolValue(!want);
      return true;
    }
    default:
      break;
  }
  Value arg;
  if (!Eval(n.a, &arg)) return false;
  if (n.op == NodeOp::kType) {
    *out = String(KindName(arg.kind));
    return true;
  }
  if (n.op == NodeOp::kLen) {
    if (arg.kind == Value::Kind::kString) {
      size_t count = 0;
      for (char c : arg.string) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      *out = Number(static_cast<double>(count));
    } else if (arg.kind == Value::Kind::kArray || arg.kind == Value::Kind::kObject) {
      *out = Number(static_cast<double>(arg.json->size()));
    } else {
      return Fail(index, "`len` needs a string, array or object, but " + Text(n.a) + " is " +
                             KindName(arg.kind));
    }
    return true;
  }
  if (arg.kind != Value::Kind::kString) {
    const char* name = n.op == NodeOp::kLower   ? "lower"
                       : n.op == NodeOp::kUrl   ? "url"
                       : n.op == NodeOp::kEmail ? "email"
                                                : "path";
    return Fail(index, std::string("`") + name + "` needs a string, but " + Text(n.a) + " is " +
                           KindName(arg.kind));
  }
  // Each of these makes a new value as large as its input.
  if (!Charge(arg.string.size(), index)) return false;
  switch (n.op) {
    case NodeOp::kLower: {
      std::string s(arg.string);
      for (char& c : s) c = Lower(c);
      *out = String(Keep(std::move(s)));
      return true;
    }
    case NodeOp::kUrl: {
      const Parsed* parsed;
      if (!ParseString(n.op, arg.string, index, &parsed)) return false;
      const ParsedUrl& url = parsed->url;
      nlohmann::json j = {{"scheme", url.scheme},
                          {"host", url.host},
                          {"port", url.port ? nlohmann::json(*url.port) : nlohmann::json()},
                          {"path", url.path},
                          {"query", url.query}};
      out->kind = Value::Kind::kObject;
      out->json = Keep(std::move(j));
      return true;
    }
    case NodeOp::kEmail: {
      const Parsed* parsed;
      if (!ParseString(n.op, arg.string, index, &parsed)) return false;
      const ParsedEmail& email = parsed->email;
      out->kind = Value::Kind::kObject;
      out->json = Keep(nlohmann::json{{"local", email.local}, {"domain", email.domain}});
      return true;
    }
    case NodeOp::kPath: {
      StatusOr<std::string> path = NormalizePath(arg.string);
      if (!path.ok()) return Fail(index, path.status().message());
      *out = String(Keep(std::move(*path)));
      return true;
    }
    default:
      return Fail(index, "unsupported function");
  }
}

const nlohmann::json* Evaluator::FindArg(const std::string& key) {
  const nlohmann::json& args = *context_.args;
  if (!args.is_object()) return nullptr;
  const auto& object = args.get_ref<const nlohmann::json::object_t&>();
  if (!args_listed_) {
    args_listed_ = true;
    arg_count_ = object.size();
    if (arg_count_ <= kIndexedArgs) {
      size_t i = 0;
      for (const auto& [name, value] : object) args_[i++] = ArgEntry{name, &value};
    }
  }
  if (arg_count_ <= kIndexedArgs) {
    for (size_t i = 0; i < arg_count_; ++i) {
      if (args_[i].key.size() == key.size() &&
          std::memcmp(args_[i].key.data(), key.data(), key.size()) == 0) {
        return args_[i].value;
      }
    }
    return nullptr;
  }
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

bool Evaluator::ParseString(NodeOp op, std::string_view text, uint32_t index, const Parsed** out) {
  // A hash lookup, not a scan of parsed_: a decision may parse thousands of
  // distinct strings (any(u in urls, ...)), and a scan would make that
  // quadratic in work the step budget does not count.
  auto& cache = op == NodeOp::kUrl ? url_cache_ : email_cache_;
  if (auto it = cache.find(text); it != cache.end()) {
    *out = it->second;
    return true;
  }
  auto p = std::make_unique<Parsed>(Parsed{op, text, {}, {}});
  if (op == NodeOp::kUrl) {
    StatusOr<ParsedUrl> url = ParseUrl(text);
    if (!url.ok()) return Fail(index, url.status().message());
    p->url = *std::move(url);
  } else {
    StatusOr<ParsedEmail> email = ParseEmail(text);
    if (!email.ok()) return Fail(index, email.status().message());
    p->email = *std::move(email);
  }
  parsed_.push_back(std::move(p));
  *out = parsed_.back().get();
  cache.emplace(text, *out);
  return true;
}

bool Evaluator::ParsedField(uint32_t base, const std::string& field, Value* out) {
  // What Eval(base) and EvalCall do for url()/email(), up to the parse.
  if (++steps_ > context_.max_steps) {
    return Fail(base,
                "evaluation step budget of " + std::to_string(context_.max_steps) + " exceeded");
  }
  const Node& n = context_.plan->nodes[base];
  Value arg;
  if (!Eval(n.a, &arg)) return false;
  if (arg.kind != Value::Kind::kString) {
    return Fail(base, std::string("`") + (n.op == NodeOp::kUrl ? "url" : "email") +
                          "` needs a string, but " + Text(n.a) + " is " + KindName(arg.kind));
  }
  if (!Charge(arg.string.size(), base)) return false;
  const Parsed* parsed;
  if (!ParseString(n.op, arg.string, base, &parsed)) return false;
  // The field of the object EvalCall would build; a missing one is null.
  *out = Value();
  if (n.op == NodeOp::kUrl) {
    const ParsedUrl& url = parsed->url;
    if (field == "scheme") {
      *out = String(url.scheme);
    } else if (field == "host") {
      *out = String(url.host);
    } else if (field == "port") {
      if (url.port) *out = Number(static_cast<double>(*url.port));
    } else if (field == "path") {
      *out = String(url.path);
    } else if (field == "query") {
      *out = String(url.query);
    }
  } else if (field == "local") {
    *out = String(parsed->email.local);
  } else if (field == "domain") {
    *out = String(parsed->email.domain);
  }
  return true;
}

std::vector<int8_t> QueryMatches(const Plan& plan, std::string_view query) {
  std::vector<int8_t> out(plan.regexes.size(), -1);
  for (const Node& n : plan.nodes) {
    if (n.op != NodeOp::kMatches || plan.nodes[n.a].op != NodeOp::kQuery) continue;
    if (n.b >= out.size() || out[n.b] >= 0) continue;
    out[n.b] =
        RE2::FullMatch(re2::StringPiece(query.data(), query.size()), *plan.regexes[n.b]) ? 1 : 0;
  }
  return out;
}

bool Evaluator::FromQuery(const Value& v, uint32_t node, bool trusted, bool* out) {
  auto one = [&](const Value& item, bool* found) -> bool {
    std::string number;
    std::string_view needle;
    if (item.kind == Value::Kind::kString) {
      needle = item.string;
    } else if (item.kind == Value::Kind::kNumber) {
      number = ShortestNumber(item.number);
      needle = number;
    } else if (item.kind == Value::Kind::kNull) {
      *found = false;
      return true;
    } else {
      return Fail(node, "`from` needs strings or numbers, but " + Text(node) + " holds " +
                            KindName(item.kind));
    }
    // Token matching costs up to query length x needle length.
    if (!Charge((context_.query.size() / 64 + 1) * (needle.size() + 1), node)) return false;
    *found = OccursAsTokenRun(context_.query, needle) ||
             (trusted && OccursInTrusted(needle, item.kind == Value::Kind::kNumber));
    return error_.empty();
  };
  if (v.kind == Value::Kind::kArray) {
    for (const nlohmann::json& element : *v.json) {
      bool found;
      if (!one(FromJson(element), &found)) return false;
      if (!found) {
        *out = false;
        return true;
      }
    }
    *out = true;
    return true;
  }
  return one(v, out);
}

bool Evaluator::Charge(size_t bytes, uint32_t node) {
  steps_ += bytes / 64;
  if (steps_ > context_.max_steps) {
    return Fail(node,
                "evaluation step budget of " + std::to_string(context_.max_steps) + " exceeded");
  }
  return true;
}

size_t Evaluator::ApproxBytes(const Value& v) {
  switch (v.kind) {
    case Value::Kind::kString:
      return v.string.size();
    case Value::Kind::kArray:
    case Value::Kind::kObject: {
      // Iterative, so deep values cannot overflow the stack.
      size_t bytes = 0;
      std::vector<const nlohmann::json*> stack = {v.json};
      while (!stack.empty()) {
        const nlohmann::json* j = stack.back();
        stack.pop_back();
        bytes += 16;
        if (j->is_string()) bytes += j->get_ref<const std::string&>().size();
        if (j->is_object()) {
          for (auto it = j->begin(); it != j->end(); ++it) {
            bytes += it.key().size();
            stack.push_back(&*it);
          }
        } else if (j->is_array()) {
          for (const auto& child : *j) stack.push_back(&child);
        }
      }
      return bytes;
    }
    default:
      return 16;
  }
}

bool Evaluator::OccursInTrusted(std::string_view needle, bool needle_is_number) {
  // Each scan costs up to text length x needle length, charged to the budget.
  auto scan = [&](std::string_view text, bool* found) {
    if (!Charge((text.size() / 64 + 1) * (needle.size() + 1), 0)) return false;
    *found = OccursAsTokenRun(text, needle);
    return true;
  };
  bool found = false;
  for (const std::string& value : *context_.trusted_values) {
    if (!scan(value, &found)) return false;
    if (found) return true;
  }
  const Plan& plan = *context_.plan;
  for (const CallRecord& call : *context_.history) {
    if (!call.result) continue;
    bool trusted_tool = false;
    for (const ToolPattern& t : plan.trusted_tools) {
      trusted_tool = trusted_tool || t.Matches(call.tool);
    }
    if (!trusted_tool) continue;
    // Walk the result's string and number leaves without recursion.
    std::vector<const nlohmann::json*> stack = {&*call.result};
    while (!stack.empty()) {
      const nlohmann::json* j = stack.back();
      stack.pop_back();
      if (!Charge(64, 0)) return false;
      if (j->is_string()) {
        if (!scan(j->get_ref<const std::string&>(), &found)) return false;
        if (found) return true;
      } else if (j->is_number()) {
        // A number in a result matches only a number needle of the same shortest form.
        if (needle_is_number && ShortestNumber(j->get<double>()) == needle) return true;
      } else if (j->is_structured()) {
        for (const auto& child : *j) stack.push_back(&child);
      }
    }
  }
  return false;
}

}  // namespace toolwarden::internal
