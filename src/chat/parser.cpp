// Parser for the chat-template subset of Jinja2. Operator precedence and the shape of each
// statement follow Jinja2's parser, so that `-x|f`, `a ~ b + c` and `x is not none and y` group
// exactly as in the reference renderer.
#include <algorithm>
#include <initializer_list>

#include "chat/parser.h"
#include "chat/parser_internal.h"

namespace kvq::chat {

namespace detail {

namespace {

// Tags of Jinja2 that kvq does not implement: named in the error instead of "unknown tag".
constexpr std::string_view kUnsupportedTags[] = {"extends", "block", "include", "import",     "from",      "call",
                                                 "with",    "do",    "trans",   "autoescape", "generation"};

}  // namespace

Result<ParsedTemplate> Parser::run() {
  std::string end;
  auto body = parse_body({}, end);
  if (!body.ok()) return body.error();
  return ParsedTemplate{std::move(lexed_.source), std::move(*body)};
}

// Parses until one of `end_tags` opens a block ("{% endfor"); that tag's name is consumed and
// stored in `found_end`, its '%}' is left for the caller.
Result<Body> Parser::parse_body(std::initializer_list<std::string_view> end_tags, std::string& found_end) {
  DepthGuard guard(depth_);
  KVQ_RETURN_IF_ERROR(check_depth());
  const uint32_t opened_at = peek().offset;
  Body body;
  while (true) {
    const Token& t = peek();
    if (t.kind == TokenKind::kEnd) {
      if (end_tags.size() == 0) return body;
      return error_at(
          opened_at,
          fmt::format("block is not closed: expected '{{% {} %}}' before the end of the template", *end_tags.begin()));
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

Result<StmtPtr> Parser::parse_statement(const std::string& keyword, uint32_t offset) {
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

Status Parser::parse_if(Stmt& stmt) {
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

Status Parser::parse_targets(Stmt& stmt) {
  const bool parenthesized = skip_op("(");
  do {
    auto name = expect_identifier();
    if (!name.ok()) return name.error();
    stmt.targets.push_back(*name);
  } while (skip_op(","));
  if (parenthesized) KVQ_RETURN_IF_ERROR(expect_op(")"));
  return {};
}

Status Parser::parse_for(Stmt& stmt) {
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

Status Parser::parse_set(Stmt& stmt) {
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

Status Parser::parse_macro(Stmt& stmt) {
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

Status Parser::parse_filter_block(Stmt& stmt) {
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
Status Parser::parse_raw(Stmt& stmt) {
  stmt.kind = StmtKind::kText;
  KVQ_RETURN_IF_ERROR(expect_block_end());
  if (peek().kind == TokenKind::kText) stmt.text = next().text;
  if (peek().kind != TokenKind::kBlockBegin || !at_name("endraw", 1)) return unexpected("'{% endraw %}'");
  next();
  next();
  return expect_block_end();
}

}  // namespace detail

Result<ParsedTemplate> parse_template(std::string_view source) {
  auto lexed = lex_template(source);
  if (!lexed.ok()) return lexed.error();
  return detail::Parser(std::move(*lexed)).run();
}

}  // namespace kvq::chat
