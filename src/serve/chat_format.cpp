#include "serve/chat_format.h"

#include <fstream>
#include <sstream>

#include "chat/chat_template.h"
#include "chat/gguf_chat.h"

namespace kvq::serve {

Result<ChatFormatter> make_chat_formatter(const gguf::File& file, const Tokenizer& tokenizer,
                                          const std::string& template_path) {
  nlohmann::ordered_json variables = {{"bos_token", tokenizer.token_to_piece(tokenizer.bos(), true)},
                                      {"eos_token", tokenizer.token_to_piece(tokenizer.eos(), true)}};
  std::shared_ptr<chat::ChatTemplate> tmpl;
  if (!template_path.empty()) {
    std::ifstream in(template_path, std::ios::binary);
    if (!in) return make_error("--chat-template: cannot read {}", template_path);
    std::ostringstream source;
    source << in.rdbuf();
    auto parsed = chat::ChatTemplate::parse(source.str());
    if (!parsed) return make_error("{}: {}", template_path, parsed.error().message);
    tmpl = std::make_shared<chat::ChatTemplate>(std::move(*parsed));
  } else if (file.find("tokenizer.chat_template")) {
    auto loaded = chat::load_gguf_chat_template(file);
    if (!loaded) return loaded.error();
    tmpl = std::make_shared<chat::ChatTemplate>(std::move(loaded->tmpl));
    variables = std::move(loaded->variables);
  } else {
    return ChatFormatter();
  }
  return ChatFormatter([tmpl, variables](const std::vector<ChatMessage>& messages) -> Result<std::string> {
    std::vector<chat::ChatMessage> turns;
    for (const ChatMessage& m : messages) turns.push_back({m.role, m.content});
    return tmpl->render(chat::make_chat_context(turns, /*add_generation_prompt=*/true, variables));
  });
}

}  // namespace kvq::serve
