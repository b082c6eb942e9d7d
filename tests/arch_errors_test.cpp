// Tiny models of every supported architecture, written here tensor by tensor: each loads and runs, and
// each with one tensor missing, one key missing or one shape inconsistent is refused with an error that
// names the file and what is wrong. Architectures kvq does not implement are refused by name. The files
// are left in the build folder as fuzz seeds (scripts/fuzz.sh): small enough for the fuzzer to reach the
// model binder, not just the GGUF parser.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"
#include "test_util.h"
#include "util/half.h"

namespace kvq {
namespace {

struct TinyShape {
  int n_layer = 2, n_embd = 32, n_head = 2, n_head_kv = 1, head_dim = 16, n_ff = 32, n_vocab = 48;
};

// What a broken variant changes: dropped keys and tensors, tensor dims replaced, keys added or replaced.
struct Edit {
  std::set<std::string> drop = {};
  std::map<std::string, std::vector<int64_t>> dims = {};
  std::map<std::string, int64_t> int_keys = {};
};

std::string seed_dir() {
  const std::string dir = std::string(KVQ_BINARY_DIR) + "/broken-models";
  std::filesystem::create_directories(dir);
  return dir;
}

// Writes a model of `arch` with the keys and tensor names llama.cpp's converters write; returns its path.
std::string write_tiny_model(const std::string& arch, const std::string& file_name, const Edit& edit = {}) {
  const TinyShape s;
  gguf::Writer w;
  std::map<std::string, int64_t> keys = {{"block_count", s.n_layer},
                                         {"embedding_length", s.n_embd},
                                         {"feed_forward_length", s.n_ff},
                                         {"attention.head_count", s.n_head},
                                         {"attention.head_count_kv", s.n_head_kv},
                                         {"attention.key_length", s.head_dim},
                                         {"attention.value_length", s.head_dim},
                                         {"context_length", 256}};
  if (arch == "gemma2" || arch == "gemma3") keys["attention.sliding_window"] = 8;
  for (const auto& [k, v] : edit.int_keys) keys[k] = v;
  w.set_string("general.architecture", arch);
  for (const auto& [k, v] : keys) {
    if (!edit.drop.count(k)) w.set_u32(arch + "." + k, uint32_t(v));
  }
  w.set_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-6f);
  if (arch == "gemma2") {
    w.set_f32(arch + ".attn_logit_softcapping", 50.0f);
    w.set_f32(arch + ".final_logit_softcapping", 30.0f);
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  const auto add = [&](const std::string& name, std::vector<int64_t> dims, bool norm = false) {
    if (edit.drop.count(name)) return;
    if (auto it = edit.dims.find(name); it != edit.dims.end()) dims = it->second;
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    // Matrices in f16 (as real files), vectors in f32: the whole file stays under the fuzzer's 64 KiB.
    const bool matrix = dims.size() == 2;
    std::vector<uint8_t> bytes(size_t(n) * (matrix ? 2 : 4));
    for (int64_t i = 0; i < n; ++i) {
      const float x = norm ? 1.0f + 0.1f * normal(rng) : normal(rng);
      if (matrix) {
        reinterpret_cast<uint16_t*>(bytes.data())[i] = f32_to_fp16(x);
      } else {
        reinterpret_cast<float*>(bytes.data())[i] = x;
      }
    }
    KVQ_CHECK(w.add_tensor(name, matrix ? GgmlType::F16 : GgmlType::F32, dims, std::move(bytes)).ok());
  };
  const int64_t q = s.n_head * s.head_dim, kv = s.n_head_kv * s.head_dim;
  add("token_embd.weight", {s.n_embd, s.n_vocab});
  add("output_norm.weight", {s.n_embd}, true);
  if (arch == "llama" || arch == "phi3") add("output.weight", {s.n_embd, s.n_vocab});
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, true);
    if (arch == "phi3") {
      add(p + "attn_qkv.weight", {s.n_embd, q + 2 * kv});
    } else {
      add(p + "attn_q.weight", {s.n_embd, q});
      add(p + "attn_k.weight", {s.n_embd, kv});
      add(p + "attn_v.weight", {s.n_embd, kv});
    }
    if (arch == "qwen2") {
      add(p + "attn_q.bias", {q});
      add(p + "attn_k.bias", {kv});
      add(p + "attn_v.bias", {kv});
    }
    if (arch == "qwen3" || arch == "gemma3") {
      add(p + "attn_q_norm.weight", {s.head_dim}, true);
      add(p + "attn_k_norm.weight", {s.head_dim}, true);
    }
    add(p + "attn_output.weight", {q, s.n_embd});
    add(p + "ffn_norm.weight", {s.n_embd}, true);
    if (arch == "phi3") {
      add(p + "ffn_up.weight", {s.n_embd, 2 * s.n_ff});
    } else {
      add(p + "ffn_gate.weight", {s.n_embd, s.n_ff});
      add(p + "ffn_up.weight", {s.n_embd, s.n_ff});
    }
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd});
    if (arch == "gemma2" || arch == "gemma3") {
      add(p + "post_attention_norm.weight", {s.n_embd}, true);
      add(p + "post_ffw_norm.weight", {s.n_embd}, true);
    }
  }
  const std::string path = seed_dir() + "/" + file_name + ".gguf";
  KVQ_CHECK(w.write(path).ok());
  return path;
}

// Loads `path`, expects failure with a message naming the file and containing `what`.
void expect_refused(const std::string& path, const std::string& what) {
  auto model = Model::load(path);
  ASSERT_FALSE(model.ok()) << path << " loaded";
  const std::string& message = model.error().message;
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
}

const char* const kArchs[] = {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"};

class TinyArch : public ::testing::TestWithParam<const char*> {};

TEST_P(TinyArch, LoadsAndRunsPastItsWindow) {
  const std::string arch = GetParam();
  auto model = Model::load(write_tiny_model(arch, "tiny-" + arch));
  ASSERT_TRUE(model.ok()) << model.error().message;
  Model& m = **model;
  EXPECT_EQ(m.config().architecture, arch);
  const int n = 40;  // past gemma's window of 8
  auto cache = m.make_cache(n, std::vector<KvTypes>(size_t(m.config().n_layer), {GgmlType::Q8_0, GgmlType::Q4_0}), 4);
  ASSERT_TRUE(cache.ok()) << cache.error().message;
  std::vector<int32_t> tokens(n);
  for (int i = 0; i < n; ++i) tokens[size_t(i)] = (i * 7) % m.config().n_vocab;
  std::vector<float> logits(size_t(n) * m.config().n_vocab);  // [n, n_vocab]
  ASSERT_TRUE(m.forward(tokens, 0, *cache, logits.data(), true).ok());
  for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  if (arch == "gemma2") {  // the final softcap bounds every logit
    for (float x : logits) ASSERT_LE(std::abs(x), 30.0f);
  }
}

TEST_P(TinyArch, MissingTensorIsNamed) {
  const std::string arch = GetParam();
  std::string tensor = "blk.1.ffn_down.weight";
  if (arch == "qwen2") tensor = "blk.0.attn_k.bias";
  if (arch == "qwen3" || arch == "gemma3") tensor = "blk.1.attn_q_norm.weight";
  if (arch == "gemma2") tensor = "blk.0.post_ffw_norm.weight";
  if (arch == "phi3") tensor = "blk.0.attn_qkv.weight";
  // Phi-3 without attn_qkv falls back to separate projections: the error names the first of them.
  const std::string named = arch == "phi3" ? "blk.0.attn_q.weight" : tensor;
  expect_refused(write_tiny_model(arch, "missing-tensor-" + arch, {.drop = {tensor}}), "'" + named + "' is missing");
}

TEST_P(TinyArch, MissingKeyIsNamed) {
  const std::string arch = GetParam();
  expect_refused(write_tiny_model(arch, "missing-key-" + arch, {.drop = {"embedding_length"}}),
                 arch + ".embedding_length");
  if (arch == "gemma2" || arch == "gemma3") {
    expect_refused(write_tiny_model(arch, "missing-window-" + arch, {.drop = {"attention.sliding_window"}}),
                   "sliding_window is missing");
  }
}

TEST_P(TinyArch, InconsistentShapesAreNamed) {
  const std::string arch = GetParam();
  // key_length that the projections do not have.
  expect_refused(write_tiny_model(arch, "bad-key-length-" + arch,
                                  {.int_keys = {{"attention.key_length", 8}, {"attention.value_length", 8}}}),
                 "has shape");
  const std::string tensor = arch == "phi3" ? "blk.0.ffn_up.weight" : "blk.0.ffn_gate.weight";
  expect_refused(write_tiny_model(arch, "bad-shape-" + arch, {.dims = {{tensor, {32, 31}}}}), "'" + tensor + "'");
  expect_refused(write_tiny_model(arch, "bad-heads-" + arch, {.int_keys = {{"attention.head_count_kv", 3}}}),
                 "not a multiple");
  // A damaged block count must be refused before per-layer tables are sized by it (a fuzzer's OOM).
  expect_refused(write_tiny_model(arch, "huge-block-count-" + arch, {.int_keys = {{"block_count", 400000000}}}),
                 "block_count = 400000000");
  expect_refused(
      write_tiny_model(arch, "huge-heads-" + arch,
                       {.int_keys = {{"attention.key_length", 1 << 29}, {"attention.value_length", 1 << 29}}}),
      "beyond any model");
}

INSTANTIATE_TEST_SUITE_P(Supported, TinyArch, ::testing::ValuesIn(kArchs));

TEST(ArchRefusal, UnimplementedFamiliesAreNamed) {
  expect_refused(write_tiny_model("mamba", "arch-mamba"), "state-space");
  expect_refused(write_tiny_model("qwen3moe", "arch-qwen3moe"), "mixture-of-experts");
  expect_refused(write_tiny_model("deepseek2", "arch-deepseek2"), "latent attention");
  expect_refused(write_tiny_model("clip", "arch-clip"), "vision");
  expect_refused(write_tiny_model("frobnicator", "arch-unknown"),
                 "supported: llama, qwen2, qwen3, gemma2, gemma3, phi3");
  // Mixtral files say "llama" and carry expert_count.
  expect_refused(write_tiny_model("llama", "llama-moe", {.int_keys = {{"expert_count", 8}}}), "mixture-of-experts");
}

}  // namespace
}  // namespace kvq
