// Parser for the chat-template subset of Jinja2. Operator precedence and the shape of each
// statement follow Jinja2's parser, so that `-x|f`, `a ~ b + c` and `x is not none and y` group
// exactly as in the reference renderer.
#include "chat/parser.h"

#include <algorithm>
#include <initializer_list>

namespace kvq::chat {

namespace {

// Tags of Jinja2 that kvq does not implement: named in the error instead of "unknown tag".
constexpr std::string_view kUnsupportedTags[] = {"extends", "block", "include", "import",     "from",      "call",
                                                 "with",    "do",    "trans",   "autoescape", "generation"};

class Parser {
 public:
  explicit Parser(LexedTemplate lexed) : lexed_(std::move(lexed)), map_(lexed_.source) {}

  Result<ParsedTemplate> run() {
    std::string end;
    auto body = parse_body({}, end);
    if (!body.ok()) return body.error();
    return ParsedTemplate{std::move(lexed_.source), std::move(*body)};
  }

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

  // ---- statements ----

  // Parses until one of `end_tags` opens a block ("{% endfor"); that tag's name is consumed and
  // stored in `found_end`, its '%}' is left for the caller.
  Result<Body> parse_body(std::initializer_list<std::string_view> end_tags, std::string& found_end) {
    DepthGuard guard(depth_);
    KVQ_RETURN_IF_ERROR(check_depth());
    const uint32_t opened_at = peek().offset;
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == TokenKind::kEnd) {
        if (end_tags.size() == 0) return body;
        return error_at(opened_at,
                        fmt::format("block is not closed: expected '{{% {} %}}' before the end of the template",
                                    *end_tags.begin()));
      }
      if (t.kind == TokenKind::kText) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kText;
        stmt->offset = t.offset;
        stmt->text = next().text;
        body.push_back(std::move(stmt));
        continue;
      }
      if (t.kind == TokenKind::kVarBegin) {
        auto stmt = std::make_unique<Stmt>();
        stmt->kind = StmtKind::kOutput;
        stmt->offset = next().offset;
        auto expr = parse_expression();
        if (!expr.ok()) return expr.error();
        stmt->expr = std::move(*expr);
        if (peek().kind != TokenKind::kVarEnd) return unexpected("'}}'");
        next();
        body.push_back(std::move(stmt));
        continue;
      }
      if (t.kind != TokenKind::kBlockBegin) return unexpected("template text or a tag");
      const uint32_t tag_offset = next().offset;
      if (peek().kind != TokenKind::kName) return unexpected("a statement name after '{%'");
      const std::string keyword = peek().text;
      if (std::find(end_tags.begin(), end_tags.end(), keyword) != end_tags.end()) {
        next();
        found_end = keyword;
        return body;
      }
      auto stmt = parse_statement(keyword, tag_offset);
      if (!stmt.ok()) return stmt.error();
      body.push_back(std::move(*stmt));
    }
  }

  Result<StmtPtr> parse_statement(const std::string& keyword, uint32_t offset) {
    auto stmt = std::make_unique<Stmt>();
    stmt->offset = offset;
    next();  // the keyword
    Status status;
    if (keyword == "if") {
      status = parse_if(*stmt);
    } else if (keyword == "for") {
      status = parse_for(*stmt);
    } else if (keyword == "set") {
      status = parse_set(*stmt);
    } else if (keyword == "macro") {
      status = parse_macro(*stmt);
    } else if (keyword == "filter") {
      status = parse_filter_block(*stmt);
    } else if (keyword == "raw") {
      status = parse_raw(*stmt);
    } else if (keyword == "break" || keyword == "continue") {
      if (loop_depth_ == 0) return error_at(offset, fmt::format("'{}' outside a for loop", keyword));
      stmt->kind = keyword == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      status = expect_block_end();
    } else if (std::find(std::begin(kUnsupportedTags), std::end(kUnsupportedTags), keyword) !=
               std::end(kUnsupportedTags)) {
      return error_at(offset, fmt::format("unsupported construct '{{% {} %}}' (kvq does not implement it)", keyword));
    } else if (keyword.rfind("end", 0) == 0 || keyword == "elif" || keyword == "else") {
      return error_at(offset, fmt::format("unexpected '{{% {} %}}' with no open block it could close", keyword));
    } else {
      return error_at(offset, fmt::format("unknown tag '{{% {} %}}'", keyword));
    }
    if (!status.ok()) return status.error();
    return stmt;
  }

  Status parse_if(Stmt& stmt) {
    stmt.kind = StmtKind::kIf;
    std::string end = "elif";
    while (end == "elif") {
      auto cond = parse_expression();
      if (!cond.ok()) return cond.error();
      KVQ_RETURN_IF_ERROR(expect_block_end());
      auto body = parse_body({"endif", "elif", "else"}, end);
      if (!body.ok()) return body.error();
      stmt.branches.emplace_back(std::move(*cond), std::move(*body));
    }
    if (end == "else") {
      KVQ_RETURN_IF_ERROR(expect_block_end());
      auto body = parse_body({"endif"}, end);
      if (!body.ok()) return body.error();
      stmt.else_body = std::move(*body);
    }
    return expect_block_end();
  }

  Status parse_targets(Stmt& stmt) {
    const bool parenthesized = skip_op("(");
    do {
      auto name = expect_identifier();
      if (!name.ok()) return name.error();
      stmt.targets.push_back(*name);
    } while (skip_op(","));
    if (parenthesized) KVQ_RETURN_IF_ERROR(expect_op(")"));
    return {};
  }

  Status parse_for(Stmt& stmt) {
    stmt.kind = StmtKind::kFor;
    KVQ_RETURN_IF_ERROR(parse_targets(stmt));
    if (!skip_name("in")) return unexpected("'in'");
    auto iterable = parse_or();  // no `x if c else y` here: `if` starts the loop filter
    if (!iterable.ok()) return iterable.error();
    stmt.expr = std::move(*iterable);
    if (skip_name("if")) {
      auto cond = parse_expression();
      if (!cond.ok()) return cond.error();
      stmt.condition = std::move(*cond);
    }
    if (at_name("recursive")) return error_at(peek().offset, "unsupported construct 'recursive' for loop");
    KVQ_RETURN_IF_ERROR(expect_block_end());
    ++loop_depth_;
    std::string end;
    auto body = parse_body({"endfor", "else"}, end);
    --loop_depth_;
    if (!body.ok()) return body.error();
    stmt.body = std::move(*body);
    if (end == "else") {
      KVQ_RETURN_IF_ERROR(expect_block_end());
      auto else_body = parse_body({"endfor"}, end);
      if (!else_body.ok()) return else_body.error();
      stmt.else_body = std::move(*else_body);
    }
    return expect_block_end();
  }

  Status parse_set(Stmt& stmt) {
    stmt.kind = StmtKind::kSet;
    KVQ_RETURN_IF_ERROR(parse_targets(stmt));
    if (stmt.targets.size() == 1 && skip_op(".")) {
      auto attr = expect_identifier();
      if (!attr.ok()) return attr.error();
      stmt.attribute = *attr;
    }
    if (skip_op("=")) {
      auto value = parse_expression();
      if (!value.ok()) return value.error();
      stmt.expr = std::move(*value);
      if (at_op(",")) {  // {% set a, b = 1, 2 %}: the right side is a tuple
        auto tuple = make_expr(ExprKind::kTuple, stmt.expr->offset);
        tuple->items.push_back(std::move(stmt.expr));
        while (skip_op(",") && peek().kind != TokenKind::kBlockEnd) {
          auto item = parse_expression();
          if (!item.ok()) return item.error();
          tuple->items.push_back(std::move(*item));
        }
        stmt.expr = std::move(tuple);
      }
      return expect_block_end();
    }
    // Block assignment: {% set x %}...{% endset %} captures the rendered body.
    if (stmt.targets.size() != 1 || !stmt.attribute.empty()) return unexpected("'='");
    KVQ_RETURN_IF_ERROR(expect_block_end());
    std::string end;
    auto body = parse_body({"endset"}, end);
    if (!body.ok()) return body.error();
    stmt.body = std::move(*body);
    return expect_block_end();
  }

  Status parse_macro(Stmt& stmt) {
    stmt.kind = StmtKind::kMacro;
    auto name = expect_identifier();
    if (!name.ok()) return name.error();
    stmt.name = *name;
    KVQ_RETURN_IF_ERROR(expect_op("("));
    while (!at_op(")")) {
      auto param = expect_identifier();
      if (!param.ok()) return param.error();
      MacroParam p{*param, nullptr};
      if (skip_op("=")) {
        auto value = parse_expression();
        if (!value.ok()) return value.error();
        p.default_value = std::move(*value);
      }
      stmt.params.push_back(std::move(p));
      if (!skip_op(",")) break;
    }
    KVQ_RETURN_IF_ERROR(expect_op(")"));
    KVQ_RETURN_IF_ERROR(expect_block_end());
    const int saved_loop_depth = loop_depth_;
    loop_depth_ = 0;  // `break` inside a macro cannot leave a loop around its definition
    std::string end;
    auto body = parse_body({"endmacro"}, end);
    loop_depth_ = saved_loop_depth;
    if (!body.ok()) return body.error();
    stmt.body = std::move(*body);
    skip_name(stmt.name);  // {% endmacro name %} is allowed
    return expect_block_end();
  }

  Status parse_filter_block(Stmt& stmt) {
    stmt.kind = StmtKind::kFilterBlock;
    do {
      auto filter = parse_filter(nullptr);
      if (!filter.ok()) return filter.error();
      stmt.filters.push_back(std::move(*filter));
    } while (skip_op("|"));
    KVQ_RETURN_IF_ERROR(expect_block_end());
    std::string end;
    auto body = parse_body({"endfilter"}, end);
    if (!body.ok()) return body.error();
    stmt.body = std::move(*body);
    return expect_block_end();
  }

  // The lexer already turned the raw body into one text token.
  Status parse_raw(Stmt& stmt) {
    stmt.kind = StmtKind::kText;
    KVQ_RETURN_IF_ERROR(expect_block_end());
    if (peek().kind == TokenKind::kText) stmt.text = next().text;
    if (peek().kind != TokenKind::kBlockBegin || !at_name("endraw", 1)) return unexpected("'{% endraw %}'");
    next();
    next();
    return expect_block_end();
  }

  // ---- expressions ----
 public:
  Result<ExprPtr> parse_expression() {
    auto expr = parse_or();
    if (!expr.ok()) return expr;
    ChainDepth chain(depth_);
    while (at_name("if")) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const uint32_t offset = next().offset;
      auto cond = parse_or();
      if (!cond.ok()) return cond;
      auto node = make_expr(ExprKind::kConditional, offset);
      node->items.push_back(std::move(*expr));
      node->items.push_back(std::move(*cond));
      if (skip_name("else")) {
        auto otherwise = parse_expression();
        if (!otherwise.ok()) return otherwise;
        node->items.push_back(std::move(*otherwise));
      } else {
        node->items.push_back(nullptr);
      }
      expr = std::move(node);
    }
    return expr;
  }

 private:
  Result<ExprPtr> binary(Op op, uint32_t offset, ExprPtr left, Result<ExprPtr> right) {
    if (!right.ok()) return right;
    auto node = make_expr(ExprKind::kBinary, offset);
    node->op = op;
    node->items.push_back(std::move(left));
    node->items.push_back(std::move(*right));
    return node;
  }

  Result<ExprPtr> parse_or() {
    auto left = parse_and();
    ChainDepth chain(depth_);
    while (left.ok() && at_name("or")) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const uint32_t offset = next().offset;
      left = binary(Op::kOr, offset, std::move(*left), parse_and());
    }
    return left;
  }

  Result<ExprPtr> parse_and() {
    auto left = parse_not();
    ChainDepth chain(depth_);
    while (left.ok() && at_name("and")) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const uint32_t offset = next().offset;
      left = binary(Op::kAnd, offset, std::move(*left), parse_not());
    }
    return left;
  }

  Result<ExprPtr> parse_not() {
    if (at_name("not")) {
      DepthGuard guard(depth_);
      KVQ_RETURN_IF_ERROR(check_depth());
      const uint32_t offset = next().offset;
      auto operand = parse_not();
      if (!operand.ok()) return operand;
      auto node = make_expr(ExprKind::kUnary, offset);
      node->op = Op::kNot;
      node->items.push_back(std::move(*operand));
      return node;
    }
    return parse_compare();
  }

  // Returns the comparison operator at the cursor (consuming it), or nullopt.
  std::optional<Op> take_compare_op() {
    static constexpr std::pair<std::string_view, Op> kOps[] = {{"==", Op::kEq}, {"!=", Op::kNe}, {"<", Op::kLt},
                                                               {">", Op::kGt},  {"<=", Op::kLe}, {">=", Op::kGe}};
    for (const auto& [text, op] : kOps) {
      if (skip_op(text)) return op;
    }
    if (skip_name("in")) return Op::kIn;
    if (at_name("not") && at_name("in", 1)) {
      next();
      next();
      return Op::kNotIn;
    }
    return std::nullopt;
  }

  Result<ExprPtr> parse_compare() {
    auto left = parse_math1();
    if (!left.ok()) return left;
    const uint32_t offset = peek().offset;
    auto op = take_compare_op();
    if (!op) return left;
    auto right = parse_math1();
    auto second = right.ok() ? take_compare_op() : std::nullopt;
    if (!second) return binary(*op, offset, std::move(*left), std::move(right));
    // `a < b < c` is `a < b and b < c` with b evaluated once, as in Python.
    auto chain = make_expr(ExprKind::kCompareChain, offset);
    chain->items.push_back(std::move(*left));
    chain->items.push_back(std::move(*right));
    chain->compare_ops = {*op};
    ChainDepth depth(depth_);
    for (; second; second = take_compare_op()) {
      KVQ_RETURN_IF_ERROR(depth.step(*this));
      auto operand = parse_math1();
      if (!operand.ok()) return operand;
      chain->compare_ops.push_back(*second);
      chain->items.push_back(std::move(*operand));
    }
    return chain;
  }

  Result<ExprPtr> parse_math1() {
    auto left = parse_concat();
    ChainDepth chain(depth_);
    while (left.ok() && (at_op("+") || at_op("-"))) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const Op op = peek().text == "+" ? Op::kAdd : Op::kSub;
      const uint32_t offset = next().offset;
      left = binary(op, offset, std::move(*left), parse_concat());
    }
    return left;
  }

  Result<ExprPtr> parse_concat() {
    auto left = parse_math2();
    ChainDepth chain(depth_);
    while (left.ok() && at_op("~")) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const uint32_t offset = next().offset;
      left = binary(Op::kConcat, offset, std::move(*left), parse_math2());
    }
    return left;
  }

  Result<ExprPtr> parse_math2() {
    auto left = parse_pow();
    ChainDepth chain(depth_);
    while (left.ok() && (at_op("*") || at_op("/") || at_op("//") || at_op("%"))) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const std::string& text = peek().text;
      const Op op = text == "*" ? Op::kMul : text == "/" ? Op::kDiv : text == "//" ? Op::kFloorDiv : Op::kMod;
      const uint32_t offset = next().offset;
      left = binary(op, offset, std::move(*left), parse_pow());
    }
    return left;
  }

  Result<ExprPtr> parse_pow() {
    auto left = parse_unary(true);
    ChainDepth chain(depth_);
    while (left.ok() && at_op("**")) {
      if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
      const uint32_t offset = next().offset;
      left = binary(Op::kPow, offset, std::move(*left), parse_unary(true));
    }
    return left;
  }

  Result<ExprPtr> parse_unary(bool with_filters) {
    DepthGuard guard(depth_);
    KVQ_RETURN_IF_ERROR(check_depth());
    Result<ExprPtr> node = ExprPtr();
    if (at_op("-") || at_op("+")) {
      const Op op = peek().text == "-" ? Op::kNeg : Op::kPos;
      const uint32_t offset = next().offset;
      auto operand = parse_unary(false);
      if (!operand.ok()) return operand;
      auto unary = make_expr(ExprKind::kUnary, offset);
      unary->op = op;
      unary->items.push_back(std::move(*operand));
      node = std::move(unary);
    } else {
      node = parse_primary();
    }
    if (node.ok()) node = parse_postfix(std::move(*node));
    if (node.ok() && with_filters) node = parse_filters_and_tests(std::move(*node));
    return node;
  }

  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_postfix(ExprPtr node);
  Result<ExprPtr> parse_subscript(ExprPtr node);
  Result<ExprPtr> parse_filters_and_tests(ExprPtr node);
  Result<ExprPtr> parse_filter(ExprPtr operand);
  Status parse_call_args(Args& args);

  LexedTemplate lexed_;
  SourceMap map_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

Result<ExprPtr> Parser::parse_primary() {
  const Token& t = peek();
  const uint32_t offset = t.offset;
  if (t.kind == TokenKind::kName) {
    static constexpr std::string_view kKeywords[] = {"and", "or", "not", "in", "is", "if", "else"};
    if (std::find(std::begin(kKeywords), std::end(kKeywords), t.text) != std::end(kKeywords)) {
      return unexpected("an expression");
    }
    auto node = make_expr(ExprKind::kLiteral, offset);
    const std::string& name = t.text;
    if (name == "true" || name == "True") {
      node->literal = Value(true);
    } else if (name == "false" || name == "False") {
      node->literal = Value(false);
    } else if (name == "none" || name == "None") {
      node->literal = Value::none();
    } else {
      node->kind = ExprKind::kName;
      node->name = name;
    }
    next();
    return node;
  }
  if (t.kind == TokenKind::kString) {
    std::string text;
    while (peek().kind == TokenKind::kString) text += next().text;  // "a" "b" concatenates, as in Python
    auto node = make_expr(ExprKind::kLiteral, offset);
    node->literal = Value(std::move(text));
    return node;
  }
  if (t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat) {
    auto node = make_expr(ExprKind::kLiteral, offset);
    node->literal = t.kind == TokenKind::kInteger ? Value(t.int_value) : Value(t.float_value);
    next();
    return node;
  }
  if (skip_op("(")) {
    // Parenthesized expression, or a tuple (evaluated as a list).
    if (skip_op(")")) return make_expr(ExprKind::kTuple, offset);
    auto first = parse_expression();
    if (!first.ok()) return first;
    if (!at_op(",")) {
      KVQ_RETURN_IF_ERROR(expect_op(")"));
      return first;
    }
    auto tuple = make_expr(ExprKind::kTuple, offset);
    tuple->items.push_back(std::move(*first));
    while (skip_op(",") && !at_op(")")) {
      auto item = parse_expression();
      if (!item.ok()) return item;
      tuple->items.push_back(std::move(*item));
    }
    KVQ_RETURN_IF_ERROR(expect_op(")"));
    return tuple;
  }
  if (skip_op("[")) {
    auto list = make_expr(ExprKind::kList, offset);
    while (!at_op("]")) {
      auto item = parse_expression();
      if (!item.ok()) return item;
      list->items.push_back(std::move(*item));
      if (!skip_op(",")) break;
    }
    KVQ_RETURN_IF_ERROR(expect_op("]"));
    return list;
  }
  if (skip_op("{")) {
    auto dict = make_expr(ExprKind::kDict, offset);
    while (!at_op("}")) {
      auto key = parse_expression();
      if (!key.ok()) return key;
      KVQ_RETURN_IF_ERROR(expect_op(":"));
      auto value = parse_expression();
      if (!value.ok()) return value;
      dict->items.push_back(std::move(*key));
      dict->items.push_back(std::move(*value));
      if (!skip_op(",")) break;
    }
    KVQ_RETURN_IF_ERROR(expect_op("}"));
    return dict;
  }
  return unexpected("an expression");
}

Result<ExprPtr> Parser::parse_postfix(ExprPtr node) {
  ChainDepth chain(depth_);
  while (true) {
    if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
    const uint32_t offset = peek().offset;
    if (skip_op(".")) {
      if (peek().kind == TokenKind::kInteger) {  // x.0 is x[0]
        auto index = make_expr(ExprKind::kLiteral, peek().offset);
        index->literal = Value(next().int_value);
        auto sub = make_expr(ExprKind::kSubscript, offset);
        sub->items.push_back(std::move(node));
        sub->items.push_back(std::move(index));
        node = std::move(sub);
        continue;
      }
      auto name = expect_identifier();
      if (!name.ok()) return name.error();
      auto attr = make_expr(ExprKind::kAttribute, offset);
      attr->name = *name;
      attr->items.push_back(std::move(node));
      node = std::move(attr);
    } else if (skip_op("[")) {
      auto sub = parse_subscript(std::move(node));
      if (!sub.ok()) return sub;
      node = std::move(*sub);
    } else if (at_op("(")) {
      next();
      auto call = make_expr(ExprKind::kCall, offset);
      call->items.push_back(std::move(node));
      KVQ_RETURN_IF_ERROR(parse_call_args(call->args));
      node = std::move(call);
    } else {
      return node;
    }
  }
}

// After '[': an index `x[i]` or a slice `x[a:b:c]` with any bound left out.
Result<ExprPtr> Parser::parse_subscript(ExprPtr node) {
  const uint32_t offset = peek().offset;
  ExprPtr bounds[3];
  if (!at_op(":")) {
    auto start = parse_expression();
    if (!start.ok()) return start;
    bounds[0] = std::move(*start);
    if (skip_op("]")) {
      auto sub = make_expr(ExprKind::kSubscript, offset);
      sub->items.push_back(std::move(node));
      sub->items.push_back(std::move(bounds[0]));
      return sub;
    }
  }
  for (int i = 1; i < 3 && skip_op(":"); ++i) {
    if (at_op(":") || at_op("]")) continue;
    auto bound = parse_expression();
    if (!bound.ok()) return bound;
    bounds[i] = std::move(*bound);
  }
  KVQ_RETURN_IF_ERROR(expect_op("]"));
  auto slice = make_expr(ExprKind::kSlice, offset);
  slice->items.push_back(std::move(node));
  for (auto& b : bounds) slice->items.push_back(std::move(b));
  return slice;
}

Result<ExprPtr> Parser::parse_filters_and_tests(ExprPtr node) {
  ChainDepth chain(depth_);
  while (true) {
    if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
    if (skip_op("|")) {
      auto filtered = parse_filter(std::move(node));
      if (!filtered.ok()) return filtered;
      node = std::move(*filtered);
    } else if (at_name("is")) {
      auto test = make_expr(ExprKind::kTest, next().offset);
      test->negated = skip_name("not");
      auto name = expect_identifier();
      if (!name.ok()) return name.error();
      test->name = *name;
      test->items.push_back(std::move(node));
      const Token& t = peek();
      static constexpr std::string_view kStop[] = {"else", "or", "and", "if", "in", "not", "is"};
      if (at_op("(")) {
        next();
        KVQ_RETURN_IF_ERROR(parse_call_args(test->args));
      } else if (t.kind == TokenKind::kString || t.kind == TokenKind::kInteger || t.kind == TokenKind::kFloat ||
                 at_op("[") || at_op("{") ||
                 (t.kind == TokenKind::kName &&
                  std::find(std::begin(kStop), std::end(kStop), t.text) == std::end(kStop))) {
        // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses.
        auto arg = parse_primary();
        if (!arg.ok()) return arg;
        auto post = parse_postfix(std::move(*arg));
        if (!post.ok()) return post;
        test->args.positional.push_back(std::move(*post));
      }
      node = std::move(test);
    } else if (at_op("(")) {
      const uint32_t offset = next().offset;
      auto call = make_expr(ExprKind::kCall, offset);
      call->items.push_back(std::move(node));
      KVQ_RETURN_IF_ERROR(parse_call_args(call->args));
      node = std::move(call);
    } else {
      return node;
    }
  }
}

// After '|' (or in `{% filter %}`): name, optional (args).
Result<ExprPtr> Parser::parse_filter(ExprPtr operand) {
  const uint32_t offset = peek().offset;
  auto name = expect_identifier();
  if (!name.ok()) return name.error();
  auto filter = make_expr(ExprKind::kFilter, offset);
  filter->name = *name;
  while (skip_op(".")) {  // Jinja2 allows dotted filter names; none exists, so it fails when used
    auto part = expect_identifier();
    if (!part.ok()) return part.error();
    filter->name += "." + *part;
  }
  filter->items.push_back(std::move(operand));
  if (skip_op("(")) KVQ_RETURN_IF_ERROR(parse_call_args(filter->args));
  return filter;
}

// After '(': positional then keyword arguments, up to and including ')'.
Status Parser::parse_call_args(Args& args) {
  while (!at_op(")")) {
    if (at_op("*") || at_op("**")) return error_at(peek().offset, "unsupported construct: *args / **kwargs in a call");
    if (peek().kind == TokenKind::kName && at_op("=", 1)) {
      std::string key = next().text;
      next();
      auto value = parse_expression();
      if (!value.ok()) return value.error();
      args.keyword.emplace_back(std::move(key), std::move(*value));
    } else {
      if (!args.keyword.empty()) return error_at(peek().offset, "positional argument after keyword argument");
      auto value = parse_expression();
      if (!value.ok()) return value.error();
      args.positional.push_back(std::move(*value));
    }
    if (!skip_op(",")) break;
  }
  return expect_op(")");
}

}  // namespace

Result<ParsedTemplate> parse_template(std::string_view source) {
  auto lexed = lex_template(source);
  if (!lexed.ok()) return make_error("chat template: {}", lexed.error().message);
  return Parser(std::move(*lexed)).run();
}

}  // namespace kvq::chat
