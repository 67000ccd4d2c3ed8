#include "policy/formatter.h"

namespace toolwarden {
namespace {

// Binding strength, loosest first, as in grammar/Policy.g4.
int Precedence(const Expr& e) {
  switch (e.kind) {
    case ExprKind::kFrom:
      return 4;
    case ExprKind::kUnary:
      return e.op == Op::kNot ? 3 : 10;
    case ExprKind::kBinary:
      switch (e.op) {
        case Op::kOr:
          return 1;
        case Op::kAnd:
          return 2;
        case Op::kMatches:
        case Op::kContains:
        case Op::kStartsWith:
        case Op::kEndsWith:
          return 5;
        case Op::kIn:
        case Op::kNotIn:
          return 6;
        case Op::kEq:
        case Op::kNe:
        case Op::kLt:
        case Op::kLe:
        case Op::kGt:
        case Op::kGe:
          return 7;
        case Op::kAdd:
        case Op::kSub:
          return 8;
        default:
          return 9;  // * / %
      }
    default:
      return 11;
  }
}

std::string Quote(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Literal(const Expr& e) {
  if (e.raw_string) return "r\"" + e.literal.get<std::string>() + "\"";
  if (e.literal.is_number_float()) {
    std::string s = e.literal.dump();
    // nlohmann prints integral doubles as "5.0"; keep a form the grammar reads.
    return s;
  }
  if (e.literal.is_string()) return Quote(e.literal.get<std::string>());
  return e.literal.dump();
}

void Print(const Expr& e, std::string* out);

void PrintOperand(const Expr& child, int min_precedence, std::string* out) {
  bool parens = Precedence(child) < min_precedence ||
                (child.kind == ExprKind::kLiteral && child.literal.is_number() &&
                 child.literal.get<double>() < 0 && min_precedence > 10);
  if (parens) *out += "(";
  Print(child, out);
  if (parens) *out += ")";
}

void Print(const Expr& e, std::string* out) {
  switch (e.kind) {
    case ExprKind::kLiteral:
      *out += Literal(e);
      return;
    case ExprKind::kList:
      *out += "[";
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i > 0) *out += ", ";
        Print(*e.children[i], out);
      }
      *out += "]";
      return;
    case ExprKind::kName:
      *out += e.name;
      return;
    case ExprKind::kField:
      PrintOperand(*e.children[0], 11, out);
      *out += "." + e.name;
      return;
    case ExprKind::kIndex:
      PrintOperand(*e.children[0], 11, out);
      *out += "[";
      Print(*e.children[1], out);
      *out += "]";
      return;
    case ExprKind::kCall:
      *out += e.name + "(";
      for (size_t i = 0; i < e.children.size(); ++i) {
        if (i > 0) *out += ", ";
        Print(*e.children[i], out);
      }
      *out += ")";
      return;
    case ExprKind::kUnary:
      *out += e.op == Op::kNot ? "not " : "-";
      PrintOperand(*e.children[0], Precedence(e), out);
      return;
    case ExprKind::kBinary: {
      int p = Precedence(e);
      PrintOperand(*e.children[0], p, out);
      *out += std::string(" ") + OpSpelling(e.op) + " ";
      PrintOperand(*e.children[1], p + 1, out);
      return;
    }
    case ExprKind::kFrom:
      PrintOperand(*e.children[0], 4, out);
      *out += " from " + e.name;
      return;
  }
}

bool IsIdentifier(const std::string& s) {
  static const char* const kKeywords[] = {
      "policy",   "tools",    "trust",    "let",    "default", "allow",    "forbid",
      "when",     "priority", "fallback", "update", "block",   "ask",      "terminate",
      "and",      "or",       "not",      "in",     "matches", "contains", "startswith",
      "endswith", "from",     "true",     "false",  "null"};
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  for (const char* k : kKeywords) {
    if (s == k) return false;
  }
  return true;
}

std::string TargetText(const Target& t) { return t.text == "*" ? t.text : FormatToolName(t.text); }

std::string FallbackText(const Fallback& f) {
  static const char* const kNames[] = {"block", "ask", "terminate"};
  std::string out = kNames[static_cast<int>(f.kind)];
  if (f.message) out += " " + Quote(*f.message);
  return out;
}

// A long `a and b and c` (or `or`) chain, one operand per line after the first:
//   a
//   <indent>and b
// Operands print exactly as Print would, so the tree read back is the same.
std::string BrokenChain(const Expr& e, const std::string& indent) {
  if (e.kind != ExprKind::kBinary || (e.op != Op::kAnd && e.op != Op::kOr)) return FormatExpr(e);
  std::vector<const Expr*> operands;
  const Expr* left = &e;
  while (left->kind == ExprKind::kBinary && left->op == e.op) {
    operands.push_back(left->children[1].get());
    left = left->children[0].get();
  }
  operands.push_back(left);
  std::string out;
  const int p = Precedence(e);
  for (size_t i = operands.size(); i-- > 0;) {
    if (i + 1 != operands.size()) out += "\n" + indent + OpSpelling(e.op) + " ";
    PrintOperand(*operands[i], i + 1 == operands.size() ? p : p + 1, &out);
  }
  return out;
}

// A long list literal, one element per line with a trailing comma.
std::string BrokenList(const Expr& e, const std::string& indent) {
  std::string out = "[";
  for (const auto& c : e.children) out += "\n" + indent + "  " + FormatExpr(*c) + ",";
  return out + "\n" + indent + "]";
}

void PrintRule(const Rule& rule, const std::string& indent, std::string* out) {
  std::string head = std::string(rule.effect == Effect::kAllow ? "allow " : "forbid ");
  for (size_t i = 0; i < rule.targets.size(); ++i) {
    if (i > 0) head += ", ";
    head += TargetText(rule.targets[i]);
  }
  std::vector<std::string> clauses;
  if (rule.condition != nullptr) {
    std::string c = "when ";
    Print(*rule.condition, &c);
    clauses.push_back(c);
  }
  if (rule.priority) clauses.push_back("priority " + std::to_string(*rule.priority));
  if (rule.fallback) clauses.push_back("fallback " + FallbackText(*rule.fallback));
  std::string line = indent + head;
  for (const std::string& c : clauses) line += " " + c;
  if (line.size() + 1 <= kFormatLineWidth) {
    *out += line;
  } else {
    *out += indent + head;
    for (size_t i = 0; i < clauses.size(); ++i) {
      const bool is_when = i == 0 && rule.condition != nullptr;
      if (is_when && indent.size() + 2 + clauses[i].size() > kFormatLineWidth) {
        *out += "\n" + indent + "  when " + BrokenChain(*rule.condition, indent + "    ");
      } else {
        *out += "\n" + indent + "  " + clauses[i];
      }
    }
  }
  if (rule.has_update) {
    *out += " update {";
    if (rule.updates.empty()) {
      *out += "}";
    } else {
      *out += "\n";
      for (const Rule& u : rule.updates) {
        PrintRule(u, indent + "  ", out);
        *out += ";\n";
      }
      *out += indent + "}";
    }
  }
}

std::string ItemText(const Item& item) {
  switch (item.kind) {
    case ItemKind::kPolicy:
      return "policy " + item.name + ";";
    case ItemKind::kTools:
      return "tools " + Quote(item.path) + ";";
    case ItemKind::kTrust: {
      std::string out = "trust ";
      for (size_t i = 0; i < item.trust.size(); ++i) {
        if (i > 0) out += ", ";
        out += TargetText(item.trust[i]);
      }
      return out + ";";
    }
    case ItemKind::kLet: {
      std::string out = "let " + item.name + " = ";
      std::string value = FormatExpr(*item.value);
      if (out.size() + value.size() + 1 > kFormatLineWidth && item.value->kind == ExprKind::kList &&
          !item.value->children.empty()) {
        value = BrokenList(*item.value, "");
      }
      return out + value + ";";
    }
    case ItemKind::kDefault:
      return "default " + FallbackText(item.fallback) + ";";
    case ItemKind::kRule: {
      std::string out;
      PrintRule(item.rule, "", &out);
      return out + ";";
    }
  }
  return "";
}

}  // namespace

std::string FormatExpr(const Expr& expr) {
  std::string out;
  Print(expr, &out);
  return out;
}

std::string Format(const PolicyAst& ast, const Source& source) {
  std::string out;
  size_t next_comment = 0;
  int last_line = 0;  // last source line already printed
  auto blank_before = [&](int line) {
    if (!out.empty() && last_line > 0 && line > last_line + 1) {
      // Keep one blank line where the source had any.
      bool blank = false;
      for (int l = last_line + 1; l < line; ++l) {
        if (source.Line(l).find_first_not_of(" \t\r") == std::string_view::npos) blank = true;
      }
      if (blank) out += "\n";
    }
  };
  for (const Item& item : ast.items) {
    // Comments before the item, and comments inside it, go on their own lines first.
    while (next_comment < ast.comments.size() &&
           ast.comments[next_comment].position.line <= item.end.line &&
           !(ast.comments[next_comment].position.line == item.end.line &&
             ast.comments[next_comment].position.offset > item.end.offset)) {
      const Comment& c = ast.comments[next_comment++];
      if (c.position.line == last_line && last_line > 0) {
        // A trailing comment of the previous item.
        out.insert(out.size() - 1, "  " + c.text);
        continue;
      }
      blank_before(c.position.line);
      out += c.text + "\n";
      last_line = c.position.line;
    }
    blank_before(item.position.line);
    out += ItemText(item) + "\n";
    last_line = item.end.line;
  }
  while (next_comment < ast.comments.size()) {
    const Comment& c = ast.comments[next_comment++];
    if (c.position.line == last_line && last_line > 0) {
      out.insert(out.size() - 1, "  " + c.text);
      continue;
    }
    blank_before(c.position.line);
    out += c.text + "\n";
    last_line = c.position.line;
  }
  return out;
}

std::string FormatToolName(const std::string& name) {
  return IsIdentifier(name) ? name : Quote(name);
}

}  // namespace toolwarden
