#include "policy/narrowing.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "policy/ast.h"
#include "policy/checker.h"
#include "policy/diagnostic.h"
#include "policy/formatter.h"
#include "policy/parser.h"

namespace toolwarden {

std::string Narrowing::Line() const {
  if (position.line <= 0) return message;
  return "line " + std::to_string(position.line) + ": " + message;
}

namespace {

// --- Values a subject may have --------------------------------------------------

// The kinds `type()` names, as bits of a mask.
constexpr uint8_t kNullBit = 1, kBoolBit = 2, kNumberBit = 4, kStringBit = 8, kArrayBit = 16,
                  kObjectBit = 32;
constexpr uint8_t kAllTypes = 63;

uint8_t TypeBitOfName(const std::string& name) {
  if (name == "null") return kNullBit;
  if (name == "boolean") return kBoolBit;
  if (name == "number") return kNumberBit;
  if (name == "string") return kStringBit;
  if (name == "array") return kArrayBit;
  if (name == "object") return kObjectBit;
  return 0;  // `type()` never returns it
}

// A scalar literal, ordered so that values the evaluator finds equal (numbers
// by value, different types unequal) are equal here.
struct Scalar {
  uint8_t type = kNullBit;
  bool boolean = false;
  double number = 0;
  std::string text;
  bool operator<(const Scalar& o) const {
    if (type != o.type) return type < o.type;
    if (type == kBoolBit) return boolean < o.boolean;
    if (type == kNumberBit) return number < o.number;
    return type == kStringBit && text < o.text;
  }
};

std::optional<Scalar> ScalarOf(const Expr& e) {
  if (e.kind != ExprKind::kLiteral) return std::nullopt;
  Scalar s;
  const nlohmann::json& j = e.literal;
  if (j.is_null()) {
    s.type = kNullBit;
  } else if (j.is_boolean()) {
    s.type = kBoolBit;
    s.boolean = j.get<bool>();
  } else if (j.is_number()) {
    s.type = kNumberBit;
    s.number = j.get<double>();
    if (s.number == 0) s.number = 0;  // -0 == 0 in the evaluator
  } else if (j.is_string()) {
    s.type = kStringBit;
    s.text = j.get<std::string>();
  } else {
    return std::nullopt;
  }
  return s;
}

Scalar BoolScalar(bool b) {
  Scalar s;
  s.type = kBoolBit;
  s.boolean = b;
  return s;
}

// Numbers between two bounds; an infinite bound is no bound (arguments and
// computed values are always finite).
struct Interval {
  double lo = -std::numeric_limits<double>::infinity();
  bool lo_strict = false;
  double hi = std::numeric_limits<double>::infinity();
  bool hi_strict = false;

  bool Contains(double x) const {
    return (x > lo || (x == lo && !lo_strict)) && (x < hi || (x == hi && !hi_strict));
  }
  bool Contains(const Interval& in) const {
    const bool low = in.lo > lo || (in.lo == lo && (!lo_strict || in.lo_strict));
    const bool high = in.hi < hi || (in.hi == hi && (!hi_strict || in.hi_strict));
    return low && high;
  }
};

// A set of values.
struct Domain {
  enum class Kind {
    kValues,     // exactly the scalars in `values`
    kNotValues,  // every value but the scalars in `values`
    kTypes,      // every value whose type is in `types`
    kRange,      // the numbers in `range`
  };
  Kind kind = Kind::kValues;
  std::set<Scalar> values;
  uint8_t types = 0;
  Interval range;
};

// What one comparison says about one subject expression.
struct Atom {
  const Expr* subject = nullptr;
  Domain domain;
  // True: the comparison holds (without an error) for every value of the
  // subject in `domain`, so it can be a goal. Always: it holds only for such
  // values, so it can be a premise.
  bool exact = false;
};

bool IsLiteral(const Expr& e) { return e.kind == ExprKind::kLiteral; }

bool IsBoolLiteral(const Expr& e, bool value) {
  return e.kind == ExprKind::kLiteral && e.literal.is_boolean() && e.literal.get<bool>() == value;
}

bool IsBinary(const Expr& e, Op op) {
  return e.kind == ExprKind::kBinary && e.op == op && e.children.size() == 2 &&
         e.children[0] != nullptr && e.children[1] != nullptr;
}

// S for `type(S)`, else null.
const Expr* TypeArgument(const Expr& e) {
  if (e.kind == ExprKind::kCall && e.name == "type" && e.children.size() == 1) {
    return e.children[0].get();
  }
  return nullptr;
}

// The argument name of `args.x` and `args["x"]`, which compile to the same
// argument read (`args` cannot be rebound: the checker refuses a constant or a
// quantifier variable of that name).
std::optional<std::string> ArgKey(const Expr& e) {
  if (e.children.empty() || e.children[0] == nullptr) return std::nullopt;
  const Expr& base = *e.children[0];
  if (base.kind != ExprKind::kName || base.name != "args") return std::nullopt;
  if (e.kind == ExprKind::kField) return e.name;
  if (e.kind == ExprKind::kIndex && e.children.size() == 2 && e.children[1] != nullptr &&
      e.children[1]->kind == ExprKind::kLiteral && e.children[1]->literal.is_string()) {
    return e.children[1]->literal.get<std::string>();
  }
  return std::nullopt;
}

// Literals the evaluator cannot tell apart: numbers by value (all numbers are
// doubles there), `r"..."` and "..." by their text.
bool SameLiteral(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a.type() == b.type() && a == b;
}

// `S op n` read as `n op' S`.
Op Mirror(Op op) {
  switch (op) {
    case Op::kLt:
      return Op::kGt;
    case Op::kLe:
      return Op::kGe;
    case Op::kGt:
      return Op::kLt;
    case Op::kGe:
      return Op::kLe;
    default:
      return op;
  }
}

// --- The prover ---------------------------------------------------------------

struct RuleRef {
  const Rule* rule;
  Position position;
};

class Prover {
 public:
  explicit Prover(size_t max_steps) : max_steps_(max_steps) {}

  bool exhausted() const { return exhausted_; }
  size_t max_steps() const { return max_steps_; }

  // Whether every value making `p` true (without an error) makes `g` true;
  // `p` null is the condition of a rule without `when` (always true).
  bool Implies(const Expr* p, const Expr& g) {
    if (!Charge(1)) return false;
    if (IsBoolLiteral(g, true)) return true;
    // First, so that identical conditions cost one pass however large they are.
    if (p != nullptr && Same(*p, g)) return true;
    if (IsBinary(g, Op::kAnd)) return Implies(p, *g.children[0]) && Implies(p, *g.children[1]);
    if (p != nullptr) {
      if (IsBoolLiteral(*p, false)) return true;  // never holds
      // A true `or` had one side true; a true `and` had both.
      if (IsBinary(*p, Op::kOr)) {
        return Implies(p->children[0].get(), g) && Implies(p->children[1].get(), g);
      }
      if (IsBinary(*p, Op::kAnd)) {
        return Implies(p->children[0].get(), g) || Implies(p->children[1].get(), g);
      }
    }
    // A true side makes an `or` true by short-circuit or after a false left side.
    if (IsBinary(g, Op::kOr)) return Implies(p, *g.children[0]) || Implies(p, *g.children[1]);
    if (p == nullptr) return false;
    return AtomImplies(*p, g);
  }

  // Structural identity, iterative so deep expressions cannot overflow the stack.
  bool Same(const Expr& a, const Expr& b) {
    std::vector<std::pair<const Expr*, const Expr*>> stack = {{&a, &b}};
    while (!stack.empty()) {
      auto [x, y] = stack.back();
      stack.pop_back();
      if (!Charge(1)) return false;
      if (x == nullptr || y == nullptr) {
        if (x != y) return false;
        continue;
      }
      std::optional<std::string> kx = ArgKey(*x), ky = ArgKey(*y);
      if (kx || ky) {
        if (kx != ky) return false;
        continue;
      }
      if (x->kind != y->kind || x->op != y->op || x->name != y->name ||
          x->children.size() != y->children.size()) {
        return false;
      }
      if (x->kind == ExprKind::kLiteral && !SameLiteral(x->literal, y->literal)) return false;
      for (size_t i = 0; i < x->children.size(); ++i) {
        stack.push_back({x->children[i].get(), y->children[i].get()});
      }
    }
    return true;
  }

  // The comparison `e` as a constraint on one subject, or null.
  const Atom* AtomOf(const Expr& e) {
    auto it = atoms_.find(&e);
    if (it == atoms_.end()) it = atoms_.emplace(&e, MakeAtom(e)).first;
    return it->second ? &*it->second : nullptr;
  }

  // The top-level `and` chain of `e`, seen through parentheses, left to
  // right; empty when the budget runs out.
  std::vector<const Expr*> Conjuncts(const Expr* e) {
    std::vector<const Expr*> out;
    std::vector<const Expr*> stack;
    if (e != nullptr) stack.push_back(e);
    while (!stack.empty()) {
      const Expr* x = stack.back();
      stack.pop_back();
      if (!Charge(1)) return {};
      if (IsBinary(*x, Op::kAnd)) {
        stack.push_back(x->children[1].get());
        stack.push_back(x->children[0].get());
      } else {
        out.push_back(x);
      }
    }
    return out;
  }

  // `before`'s rule `a` covers `after`'s rule `a2` on its target `t2`.
  bool TargetCovers(const Rule& a, const Target& t2) {
    for (const Target& t : a.targets) {
      if (!Charge(1)) return false;
      if (TargetCovers(t, t2)) return true;
    }
    return false;
  }

 private:
  bool Charge(size_t n) {
    if (exhausted_) return false;
    steps_ += n;
    if (steps_ > max_steps_) exhausted_ = true;
    return !exhausted_;
  }

  static bool TargetCovers(const Target& t, const Target& t2) {
    if (t.text == t2.text) return true;
    if (!t.IsGlob()) return false;
    if (!t2.IsGlob()) return GlobMatch(t.text, t2.text);
    // `P*`, P free of `*` and `?`, covers every pattern that starts with P: P
    // is matched literally, so every name it matches starts with P too.
    const size_t meta = t.text.find_first_of("*?");
    if (t.text[meta] != '*' || t.text.find_first_not_of('*', meta) != std::string::npos) {
      return false;
    }
    return t2.text.compare(0, meta, t.text, 0, meta) == 0;
  }

  std::optional<Atom> MakeAtom(const Expr& e) {
    if (e.kind != ExprKind::kBinary || e.children.size() != 2 || e.children[0] == nullptr ||
        e.children[1] == nullptr) {
      return std::nullopt;
    }
    const Expr& l = *e.children[0];
    const Expr& r = *e.children[1];
    // The side that is not a literal, with the operator as if it were on the left.
    const Expr* subject = nullptr;
    const Expr* literal = nullptr;
    Op op = e.op;
    if (IsLiteral(r) && !IsLiteral(l)) {
      subject = &l;
      literal = &r;
    } else if (IsLiteral(l) && !IsLiteral(r)) {
      subject = &r;
      literal = &l;
      op = Mirror(op);
    }
    Atom atom;
    switch (e.op) {
      case Op::kEq:
      case Op::kNe: {
        if (subject == nullptr) return std::nullopt;
        std::optional<Scalar> v = ScalarOf(*literal);
        if (!v) return std::nullopt;
        atom.exact = true;
        if (const Expr* s = TypeArgument(*subject)) {
          const uint8_t mask = v->type == kStringBit ? TypeBitOfName(v->text) : 0;
          atom.subject = s;
          atom.domain.kind = Domain::Kind::kTypes;
          atom.domain.types = e.op == Op::kEq ? mask : kAllTypes & ~mask;
        } else {
          atom.subject = subject;
          atom.domain.kind = e.op == Op::kEq ? Domain::Kind::kValues : Domain::Kind::kNotValues;
          atom.domain.values.insert(*v);
        }
        return atom;
      }
      case Op::kIn:
      case Op::kNotIn: {
        if (IsLiteral(l) || r.kind != ExprKind::kList) return std::nullopt;
        std::set<Scalar> values;
        for (const auto& element : r.children) {
          if (!Charge(1) || element == nullptr) return std::nullopt;
          std::optional<Scalar> v = ScalarOf(*element);
          if (!v) return std::nullopt;
          values.insert(std::move(*v));
        }
        atom.exact = true;
        if (const Expr* s = TypeArgument(l)) {
          uint8_t mask = 0;
          for (const Scalar& v : values) {
            if (v.type == kStringBit) mask |= TypeBitOfName(v.text);
          }
          atom.subject = s;
          atom.domain.kind = Domain::Kind::kTypes;
          atom.domain.types = e.op == Op::kIn ? mask : kAllTypes & ~mask;
        } else {
          atom.subject = &l;
          atom.domain.kind = e.op == Op::kIn ? Domain::Kind::kValues : Domain::Kind::kNotValues;
          atom.domain.values = std::move(values);
        }
        return atom;
      }
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        if (subject == nullptr) return std::nullopt;
        atom.subject = subject;
        if (literal->literal.is_string()) {
          // Strings compare only with strings; anything more exact is not modelled.
          atom.domain.kind = Domain::Kind::kTypes;
          atom.domain.types = kStringBit;
          return atom;
        }
        if (!literal->literal.is_number()) return std::nullopt;
        const double n = literal->literal.get<double>();
        atom.exact = true;
        atom.domain.kind = Domain::Kind::kRange;
        Interval& range = atom.domain.range;
        if (op == Op::kLt || op == Op::kLe) {
          range.hi = n;
          range.hi_strict = op == Op::kLt;
        } else {
          range.lo = n;
          range.lo_strict = op == Op::kGt;
        }
        return atom;
      }
      case Op::kMatches:
        // The pattern is a constant: whatever it is, a non-string subject is an error.
        if (IsLiteral(l)) return std::nullopt;
        atom.subject = &l;
        atom.domain.kind = Domain::Kind::kTypes;
        atom.domain.types = kStringBit;
        return atom;
      case Op::kContains:
      case Op::kStartsWith:
      case Op::kEndsWith:
        // Both operands must be strings; the subject is the one that is not a literal.
        if (subject == nullptr) return std::nullopt;
        atom.subject = subject;
        atom.domain.kind = Domain::Kind::kTypes;
        atom.domain.types = kStringBit;
        return atom;
      default:
        return std::nullopt;
    }
  }

  bool InDomain(const Scalar& v, const Domain& d) {
    switch (d.kind) {
      case Domain::Kind::kValues:
        return d.values.count(v) > 0;
      case Domain::Kind::kNotValues:
        return d.values.count(v) == 0;
      case Domain::Kind::kTypes:
        return (d.types & v.type) != 0;
      case Domain::Kind::kRange:
        return v.type == kNumberBit && d.range.Contains(v.number);
    }
    return false;
  }

  // Whether every type in `types` is wholly inside `values` (only null and
  // boolean are finite types).
  static bool TypesWithin(uint8_t types, const std::set<Scalar>& values) {
    if (types & ~(kNullBit | kBoolBit)) return false;
    if ((types & kNullBit) && values.count(Scalar{}) == 0) return false;
    if ((types & kBoolBit) &&
        (values.count(BoolScalar(true)) == 0 || values.count(BoolScalar(false)) == 0)) {
      return false;
    }
    return true;
  }

  // p ⊆ g.
  bool Subset(const Domain& p, const Domain& g) {
    using Kind = Domain::Kind;
    switch (p.kind) {
      case Kind::kValues:
        for (const Scalar& v : p.values) {
          if (!Charge(1) || !InDomain(v, g)) return false;
        }
        return true;
      case Kind::kTypes:
        switch (g.kind) {
          case Kind::kValues:
            return TypesWithin(p.types, g.values);
          case Kind::kNotValues:
            for (const Scalar& v : g.values) {
              if (!Charge(1) || (v.type & p.types) != 0) return false;
            }
            return true;
          case Kind::kTypes:
            return (p.types & ~g.types) == 0;
          case Kind::kRange:
            return p.types == 0;
        }
        return false;
      case Kind::kRange:
        switch (g.kind) {
          case Kind::kValues:
            return false;
          case Kind::kNotValues:
            for (const Scalar& v : g.values) {
              if (!Charge(1) || (v.type == kNumberBit && p.range.Contains(v.number))) return false;
            }
            return true;
          case Kind::kTypes:
            return (g.types & kNumberBit) != 0;
          case Kind::kRange:
            return g.range.Contains(p.range);
        }
        return false;
      case Kind::kNotValues:
        switch (g.kind) {
          case Kind::kNotValues:
            for (const Scalar& v : g.values) {
              if (!Charge(1) || p.values.count(v) == 0) return false;
            }
            return true;
          case Kind::kTypes:
            // The values outside g's types must all be excluded by p.
            return TypesWithin(kAllTypes & ~g.types, p.values);
          default:
            return false;
        }
    }
    return false;
  }

  bool AtomImplies(const Expr& p, const Expr& g) {
    const Atom* goal = AtomOf(g);
    if (goal == nullptr || !goal->exact) return false;
    const Atom* premise = AtomOf(p);
    if (premise == nullptr || !Same(*premise->subject, *goal->subject)) return false;
    return Subset(premise->domain, goal->domain);
  }

  size_t max_steps_;
  size_t steps_ = 0;
  bool exhausted_ = false;
  std::unordered_map<const Expr*, std::optional<Atom>> atoms_;
};

// --- Messages -------------------------------------------------------------------

std::string Quoted(std::string_view text, size_t max_bytes) {
  return "`" + Abbreviate(text, max_bytes) + "`";
}

std::string TargetText(const Target& t) {
  if (!t.quoted) return t.text;
  return nlohmann::json(t.text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `allow a, b when ...`
std::string RuleHead(const Rule& rule) {
  std::string text = rule.effect == Effect::kAllow ? "allow " : "forbid ";
  for (size_t i = 0; i < rule.targets.size(); ++i) {
    if (i > 0) text += ", ";
    text += TargetText(rule.targets[i]);
  }
  if (rule.condition != nullptr) text += " when ...";
  return Quoted(text, 100);
}

// What an item is, when it has no place in drafted rules; nullopt for an
// `allow` rule without `update` block or fallback.
std::optional<std::string> Misplaced(const Item& item) {
  switch (item.kind) {
    case ItemKind::kPolicy:
      return "a `policy` header";
    case ItemKind::kTools:
      return "a `tools` item";
    case ItemKind::kTrust:
      return "a `trust` item";
    case ItemKind::kLet:
      return "a `let`";
    case ItemKind::kDefault:
      return "a `default`";
    case ItemKind::kRule:
      break;
  }
  if (item.rule.effect != Effect::kAllow) return "a `forbid` rule";
  if (item.rule.has_update) return "an `allow` rule with an `update` block";
  if (item.rule.fallback) return "an `allow` rule with a fallback";
  return std::nullopt;
}

StatusOr<ParseResult> ParseRules(std::string_view text, const char* which) {
  Source source(which, std::string(text));
  ParseResult parsed = Parse(source);
  if (parsed.diagnostics.HasErrors()) {
    for (const Diagnostic& d : parsed.diagnostics.Sorted()) {
      if (d.severity != Severity::kError) continue;
      return InvalidArgumentError(std::string("the ") + which + " do not parse: line " +
                                  std::to_string(d.position.line) + ": " + d.message);
    }
  }
  return parsed;
}

// Why `after`'s rule is not covered on `target`, for the message.
std::string Explain(Prover& prover, const Rule& rule, const Target& target,
                    const std::vector<RuleRef>& before) {
  auto out_of_steps = [&] {
    return RuleHead(rule) + " was not proven within a current rule: the proof ran out of its " +
           "budget of " + std::to_string(prover.max_steps()) + " steps";
  };
  if (prover.exhausted()) return out_of_steps();
  std::string head = RuleHead(rule) + " is not within any current rule: ";
  const RuleRef* closest = nullptr;
  size_t best = 0;
  const Expr* missing = nullptr;
  for (const RuleRef& candidate : before) {
    if (!prover.TargetCovers(*candidate.rule, target)) continue;
    size_t implied = 0;
    const Expr* first_missing = nullptr;
    for (const Expr* goal : prover.Conjuncts(candidate.rule->condition.get())) {
      if (prover.Implies(rule.condition.get(), *goal)) {
        ++implied;
      } else if (first_missing == nullptr) {
        first_missing = goal;
      }
    }
    if (prover.exhausted()) return out_of_steps();
    if (closest == nullptr || implied > best) {
      closest = &candidate;
      best = implied;
      missing = first_missing;
    }
  }
  if (prover.exhausted()) return out_of_steps();
  if (closest == nullptr) return head + "no current rule covers " + Quoted(TargetText(target), 80);
  std::string where =
      "the closest current rule, line " + std::to_string(closest->position.line) + ", ";
  if (missing == nullptr) return head + where + "is not implied";  // unreachable: conjunct-wise
  std::string needs = where + "needs " + Quoted(FormatExpr(*missing), 80);
  if (rule.condition == nullptr) return head + needs + ", and this rule has no condition";
  if (const Atom* goal = prover.AtomOf(*missing)) {
    for (const Expr* premise : prover.Conjuncts(rule.condition.get())) {
      const Atom* atom = prover.AtomOf(*premise);
      if (atom != nullptr && prover.Same(*atom->subject, *goal->subject)) {
        return head + needs + ", which " + Quoted(FormatExpr(*premise), 80) + " does not imply";
      }
    }
  }
  return head + needs + ", which no condition of this rule implies";
}

}  // namespace

StatusOr<NarrowingResult> ProveNarrower(std::string_view before_text, std::string_view after_text,
                                        const NarrowingLimits& limits) {
  StatusOr<ParseResult> before = ParseRules(before_text, "current rules");
  if (!before.ok()) return before.status();
  StatusOr<ParseResult> after = ParseRules(after_text, "new rules");
  if (!after.ok()) return after.status();

  NarrowingResult result;
  std::vector<RuleRef> before_rules;
  for (const Item& item : before->ast.items) {
    if (std::optional<std::string> what = Misplaced(item)) {
      result.widening.push_back({Position{}, "the current rules hold " + *what + " (line " +
                                                 std::to_string(item.position.line) +
                                                 "), so nothing can be proven narrower than them"});
    } else {
      before_rules.push_back({&item.rule, item.position});
    }
  }
  Prover prover(limits.max_steps);
  const bool before_ok = result.widening.empty();
  for (const Item& item : after->ast.items) {
    if (std::optional<std::string> what = Misplaced(item)) {
      result.widening.push_back(
          {item.position,
           "only `allow` rules without `update` blocks or fallbacks can be proven "
           "narrower, and this is " +
               *what});
      continue;
    }
    if (!before_ok) continue;
    const Rule& rule = item.rule;
    // Whether each rule of `before` holds whenever `rule` does: -1 unknown.
    std::vector<int8_t> implied(before_rules.size(), -1);
    for (const Target& target : rule.targets) {
      bool covered = false;
      for (size_t i = 0; i < before_rules.size() && !covered; ++i) {
        const Rule& candidate = *before_rules[i].rule;
        if (!prover.TargetCovers(candidate, target)) continue;
        if (implied[i] < 0) {
          implied[i] = candidate.condition == nullptr ||
                       prover.Implies(rule.condition.get(), *candidate.condition);
        }
        covered = implied[i] == 1;
      }
      if (!covered) {
        result.widening.push_back({item.position, Explain(prover, rule, target, before_rules)});
        break;
      }
    }
  }
  result.narrower = result.widening.empty();
  return result;
}

}  // namespace toolwarden
