// Recursive-descent parser from lexer tokens to the template syntax tree. Constructs outside the
// supported subset (extends, include, import, call blocks, ...) are refused by name and location.
#pragma once

#include <string_view>

#include "chat/ast.h"
#include "chat/lexer.h"

namespace kvq::chat {

// Nesting of blocks and parentheses allowed: real templates nest under 15 deep; the bound keeps
// hostile input from overflowing the parser's (and the renderer's) stack.
constexpr int kMaxNestingDepth = 200;

struct ParsedTemplate {
  std::string source;  // normalized source, for line/column in render errors
  Body body;
};

Result<ParsedTemplate> parse_template(std::string_view source);

}  // namespace kvq::chat
