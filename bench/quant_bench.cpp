// Row conversion throughput: dispatched (best Highway target) against the scalar reference, per
// type. Reports values/s; a 4096-value row is one KV-cache row of a 32-head x 128-dim model.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "quant/quant.h"

namespace kvq {
namespace {

constexpr int64_t kN = 4096;

std::vector<float> gaussian_row() {
  std::mt19937 rng(1);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  std::vector<float> x(kN);  // [kN] f32
  for (float& v : x) v = gauss(rng);
  return x;
}

void BM_Dequantize(benchmark::State& state, GgmlType type, bool reference) {
  const std::vector<float> x = gaussian_row();
  std::vector<uint8_t> bytes(row_bytes(type, kN));  // [kN / block] blocks
  if (has_quantizer(type)) {
    quantize_row_ref(type, x.data(), bytes.data(), kN);
  } else {
    std::mt19937 rng(2);  // k-quants have no quantizer here: any bits dequantize, at the same speed
    for (uint8_t& b : bytes) b = uint8_t(rng());
  }
  std::vector<float> y(kN);  // [kN] f32
  for (auto _ : state) {
    (reference ? dequantize_row_ref : dequantize_row)(type, bytes.data(), y.data(), kN);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * kN);
}

void BM_Quantize(benchmark::State& state, GgmlType type, bool reference) {
  const std::vector<float> x = gaussian_row();
  std::vector<uint8_t> bytes(row_bytes(type, kN));  // [kN / block] blocks
  for (auto _ : state) {
    (reference ? quantize_row_ref : quantize_row)(type, x.data(), bytes.data(), kN);
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetItemsProcessed(state.iterations() * kN);
}

void register_all() {
  for (GgmlType type : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                        GgmlType::Q5_1, GgmlType::IQ4_NL, GgmlType::Q2_K, GgmlType::Q4_K, GgmlType::Q6_K}) {
    const std::string name(type_name(type));
    benchmark::RegisterBenchmark(("dequantize/" + name + "/simd").c_str(), BM_Dequantize, type, false);
    benchmark::RegisterBenchmark(("dequantize/" + name + "/ref").c_str(), BM_Dequantize, type, true);
    if (has_quantizer(type)) {
      benchmark::RegisterBenchmark(("quantize/" + name + "/simd").c_str(), BM_Quantize, type, false);
      benchmark::RegisterBenchmark(("quantize/" + name + "/ref").c_str(), BM_Quantize, type, true);
    }
  }
}

}  // namespace
}  // namespace kvq

int main(int argc, char** argv) {
  kvq::register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
