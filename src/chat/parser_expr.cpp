// Expression parsing: Jinja2's precedence, lowest first: `x if c else y`, or, and, not,
// comparisons, + -, ~, * / // %, **, unary - +, then postfix (. [] ()), filters and tests.
#include <algorithm>

#include "chat/parser_internal.h"

namespace kvq::chat::detail {

Result<ExprPtr> Parser::parse_expression() {
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

Result<ExprPtr> Parser::binary(Op op, uint32_t offset, ExprPtr left, Result<ExprPtr> right) {
  if (!right.ok()) return right;
  auto node = make_expr(ExprKind::kBinary, offset);
  node->op = op;
  node->items.push_back(std::move(left));
  node->items.push_back(std::move(*right));
  return node;
}

// One left-associative precedence level: operand (op operand)*, where op is one of `ops` (names
// such as "or" or operator symbols such as "+").
Result<ExprPtr> Parser::parse_left_associative(std::initializer_list<std::pair<std::string_view, Op>> ops,
                                               Result<ExprPtr> (Parser::*operand)()) {
  auto left = (this->*operand)();
  ChainDepth chain(depth_);
  while (left.ok()) {
    const Token& t = peek();
    const auto match = std::find_if(ops.begin(), ops.end(), [&](const auto& op) {
      return (t.kind == TokenKind::kOperator || t.kind == TokenKind::kName) && t.text == op.first;
    });
    if (match == ops.end()) break;
    if (Status deeper = chain.step(*this); !deeper.ok()) return deeper.error();
    const uint32_t offset = next().offset;
    left = binary(match->second, offset, std::move(*left), (this->*operand)());
  }
  return left;
}

Result<ExprPtr> Parser::parse_or() { return parse_left_associative({{"or", Op::kOr}}, &Parser::parse_and); }

Result<ExprPtr> Parser::parse_and() { return parse_left_associative({{"and", Op::kAnd}}, &Parser::parse_not); }

Result<ExprPtr> Parser::parse_not() {
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
std::optional<Op> Parser::take_compare_op() {
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

Result<ExprPtr> Parser::parse_compare() {
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

Result<ExprPtr> Parser::parse_math1() {
  return parse_left_associative({{"+", Op::kAdd}, {"-", Op::kSub}}, &Parser::parse_concat);
}

Result<ExprPtr> Parser::parse_concat() { return parse_left_associative({{"~", Op::kConcat}}, &Parser::parse_math2); }

Result<ExprPtr> Parser::parse_math2() {
  return parse_left_associative({{"*", Op::kMul}, {"/", Op::kDiv}, {"//", Op::kFloorDiv}, {"%", Op::kMod}},
                                &Parser::parse_pow);
}

Result<ExprPtr> Parser::parse_pow() {
  return parse_left_associative({{"**", Op::kPow}}, &Parser::parse_filtered_unary);
}

Result<ExprPtr> Parser::parse_filtered_unary() { return parse_unary(true); }

Result<ExprPtr> Parser::parse_unary(bool with_filters) {
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
    } else if (skip_op("(")) {
      auto call = parse_call(std::move(node), offset);
      if (!call.ok()) return call;
      node = std::move(*call);
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
      // Jinja2 takes any other name as the argument, so `x is string if c else d` is a syntax error
      // there too (the argument would be `if`); only else/or/and end the test.
      static constexpr std::string_view kStop[] = {"else", "or", "and"};
      if (at_name("is")) return error_at(peek().offset, "cannot chain tests with 'is' (add parentheses)");
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
    } else if (at_op("(")) {  // a call of a filter's result: `x | attr('f')()`
      const uint32_t offset = next().offset;
      auto call = parse_call(std::move(node), offset);
      if (!call.ok()) return call;
      node = std::move(*call);
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

// After '(': the call of `callee` with its arguments.
Result<ExprPtr> Parser::parse_call(ExprPtr callee, uint32_t offset) {
  auto call = make_expr(ExprKind::kCall, offset);
  call->items.push_back(std::move(callee));
  KVQ_RETURN_IF_ERROR(parse_call_args(call->args));
  return call;
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

}  // namespace kvq::chat::detail
