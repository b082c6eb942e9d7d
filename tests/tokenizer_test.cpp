// Tokenizer pieces: pre-tokenizers against their regexes, full tokenizations of evaluation text
// (BOS first) with the small vocabularies, pieces, flags, malformed input, the lookup index and
// load errors. The llama.cpp test vectors of every vocabulary are in tokenizer_vectors_test.cpp,
// the rules of the Qwen, Llama 3 and Gemma vocabularies in tokenizer_models_test.cpp.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/string_index.h"
#include "tokenizer/tokenizer.h"

namespace kvq {
namespace {

Tokenizer load(const std::string& relative) {
  Result<gguf::File> file = gguf::File::open(test::shared_path(relative));
  if (!file.ok()) throw std::runtime_error(file.error().message);
  Result<Tokenizer> tok = Tokenizer::from_gguf(*file);
  if (!tok.ok()) throw std::runtime_error(tok.error().message);
  return std::move(*tok);
}

std::string vocab_path(const std::string& name) { return "data/llama.cpp-vocab/ggml-vocab-" + name + ".gguf"; }

// GPT-2 decodes with llama.cpp's clean_up_tokenization_spaces, which only removes spaces.
TEST(Tokenizer, Gpt2DecodeCleansSpacesOnly) {
  const Tokenizer tok = load(vocab_path("gpt-2"));
  EXPECT_EQ(tok.decode(tok.encode("Hello world", false)), "Hello world");
  EXPECT_EQ(tok.decode(tok.encode("Hello , world !", false)), "Hello, world!");
  EXPECT_EQ(tok.decode(tok.encode("it 's", false)), "it's");
  EXPECT_EQ(tok.decode(tok.encode(" this is 🦙.cpp", false)), " this is 🦙.cpp");
}

// ---- Pre-tokenizers against the regexes (expected words from Python's `regex` module) ----

using tokenizer_detail::pre_tokenize;
using tokenizer_detail::PreTokenizer;
using Words = std::vector<std::string>;

const char kMixedWhitespace[] =
    "  \n\n  Hello\r\n\r\nWorld \t\xE3\x80\x80"
    "x\xC2\xA0"
    "y";
const char kContractions[] = "'S 'LL 'Ve it's 3333333";
// a + combining acute (a mark, not a letter), Cyrillic, ASCII and Arabic-Indic digits, Roman twelve.
const char kScripts[] =
    "a\xCC\x81"
    "b \xD0\x9F\xD1\x80\xD0\xB8 123456 \xD9\xA3\xD9\xA4\xD9\xA5 \xE2\x85\xAB!!\n\n";

TEST(PreTokenizer, Gpt2MatchesRegex) {
  EXPECT_EQ(pre_tokenize(PreTokenizer::kGpt2, kMixedWhitespace),
            (Words{"  \n\n ", " Hello", "\r\n\r", "\n", "World", " \t", "\xE3\x80\x80", "x", "\xC2\xA0", "y"}));
  EXPECT_EQ(pre_tokenize(PreTokenizer::kGpt2, kContractions),
            (Words{"'", "S", " '", "LL", " '", "Ve", " it", "'s", " 3333333"}));
  EXPECT_EQ(pre_tokenize(PreTokenizer::kGpt2, kScripts),
            (Words{"a", "\xCC\x81", "b", " \xD0\x9F\xD1\x80\xD0\xB8", " 123456", " \xD9\xA3\xD9\xA4\xD9\xA5",
                   " \xE2\x85\xAB", "!!", "\n\n"}));
}

TEST(PreTokenizer, Llama3MatchesRegex) {
  EXPECT_EQ(pre_tokenize(PreTokenizer::kLlama3, kMixedWhitespace),
            (Words{"  \n\n", " ", " Hello", "\r\n\r\n", "World", " \t",
                   "\xE3\x80\x80"
                   "x",
                   "\xC2\xA0"
                   "y"}));
  EXPECT_EQ(pre_tokenize(PreTokenizer::kLlama3, kContractions),
            (Words{"'S", " '", "LL", " '", "Ve", " it", "'s", " ", "333", "333", "3"}));
  EXPECT_EQ(pre_tokenize(PreTokenizer::kLlama3, kScripts),
            (Words{"a",
                   "\xCC\x81"
                   "b",
                   " \xD0\x9F\xD1\x80\xD0\xB8", " ", "123", "456", " ", "\xD9\xA3\xD9\xA4\xD9\xA5", " ", "\xE2\x85\xAB",
                   "!!\n\n"}));
}

// Qwen2 is Llama 3's pattern with \p{N} for \p{N}{1,3}: every digit, of any script, is a word.
TEST(PreTokenizer, Qwen2MatchesRegex) {
  EXPECT_EQ(pre_tokenize(PreTokenizer::kQwen2, kMixedWhitespace),
            pre_tokenize(PreTokenizer::kLlama3, kMixedWhitespace));  // no digits: the same words
  EXPECT_EQ(pre_tokenize(PreTokenizer::kQwen2, kContractions),
            (Words{"'S", " '", "LL", " '", "Ve", " it", "'s", " ", "3", "3", "3", "3", "3", "3", "3"}));
  EXPECT_EQ(pre_tokenize(PreTokenizer::kQwen2, kScripts),
            (Words{"a",
                   "\xCC\x81"
                   "b",
                   " \xD0\x9F\xD1\x80\xD0\xB8", " ", "1", "2", "3", "4", "5", "6", " ", "\xD9\xA3", "\xD9\xA4",
                   "\xD9\xA5", " ", "\xE2\x85\xAB", "!!\n\n"}));
  // Superscript two is \p{No}: a number, so a word of its own too.
  EXPECT_EQ(pre_tokenize(PreTokenizer::kQwen2, "x12.5%  \n 7e3\xC2\xB2"),
            (Words{"x", "1", "2", ".", "5", "%", "  \n", " ", "7", "e", "3", "\xC2\xB2"}));
}

// DeepSeek as llama.cpp runs it: non-ASCII whitespace never matches the explicit classes
// (Hugging Face would isolate U+3000 and U+2003 here; llama.cpp, the reference, does not).
TEST(PreTokenizer, DeepseekFollowsLlamaCpp) {
  EXPECT_EQ(pre_tokenize(PreTokenizer::kDeepseekLlm, kMixedWhitespace),
            (Words{"  ", "\n", "\n", " ", " Hello", "\r", "\n", "\r", "\n", "World", " \t",
                   "\xE3\x80\x80"
                   "x",
                   "\xC2\xA0"
                   "y"}));
  EXPECT_EQ(pre_tokenize(PreTokenizer::kDeepseekLlm, "12ab\xE4\xBD\xA0\xE5\xA5\xBD  "),
            (Words{"12", "ab", "\xE4\xBD\xA0\xE5\xA5\xBD", "  "}));
}

// ---- Full tokenizations of evaluation text (BOS first) ----

struct TextCase {
  const char* name;
  const char* ids;
  const char* vocab;
  const char* text;
  size_t bytes;
};

void PrintTo(const TextCase& c, std::ostream* os) { *os << c.name; }

class TextFixtures : public testing::TestWithParam<TextCase> {};

TEST_P(TextFixtures, MatchLlamaCppAndRoundTrip) {
  const TextCase& c = GetParam();
  const Tokenizer tok = load(c.vocab);
  const std::string text = test::read_text_file(test::shared_path(c.text)).substr(0, c.bytes);
  const std::vector<int> want = test::read_ids_file(test::shared_path(c.ids));
  const std::vector<int32_t> expected(want.begin(), want.end());

  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> got = tok.encode(text, /*add_special=*/true);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ %s ] %zu bytes -> %zu tokens in %.1f ms\n", c.ids, text.size(), got.size(), ms);

  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.front(), tok.bos());
  ASSERT_EQ(got.size(), expected.size());
  size_t first_diff = got.size();
  for (size_t i = 0; i < got.size() && first_diff == got.size(); ++i) {
    if (got[i] != expected[i]) first_diff = i;
  }
  EXPECT_EQ(first_diff, got.size()) << "first differing token at " << first_diff;
  EXPECT_EQ(tok.decode(got), text);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, TextFixtures,
    testing::Values(TextCase{"stories260K_ts60k", "fixtures/tokenize/tok-stories260K-ts60k.ids",
                             "data/models/stories260K/stories260K.gguf", "data/text/tinystories_val.txt", 60000},
                    TextCase{"llama_spm_ts60k", "fixtures/tokenize/tok-llama-spm-ts60k.ids",
                             "data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", "data/text/tinystories_val.txt", 60000},
                    TextCase{"llama_spm_wiki5k", "fixtures/tokenize/tok-llama-spm-wiki5k.ids",
                             "data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf", "data/text/wiki.test.raw", 5000}),
    [](const testing::TestParamInfo<TextCase>& info) { return std::string(info.param.name); });

// Byte-level BPE on the same 60 KB: DeepSeek (no space cleanup) must give the text back exactly,
// and GPT-2 everything but the spaces its cleanup removes.
TEST(Tokenizer, BpeRoundTripsEvaluationText) {
  const std::string text = test::read_text_file(test::shared_path("data/text/tinystories_val.txt")).substr(0, 60000);
  for (const char* name : {"deepseek-llm", "gpt-2"}) {
    const Tokenizer tok = load(vocab_path(name));
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ %s ] %zu bytes -> %zu tokens in %.1f ms\n", name, text.size(), ids.size(), ms);
    const std::string decoded = tok.decode(ids);
    if (std::string(name) == "deepseek-llm") {
      EXPECT_EQ(decoded, text);
    } else {
      std::string squeezed = text;  // the text without the spaces the cleanup may drop
      std::erase(squeezed, ' ');
      std::string decoded_squeezed = decoded;
      std::erase(decoded_squeezed, ' ');
      EXPECT_EQ(decoded_squeezed, squeezed);
    }
  }
}

// ---- Pieces, specials, flags ----

TEST(Tokenizer, SentencePiecePiecesAndFlags) {
  const Tokenizer tok = load(vocab_path("llama-spm"));
  EXPECT_EQ(tok.n_vocab(), 32000);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_TRUE(tok.is_eog(2));
  EXPECT_FALSE(tok.is_eog(1));
  EXPECT_EQ(tok.token_to_piece(3 + 0x41), "A");   // <0x41>
  EXPECT_EQ(tok.token_to_piece(3 + '\n'), "\n");  // <0x0A>
  EXPECT_EQ(tok.token_to_piece(29871), " ");      // "▁"
  EXPECT_EQ(tok.token_to_piece(1), "");           // control: nothing unless asked
  EXPECT_EQ(tok.token_to_piece(1, /*special=*/true), "<s>");
  EXPECT_EQ(tok.token_to_piece(-1), "");
  EXPECT_EQ(tok.token_to_piece(32000), "");
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});
  EXPECT_TRUE(tok.encode("", false).empty());
}

TEST(Tokenizer, SpecialTokenTextIsPlainTextUnlessParsed) {
  const Tokenizer tok = load(vocab_path("llama-spm"));
  const std::vector<int32_t> plain = tok.encode("<s>hi</s>", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok.decode(plain), "<s>hi</s>");
  const std::vector<int32_t> parsed = tok.encode("<s>hi</s>", false, /*parse_special=*/true);
  ASSERT_GE(parsed.size(), 3u);
  EXPECT_EQ(parsed.front(), 1);
  EXPECT_EQ(parsed.back(), 2);
}

TEST(Tokenizer, EndOfGenerationTokens) {
  const Tokenizer phi = load(vocab_path("phi-3"));
  EXPECT_TRUE(phi.is_eog(32000));   // <|endoftext|> = eos
  EXPECT_TRUE(phi.is_eog(32007));   // <|end|>
  EXPECT_FALSE(phi.is_eog(32010));  // <|user|>
  const Tokenizer gpt2 = load(vocab_path("gpt-2"));
  EXPECT_TRUE(gpt2.is_eog(50256));
  EXPECT_FALSE(gpt2.add_bos());
  EXPECT_EQ(gpt2.token_to_piece(gpt2.encode(" hello", false).front()), " hello");  // "Ġhello"
}

// Malformed UTF-8: SentencePiece falls back to byte tokens and round-trips the bytes; byte-level
// BPE sees U+FFFD (as llama.cpp does). Neither reads out of bounds (run under ASan).
TEST(Tokenizer, InvalidUtf8IsSafe) {
  const std::string bad = "ok\xff\xfex\xc3(\xe2\x82yz\xf0\x9f\x98";
  const Tokenizer spm = load(vocab_path("llama-spm"));
  EXPECT_EQ(spm.decode(spm.encode(bad, true)), bad);
  // As in llama.cpp, a symbol is as long as its lead byte says, so a stray lead byte swallows the
  // escaped space after it into byte tokens: the space comes back as U+2581.
  EXPECT_EQ(spm.decode(spm.encode("a\xf0 b", false)),
            "a\xf0\xE2\x96\x81"
            "b");
  for (const char* name : {"gpt-2", "deepseek-llm"}) {
    const Tokenizer bpe = load(vocab_path(name));
    const std::string decoded = bpe.decode(bpe.encode(bad, false));
    // One U+FFFD per byte that does not start a complete sequence (llama.cpp's decoding).
    EXPECT_EQ(decoded,
              "ok\xEF\xBF\xBD\xEF\xBF\xBDx\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD"
              "yz\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD")
        << name;
  }
}

// ---- The hash index behind token and merge lookups ----

using tokenizer_detail::StringIndex;

TEST(StringIndex, FindsEveryKeyAndResolvesDuplicates) {
  const std::string long_key(40, 'x');  // longer than a slot holds: compared against the keys
  const std::vector<std::string> keys = {"a", "b", "a", long_key, long_key, "", "ab"};
  StringIndex first, last;
  first.build(keys, /*last_wins=*/false);
  last.build(keys, /*last_wins=*/true);
  EXPECT_EQ(first.find("a", keys), 0);
  EXPECT_EQ(last.find("a", keys), 2);
  EXPECT_EQ(first.find(long_key, keys), 3);
  EXPECT_EQ(last.find(long_key, keys), 4);
  EXPECT_EQ(first.find("", keys), 5);
  EXPECT_EQ(first.find("ab", keys), 6);
  EXPECT_EQ(first.find("abc", keys), -1);
  EXPECT_EQ(first.find(std::string(39, 'x'), keys), -1);
  EXPECT_EQ(StringIndex().find("a", keys), -1);  // never built

  std::vector<std::string> many;  // enough keys for long probe runs and several table doublings
  for (int i = 0; i < 20000; ++i) many.push_back("key" + std::to_string(i));
  StringIndex index;
  index.build(many, /*last_wins=*/false);
  for (int i = 0; i < 20000; ++i) ASSERT_EQ(index.find(many[i], many), i);
  EXPECT_EQ(index.find("key20000", many), -1);
}

// ---- Errors ----

std::string write_vocab(const std::string& file_name, const std::string& model, const char* pre) {
  gguf::Writer w;
  w.set_string("tokenizer.ggml.model", model);
  if (pre != nullptr) w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b", "ab"});
  w.set_string_array("tokenizer.ggml.merges", {"a b"});
  const std::string path = test::temp_dir() + "/" + file_name;
  const Status s = w.write(path);
  if (!s.ok()) throw std::runtime_error(s.message());
  return path;
}

std::string load_error(const std::string& path) {
  Result<gguf::File> file = gguf::File::open(path);
  if (!file.ok()) return "open failed: " + file.error().message;
  Result<Tokenizer> tok = Tokenizer::from_gguf(*file);
  return tok.ok() ? "" : tok.error().message;
}

TEST(Tokenizer, UnsupportedModelIsAnError) {
  const std::string path = write_vocab("bert.gguf", "bert", nullptr);
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("\"bert\""), std::string::npos) << error;
  EXPECT_NE(error.find("gpt2"), std::string::npos) << error;
  EXPECT_NE(error.find("llama"), std::string::npos) << error;
}

TEST(Tokenizer, UnsupportedPreTokenizerIsAnError) {
  const std::string path = write_vocab("chatglm.gguf", "gpt2", "chatglm-bpe");
  const std::string error = load_error(path);
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("\"chatglm-bpe\""), std::string::npos) << error;
  EXPECT_NE(error.find("deepseek-llm"), std::string::npos) << error;
  EXPECT_NE(load_error(write_vocab("nopre.gguf", "gpt2", nullptr)), "");
}

TEST(Tokenizer, TinyBpeVocabularyMerges) {
  const std::string path = write_vocab("tiny.gguf", "gpt2", "gpt-2");
  Result<gguf::File> file = gguf::File::open(path);
  ASSERT_TRUE(file.ok()) << file.error().message;
  Result<Tokenizer> tok = Tokenizer::from_gguf(*file);
  ASSERT_TRUE(tok.ok()) << tok.error().message;
  EXPECT_EQ(tok->encode("abab", false), (std::vector<int32_t>{2, 2}));
  EXPECT_EQ(tok->encode("ba", false), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(tok->decode(std::vector<int32_t>{2, 1}), "abb");
  EXPECT_EQ(tok->bos(), -1);
}

}  // namespace
}  // namespace kvq
