// Weight-matmul throughput: decode (GEMV, 1 token) in bytes/s against this process's measured memory
// bandwidth, prompt processing (GEMM, 512 tokens) in FLOP/s, and a TinyLlama-1.1B-shaped stack of 22
// layers' projections (no attention, no LM head) whose time gives an implied tok/s.
//
// "cold" GEMV cycles through copies of the matrix totalling > the 260 MiB L3, as decode streams a model
// bigger than the cache; "warm" reuses one (cache-resident) matrix.
//
//   build-*/matmul_bench --benchmark_min_time=0.5
//   KVQ_BENCH_TARGET=avx2 build-*/matmul_bench ...   # only that SIMD target (and those below it)

#include <benchmark/benchmark.h>
#include <omp.h>

#include <cctype>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "hwy/targets.h"
#include "kernels/matmul.h"
#include "kernels/matmul_internal.h"
#include "quant/quant.h"
#include "util/half.h"
#include "util/result.h"

namespace kvq {
namespace {

using matmul_detail::Path;

constexpr size_t kColdBytes = size_t(640) << 20;  // > L3 (260 MiB) by a wide margin
constexpr int64_t kPromptTokens = 512;

// TinyLlama-1.1B projections: {n_in, n_out} of wq, wk, wv, wo, w_gate, w_up, w_down.
constexpr int64_t kTinyLlamaShapes[7][2] = {{2048, 2048}, {2048, 256},  {2048, 256}, {2048, 2048},
                                            {2048, 5632}, {2048, 5632}, {5632, 2048}};
constexpr int kTinyLlamaLayers = 22;

// One weight matrix in `type`: quantized from Gaussian floats, or random bytes with sane f16 super-block
// scales for types without a quantizer (speed does not depend on the values; NaN-free scales do matter).
std::vector<uint8_t> make_weights(GgmlType type, int64_t n_in, int64_t n_out) {
  const size_t rb = row_bytes(type, n_in);
  std::vector<uint8_t> w(rb * size_t(n_out));  // [n_out, row_bytes]
  std::mt19937 rng(1234);
  if (has_quantizer(type)) {
    std::normal_distribution<float> dist(0.0f, 0.02f);
    std::vector<float> row(static_cast<size_t>(n_in));  // [n_in]
    for (int64_t o = 0; o < n_out; ++o) {
      for (float& v : row) v = dist(rng);
      quantize_row_ref(type, row.data(), w.data() + size_t(o) * rb, n_in);
    }
    return w;
  }
  for (uint8_t& b : w) b = uint8_t(rng());
  const TypeTraits& t = type_traits(type);
  const uint16_t d = f32_to_fp16(0.003f);
  for (size_t off = 0; off < w.size(); off += size_t(t.type_size)) {
    switch (type) {
      case GgmlType::Q4_K:
        std::memcpy(&w[off + offsetof(BlockQ4_K, d)], &d, 2);
        std::memcpy(&w[off + offsetof(BlockQ4_K, dmin)], &d, 2);
        break;
      case GgmlType::Q6_K:
        std::memcpy(&w[off + offsetof(BlockQ6_K, d)], &d, 2);
        break;
      default:
        KVQ_CHECK(false && "bench: no random-weight recipe for this type");
    }
  }
  return w;
}

std::vector<float> make_acts(int64_t n_tokens, int64_t n_in) {
  std::mt19937 rng(99);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(size_t(n_tokens * n_in));  // [n_tokens, n_in]
  for (float& v : x) v = dist(rng);
  return x;
}

const char* path_name(Path p) { return p == Path::kFloat ? "dequant_fma" : "auto"; }

// One matrix, n_tokens, optionally cycled through enough copies to defeat the caches.
void bm_matmul(benchmark::State& state, GgmlType type, int64_t n_in, int64_t n_out, int64_t n_tokens, Path path,
               bool cold) {
  const std::vector<uint8_t> one = make_weights(type, n_in, n_out);
  const size_t copies = cold ? (kColdBytes + one.size() - 1) / one.size() : 1;
  std::vector<uint8_t> all(one.size() * copies);  // [copies, n_out, row_bytes]
  for (size_t c = 0; c < copies; ++c) std::memcpy(all.data() + c * one.size(), one.data(), one.size());
  const std::vector<float> x = make_acts(n_tokens, n_in);
  std::vector<float> y(size_t(n_tokens * n_out));  // [n_tokens, n_out]
  size_t next = 0;
  for (auto _ : state) {
    const WeightMatrix w{type, all.data() + next * one.size(), n_in, n_out};
    next = (next + 1) % copies;
    const Projection out{w, y.data()};
    matmul_detail::matmul_with_path({&out, 1}, x.data(), n_tokens, path);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(one.size()));
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * double(n_in) * double(n_out) * double(n_tokens),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = omp_get_max_threads();
}

// All projections of 22 TinyLlama layers (distinct copies, ~0.6 GiB at q4_0) for n_tokens tokens.
void bm_tinyllama(benchmark::State& state, GgmlType type, int64_t n_tokens) {
  std::vector<std::vector<uint8_t>> shapes;
  size_t layer_bytes = 0;
  double layer_flops = 0.0;
  for (const auto& s : kTinyLlamaShapes) {
    shapes.push_back(make_weights(type, s[0], s[1]));
    layer_bytes += shapes.back().size();
    layer_flops += 2.0 * double(s[0]) * double(s[1]) * double(n_tokens);
  }
  std::vector<uint8_t> model(layer_bytes * kTinyLlamaLayers);  // [22 layers][7 matrices]
  for (int l = 0; l < kTinyLlamaLayers; ++l) {
    size_t at = size_t(l) * layer_bytes;
    for (const auto& m : shapes) {
      std::memcpy(model.data() + at, m.data(), m.size());
      at += m.size();
    }
  }
  const std::vector<float> x = make_acts(n_tokens, 5632);  // [n_tokens, <= 5632], wide enough for w_down
  std::vector<float> y(size_t(n_tokens * 5632));           // [n_tokens, <= 5632]
  for (auto _ : state) {
    size_t at = 0;
    for (int l = 0; l < kTinyLlamaLayers; ++l) {
      for (int m = 0; m < 7; ++m) {
        const WeightMatrix w{type, model.data() + at, kTinyLlamaShapes[m][0], kTinyLlamaShapes[m][1]};
        at += shapes[size_t(m)].size();
        matmul(w, x.data(), y.data(), n_tokens);
      }
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(model.size()));
  state.counters["FLOP/s"] =
      benchmark::Counter(layer_flops * kTinyLlamaLayers, benchmark::Counter::kIsIterationInvariantRate);
  // Tokens per second of the projections alone: an upper bound for the whole forward pass.
  state.counters["tok/s"] = benchmark::Counter(double(n_tokens), benchmark::Counter::kIsIterationInvariantRate);
}

// Plain 2-thread read of kColdBytes: the bandwidth the GEMV figures are measured against.
void bm_memory_read(benchmark::State& state) {
  std::vector<uint64_t> buffer(kColdBytes / 8, 1);  // [kColdBytes / 8]
  for (auto _ : state) {
    uint64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < buffer.size(); ++i) sum += buffer[i];
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kColdBytes));
}

void register_all() {
  benchmark::RegisterBenchmark("memory_read", bm_memory_read)->UseRealTime()->Unit(benchmark::kMillisecond);
  const GgmlType types[] = {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::F16, GgmlType::Q4_K, GgmlType::Q6_K};
  const int64_t shapes[3][2] = {{2048, 2048}, {2048, 5632}, {2048, 512}};  // {n_in, n_out}
  for (GgmlType type : types) {
    const bool quantized = type_traits(type).quantized;
    for (const auto& s : shapes) {
      const std::string shape = std::to_string(s[1]) + "x" + std::to_string(s[0]);
      for (Path path : {Path::kAuto, Path::kFloat}) {
        if (path == Path::kFloat && (!quantized || s[1] != 2048)) continue;  // float path: one shape
        const std::string suffix = std::string(type_name(type)) + "/" + shape + "/" + path_name(path);
        for (bool cold : {true, false}) {
          benchmark::RegisterBenchmark(("gemv_" + std::string(cold ? "cold/" : "warm/") + suffix).c_str(), bm_matmul,
                                       type, s[0], s[1], int64_t(1), path, cold)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
        benchmark::RegisterBenchmark(("gemm512/" + suffix).c_str(), bm_matmul, type, s[0], s[1], kPromptTokens, path,
                                     false)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
  }
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const std::string name(type_name(type));
    // tg2 .. tg8: the decode steps of 2 .. 8 sequences batched into one pass (kvq serve --parallel).
    for (int64_t n : {1, 2, 4, 8}) {
      benchmark::RegisterBenchmark(("tinyllama_projections/tg" + std::to_string(n) + "/" + name).c_str(), bm_tinyllama,
                                   type, n)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark(("tinyllama_projections/pp512/" + name).c_str(), bm_tinyllama, type, kPromptTokens)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(2.0);
  }
}

}  // namespace
}  // namespace kvq

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  // Measures a machine without the wider targets (users' AVX2 desktops) on this one.
  if (const char* name = std::getenv("KVQ_BENCH_TARGET")) {
    int64_t allowed = 0;
    for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
      std::string target = hwy::TargetName(t);
      for (char& ch : target) ch = char(std::tolower(static_cast<unsigned char>(ch)));
      if (target == name) allowed = t;
    }
    if (allowed == 0) {
      std::fprintf(stderr, "matmul_bench: KVQ_BENCH_TARGET=%s is not a target of this build and CPU\n", name);
      return 1;
    }
    // Highway's target bits: lower values are better targets; keep `allowed` and every worse one.
    int64_t mask = 0;
    for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
      if (t >= allowed) mask |= t;
    }
    hwy::SetSupportedTargetsForTest(mask);
    std::fprintf(stderr, "matmul_bench: SIMD target %s\n", name);
  }
  kvq::register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
