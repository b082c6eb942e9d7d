// Byte-level BPE pre-tokenizers: split text into the words BPE merges within. Each one is a
// hand-written matcher with the exact semantics of the regex (or regex sequence) the model's
// Hugging Face tokenizer uses, as llama.cpp implements it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvq::tokenizer_detail {

enum class PreTokenizer {
  kGpt2,         // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,       // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                 //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,        // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
                 //  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+  (Llama 3's with single digits)
  kDeepseekLlm,  // six regexes applied in turn, each splitting the pieces of the previous one
};

// Splits `text` into words, returned as UTF-8. Malformed UTF-8 becomes U+FFFD first (llama.cpp
// does the same), so concatenating the words gives back `text` exactly when it is valid UTF-8.
std::vector<std::string> pre_tokenize(PreTokenizer kind, std::string_view text);

}  // namespace kvq::tokenizer_detail
