// The chat template a GGUF file carries (`tokenizer.chat_template`) with the variables it expects
// from the same file: bos_token and eos_token as the vocabulary spells them.
#pragma once

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "gguf/gguf.h"

namespace kvq::chat {

struct GgufChatTemplate {
  ChatTemplate tmpl;
  nlohmann::ordered_json variables;  // {"bos_token": ..., "eos_token": ...}; "" when the file has none
};

// Fails when the file has no chat template, when it does not parse, or when a bos/eos id is
// outside the vocabulary.
Result<GgufChatTemplate> load_gguf_chat_template(const gguf::File& file);

}  // namespace kvq::chat
