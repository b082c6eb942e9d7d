// Chat-template lexer: splits template source into text and the tokens inside `{{ }}` and `{% %}`,
// applying whitespace control the way transformers configures Jinja2 (trim_blocks, lstrip_blocks,
// `-`/`+` modifiers, one trailing newline dropped), so the parser sees final text bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace kvq::chat {

enum class TokenKind : uint8_t {
  kText,        // literal template text, whitespace control already applied
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,  // text holds the unescaped value
  kInteger,
  kFloat,
  kOperator,  // text holds the operator: + - * / // % ** ~ == != < > <= >= = . , : | ( ) [ ] { }
  kEnd,
};

struct Token {
  TokenKind kind;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0.0;
  uint32_t offset = 0;  // byte offset in the normalized source, for line/column in messages
};

// Line and column (both from 1) of byte offsets in the normalized source.
class SourceMap {
 public:
  explicit SourceMap(std::string_view source);
  std::string describe(uint32_t offset) const;  // "line 3, column 7"

 private:
  std::vector<uint32_t> line_starts_;
};

struct LexedTemplate {
  std::string source;  // newlines normalized to \n, one trailing \n dropped
  std::vector<Token> tokens;
};

// Templates larger than this are refused (real chat templates are under 20 KiB).
constexpr size_t kMaxTemplateBytes = 1u << 20;

// Errors read "chat template line L, column C: ...".
Result<LexedTemplate> lex_template(std::string_view source);

}  // namespace kvq::chat
