// Fused attention speed on one TinyLlama-shaped layer (32 query heads, 4 KV heads, head_dim 64).
//   decode:   one query at depth 1K .. 32K for every (K, V) pair; bytes/s = cached K + V bytes read
//   ratio:    f16/f16 and q8_0/q4_0 alternated in one loop, so machine noise hits both (DESIGN.md §6)
//   prefill:  512 queries at depth 0 and 512 queries on top of 4096 cached (tiles + online softmax)
// Examples: attention_bench --benchmark_filter='Decode/(f16_f16|q8_0_q4_0)/'   attention_bench --benchmark_filter=Ratio
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kv/kv_cache.h"

namespace kvq {
namespace {

constexpr int kHead = 32, kHeadKv = 4, kHeadDim = 64;
constexpr int kDepths[] = {1024, 4096, 8192, 16384, 32768};

const AttentionParams kParams{kHead, kHeadKv, kHeadDim, 0.125f};

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& value : x) value = normal(rng);
  return x;
}

// One-layer cache with n_ctx random positions, built once per (types, n_ctx) and kept for later runs.
const KvCache& cache_for(KvTypes types, int n_ctx) {
  static std::map<std::tuple<uint32_t, uint32_t, int>, std::unique_ptr<KvCache>> caches;
  auto& slot = caches[{uint32_t(types.k), uint32_t(types.v), n_ctx}];
  if (!slot) {
    auto cache = KvCache::create({1, n_ctx, kHeadKv, kHeadDim}, {types});
    const std::vector<float> k = randn(size_t(n_ctx) * kHeadKv * kHeadDim, 1);
    const std::vector<float> v = randn(size_t(n_ctx) * kHeadKv * kHeadDim, 2);
    cache->store(0, 0, n_ctx, k.data(), v.data());
    slot = std::make_unique<KvCache>(std::move(*cache));
  }
  return *slot;
}

// Seconds per decode call of f16/f16 at each depth, filled by its benchmark (registered first).
std::map<int, double>& f16_seconds() {
  static std::map<int, double> seconds;
  return seconds;
}

void BM_Decode(benchmark::State& state, KvTypes types) {
  const int depth = int(state.range(0));
  const KvCache& cache = cache_for(types, depth);
  const std::vector<float> q = randn(size_t(kHead) * kHeadDim, 3);
  std::vector<float> out(q.size());  // [1, n_head * head_dim]
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    attention(kParams, cache, 0, q.data(), 1, depth - 1, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / double(state.iterations());
  const KvLayerView view = cache.layer(0);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(view.k_row_bytes + view.v_row_bytes) * depth);
  state.counters["kv_MiB"] = double(view.k_row_bytes + view.v_row_bytes) * depth / double(1 << 20);
  if (types == KvTypes{GgmlType::F16, GgmlType::F16}) f16_seconds()[depth] = seconds;
  if (f16_seconds().count(depth)) state.counters["time_vs_f16"] = seconds / f16_seconds()[depth];
}

// f16/f16 and q8_0/q4_0 alternated call by call; reports q8_0/q4_0 time / f16 time and the byte ratio.
void BM_DecodeRatioK8V4(benchmark::State& state) {
  const int depth = int(state.range(0));
  const KvCache& f16 = cache_for({GgmlType::F16, GgmlType::F16}, depth);
  const KvCache& k8v4 = cache_for({GgmlType::Q8_0, GgmlType::Q4_0}, depth);
  const std::vector<float> q = randn(size_t(kHead) * kHeadDim, 3);
  std::vector<float> out(q.size());   // [1, n_head * head_dim]
  std::vector<double> t_f16, t_k8v4;  // [iterations] seconds per call
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    attention(kParams, f16, 0, q.data(), 1, depth - 1, out.data());
    auto t1 = std::chrono::steady_clock::now();
    attention(kParams, k8v4, 0, q.data(), 1, depth - 1, out.data());
    auto t2 = std::chrono::steady_clock::now();
    t_f16.push_back(std::chrono::duration<double>(t1 - t0).count());
    t_k8v4.push_back(std::chrono::duration<double>(t2 - t1).count());
    benchmark::DoNotOptimize(out.data());
  }
  // Medians: a burst from another tenant of this shared machine moves a mean by several percent.
  const auto median = [](std::vector<double> x) {
    std::nth_element(x.begin(), x.begin() + x.size() / 2, x.end());
    return x[x.size() / 2];
  };
  const KvLayerView a = f16.layer(0), b = k8v4.layer(0);
  state.counters["time_ratio"] = median(t_k8v4) / median(t_f16);
  state.counters["f16_us"] = median(t_f16) * 1e6;
  state.counters["k8v4_us"] = median(t_k8v4) * 1e6;
  // Fastest calls: what the kernels cost when nothing else interferes.
  state.counters["min_ratio"] =
      *std::min_element(t_k8v4.begin(), t_k8v4.end()) / *std::min_element(t_f16.begin(), t_f16.end());
  state.counters["byte_ratio"] = double(b.k_row_bytes + b.v_row_bytes) / double(a.k_row_bytes + a.v_row_bytes);
  state.counters["f16_GBps"] = double(a.k_row_bytes + a.v_row_bytes) * depth / median(t_f16) / 1e9;
  state.counters["k8v4_GBps"] = double(b.k_row_bytes + b.v_row_bytes) * depth / median(t_k8v4) / 1e9;
}

// n_tokens queries at positions depth .. depth + n_tokens - 1 (causal), i.e. a prefill chunk.
void BM_Prefill(benchmark::State& state, KvTypes types) {
  const int n_tokens = int(state.range(0));
  const int depth = int(state.range(1));
  const KvCache& cache = cache_for(types, depth + n_tokens);
  const std::vector<float> q = randn(size_t(n_tokens) * kHead * kHeadDim, 4);
  std::vector<float> out(q.size());  // [n_tokens, n_head * head_dim]
  for (auto _ : state) {
    attention(kParams, cache, 0, q.data(), n_tokens, depth, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["tok/s"] = benchmark::Counter(double(n_tokens) * state.iterations(), benchmark::Counter::kIsRate);
}

int register_all() {
  std::vector<KvTypes> pairs = {{GgmlType::F16, GgmlType::F16}};  // first: the ratio baseline
  for (GgmlType k : kKvCacheTypes) {
    for (GgmlType v : kKvCacheTypes) {
      if (!(k == GgmlType::F16 && v == GgmlType::F16)) pairs.push_back({k, v});
    }
  }
  for (const KvTypes& t : pairs) {
    const std::string name = "Decode/" + std::string(type_name(t.k)) + "_" + std::string(type_name(t.v));
    auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_Decode, t);
    for (int depth : kDepths) b->Arg(depth);
    b->Unit(benchmark::kMicrosecond)->UseRealTime();
  }
  auto* ratio = benchmark::RegisterBenchmark("Ratio/q8_0_q4_0_vs_f16", BM_DecodeRatioK8V4);
  for (int depth : kDepths) ratio->Arg(depth);
  ratio->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (const KvTypes& t : {KvTypes{GgmlType::F16, GgmlType::F16}, KvTypes{GgmlType::Q8_0, GgmlType::Q4_0}}) {
    const std::string name = "Prefill/" + std::string(type_name(t.k)) + "_" + std::string(type_name(t.v));
    benchmark::RegisterBenchmark(name.c_str(), BM_Prefill, t)
        ->Args({512, 0})
        ->Args({512, 4096})
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return 0;
}

const int registered = register_all();

}  // namespace
}  // namespace kvq

BENCHMARK_MAIN();
