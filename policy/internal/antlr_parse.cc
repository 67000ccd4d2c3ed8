// The only translation unit that includes ANTLR-generated headers. It turns
// the parse tree into the plain AST of policy/ast.h; no ANTLR type or exception
// leaves this file.
#include "policy/internal/antlr_parse.h"

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

#include "PolicyLexer.h"
#include "PolicyParser.h"
#include "antlr4-runtime.h"

namespace toolwarden::internal {
namespace {

using toolwarden_grammar::PolicyLexer;
using toolwarden_grammar::PolicyParser;

// Maps ANTLR's code-point indexes to byte offsets and positions.
class Locator {
 public:
  explicit Locator(const Source& source) : source_(source) {
    const std::string& text = source.text();
    for (size_t i = 0; i < text.size(); ++i) {
      if (static_cast<unsigned char>(text[i]) >= 0x80) {
        ascii_ = false;
        break;
      }
    }
    if (!ascii_) {
      for (size_t i = 0; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) byte_of_index_.push_back(i);
      }
      byte_of_index_.push_back(text.size());
    }
  }

  size_t ByteOffset(size_t code_point_index) const {
    if (ascii_) return std::min(code_point_index, source_.text().size());
    if (code_point_index >= byte_of_index_.size()) return source_.text().size();
    return byte_of_index_[code_point_index];
  }

  Position At(const antlr4::Token* token) const {
    if (token == nullptr) return {};
    if (token->getType() == antlr4::Token::EOF) return source_.PositionAt(source_.text().size());
    return Position{static_cast<int>(token->getLine()),
                    static_cast<int>(token->getCharPositionInLine()) + 1,
                    ByteOffset(token->getStartIndex())};
  }

  size_t EndOffset(const antlr4::Token* token) const {
    if (token == nullptr || token->getType() == antlr4::Token::EOF) return source_.text().size();
    return ByteOffset(token->getStopIndex() + 1);
  }

 private:
  const Source& source_;
  bool ascii_ = true;
  std::vector<size_t> byte_of_index_;
};

// Thrown by the error listener once the error budget is spent; caught below.
struct TooManyErrors {};

class ErrorCollector : public antlr4::BaseErrorListener {
 public:
  ErrorCollector(const Locator& locator, const ParseLimits& limits, Diagnostics* diagnostics)
      : locator_(locator), limits_(limits), diagnostics_(diagnostics) {}

  void syntaxError(antlr4::Recognizer*, antlr4::Token* offending, size_t line, size_t char_position,
                   const std::string& message, std::exception_ptr) override {
    Position position = offending != nullptr ? locator_.At(offending)
                                             : Position{static_cast<int>(line),
                                                        static_cast<int>(char_position) + 1, 0};
    std::string text = "syntax error: " + message;
    if (offending != nullptr && offending->getType() == PolicyLexer::ERROR_CHAR) {
      text = offending->getText() == "\"" ? "unterminated string"
                                          : "unexpected character `" + offending->getText() + "`";
    }
    diagnostics_->Error(position, text);
    if (++count_ >= limits_.max_syntax_errors) {
      diagnostics_->Error(position, "too many syntax errors; stopped after " +
                                        std::to_string(limits_.max_syntax_errors));
      throw TooManyErrors{};
    }
  }

 private:
  const Locator& locator_;
  const ParseLimits& limits_;
  Diagnostics* diagnostics_;
  int count_ = 0;
};

bool IsOperatorToken(const std::string& t) {
  // `.` (a field selector) nests like an operator: `x.a.a.a` is a tree as deep
  // as its selectors.
  static const char* const kOps[] = {
      ".",  "-",  "+",   "*",       "/",        "%",          "==",       "!=",   "<",   "<=", ">",
      ">=", "in", "not", "matches", "contains", "startswith", "endswith", "from", "and", "or"};
  for (const char* op : kOps) {
    if (t == op) return true;
  }
  return false;
}

// Walks the token stream once, before the recursive parser runs, and reports
// nesting and list sizes beyond the limits. Returns false when parsing must not
// proceed. The measure: each open bracket is a level, and each operator since the
// last `,` or `;` at an open level is one more (a chain of N operators is a parse
// tree N deep).
bool CheckTokens(const std::vector<antlr4::Token*>& tokens, const Locator& locator,
                 const ParseLimits& limits, Diagnostics* diagnostics) {
  struct Level {
    int operators = 0;
    size_t elements = 0;
    bool list = false;
  };
  std::vector<Level> levels(1);
  long depth = 0;  // open levels plus operators counted in them
  // Every item, and every rule of an `update` block, ends with its own `;`, so
  // the `;` tokens bound the items before the parser builds a tree for each
  // (100,000 items take seconds and hundreds of megabytes to parse).
  size_t items = 0;
  for (antlr4::Token* token : tokens) {
    if (token->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
    const std::string text = token->getType() == PolicyLexer::IDENT ||
                                     token->getType() == PolicyLexer::STRING ||
                                     token->getType() == PolicyLexer::RAW_STRING
                                 ? std::string()
                                 : token->getText();
    if (text == "(" || text == "[" || text == "{") {
      // An index selector `a[i]` adds a level to the chain it ends, so every
      // `[` counts as an operator of the enclosing level, too (list literals
      // are over-counted, which errs on the safe side).
      if (text == "[") {
        ++levels.back().operators;
        ++depth;
      }
      levels.push_back(Level{0, 1, text == "["});
      ++depth;
    } else if (text == ")" || text == "]" || text == "}") {
      if (levels.size() > 1) {
        depth -= 1 + levels.back().operators;
        levels.pop_back();
      }
    } else if (text == "," || text == ";") {
      depth -= levels.back().operators;
      levels.back().operators = 0;
      if (text == ";" && ++items > limits.max_rules) {
        diagnostics->Error(locator.At(token),
                           "policy has more than " + std::to_string(limits.max_rules) + " items");
        return false;
      }
      if (text == "," && levels.back().list &&
          ++levels.back().elements > limits.max_list_elements) {
        diagnostics->Error(
            locator.At(token),
            "list literal has more than " + std::to_string(limits.max_list_elements) + " elements");
        return false;
      }
    } else if (IsOperatorToken(text)) {
      ++levels.back().operators;
      ++depth;
    }
    if (depth > limits.max_nesting) {
      diagnostics->Error(locator.At(token), "expression nests deeper than " +
                                                std::to_string(limits.max_nesting) +
                                                " levels (brackets and chained operators)");
      return false;
    }
  }
  return true;
}

class AstBuilder {
 public:
  AstBuilder(const Locator& locator, const ParseLimits& limits, Diagnostics* diagnostics)
      : locator_(locator), limits_(limits), diagnostics_(diagnostics) {}

  void BuildFile(PolicyParser::FileContext* file, PolicyAst* ast) {
    for (PolicyParser::ItemContext* item_ctx : file->item()) {
      Item item;
      if (BuildItem(item_ctx, &item)) ast->items.push_back(std::move(item));
      if (rules_ > limits_.max_rules) {
        diagnostics_->Error(locator_.At(item_ctx->getStart()),
                            "policy has more than " + std::to_string(limits_.max_rules) + " items");
        ast->items.clear();
        return;
      }
    }
  }

 private:
  Position At(antlr4::ParserRuleContext* ctx) const { return locator_.At(ctx->getStart()); }
  Position At(antlr4::tree::TerminalNode* node) const {
    return node == nullptr ? Position{} : locator_.At(node->getSymbol());
  }

  bool BuildItem(PolicyParser::ItemContext* ctx, Item* item) {
    ++rules_;
    item->position = At(ctx);
    item->end = locator_.At(ctx->getStop());
    if (auto* c = dynamic_cast<PolicyParser::PolicyItemContext*>(ctx)) {
      item->kind = ItemKind::kPolicy;
      if (c->IDENT() == nullptr) return false;
      item->name = c->IDENT()->getText();
    } else if (auto* c = dynamic_cast<PolicyParser::ToolsItemContext*>(ctx)) {
      item->kind = ItemKind::kTools;
      if (c->STRING() == nullptr) return false;
      item->path = DecodeString(c->STRING());
    } else if (auto* c = dynamic_cast<PolicyParser::TrustItemContext*>(ctx)) {
      item->kind = ItemKind::kTrust;
      for (auto* t : c->target()) item->trust.push_back(BuildTarget(t));
    } else if (auto* c = dynamic_cast<PolicyParser::LetItemContext*>(ctx)) {
      item->kind = ItemKind::kLet;
      if (c->IDENT() == nullptr || c->expr() == nullptr) return false;
      item->name = c->IDENT()->getText();
      item->value = BuildExpr(c->expr());
      if (item->value == nullptr) return false;
    } else if (auto* c = dynamic_cast<PolicyParser::DefaultItemContext*>(ctx)) {
      item->kind = ItemKind::kDefault;
      if (c->fallback() == nullptr) return false;
      item->fallback = BuildFallback(c->fallback());
    } else if (auto* c = dynamic_cast<PolicyParser::RuleItemContext*>(ctx)) {
      item->kind = ItemKind::kRule;
      if (c->policyRule() == nullptr) return false;
      return BuildRule(c->policyRule(), &item->rule);
    } else {
      return false;
    }
    return true;
  }

  bool BuildRule(PolicyParser::PolicyRuleContext* ctx, Rule* rule) {
    if (ctx->effect == nullptr) return false;
    rule->effect = ctx->effect->getText() == "allow" ? Effect::kAllow : Effect::kForbid;
    rule->position = At(ctx);
    for (auto* t : ctx->target()) rule->targets.push_back(BuildTarget(t));
    if (ctx->expr() != nullptr) {
      rule->condition = BuildExpr(ctx->expr());
      if (rule->condition == nullptr) return false;
    }
    if (ctx->INT() != nullptr) {
      rule->priority_position = At(ctx->INT());
      errno = 0;
      const std::string text = ctx->INT()->getText();
      long long value = std::strtoll(text.c_str(), nullptr, 10);
      // Out-of-range values are reported by the checker; keep a value past the range.
      rule->priority = errno == ERANGE || text.size() > 15 ? int64_t{1} << 50 : value;
    }
    if (ctx->fallback() != nullptr) rule->fallback = BuildFallback(ctx->fallback());
    for (auto* child : ctx->children) {
      if (auto* terminal = dynamic_cast<antlr4::tree::TerminalNode*>(child)) {
        if (terminal->getText() == "update") rule->has_update = true;
      }
    }
    for (auto* sub : ctx->policyRule()) {
      ++rules_;
      Rule update;
      if (!BuildRule(sub, &update)) return false;
      rule->updates.push_back(std::move(update));
    }
    return true;
  }

  Target BuildTarget(PolicyParser::TargetContext* ctx) {
    Target target;
    target.position = At(ctx);
    if (ctx->STRING() != nullptr) {
      target.text = DecodeString(ctx->STRING());
      target.quoted = true;
    } else {
      target.text = ctx->getText();
    }
    return target;
  }

  Fallback BuildFallback(PolicyParser::FallbackContext* ctx) {
    Fallback fallback;
    fallback.position = At(ctx);
    const std::string kind = ctx->kind != nullptr ? ctx->kind->getText() : "block";
    fallback.kind = kind == "ask"         ? FallbackKind::kAsk
                    : kind == "terminate" ? FallbackKind::kTerminate
                                          : FallbackKind::kBlock;
    if (ctx->STRING() != nullptr) fallback.message = DecodeString(ctx->STRING());
    return fallback;
  }

  std::string DecodeString(antlr4::tree::TerminalNode* node) {
    // The lexer accepts exactly JSON string syntax, so JSON decodes it; lone
    // surrogate escapes are the one thing it rejects.
    try {
      return nlohmann::json::parse(node->getText()).get<std::string>();
    } catch (const std::exception&) {
      diagnostics_->Error(At(node), "invalid escape in string " + node->getText());
      return std::string();
    }
  }

  std::unique_ptr<Expr> NewExpr(ExprKind kind, antlr4::ParserRuleContext* ctx) {
    auto expr = std::make_unique<Expr>();
    expr->kind = kind;
    expr->position = At(ctx);
    expr->end_offset = locator_.EndOffset(ctx->getStop());
    return expr;
  }

  std::unique_ptr<Expr> Binary(antlr4::ParserRuleContext* ctx, Op op,
                               const std::vector<PolicyParser::ExprContext*>& operands) {
    if (operands.size() != 2) return nullptr;
    auto expr = NewExpr(ExprKind::kBinary, ctx);
    expr->op = op;
    for (auto* operand : operands) {
      auto child = BuildExpr(operand);
      if (child == nullptr) return nullptr;
      expr->children.push_back(std::move(child));
    }
    return expr;
  }

  static Op OpOf(const antlr4::Token* token) {
    static const std::pair<const char*, Op> kOps[] = {{"*", Op::kMul},
                                                      {"/", Op::kDiv},
                                                      {"%", Op::kMod},
                                                      {"+", Op::kAdd},
                                                      {"-", Op::kSub},
                                                      {"==", Op::kEq},
                                                      {"!=", Op::kNe},
                                                      {"<", Op::kLt},
                                                      {"<=", Op::kLe},
                                                      {">", Op::kGt},
                                                      {">=", Op::kGe},
                                                      {"matches", Op::kMatches},
                                                      {"contains", Op::kContains},
                                                      {"startswith", Op::kStartsWith},
                                                      {"endswith", Op::kEndsWith}};
    if (token == nullptr) return Op::kNone;
    for (const auto& [text, op] : kOps) {
      if (token->getText() == text) return op;
    }
    return Op::kNone;
  }

  // Returns null when the subtree holds a syntax error (already reported).
  std::unique_ptr<Expr> BuildExpr(PolicyParser::ExprContext* ctx) {
    if (ctx == nullptr || ctx->exception != nullptr) return nullptr;
    if (auto* c = dynamic_cast<PolicyParser::PostfixExprContext*>(ctx)) {
      return BuildPostfix(c->postfix());
    }
    if (auto* c = dynamic_cast<PolicyParser::NegExprContext*>(ctx)) {
      auto operand = BuildExpr(c->expr());
      if (operand == nullptr) return nullptr;
      if (operand->kind == ExprKind::kLiteral && operand->literal.is_number()) {
        // Fold `-5` into a literal so constants stay constants.
        const nlohmann::json& v = operand->literal;
        operand->literal = v.is_number_float() ? nlohmann::json(-v.get<double>())
                                               : nlohmann::json(-v.get<int64_t>());
        operand->position = At(ctx);
        return operand;
      }
      auto expr = NewExpr(ExprKind::kUnary, ctx);
      expr->op = Op::kNeg;
      expr->children.push_back(std::move(operand));
      return expr;
    }
    if (auto* c = dynamic_cast<PolicyParser::NotExprContext*>(ctx)) {
      auto operand = BuildExpr(c->expr());
      if (operand == nullptr) return nullptr;
      auto expr = NewExpr(ExprKind::kUnary, ctx);
      expr->op = Op::kNot;
      expr->children.push_back(std::move(operand));
      return expr;
    }
    if (auto* c = dynamic_cast<PolicyParser::MulExprContext*>(ctx))
      return Binary(c, OpOf(c->op), c->expr());
    if (auto* c = dynamic_cast<PolicyParser::AddExprContext*>(ctx))
      return Binary(c, OpOf(c->op), c->expr());
    if (auto* c = dynamic_cast<PolicyParser::CompareExprContext*>(ctx)) {
      return Binary(c, OpOf(c->op), c->expr());
    }
    if (auto* c = dynamic_cast<PolicyParser::StringExprContext*>(ctx)) {
      return Binary(c, OpOf(c->op), c->expr());
    }
    if (auto* c = dynamic_cast<PolicyParser::InExprContext*>(ctx)) {
      return Binary(c, c->negated != nullptr ? Op::kNotIn : Op::kIn, c->expr());
    }
    if (auto* c = dynamic_cast<PolicyParser::AndExprContext*>(ctx))
      return Binary(c, Op::kAnd, c->expr());
    if (auto* c = dynamic_cast<PolicyParser::OrExprContext*>(ctx))
      return Binary(c, Op::kOr, c->expr());
    if (auto* c = dynamic_cast<PolicyParser::FromExprContext*>(ctx)) {
      auto operand = BuildExpr(c->expr());
      if (operand == nullptr || c->source == nullptr) return nullptr;
      auto expr = NewExpr(ExprKind::kFrom, ctx);
      expr->name = c->source->getText();
      expr->children.push_back(std::move(operand));
      return expr;
    }
    return nullptr;
  }

  std::unique_ptr<Expr> BuildPostfix(PolicyParser::PostfixContext* ctx) {
    if (ctx == nullptr || ctx->primary() == nullptr) return nullptr;
    auto expr = BuildPrimary(ctx->primary());
    if (expr == nullptr) return nullptr;
    for (auto* selector : ctx->selector()) {
      std::unique_ptr<Expr> outer;
      if (auto* f = dynamic_cast<PolicyParser::FieldSelectorContext*>(selector)) {
        if (f->IDENT() == nullptr) return nullptr;
        outer = NewExpr(ExprKind::kField, ctx);
        outer->name = f->IDENT()->getText();
      } else if (auto* i = dynamic_cast<PolicyParser::IndexSelectorContext*>(selector)) {
        auto index = BuildExpr(i->expr());
        if (index == nullptr) return nullptr;
        outer = NewExpr(ExprKind::kIndex, ctx);
        outer->children.push_back(nullptr);
        outer->children.push_back(std::move(index));
      } else {
        return nullptr;
      }
      outer->end_offset = locator_.EndOffset(selector->getStop());
      if (outer->children.empty()) outer->children.push_back(nullptr);
      outer->children[0] = std::move(expr);
      expr = std::move(outer);
    }
    return expr;
  }

  std::unique_ptr<Expr> Literal(antlr4::ParserRuleContext* ctx, nlohmann::json value) {
    auto expr = NewExpr(ExprKind::kLiteral, ctx);
    expr->literal = std::move(value);
    return expr;
  }

  std::unique_ptr<Expr> BuildPrimary(PolicyParser::PrimaryContext* ctx) {
    if (ctx->exception != nullptr) return nullptr;
    if (dynamic_cast<PolicyParser::NullLiteralContext*>(ctx)) return Literal(ctx, nullptr);
    if (dynamic_cast<PolicyParser::TrueLiteralContext*>(ctx)) return Literal(ctx, true);
    if (dynamic_cast<PolicyParser::FalseLiteralContext*>(ctx)) return Literal(ctx, false);
    if (auto* c = dynamic_cast<PolicyParser::IntLiteralContext*>(ctx)) {
      const std::string text = c->getText();
      errno = 0;
      long long value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) return Literal(ctx, std::strtod(text.c_str(), nullptr));
      return Literal(ctx, static_cast<int64_t>(value));
    }
    if (auto* c = dynamic_cast<PolicyParser::NumberLiteralContext*>(ctx)) {
      double value = std::strtod(c->getText().c_str(), nullptr);
      if (!std::isfinite(value)) {
        diagnostics_->Error(At(ctx), "number `" + c->getText() + "` is out of range");
        return nullptr;
      }
      return Literal(ctx, value);
    }
    if (auto* c = dynamic_cast<PolicyParser::StringLiteralContext*>(ctx)) {
      return Literal(ctx, DecodeString(c->STRING()));
    }
    if (auto* c = dynamic_cast<PolicyParser::RawStringLiteralContext*>(ctx)) {
      const std::string text = c->getText();  // r"..."
      auto expr = Literal(ctx, text.substr(2, text.size() - 3));
      expr->raw_string = true;
      return expr;
    }
    if (auto* c = dynamic_cast<PolicyParser::ListLiteralContext*>(ctx)) {
      auto expr = NewExpr(ExprKind::kList, ctx);
      for (auto* element : c->expr()) {
        auto child = BuildExpr(element);
        if (child == nullptr) return nullptr;
        expr->children.push_back(std::move(child));
      }
      return expr;
    }
    if (auto* c = dynamic_cast<PolicyParser::CallExprContext*>(ctx)) {
      if (c->IDENT() == nullptr) return nullptr;
      auto expr = NewExpr(ExprKind::kCall, ctx);
      expr->name = c->IDENT()->getText();
      for (auto* argument : c->expr()) {
        auto child = BuildExpr(argument);
        if (child == nullptr) return nullptr;
        expr->children.push_back(std::move(child));
      }
      return expr;
    }
    if (auto* c = dynamic_cast<PolicyParser::NameExprContext*>(ctx)) {
      auto expr = NewExpr(ExprKind::kName, ctx);
      expr->name = c->getText();
      return expr;
    }
    if (auto* c = dynamic_cast<PolicyParser::ParenExprContext*>(ctx)) return BuildExpr(c->expr());
    return nullptr;
  }

  const Locator& locator_;
  const ParseLimits& limits_;
  Diagnostics* diagnostics_;
  size_t rules_ = 0;
};

}  // namespace

void AntlrParse(const Source& source, const ParseLimits& limits, ParseResult* result) {
  Locator locator(source);
  try {
    antlr4::ANTLRInputStream input(source.text());
    PolicyLexer lexer(&input);
    ErrorCollector errors(locator, limits, &result->diagnostics);
    lexer.removeErrorListeners();
    lexer.addErrorListener(&errors);
    antlr4::CommonTokenStream tokens(&lexer);
    tokens.fill();
    if (!CheckTokens(tokens.getTokens(), locator, limits, &result->diagnostics)) return;
    for (antlr4::Token* token : tokens.getTokens()) {
      if (token->getType() == PolicyLexer::COMMENT) {
        result->ast.comments.push_back({locator.At(token), token->getText()});
      }
    }
    PolicyParser parser(&tokens);
    parser.removeErrorListeners();
    parser.addErrorListener(&errors);
    PolicyParser::FileContext* file = parser.file();
    AstBuilder builder(locator, limits, &result->diagnostics);
    builder.BuildFile(file, &result->ast);
  } catch (const TooManyErrors&) {
    // Already reported.
  } catch (const std::exception& e) {
    result->diagnostics.Error(Position{1, 1, 0}, std::string("internal parser error: ") + e.what());
  } catch (...) {
    result->diagnostics.Error(Position{1, 1, 0}, "internal parser error");
  }
}

}  // namespace toolwarden::internal
