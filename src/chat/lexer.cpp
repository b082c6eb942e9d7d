// Lexer for chat templates. Whitespace rules follow Jinja2's lexer with trim_blocks=True and
// lstrip_blocks=True: `{%-`/`-%}` strip all adjacent whitespace; otherwise a block or comment tag
// alone on its line loses its indentation (lstrip) and the newline right after it (trim).
#include "chat/lexer.h"

#include <algorithm>
#include <charconv>

#include "tokenizer/unicode.h"

namespace kvq::chat {

SourceMap::SourceMap(std::string_view source) {
  line_starts_.push_back(0);
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\n') line_starts_.push_back(uint32_t(i + 1));
  }
}

std::string SourceMap::describe(uint32_t offset) const {
  const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const size_t line = size_t(it - line_starts_.begin());
  return fmt::format("line {}, column {}", line, offset - line_starts_[line - 1] + 1);
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// Operators, longest first so that "//" wins over "/".
constexpr std::string_view kOperators[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                           ">",  "=",  ".",  ",",  ":",  "|",  "(", ")", "[", "]", "{", "}"};

class Lexer {
 public:
  explicit Lexer(std::string source) : src_(std::move(source)), map_(src_) {}

  Result<LexedTemplate> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag_start(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      if (tag == src_.size()) {
        emit_text(std::move(text), uint32_t(pos_));
        break;
      }
      const char type = src_[tag + 1];  // '{', '%' or '#'
      const char modifier = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (modifier == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (type != '{' && modifier != '+') {
        lstrip_line(text);
      }
      emit_text(std::move(text), uint32_t(pos_));
      pos_ = tag + 2 + (modifier == '-' || (modifier == '+' && type != '{'));
      Status status = type == '#' ? lex_comment(tag) : lex_tag(tag, type);
      if (!status.ok()) return status.error();
    }
    tokens_.push_back(Token{TokenKind::kEnd, "", 0, 0.0, uint32_t(src_.size())});
    return LexedTemplate{std::move(src_), std::move(tokens_)};
  }

 private:
  size_t find_tag_start(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return src_.size();
  }

  // lstrip_blocks: drop spaces before a tag when nothing else precedes it on its line.
  void lstrip_line(std::string& text) const {
    const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (line_start == 0 && !line_starting_) return;
    for (size_t i = line_start; i < text.size(); ++i) {
      if (!is_space(text[i])) return;
    }
    text.resize(line_start);
  }

  Error error_at(uint32_t offset, std::string_view message) const {
    return make_error("chat template {}: {}", map_.describe(offset), message);
  }

  void emit_text(std::string text, uint32_t offset) {
    if (!text.empty()) tokens_.push_back(Token{TokenKind::kText, std::move(text), 0, 0.0, offset});
  }

  // After a tag: `-` eats all following whitespace; trim_blocks eats one newline after `%}`/`#}`.
  // `line_starting_` records whether the consumed tag ended a line, which lstrip needs.
  void after_tag_end(char end_modifier, bool is_block_or_comment) {
    line_starting_ = false;
    if (end_modifier == '-') {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        line_starting_ = src_[pos_] == '\n';
        ++pos_;
      }
    } else if (is_block_or_comment && end_modifier != '+' && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
      line_starting_ = true;
    }
  }

  Status lex_comment(size_t tag) {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return error_at(uint32_t(tag), "unclosed comment '{#'");
    const char end_modifier = end > pos_ ? src_[end - 1] : '\0';
    pos_ = end + 2;
    after_tag_end(end_modifier, true);
    return {};
  }

  Status lex_tag(size_t tag, char type) {
    const bool is_block = type == '%';
    const size_t first_token = tokens_.size();
    tokens_.push_back(Token{is_block ? TokenKind::kBlockBegin : TokenKind::kVarBegin, "", 0, 0.0, uint32_t(tag)});
    int brace_depth = 0;  // `{{ {'a': 1}}}`: a `}}` inside a dict literal does not close the tag
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size()) {
        return error_at(uint32_t(tag), fmt::format("unclosed '{}'", is_block ? "{%" : "{{"));
      }
      const char c = src_[pos_];
      char end_modifier = '\0';
      size_t end_at = pos_;
      if ((c == '-' || c == '+') && pos_ + 1 < src_.size()) {
        end_modifier = c;
        ++end_at;
      }
      const std::string_view closer = is_block ? "%}" : "}}";
      const bool closes = std::string_view(src_).substr(end_at, 2) == closer && (is_block || brace_depth == 0) &&
                          (end_modifier != '+' || is_block);
      if (closes) {
        tokens_.push_back(Token{is_block ? TokenKind::kBlockEnd : TokenKind::kVarEnd, "", 0, 0.0, uint32_t(pos_)});
        pos_ = end_at + 2;
        after_tag_end(end_modifier, is_block);
        if (is_block && tokens_.size() == first_token + 3 && tokens_[first_token + 1].kind == TokenKind::kName &&
            tokens_[first_token + 1].text == "raw") {
          return lex_raw_body(tag);
        }
        return {};
      }
      if (c == '{') ++brace_depth;
      if (c == '}') --brace_depth;
      KVQ_RETURN_IF_ERROR(lex_token());
    }
  }

  // `{% raw %}...{% endraw %}`: the body is text, whatever it contains.
  Status lex_raw_body(size_t tag) {
    size_t search = pos_;
    while (true) {
      const size_t open = src_.find("{%", search);
      if (open == std::string::npos) return error_at(uint32_t(tag), "unclosed 'raw' block");
      size_t p = open + 2;
      const bool strip_before = p < src_.size() && src_[p] == '-';
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (src_.compare(p, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      std::string body = src_.substr(pos_, open - pos_);
      if (strip_before) {
        while (!body.empty() && is_space(body.back())) body.pop_back();
      } else {
        lstrip_line(body);
      }
      emit_text(std::move(body), uint32_t(pos_));
      pos_ = open;  // the endraw tag is lexed as an ordinary block and closes the raw statement
      return {};
    }
  }

  Status lex_token() {
    const char c = src_[pos_];
    const uint32_t offset = uint32_t(pos_);
    if (is_name_start(c)) {
      size_t end = pos_;
      while (end < src_.size() && is_name_char(src_[end])) ++end;
      tokens_.push_back(Token{TokenKind::kName, src_.substr(pos_, end - pos_), 0, 0.0, offset});
      pos_ = end;
      return {};
    }
    if (is_digit(c)) return lex_number();
    if (c == '"' || c == '\'') return lex_string();
    for (std::string_view op : kOperators) {
      if (std::string_view(src_).substr(pos_, op.size()) == op) {
        tokens_.push_back(Token{TokenKind::kOperator, std::string(op), 0, 0.0, offset});
        pos_ += op.size();
        return {};
      }
    }
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7F) return error_at(offset, fmt::format("unexpected byte 0x{:02x}", byte));
    return error_at(offset, fmt::format("unexpected character '{}'", c));
  }

  Status lex_number() {
    const uint32_t offset = uint32_t(pos_);
    size_t end = pos_;
    std::string digits;
    while (end < src_.size() && (is_digit(src_[end]) || src_[end] == '_')) {
      if (src_[end] != '_') digits += src_[end];
      ++end;
    }
    bool is_float = false;
    if (end + 1 < src_.size() && src_[end] == '.' && is_digit(src_[end + 1])) {
      is_float = true;
      digits += '.';
      ++end;
      while (end < src_.size() && is_digit(src_[end])) digits += src_[end++];
    }
    if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
      size_t exp_end = end + 1;
      if (exp_end < src_.size() && (src_[exp_end] == '+' || src_[exp_end] == '-')) ++exp_end;
      if (exp_end < src_.size() && is_digit(src_[exp_end])) {
        is_float = true;
        digits += 'e';
        digits.append(src_, end + 1, exp_end - end - 1);
        end = exp_end;
        while (end < src_.size() && is_digit(src_[end])) digits += src_[end++];
      }
    }
    Token token{is_float ? TokenKind::kFloat : TokenKind::kInteger, digits, 0, 0.0, offset};
    const char* first = digits.data();
    const char* last = digits.data() + digits.size();
    const auto result =
        is_float ? std::from_chars(first, last, token.float_value) : std::from_chars(first, last, token.int_value);
    if (result.ec != std::errc() || result.ptr != last) {
      return error_at(offset, fmt::format("number '{}' out of range", digits));
    }
    tokens_.push_back(std::move(token));
    pos_ = end;
    return {};
  }

  // Python string escapes as Jinja2 decodes them (unicode-escape); unknown escapes stay verbatim.
  Status lex_string() {
    const uint32_t offset = uint32_t(pos_);
    const char quote = src_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= src_.size()) return error_at(offset, "unterminated string literal");
      const char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\' || pos_ >= src_.size()) {
        value += c;
        continue;
      }
      const char e = src_[pos_++];
      switch (e) {
        case 'n':
          value += '\n';
          break;
        case 't':
          value += '\t';
          break;
        case 'r':
          value += '\r';
          break;
        case '0':
          value += '\0';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'v':
          value += '\v';
          break;
        case '\\':
        case '\'':
        case '"':
          value += e;
          break;
        case '\n':
          break;  // backslash-newline continues the literal
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          const auto r = std::from_chars(src_.data() + pos_, src_.data() + std::min(pos_ + n, src_.size()), cp, 16);
          if (r.ec != std::errc() || size_t(r.ptr - (src_.data() + pos_)) != n || cp > 0x10FFFF) {
            return error_at(offset, fmt::format("bad \\{} escape in string literal", e));
          }
          unicode::append_utf8(cp, value);
          pos_ += n;
          break;
        }
        default:
          value += '\\';
          value += e;
      }
    }
    tokens_.push_back(Token{TokenKind::kString, std::move(value), 0, 0.0, offset});
    return {};
  }

  std::string src_;
  SourceMap map_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // the start of the template counts as the start of a line
};

// Jinja2 normalizes every newline sequence to "\n" and, without keep_trailing_newline,
// drops a single newline at the end of the source.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

Result<LexedTemplate> lex_template(std::string_view source) {
  if (source.size() > kMaxTemplateBytes) {
    return make_error("chat template: {} bytes; at most {} are accepted", source.size(), kMaxTemplateBytes);
  }
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace kvq::chat
