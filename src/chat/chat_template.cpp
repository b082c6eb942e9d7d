// ChatTemplate: parse once, render many times; the parsed tree is immutable and shared.
#include "chat/chat_template.h"

#include "chat/interpreter.h"
#include "chat/parser.h"

namespace kvq::chat {

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  auto parsed = parse_template(source);
  if (!parsed.ok()) return parsed.error();
  return ChatTemplate(std::make_shared<const ParsedTemplate>(std::move(*parsed)));
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& context, const RenderOptions& options) const {
  if (!context.is_object()) return make_error("chat template: the render context must be a JSON object");
  Interpreter interpreter(*parsed_, options);
  return interpreter.render(from_json(context));
}

nlohmann::ordered_json make_chat_context(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                         const nlohmann::ordered_json& variables) {
  nlohmann::ordered_json context = variables.is_object() ? variables : nlohmann::ordered_json::object();
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
  context["messages"] = std::move(list);
  context["add_generation_prompt"] = add_generation_prompt;
  return context;
}

}  // namespace kvq::chat
