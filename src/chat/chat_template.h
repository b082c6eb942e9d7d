// Public API of the chat-template renderer: parse a GGUF's `tokenizer.chat_template` (Jinja2)
// once, render it for a conversation. Semantics are Jinja2's as transformers configures it
// (trim_blocks, lstrip_blocks, loop controls, its tojson/raise_exception/strftime_now).
//
//   auto tmpl = ChatTemplate::parse(source);            // Error: syntax or unsupported construct
//   auto ctx = make_chat_context(messages, true, {{"bos_token", "<s>"}});
//   auto text = tmpl->render(ctx);                      // Error: raise_exception() or runtime error
#pragma once

#include <nlohmann/json.hpp>

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/builtins.h"
#include "util/result.h"

namespace kvq::chat {

struct ParsedTemplate;

struct ChatMessage {
  std::string role;
  std::string content;
};

struct RenderOptions {
  RenderLimits limits;
  // The time strftime_now() formats; unset means the current local time. Tests fix it.
  std::optional<std::tm> now;
};

class ChatTemplate {
 public:
  // Fails with "chat template line L, column C: ..." on a syntax error or a construct kvq does not
  // implement (the message names it).
  static Result<ChatTemplate> parse(std::string_view source);

  // Renders with `context` as the template's variables (messages, add_generation_prompt,
  // bos_token, ...). When the template calls raise_exception(msg), the error message is exactly
  // `msg`; every other error starts with "chat template line L, column C:".
  Result<std::string> render(const nlohmann::ordered_json& context, const RenderOptions& options = {}) const;

 private:
  explicit ChatTemplate(std::shared_ptr<const ParsedTemplate> parsed) : parsed_(std::move(parsed)) {}
  std::shared_ptr<const ParsedTemplate> parsed_;
};

// The context a chat template expects: `variables` (bos_token, eos_token, enable_thinking, tools,
// ...) plus `messages` as [{role, content}] and `add_generation_prompt`.
nlohmann::ordered_json make_chat_context(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                         const nlohmann::ordered_json& variables = nlohmann::ordered_json::object());

}  // namespace kvq::chat
