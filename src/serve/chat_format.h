// The chat formatter the server and `kvq chat` use: the model's own chat template (or a file given by
// --chat-template), rendered with the bos/eos texts of its vocabulary.
#pragma once

#include <string>

#include "gguf/gguf.h"
#include "serve/http_server.h"
#include "tokenizer/tokenizer.h"

namespace kvq::serve {

// template_path empty: the GGUF's tokenizer.chat_template; a model without one gives an empty formatter
// (chat then answers with a clear error). A template that does not parse is an error naming its source.
Result<ChatFormatter> make_chat_formatter(const gguf::File& file, const Tokenizer& tokenizer,
                                          const std::string& template_path);

}  // namespace kvq::serve
