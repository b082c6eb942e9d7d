// The rules of the Qwen3, Llama 3 and Gemma 3 vocabularies, one test per rule, so that breaking one
// names it: Qwen's single digits and missing NFC, Llama 3's whole-word tokens, Gemma's raw-text
// user-defined tokens, byte fallback and missing space prefix, the add-BOS defaults and the
// end-of-generation sets. Expected ids are llama.cpp c392e50's (llama-tokenize --ids, with
// --no-parse-special unless the test parses special tokens, --no-bos unless it adds them).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace kvq {
namespace {

using Ids = std::vector<int32_t>;

const char kQwen3[] = "data/vocab/ggml-vocab-qwen3.gguf";
const char kLlama3[] = "data/vocab/ggml-vocab-llama3.gguf";
const char kGemma3[] = "data/vocab/ggml-vocab-gemma3.gguf";

using test::load_tokenizer;
const Tokenizer& load(const std::string& relative) { return load_tokenizer(relative); }

// Every id of the vocabulary that is_eog accepts.
Ids eog_set(const Tokenizer& tok) {
  Ids ids;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) {
    if (tok.is_eog(id)) ids.push_back(id);
  }
  return ids;
}

// Decimal digits, a decimal point, Arabic-Indic digits.
const char kNumbers[] = "1234567 3.14159 \xD9\xA3\xD9\xA4\xD9\xA5";

// ---- Qwen3 ----

// Qwen2's pre-tokenizer makes every digit a word of its own (Llama 3 groups three). The vocabulary
// has no ASCII multi-digit tokens, so only the full-width "１０" and "２０" (ids 77150, 80091) show
// the rule in ids: split, they are two tokens each.
TEST(Qwen3, DigitsAreSplitOneByOne) {
  const std::string dates = "\xEF\xBC\x91\xEF\xBC\x90\xE6\x9C\x88\xEF\xBC\x92\xEF\xBC\x90\xE6\x97\xA5";  // １０月２０日
  EXPECT_EQ(load(kQwen3).encode(dates, false), (Ids{20109, 26022, 9754, 24918, 26022, 8903}));
  EXPECT_EQ(load(kQwen3).encode(kNumbers, false),
            (Ids{16, 17, 18, 19, 20, 21, 22, 220, 18, 13, 16, 19, 16, 20, 24, 220, 149, 96, 149, 97, 149, 98}));
  EXPECT_EQ(load(kLlama3).encode(kNumbers, false),
            (Ids{4513, 10961, 22, 220, 18, 13, 9335, 2946, 220, 117413, 124079, 124043}));
}

// Qwen's tokenizer.json normalizes to NFC; llama.cpp does not, and neither do we: "e" + U+0301
// stays two code points (and other tokens) than the precomposed U+00E9, and decodes as written.
TEST(Qwen3, NoNfcNormalization) {
  const Tokenizer& tok = load(kQwen3);
  const std::string decomposed = "Cafe\xCC\x81 au lait";
  const std::string composed = "Caf\xC3\xA9 au lait";
  EXPECT_EQ(tok.encode(decomposed, false), (Ids{34, 5645, 53839, 7906, 1187, 275}));
  EXPECT_EQ(tok.encode(composed, false), (Ids{34, 2577, 963, 7906, 1187, 275}));
  EXPECT_EQ(tok.decode(tok.encode(decomposed, true)), decomposed);
}

// <think> and </think> are user-defined: matched in raw text. <|im_start|> is a control token:
// plain text unless special tokens are parsed. Control tokens decode to nothing unless asked.
TEST(Qwen3, UserDefinedAndControlTokens) {
  const Tokenizer& tok = load(kQwen3);
  const std::string text = "<think>x</think><|im_start|>user";
  EXPECT_EQ(tok.encode(text, false), (Ids{151667, 87, 151668, 27, 91, 318, 4906, 91, 29, 872}));
  const Ids parsed = tok.encode(text, false, /*parse_special=*/true);
  EXPECT_EQ(parsed, (Ids{151667, 87, 151668, 151644, 872}));
  EXPECT_EQ(tok.decode(parsed), "<think>x</think>user");
  EXPECT_EQ(tok.token_to_piece(151644, /*special=*/true), "<|im_start|>");
  EXPECT_EQ(tok.token_to_piece(151667), "<think>");
}

// add_bos_token=False in the file; bos is still 151643 (<|endoftext|>), eos <|im_end|>.
TEST(Qwen3, SpecialIdsAndFlags) {
  const Tokenizer& tok = load(kQwen3);
  EXPECT_EQ(tok.n_vocab(), 151669);
  EXPECT_EQ(tok.bos(), 151643);
  EXPECT_EQ(tok.eos(), 151645);
  EXPECT_FALSE(tok.add_bos());
  EXPECT_TRUE(tok.encode("", true).empty());
  EXPECT_EQ(tok.encode("Hello", true), (Ids{9707}));
}

// <|endoftext|>, <|im_end|>, and the FIM pad / repo name / file separator llama.cpp also stops on;
// not <|im_start|> nor the tool and think tags.
TEST(Qwen3, EndOfGenerationTokens) { EXPECT_EQ(eog_set(load(kQwen3)), (Ids{151643, 151645, 151662, 151663, 151664})); }

// ---- Llama 3 ----

// No add_bos_token key: llama.cpp's llama-bpe default adds <|begin_of_text|>.
TEST(Llama3, AddsBosWithoutTheKey) {
  const Tokenizer& tok = load(kLlama3);
  EXPECT_EQ(tok.bos(), 128000);
  EXPECT_EQ(tok.eos(), 128001);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.encode("", true), (Ids{128000}));
  EXPECT_EQ(tok.decode(tok.encode("hi", true)), "hi");
}

// llama-bpe sets ignore_merges (tokenizer.json "ignore_merges": true): a pre-token that is a
// vocabulary token is taken whole. " Việt" is token 101798, which the ranked merges alone do not reach
// (they give 11655 26298 83).
TEST(Llama3, WholeWordTokensIgnoreMerges) {
  EXPECT_EQ(load(kLlama3).encode("C\xE1\xBB\xAD"
                                 "a Vi\xE1\xBB\x87t",
                                 false),
            (Ids{34, 91163, 101798}));
}

TEST(Llama3, ControlTokensOnlyWhenParsed) {
  const Tokenizer& tok = load(kLlama3);
  const std::string text = "<|begin_of_text|>hi<|eot_id|>";
  EXPECT_EQ(tok.encode(text, true),
            (Ids{128000, 27, 91, 7413, 3659, 4424, 91, 29, 6151, 27, 91, 68, 354, 851, 91, 29}));
  EXPECT_EQ(tok.encode(text, true, /*parse_special=*/true), (Ids{128000, 128000, 6151, 128009}));
}

TEST(Llama3, EndOfGenerationTokens) { EXPECT_EQ(eog_set(load(kLlama3)), (Ids{128001, 128009})); }

// ---- Gemma 3 ----

// The user-defined tokens (HTML tags, runs of newlines, spaces and tabs, and <s> </s>, which are
// not Gemma's BOS/EOS) are cut out of the raw text before SentencePiece sees it.
TEST(Gemma3, UserDefinedTokensMatchRawText) {
  const Tokenizer& tok = load(kGemma3);
  const std::string text = "<table><tr><td>1</td></tr></table>\n\n  x\t\ty <s>z</s>";
  const Ids ids = tok.encode(text, false);
  EXPECT_EQ(ids,
            (Ids{168, 173, 175, 236770, 183, 181, 176, 108, 138, 236781, 255969, 236762, 236743, 203, 236802, 212}));
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.encode("\n\n\n\n x", false), (Ids{110, 1123}));
  EXPECT_EQ(tok.token_to_piece(138), "  ");
  EXPECT_EQ(tok.token_to_piece(107), "\n");
}

TEST(Gemma3, ControlTokensOnlyWhenParsed) {
  const Tokenizer& tok = load(kGemma3);
  const std::string text = "<start_of_turn>user\nhi<end_of_turn>";
  EXPECT_EQ(tok.encode(text, true), (Ids{2, 236820, 3041, 236779, 1340, 236779, 887, 236813, 2364, 107, 2202, 236820,
                                         643, 236779, 1340, 236779, 887, 236813}));
  const Ids parsed = tok.encode(text, true, /*parse_special=*/true);
  EXPECT_EQ(parsed, (Ids{2, 105, 2364, 107, 2202, 106}));
  EXPECT_EQ(tok.decode(parsed), "user\nhi");
}

// add_space_prefix=False: "Hello" at the start is not "▁Hello", and decode strips nothing.
TEST(Gemma3, NoSpacePrefix) {
  const Tokenizer& tok = load(kGemma3);
  EXPECT_EQ(tok.encode("Hello world", true), (Ids{2, 9259, 1902}));
  EXPECT_EQ(tok.encode(" Hello  world", false), (Ids{26352, 138, 12392}));
  EXPECT_EQ(tok.decode(tok.encode(" Hello  world", true)), " Hello  world");
}

// A character the vocabulary lacks becomes its UTF-8 bytes as <0xXX> tokens (ids 238 + byte).
TEST(Gemma3, ByteFallback) {
  const Tokenizer& tok = load(kGemma3);
  const std::string text = "x\xF4\x8F\xBF\xBDy";  // U+10FFFD, a private-use code point
  const Ids ids = tok.encode(text, false);
  EXPECT_EQ(ids, (Ids{236781, 238 + 0xF4, 238 + 0x8F, 238 + 0xBF, 238 + 0xBD, 236762}));
  EXPECT_EQ(tok.decode(ids), text);
  EXPECT_EQ(tok.token_to_piece(238 + 'A'), "A");
}

// add_bos_token=True, add_eos_token=False; eos is <end_of_turn> (the -it tokenizer_config).
TEST(Gemma3, SpecialIdsAndFlags) {
  const Tokenizer& tok = load(kGemma3);
  EXPECT_EQ(tok.n_vocab(), 262145);
  EXPECT_EQ(tok.bos(), 2);
  EXPECT_EQ(tok.eos(), 106);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_EQ(tok.encode("", true), (Ids{2}));
  EXPECT_EQ(tok.encode("x", true).back(), 236781);  // no EOS added
}

// Only <end_of_turn>: <eos> (1) is not this file's eos and not an end-of-turn text.
TEST(Gemma3, EndOfGenerationTokens) { EXPECT_EQ(eog_set(load(kGemma3)), (Ids{106})); }

// ---- Defaults when a flag key is absent or present, on small written vocabularies ----

Tokenizer tiny_bpe(const std::string& file_name, const char* pre, const bool* add_bos_key) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab", "<s>"});
  w.set_i32_array("tokenizer.ggml.token_type", {1, 1, 1, 3});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  w.set_u32("tokenizer.ggml.bos_token_id", 3);
  if (add_bos_key != nullptr) w.set_bool("tokenizer.ggml.add_bos_token", *add_bos_key);
  const std::string path = test::temp_dir() + "/" + file_name;
  const Status written = w.write(path);
  if (!written.ok()) throw std::runtime_error(written.message());
  Result<gguf::File> file = gguf::File::open(path);
  if (!file.ok()) throw std::runtime_error(file.error().message);
  Result<Tokenizer> tok = Tokenizer::from_gguf(*file);
  if (!tok.ok()) throw std::runtime_error(tok.error().message);
  return std::move(*tok);
}

TEST(TokenizerFlags, AddBosDefaultsPerPreTokenizer) {
  const bool off = false, on = true;
  EXPECT_TRUE(tiny_bpe("llama-bpe-nokey.gguf", "llama-bpe", nullptr).add_bos());
  EXPECT_FALSE(tiny_bpe("llama-bpe-off.gguf", "llama-bpe", &off).add_bos());
  EXPECT_FALSE(tiny_bpe("qwen2-nokey.gguf", "qwen2", nullptr).add_bos());
  EXPECT_TRUE(tiny_bpe("qwen2-on.gguf", "qwen2", &on).add_bos());
  EXPECT_EQ(tiny_bpe("qwen2-on2.gguf", "qwen2", &on).encode("ab", true), (Ids{3, 2}));
  EXPECT_FALSE(tiny_bpe("gpt2-nokey.gguf", "gpt-2", nullptr).add_bos());
}

}  // namespace
}  // namespace kvq
