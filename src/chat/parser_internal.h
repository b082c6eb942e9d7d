// The parser's class, shared by parser.cpp (statements) and parser_expr.cpp (expressions).
// Internal: use parser.h.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>

#include "chat/parser.h"

namespace kvq::chat::detail {

class Parser {
 public:
  explicit Parser(LexedTemplate lexed) : lexed_(std::move(lexed)), map_(lexed_.source) {}

  Result<ParsedTemplate> run();

 private:
  // ---- token helpers ----
  const Token& peek(size_t ahead = 0) const { return lexed_.tokens[std::min(pos_ + ahead, lexed_.tokens.size() - 1)]; }
  const Token& next() {
    const Token& t = peek();
    if (pos_ + 1 < lexed_.tokens.size()) ++pos_;
    return t;
  }
  bool at_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::kOperator && peek(ahead).text == op;
  }
  bool at_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).kind == TokenKind::kName && peek(ahead).text == name;
  }
  bool skip_op(std::string_view op) {
    if (!at_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!at_name(name)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kText:
        return "template text";
      case TokenKind::kVarBegin:
        return "'{{'";
      case TokenKind::kVarEnd:
        return "'}}'";
      case TokenKind::kBlockBegin:
        return "'{%'";
      case TokenKind::kBlockEnd:
        return "'%}'";
      case TokenKind::kString:
        return "a string";
      case TokenKind::kInteger:
      case TokenKind::kFloat:
        return "a number";
      case TokenKind::kEnd:
        return "the end of the template";
      default:
        return "'" + t.text + "'";
    }
  }

  Error error_at(uint32_t offset, const std::string& message) const {
    return make_error("chat template {}: {}", map_.describe(offset), message);
  }
  Error unexpected(const std::string& expected) const {
    return error_at(peek().offset, fmt::format("expected {}, got {}", expected, describe(peek())));
  }

  Status expect_op(std::string_view op) {
    if (skip_op(op)) return {};
    return unexpected(fmt::format("'{}'", op));
  }
  Status expect_block_end() {
    if (peek().kind == TokenKind::kBlockEnd) {
      next();
      return {};
    }
    return unexpected("'%}'");
  }
  Result<std::string> expect_identifier() {
    if (peek().kind != TokenKind::kName) return unexpected("a name");
    return next().text;
  }

  // Bounds the recursion of nested blocks and expressions.
  struct DepthGuard {
    int& depth;
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
  };
  Status check_depth() const {
    if (depth_ > kMaxNestingDepth) return error_at(peek().offset, "template nested too deeply");
    return {};
  }
  // Chains (`a + b + c`, `x.y.z`, `v | f | g`) parse in a loop but build a tree as deep as the
  // chain is long; each link counts as one level of nesting until the chain's function returns,
  // so the tree depth stays bounded (the evaluator and the destructors recurse over it).
  struct ChainDepth {
    int& depth;
    int added = 0;
    explicit ChainDepth(int& d) : depth(d) {}
    ~ChainDepth() { depth -= added; }
    Status step(const Parser& parser) {
      ++depth;
      ++added;
      return parser.check_depth();
    }
  };

  static ExprPtr make_expr(ExprKind kind, uint32_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
  }

  // ---- statements (parser.cpp) ----
  // Parses until one of `end_tags` opens a block ("{% endfor"); that tag's name is consumed and
  // stored in `found_end`, its '%}' is left for the caller.
  Result<Body> parse_body(std::initializer_list<std::string_view> end_tags, std::string& found_end);
  Result<StmtPtr> parse_statement(const std::string& keyword, uint32_t offset);
  Status parse_if(Stmt& stmt);
  Status parse_targets(Stmt& stmt);
  Status parse_for(Stmt& stmt);
  Status parse_set(Stmt& stmt);
  Status parse_macro(Stmt& stmt);
  Status parse_filter_block(Stmt& stmt);
  // The lexer already turned the raw body into one text token.
  Status parse_raw(Stmt& stmt);

  // ---- expressions (parser_expr.cpp) ----
  Result<ExprPtr> parse_expression();
  Result<ExprPtr> binary(Op op, uint32_t offset, ExprPtr left, Result<ExprPtr> right);
  Result<ExprPtr> parse_or();
  Result<ExprPtr> parse_and();
  Result<ExprPtr> parse_not();
  // Returns the comparison operator at the cursor (consuming it), or nullopt.
  std::optional<Op> take_compare_op();
  Result<ExprPtr> parse_compare();
  Result<ExprPtr> parse_math1();
  Result<ExprPtr> parse_concat();
  Result<ExprPtr> parse_math2();
  Result<ExprPtr> parse_pow();
  Result<ExprPtr> parse_left_associative(std::initializer_list<std::pair<std::string_view, Op>> ops,
                                         Result<ExprPtr> (Parser::*operand)());
  Result<ExprPtr> parse_unary(bool with_filters);
  Result<ExprPtr> parse_filtered_unary();  // parse_unary(true), as a member pointer
  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_postfix(ExprPtr node);
  Result<ExprPtr> parse_subscript(ExprPtr node);
  Result<ExprPtr> parse_filters_and_tests(ExprPtr node);
  Result<ExprPtr> parse_filter(ExprPtr operand);
  Result<ExprPtr> parse_call(ExprPtr callee, uint32_t offset);
  Status parse_call_args(Args& args);

  LexedTemplate lexed_;
  SourceMap map_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace kvq::chat::detail
