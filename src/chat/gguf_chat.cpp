// Reads the chat template and the special-token texts it refers to from GGUF metadata.
#include "chat/gguf_chat.h"

namespace kvq::chat {

namespace {

// The text of special token `id_key` ("tokenizer.ggml.bos_token_id"), or "" when the file does not
// name one, as transformers passes an unset token.
Result<std::string> special_token_text(const gguf::File& file, std::string_view id_key) {
  if (!file.find(id_key)) return std::string();
  auto id = file.get_int(id_key);
  if (!id.ok()) return id.error();
  auto tokens = file.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.error();
  if (*id < 0 || size_t(*id) >= tokens->size()) {
    return make_error("{}: {} = {} is outside the vocabulary of {} tokens", file.path(), id_key, *id, tokens->size());
  }
  return (*tokens)[size_t(*id)];
}

}  // namespace

Result<GgufChatTemplate> load_gguf_chat_template(const gguf::File& file) {
  if (!file.find("tokenizer.chat_template")) {
    return make_error("{}: no tokenizer.chat_template in the GGUF metadata", file.path());
  }
  auto source = file.get_string("tokenizer.chat_template");
  if (!source.ok()) return source.error();
  auto tmpl = ChatTemplate::parse(*source);
  if (!tmpl.ok()) return make_error("{}: tokenizer.chat_template: {}", file.path(), tmpl.error().message);
  auto bos = special_token_text(file, "tokenizer.ggml.bos_token_id");
  if (!bos.ok()) return bos.error();
  auto eos = special_token_text(file, "tokenizer.ggml.eos_token_id");
  if (!eos.ok()) return eos.error();
  nlohmann::ordered_json variables = {{"bos_token", *bos}, {"eos_token", *eos}};
  return GgufChatTemplate{std::move(*tmpl), std::move(variables)};
}

}  // namespace kvq::chat
