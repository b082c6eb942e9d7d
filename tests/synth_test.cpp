// kvq synth as a user meets it: for every architecture, the keys and tensors llama.cpp's converter would
// write (names, shapes, types), the presets' hyper-parameters, the vocabulary padding, the Q4_K_M mix with
// its fallbacks, clear errors for bad flags, and (once the loader knows the architecture) a run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "test_util.h"

namespace kvq {
namespace {

// stdout and stderr together.
using test::CommandResult;
CommandResult run_kvq(const std::string& args) { return test::run_kvq(args, true); }

std::string small_vocab() { return test::shared_path("data/models/stories260K/stories260K.gguf"); }

// Writes `args` to a fresh file and opens it; fails the test on a synth error.
gguf::File synth(const std::string& file_name, const std::string& args) {
  const std::string path = test::temp_dir() + "/" + file_name;
  const CommandResult r = run_kvq("synth " + args + " -o " + path);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  auto file = gguf::File::open(path);
  EXPECT_TRUE(file.ok()) << (file.ok() ? "" : file.error().message);
  return std::move(*file);
}

int64_t int_key(const gguf::File& f, const std::string& key) {
  auto v = f.get_int(key);
  EXPECT_TRUE(v.ok()) << key;
  return v.ok() ? *v : -1;
}
double float_key(const gguf::File& f, const std::string& key) {
  auto v = f.get_float(key);
  EXPECT_TRUE(v.ok()) << key;
  return v.ok() ? *v : -1;
}
std::vector<float> f32_tensor(const gguf::File& f, const std::string& name) {
  const gguf::TensorInfo* t = f.find_tensor(name);
  if (!t || t->type != GgmlType::F32) return {};
  const float* p = reinterpret_cast<const float*>(t->data);
  return std::vector<float>(p, p + t->n_elements());
}

// The tensors convert_hf_to_gguf.py writes for each architecture, spelled out independently of synth.
struct TinyShape {
  std::string arch;
  int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
  bool tied;
};
std::map<std::string, std::vector<int64_t>> expected_tensors(const TinyShape& s) {
  const int64_t e = s.n_embd, q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim, ff = s.n_ff;
  std::map<std::string, std::vector<int64_t>> t{{"token_embd.weight", {e, s.n_vocab}}, {"output_norm.weight", {e}}};
  if (!s.tied) t["output.weight"] = {e, s.n_vocab};
  const bool gemma = s.arch == "gemma2" || s.arch == "gemma3";
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t[p + "attn_norm.weight"] = {e};
    t[p + "ffn_norm.weight"] = {e};
    t[p + "attn_output.weight"] = {q, e};
    t[p + "ffn_down.weight"] = {ff, e};
    if (s.arch == "phi3") {
      t[p + "attn_qkv.weight"] = {e, q + 2 * kv};
      t[p + "ffn_up.weight"] = {e, 2 * ff};
      continue;
    }
    t[p + "attn_q.weight"] = {e, q};
    t[p + "attn_k.weight"] = {e, kv};
    t[p + "attn_v.weight"] = {e, kv};
    t[p + "ffn_gate.weight"] = {e, ff};
    t[p + "ffn_up.weight"] = {e, ff};
    if (s.arch == "qwen2") {
      t[p + "attn_q.bias"] = {q};
      t[p + "attn_k.bias"] = {kv};
      t[p + "attn_v.bias"] = {kv};
    }
    if (s.arch == "qwen3" || s.arch == "gemma3") {
      t[p + "attn_q_norm.weight"] = {s.head_dim};
      t[p + "attn_k_norm.weight"] = {s.head_dim};
    }
    if (gemma) {
      t[p + "post_attention_norm.weight"] = {e};
      t[p + "post_ffw_norm.weight"] = {e};
    }
  }
  return t;
}

// 64 wide, 2 heads of 32 (one KV head); gemma2 keeps 26 layers and gemma3 6, the counts llama.cpp needs.
TinyShape tiny_shape(const std::string& arch) {
  const int n_layer = arch == "gemma2" ? 26 : arch == "gemma3" ? 6 : 2;
  const bool tied = arch == "qwen2" || arch == "qwen3" || arch == "gemma2" || arch == "gemma3";
  return {arch, n_layer, 64, 2, 1, 32, 128, 512, tied};
}
std::string tiny_file(const std::string& arch) { return "tiny-" + arch + ".gguf"; }
std::string tiny_flags(const std::string& arch) {
  return "--arch " + arch + " --n-layer " + std::to_string(tiny_shape(arch).n_layer) +
         " --n-embd 64 --n-head 2 --n-head-kv 1 --n-ff 128 --type q8_0 --vocab " + small_vocab();
}

class SynthArch : public testing::TestWithParam<std::string> {};

TEST_P(SynthArch, WritesTheConvertersKeysAndTensors) {
  const std::string arch = GetParam();
  const TinyShape s = tiny_shape(arch);
  const gguf::File f = synth(tiny_file(arch), tiny_flags(arch));
  EXPECT_EQ(f.get_string("general.architecture").value(), arch);
  const std::string p = arch + ".";
  EXPECT_EQ(int_key(f, p + "block_count"), s.n_layer);
  EXPECT_EQ(int_key(f, p + "embedding_length"), 64);
  EXPECT_EQ(int_key(f, p + "feed_forward_length"), 128);
  EXPECT_EQ(int_key(f, p + "attention.head_count"), 2);
  EXPECT_EQ(int_key(f, p + "attention.head_count_kv"), 1);
  EXPECT_EQ(int_key(f, p + "attention.key_length"), 32);
  EXPECT_EQ(int_key(f, p + "attention.value_length"), 32);
  EXPECT_EQ(int_key(f, p + "rope.dimension_count"), 32);
  EXPECT_GT(int_key(f, p + "context_length"), 0);
  EXPECT_GT(float_key(f, p + "rope.freq_base"), 0);
  EXPECT_GT(float_key(f, p + "attention.layer_norm_rms_epsilon"), 0);
  if (arch == "gemma2") {
    EXPECT_EQ(float_key(f, p + "attn_logit_softcapping"), 50.0);
    EXPECT_EQ(float_key(f, p + "final_logit_softcapping"), 30.0);
  }
  if (arch == "gemma2" || arch == "gemma3" || arch == "phi3") {
    EXPECT_GT(int_key(f, p + "attention.sliding_window"), 0);
  }
  if (arch == "phi3") {
    EXPECT_GT(int_key(f, p + "rope.scaling.original_context_length"), 0);
  }
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").value().size(), 512u);

  const auto expected = expected_tensors(s);
  EXPECT_EQ(f.tensors().size(), expected.size());
  for (const auto& [name, dims] : expected) {
    const gguf::TensorInfo* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dims, dims) << name;
    EXPECT_EQ(t->type, dims.size() == 1 ? GgmlType::F32 : GgmlType::Q8_0) << name;
  }
}

// Every architecture synth writes, kvq runs (with its family's real vocabulary).
TEST_P(SynthArch, RunsInKvq) {
  const std::string arch = GetParam();
  synth(tiny_file(arch) + ".run", tiny_flags(arch));
  const CommandResult r =
      run_kvq("run -m " + test::temp_dir() + "/" + tiny_file(arch) + ".run" + " -p \"Once upon a time\" -n 4 --temp 0");
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

INSTANTIATE_TEST_SUITE_P(All, SynthArch, testing::Values("llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"));

// rope_freqs.weight as convert_hf_to_gguf.py computes it (values from an independent Python run of the
// converter's formula): 1 for the fast dims, the scaling factor for the slow ones, a smooth blend between.
TEST(Synth, Llama3RopeFreqsFollowTheConverter) {
  const gguf::File f31 = synth("l31.gguf",
                               "--preset llama-3.1-8b --n-layer 1 --n-embd 256 --n-head 2 --n-ff 256 "
                               "--type q8_0 --vocab " +
                                   small_vocab());
  const std::vector<float> r31 = f32_tensor(f31, "rope_freqs.weight");
  ASSERT_EQ(r31.size(), 64u);  // head_dim 128 / 2
  for (int i = 0; i < 29; ++i) EXPECT_EQ(r31[i], 1.0f) << i;
  const float smooth31[] = {1.20748f, 1.55341f, 2.02631f, 2.69453f, 3.68425f, 5.25733f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(r31[29 + i], smooth31[i], 1e-4) << i;
  for (int i = 35; i < 64; ++i) EXPECT_EQ(r31[i], 8.0f) << i;
  EXPECT_EQ(float_key(f31, "llama.rope.freq_base"), 500000.0);
  EXPECT_EQ(int_key(f31, "llama.context_length"), 131072);
  EXPECT_NE(f31.find_tensor("output.weight"), nullptr);

  const gguf::File f32 = synth("l32.gguf",
                               "--preset llama-3.2-1b --n-layer 1 --n-embd 256 --n-head 4 --n-ff 256 "
                               "--type q8_0 --vocab " +
                                   small_vocab());
  const std::vector<float> r32 = f32_tensor(f32, "rope_freqs.weight");
  ASSERT_EQ(r32.size(), 32u);  // head_dim 64 / 2
  EXPECT_EQ(r32[14], 1.0f);
  EXPECT_NEAR(r32[15], 1.65133f, 1e-4);
  EXPECT_NEAR(r32[16], 3.29226f, 1e-4);
  EXPECT_NEAR(r32[17], 9.66673f, 1e-4);
  EXPECT_EQ(r32[18], 32.0f);
  EXPECT_EQ(f32.find_tensor("output.weight"), nullptr);  // Llama 3.2 ties its output to the embedding
}

TEST(Synth, Phi35MiniLongRope) {
  const gguf::File f = synth("phi35.gguf",
                             "--preset phi-3.5-mini --n-layer 1 --n-embd 512 --n-head 4 --n-ff 256 "
                             "--type q4_k_m --vocab " +
                                 small_vocab());
  EXPECT_EQ(int_key(f, "phi3.attention.key_length"), 96);
  EXPECT_EQ(int_key(f, "phi3.rope.dimension_count"), 96);
  EXPECT_EQ(int_key(f, "phi3.context_length"), 131072);
  EXPECT_EQ(int_key(f, "phi3.rope.scaling.original_context_length"), 4096);
  EXPECT_EQ(int_key(f, "phi3.attention.sliding_window"), 262144);
  EXPECT_NEAR(float_key(f, "phi3.rope.scaling.attn_factor"), std::sqrt(1 + std::log(32.0) / std::log(4096.0)), 1e-6);
  const std::vector<float> long_f = f32_tensor(f, "rope_factors_long.weight");
  const std::vector<float> short_f = f32_tensor(f, "rope_factors_short.weight");
  ASSERT_EQ(long_f.size(), 48u);
  ASSERT_EQ(short_f.size(), 48u);
  EXPECT_EQ(long_f.front(), 1.08f);
  EXPECT_EQ(long_f.back(), 64.84f);
  EXPECT_EQ(short_f.front(), 1.0f);
  EXPECT_EQ(short_f.back(), 2.84f);
  // Fused q/k/v: 4 heads of 96 for each of q, k, v. Q4_K_M gives it q5_K (llama.cpp's attn_qkv rule).
  const gguf::TensorInfo* qkv = f.find_tensor("blk.0.attn_qkv.weight");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->dims, (std::vector<int64_t>{512, 3 * 384}));
  EXPECT_EQ(qkv->type, GgmlType::Q5_K);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_up.weight")->dims, (std::vector<int64_t>{512, 512}));
  EXPECT_EQ(f.find_tensor("blk.0.ffn_up.weight")->type, GgmlType::Q4_K);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, GgmlType::Q6_K);  // layer 0 of 1: more bits
  EXPECT_EQ(f.find_tensor("output.weight")->type, GgmlType::Q6_K);
}

TEST(Synth, PresetHyperParametersAsSpecified) {
  const gguf::File g3 =
      synth("g34.gguf", "--preset gemma-3-4b --n-embd 256 --n-ff 256 --type q8_0 --vocab " + small_vocab());
  EXPECT_EQ(int_key(g3, "gemma3.block_count"), 34);
  EXPECT_EQ(int_key(g3, "gemma3.attention.key_length"), 256);
  EXPECT_EQ(int_key(g3, "gemma3.attention.sliding_window"), 1024);
  EXPECT_EQ(int_key(g3, "gemma3.attention.head_count"), 8);
  EXPECT_EQ(int_key(g3, "gemma3.attention.head_count_kv"), 4);
  EXPECT_EQ(int_key(g3, "gemma3.context_length"), 131072);
  EXPECT_EQ(float_key(g3, "gemma3.rope.freq_base"), 1e6);
  EXPECT_EQ(g3.get_string("gemma3.rope.scaling.type").value(), "linear");
  EXPECT_EQ(float_key(g3, "gemma3.rope.scaling.factor"), 8.0);
  EXPECT_EQ(g3.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(g3.find_tensor("blk.0.attn_q.weight")->dims, (std::vector<int64_t>{256, 8 * 256}));
  EXPECT_EQ(g3.find_tensor("blk.0.attn_k_norm.weight")->dims, (std::vector<int64_t>{256}));

  const gguf::File g1 = synth("g31.gguf",
                              "--preset gemma-3-1b --n-layer 6 --n-embd 256 --n-ff 256 --type q8_0 "
                              "--vocab " +
                                  small_vocab());
  EXPECT_EQ(int_key(g1, "gemma3.attention.sliding_window"), 512);
  EXPECT_EQ(g1.find("gemma3.rope.scaling.type"), nullptr);  // 1B has no rope scaling

  const gguf::File g2 =
      synth("g22.gguf", "--preset gemma-2-2b --n-embd 256 --n-ff 256 --type q8_0 --vocab " + small_vocab());
  EXPECT_EQ(int_key(g2, "gemma2.attention.key_length"), 256);
  EXPECT_EQ(int_key(g2, "gemma2.attention.sliding_window"), 4096);
  EXPECT_EQ(float_key(g2, "gemma2.attn_logit_softcapping"), 50.0);
  EXPECT_EQ(float_key(g2, "gemma2.final_logit_softcapping"), 30.0);

  const gguf::File q7 = synth("q7.gguf",
                              "--preset qwen2.5-7b --n-layer 1 --n-embd 256 --n-ff 256 --type q8_0 "
                              "--vocab " +
                                  small_vocab());
  EXPECT_EQ(int_key(q7, "qwen2.attention.head_count"), 28);
  EXPECT_EQ(int_key(q7, "qwen2.attention.head_count_kv"), 4);
  EXPECT_EQ(q7.find_tensor("blk.0.attn_k.bias")->dims, (std::vector<int64_t>{4 * 128}));
  EXPECT_NE(q7.find_tensor("output.weight"), nullptr);  // 7B is untied, 0.5B tied

  const gguf::File nemo = synth("nemo.gguf",
                                "--preset mistral-nemo-12b --n-layer 1 --n-embd 256 --n-ff 256 "
                                "--type q4_0 --vocab " +
                                    small_vocab());
  EXPECT_EQ(int_key(nemo, "llama.attention.key_length"), 128);  // != n_embd / n_head
  EXPECT_EQ(nemo.find_tensor("blk.0.attn_output.weight")->dims, (std::vector<int64_t>{32 * 128, 256}));
}

// Real vocabularies: every tokenizer key copied, padded with unused tokens to the model's vocab_size (Qwen)
// or cut to it (Gemma 2 from the Gemma 3 vocabulary); a BPE vocabulary is never cut.
TEST(Synth, VocabularyPaddedOrCutToTheModelsVocabSize) {
  const gguf::File q = synth("qwen-vocab.gguf",
                             "--preset qwen3-0.6b --n-layer 1 --n-embd 64 --n-head 2 "
                             "--n-head-kv 1 --n-ff 64 --type q8_0");
  auto source = gguf::File::open(test::shared_path("data/vocab/ggml-vocab-qwen3.gguf"));
  ASSERT_TRUE(source.ok());
  const auto tokens = q.get_string_array("tokenizer.ggml.tokens").value();
  ASSERT_EQ(tokens.size(), 151936u);
  EXPECT_EQ(tokens[151668], source->get_string_array("tokenizer.ggml.tokens").value()[151668]);
  EXPECT_EQ(tokens[151935], "[PAD151935]");
  EXPECT_EQ(q.get_int_array("tokenizer.ggml.token_type").value()[151935], 5);  // unused
  EXPECT_EQ(q.find("tokenizer.ggml.merges")->array.size(), 151387u);
  EXPECT_EQ(q.get_string("tokenizer.chat_template").value(), source->get_string("tokenizer.chat_template").value());
  EXPECT_EQ(q.get_string("tokenizer.ggml.pre").value(), "qwen2");
  EXPECT_EQ(q.find_tensor("token_embd.weight")->dims, (std::vector<int64_t>{64, 151936}));

  const gguf::File g = synth("gemma2-vocab.gguf", "--preset gemma-2-2b --n-embd 64 --n-ff 64 --type q8_0");
  EXPECT_EQ(g.get_string_array("tokenizer.ggml.tokens").value().size(), 256000u);
  EXPECT_EQ(g.get_float_array("tokenizer.ggml.scores").value().size(), 256000u);
  EXPECT_EQ(g.find_tensor("token_embd.weight")->dims, (std::vector<int64_t>{64, 256000}));

  const CommandResult cut = run_kvq("synth --arch qwen2 --n-vocab 1000 -o " + test::temp_dir() + "/cut.gguf");
  EXPECT_EQ(cut.exit_code, 1);
  EXPECT_NE(cut.out.find("cannot cut"), std::string::npos) << cut.out;
}

// llama.cpp's Q4_K_M on Qwen2.5-0.5B's 896-wide rows, which 256-value blocks don't tile: q4_K falls back to
// q5_0 and q6_K to q8_0, and the tied embedding takes the output's rule (q6_K -> q8_0).
TEST(Synth, Q4KMMixFallsBackLikeLlamaCpp) {
  const gguf::File f = synth("q05.gguf", "--preset qwen2.5-0.5b --n-layer 8 --type q4_k_m --vocab " + small_vocab());
  EXPECT_EQ(int_key(f, "general.file_type"), 15);
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, GgmlType::Q8_0);
  for (int l = 0; l < 8; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const bool more_bits = l == 0 || l == 3 || l == 6 || l == 7;  // use_more_bits for 8 layers
    EXPECT_EQ(f.find_tensor(p + "attn_q.weight")->type, GgmlType::Q5_0) << l;
    EXPECT_EQ(f.find_tensor(p + "attn_v.weight")->type, more_bits ? GgmlType::Q8_0 : GgmlType::Q5_0) << l;
    EXPECT_EQ(f.find_tensor(p + "ffn_up.weight")->type, GgmlType::Q5_0) << l;
    // ffn_down's rows are 4864 = 19 x 256 long: no fallback.
    EXPECT_EQ(f.find_tensor(p + "ffn_down.weight")->type, more_bits ? GgmlType::Q6_K : GgmlType::Q4_K) << l;
    EXPECT_EQ(f.find_tensor(p + "attn_q.bias")->type, GgmlType::F32) << l;
  }
}

// Random codes (k-quants), quantized rows and biases are the same whatever the thread count.
TEST(Synth, EveryArchIsDeterministic) {
  for (const std::string arch : {"qwen2", "phi3"}) {
    const std::string a = test::temp_dir() + "/det-" + arch + "-a.gguf",
                      b = test::temp_dir() + "/det-" + arch + "-b.gguf";
    const std::string flags = "synth --arch " + arch + " --n-layer 2 --type q4_k_m --seed 3 --vocab " + small_vocab();
    ASSERT_EQ(run_kvq(flags + " -t 1 -o " + a).exit_code, 0);
    ASSERT_EQ(run_kvq(flags + " -t 2 -o " + b).exit_code, 0);
    EXPECT_EQ(test::read_text_file(a), test::read_text_file(b)) << arch;
  }
}

TEST(Synth, BadFlagsGiveClearErrors) {
  const std::string out = " -o " + test::temp_dir() + "/bad.gguf";
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    const CommandResult r = run_kvq("synth " + args + out);
    EXPECT_EQ(r.exit_code, 1) << args;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << ": " << r.out;
  };
  expect_error("--arch mamba", "gemma3");         // lists the architectures
  expect_error("--preset llama-9b", "qwen3-8b");  // lists the presets
  expect_error("--preset gemma-3-4b --arch qwen2", "gemma3 model");
  expect_error("--arch llama --n-head 6 --n-head-kv 4", "not a multiple of n_head_kv");
  expect_error("--arch llama --n-embd 250 --n-head 4", "--head-dim");
  expect_error("--arch llama --head-dim 33", "even");
  expect_error("--arch llama --tied --untied", "contradict");
  expect_error("--arch llama --n-embd 240 --n-head 4 --type q4_0", "multiples of 32");
  expect_error("--arch qwen3 --type q3_k", "q4_k_m");
}

}  // namespace
}  // namespace kvq
