// Tokenizer against llama.cpp on every vocabulary in ../shared: its tokenizer test vectors
// (.inp/.out, add_special=false, parse_special=false), whole evaluation texts (add_special=true,
// compared by length and hash with ids llama.cpp c392e50's llama-tokenize gave), and decode
// round trips of the test strings.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace kvq {
namespace {

const char kCaseSeparator[] = "\n__ggml_vocab_test__\n";

const char kLlamaSpm[] = "data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf";
const char kPhi3[] = "data/llama.cpp-vocab/ggml-vocab-phi-3.gguf";
const char kGpt2[] = "data/llama.cpp-vocab/ggml-vocab-gpt-2.gguf";
const char kDeepseekLlm[] = "data/llama.cpp-vocab/ggml-vocab-deepseek-llm.gguf";
const char kQwen3[] = "data/vocab/ggml-vocab-qwen3.gguf";
const char kLlama3[] = "data/vocab/ggml-vocab-llama3.gguf";
const char kGemma3[] = "data/vocab/ggml-vocab-gemma3.gguf";

using test::load_tokenizer;
const Tokenizer& load(const std::string& relative) { return load_tokenizer(relative); }

// The .inp cases: strings separated by kCaseSeparator; the file ends with a separator.
std::vector<std::string> read_cases(const std::string& path) {
  const std::string all = test::read_text_file(path);
  std::vector<std::string> cases;
  size_t start = 0;
  for (size_t sep; (sep = all.find(kCaseSeparator, start)) != std::string::npos;) {
    cases.push_back(all.substr(start, sep - start));
    start = sep + sizeof(kCaseSeparator) - 1;
  }
  if (start < all.size()) cases.push_back(all.substr(start));
  return cases;
}

// The .out lines: space-separated ids, one line per case.
std::vector<std::vector<int32_t>> read_expected(const std::string& path) {
  const std::string all = test::read_text_file(path);
  std::vector<std::vector<int32_t>> lines;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\n', start);
    if (end == std::string::npos) end = all.size();
    std::vector<int32_t>& ids = lines.emplace_back();
    const std::string line = all.substr(start, end - start);
    for (size_t pos = 0; pos < line.size();) {
      size_t next = line.find(' ', pos);
      if (next == std::string::npos) next = line.size();
      if (next > pos) ids.push_back(std::stoi(line.substr(pos, next - pos)));
      pos = next + 1;
    }
    start = end + 1;
  }
  return lines;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) s += std::to_string(id) + " ";
  return s;
}

// ---- llama.cpp tokenizer test vectors ----

struct VectorFile {
  const char* name;     // test name
  const char* vocab;    // the .gguf, relative to ../shared
  const char* vectors;  // the .inp/.out base path (the upstream qwen2 / llama-bpe vectors have no
                        // .gguf beside them: their vocabularies are the data/vocab files)
  size_t n_cases;
};

void PrintTo(const VectorFile& f, std::ostream* os) { *os << f.name; }

const VectorFile kVectorFiles[] = {
    {"llama_spm", kLlamaSpm, kLlamaSpm, 46},
    {"phi_3", kPhi3, kPhi3, 46},
    {"gpt_2", kGpt2, kGpt2, 46},
    {"deepseek_llm", kDeepseekLlm, kDeepseekLlm, 46},
    {"qwen2_upstream", kQwen3, "data/llama.cpp-vocab/ggml-vocab-qwen2.gguf", 46},
    {"llama_bpe_upstream", kLlama3, "data/llama.cpp-vocab/ggml-vocab-llama-bpe.gguf", 46},
    {"qwen3", kQwen3, kQwen3, 61},
    {"llama3", kLlama3, kLlama3, 62},
    {"gemma3", kGemma3, kGemma3, 62},
};

class VectorCases : public testing::TestWithParam<VectorFile> {};

TEST_P(VectorCases, MatchLlamaCppExactly) {
  const VectorFile& f = GetParam();
  const Tokenizer& tok = load(f.vocab);
  const std::string base = test::shared_path(f.vectors);
  const std::vector<std::string> cases = read_cases(base + ".inp");
  const std::vector<std::vector<int32_t>> expected = read_expected(base + ".out");
  ASSERT_EQ(cases.size(), f.n_cases);
  ASSERT_GE(expected.size(), cases.size());
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> got = tok.encode(cases[i], /*add_special=*/false);
    if (got == expected[i]) {
      ++passed;
    } else {
      ADD_FAILURE() << f.name << " case " << i << " \"" << cases[i] << "\"\n  got:      " << show(got)
                    << "\n  expected: " << show(expected[i]);
    }
  }
  std::printf("[ %s ] %d / %zu cases exact\n", f.name, passed, cases.size());
}

INSTANTIATE_TEST_SUITE_P(LlamaCpp, VectorCases, testing::ValuesIn(kVectorFiles),
                         [](const testing::TestParamInfo<VectorFile>& info) { return std::string(info.param.name); });

// ---- Decode round trips ----

// Vocabularies without clean_up_tokenization_spaces give every test string back exactly: the
// SentencePiece ones (the BOS and, where added, the prefix space are dropped on decode) and the
// byte-level BPEs DeepSeek and Qwen (Qwen's NFC normalizer is not applied, so decomposed text
// stays decomposed and comes back as written).
TEST(TokenizerRoundTrip, TestStringsComeBackExactly) {
  for (const VectorFile& f : kVectorFiles) {
    const std::string vocab = f.vocab;
    if (vocab == kGpt2 || vocab == kLlama3) continue;  // space cleanup: below
    const Tokenizer& tok = load(vocab);
    for (const std::string& text : read_cases(test::shared_path(f.vectors) + ".inp")) {
      // SentencePiece reads a literal U+2581 as its escaped space, and decodes it as " " (so does
      // llama.cpp): such strings cannot come back.
      if (tok.token_to_piece(tok.encode("\xE2\x96\x81", false).front()) == " " &&
          text.find("\xE2\x96\x81") != std::string::npos) {
        continue;
      }
      for (const bool parse_special : {false, true}) {
        const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true, parse_special);
        EXPECT_EQ(tok.decode(ids), text) << f.name << (parse_special ? " (parse_special)" : "") << ": \"" << text
                                         << "\"";
      }
    }
  }
}

// Llama 3 decodes with llama.cpp's clean_up_tokenization_spaces (" ." -> "." ...), as it does for
// GPT-2, so only the strings that cleanup leaves alone come back exactly.
TEST(TokenizerRoundTrip, Llama3RoundTripsWhereCleanupDoesNotApply) {
  const Tokenizer& tok = load(kLlama3);
  int checked = 0;
  for (const char* vectors : {kLlama3, "data/llama.cpp-vocab/ggml-vocab-llama-bpe.gguf"}) {
    for (const std::string& text : read_cases(test::shared_path(vectors) + ".inp")) {
      bool cleaned = false;
      for (size_t i = 0; i + 1 < text.size(); ++i) {
        if (text[i] == ' ' && std::string_view("?!.,'").find(text[i + 1]) != std::string_view::npos) cleaned = true;
      }
      if (cleaned) continue;
      ++checked;
      EXPECT_EQ(tok.decode(tok.encode(text, /*add_special=*/true)), text) << "\"" << text << "\"";
    }
  }
  EXPECT_GT(checked, 80);
  EXPECT_EQ(tok.decode(tok.encode("Hello , world !", false)), "Hello, world!");
  EXPECT_EQ(tok.decode(tok.encode("it 's", false)), "it's");
}

// ---- Whole evaluation texts against llama.cpp ----

// FNV-1a over the ids' little-endian bytes: a compact stand-in for an ids file of llama.cpp's output.
uint64_t hash_ids(const std::vector<int32_t>& ids) {
  uint64_t h = 14695981039346656037ull;
  for (const int32_t id : ids) {
    for (int shift = 0; shift < 32; shift += 8) {
      h = (h ^ ((uint32_t(id) >> shift) & 0xFF)) * 1099511628211ull;
    }
  }
  return h;
}

struct TextCase {
  const char* name;
  const char* vocab;
  const char* text;  // relative to ../shared; its first `bytes` bytes are tokenized
  size_t bytes;
  size_t n_tokens;  // llama.cpp c392e50: llama-tokenize --ids --no-parse-special -f FIRST_BYTES
  uint64_t hash;    // hash_ids of those ids (BOS included where the vocabulary adds it)
  int32_t first;    // their first id: BOS or not, as the file's add_bos says
};

void PrintTo(const TextCase& c, std::ostream* os) { *os << c.name; }

constexpr const char* kStories = "data/text/tinystories_val.txt";
constexpr const char* kWiki = "data/text/wiki.test.raw";
constexpr const char* kShakespeare = "data/text/tinyshakespeare.txt";

class EvaluationText : public testing::TestWithParam<TextCase> {};

TEST_P(EvaluationText, MatchesLlamaCpp) {
  const TextCase& c = GetParam();
  const Tokenizer& tok = load(c.vocab);
  const std::string text = test::read_text_file(test::shared_path(c.text)).substr(0, c.bytes);
  ASSERT_EQ(text.size(), c.bytes);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode(text, /*add_special=*/true);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("[ %s ] %zu bytes -> %zu tokens in %.1f ms (%.1f MB/s)\n", c.name, text.size(), ids.size(), ms,
              text.size() / ms / 1e3);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), c.first);
  EXPECT_EQ(ids.size(), c.n_tokens);
  EXPECT_EQ(hash_ids(ids), c.hash);
}

INSTANTIATE_TEST_SUITE_P(
    LlamaCpp, EvaluationText,
    testing::Values(TextCase{"qwen3_stories60k", kQwen3, kStories, 60000, 14249, 0xeb35015fe87ec630ull, 47049},
                    TextCase{"qwen3_wiki1m", kQwen3, kWiki, 1000000, 231419, 0x4b071b6d4e35e55cull, 715},
                    TextCase{"qwen3_shakespeare100k", kQwen3, kShakespeare, 100000, 27483, 0x0f992565f15a5ca9ull, 5338},
                    TextCase{"llama3_stories60k", kLlama3, kStories, 60000, 14250, 0x86dd3cb958e3aa65ull, 128000},
                    TextCase{"llama3_wiki1m", kLlama3, kWiki, 1000000, 223948, 0xe5c89275c33b9befull, 128000},
                    TextCase{"llama3_shakespeare100k", kLlama3, kShakespeare, 100000, 27483, 0x0c82ea3f192d8f1aull,
                             128000},
                    TextCase{"gemma3_stories60k", kGemma3, kStories, 60000, 14560, 0x4d8c15547ab8f20aull, 2},
                    TextCase{"gemma3_wiki1m", kGemma3, kWiki, 1000000, 228399, 0x61105145b2d45c4bull, 2},
                    TextCase{"gemma3_shakespeare100k", kGemma3, kShakespeare, 100000, 29058, 0xa699ff47158df41dull, 2}),
    [](const testing::TestParamInfo<TextCase>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kvq
