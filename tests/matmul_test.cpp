// matmul against the scalar reference (matmul_ref: dequantize_row_ref + double accumulation), for every
// weight type, kernel family (int8 activations / dequantize + f32 FMA) and compiled SIMD target.

#include "kernels/matmul.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "hwy/targets.h"
#include "kernels/matmul_internal.h"
#include "quant/quant.h"
#include "util/half.h"
#include "util/system.h"

namespace kvq {
namespace {

using matmul_detail::Path;

// Relative RMSE = sqrt(sum (y - ref)^2 / sum ref^2) over all outputs of a call.
// f32 accumulation of <= 2304 products against double: ~1e-7 typical; 1e-5 leaves room for cancellation.
constexpr double kMaxRelRmseFloat = 1e-5;
// 8-bit activations (absmax / 127 per 32 values): uniform rounding error of scale / sqrt(12) per value,
// ~0.55% of a Gaussian activation's RMS and so of the dot product.
constexpr double kMaxRelRmseInt8Gaussian = 1.2e-2;
// A block holding a 50x outlier quantizes its other 31 values with a 50x coarser step (measured up to
// 4.4% on 3 outputs of one token; ggml's q8 activations behave the same).
constexpr double kMaxRelRmseInt8Outliers = 6e-2;
// With activations that 8 bits represent exactly, the int8 path is exact up to f32 accumulation.
constexpr double kMaxRelRmseInt8Exact = 1e-5;

const std::vector<GgmlType> kAllTypes = {GgmlType::F32,    GgmlType::F16,  GgmlType::BF16,  GgmlType::Q8_0,
                                         GgmlType::Q4_0,   GgmlType::Q4_1, GgmlType::Q5_0,  GgmlType::Q5_1,
                                         GgmlType::IQ4_NL, GgmlType::Q2_K, GgmlType::Q3_K,  GgmlType::Q4_K,
                                         GgmlType::Q5_K,   GgmlType::Q6_K, GgmlType::IQ4_XS};

struct Shape {
  int64_t n_in, n_out;
};

// Shapes per block size: odd n_out (partial 4-row panels), n_in with a 32-value tail (VNNI steps are
// 64) and n_in past one 2048-value chunk.
std::vector<Shape> shapes_for(GgmlType type) {
  const int block = type_traits(type).block_size;
  if (block == kQK_K) return {{256, 67}, {512, 33}, {2048, 130}, {2304, 9}};
  if (block == kQK) return {{96, 5}, {256, 67}, {512, 33}, {2048, 130}, {2080, 3}};
  return {{100, 7}, {256, 67}, {512, 33}, {2048, 130}};
}
const int64_t kTokenCounts[] = {1, 2, 3, 5, 8, 17, 64};

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

void set_fp16(uint8_t* field, float value) {
  const uint16_t bits = f32_to_fp16(value);
  std::memcpy(field, &bits, 2);
}

// Random weights [n_out, n_in] in `type`: quantized from Gaussian floats where kvq has a quantizer,
// otherwise random bytes with the super-block scales replaced by sane f16 values.
std::vector<uint8_t> random_weights(GgmlType type, Shape s, uint32_t seed) {
  const size_t rb = row_bytes(type, s.n_in);
  std::vector<uint8_t> w(rb * size_t(s.n_out));  // exact size: ASan catches reads past the matrix
  if (has_quantizer(type)) {
    const std::vector<float> values = gaussian(size_t(s.n_in * s.n_out), seed, 0.05f);
    for (int64_t o = 0; o < s.n_out; ++o) {
      quantize_row_ref(type, values.data() + o * s.n_in, w.data() + size_t(o) * rb, s.n_in);
    }
    return w;
  }
  std::mt19937 rng(seed);
  for (uint8_t& b : w) b = uint8_t(rng());
  std::uniform_real_distribution<float> scale(0.002f, 0.01f);
  const TypeTraits& t = type_traits(type);
  for (size_t off = 0; off < w.size(); off += size_t(t.type_size)) {
    uint8_t* b = w.data() + off;
    switch (type) {
      case GgmlType::Q2_K:
        set_fp16(b + offsetof(BlockQ2_K, d), scale(rng));
        set_fp16(b + offsetof(BlockQ2_K, dmin), scale(rng));
        break;
      case GgmlType::Q3_K:
        set_fp16(b + offsetof(BlockQ3_K, d), scale(rng));
        break;
      case GgmlType::Q4_K:
        set_fp16(b + offsetof(BlockQ4_K, d), scale(rng));
        set_fp16(b + offsetof(BlockQ4_K, dmin), scale(rng));
        break;
      case GgmlType::Q5_K:
        set_fp16(b + offsetof(BlockQ5_K, d), scale(rng));
        set_fp16(b + offsetof(BlockQ5_K, dmin), scale(rng));
        break;
      case GgmlType::Q6_K:
        set_fp16(b + offsetof(BlockQ6_K, d), scale(rng));
        break;
      case GgmlType::IQ4_XS:
        set_fp16(b + offsetof(BlockIQ4_XS, d), scale(rng));
        break;
      default:
        ADD_FAILURE() << "no random-weight recipe for " << type_name(type);
    }
  }
  return w;
}

double rel_rmse(const std::vector<float>& y, const std::vector<float>& ref) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    err += (double(y[i]) - ref[i]) * (double(y[i]) - ref[i]);
    norm += double(ref[i]) * ref[i];
  }
  return norm > 0.0 ? std::sqrt(err / norm) : std::sqrt(err);
}

// Activation sets, each [n_tokens, n_in].
enum class Acts { kGaussian, kOutliers, kExactInt8 };

std::vector<float> make_acts(Acts kind, int64_t n_tokens, int64_t n_in, uint32_t seed) {
  std::vector<float> x = gaussian(size_t(n_tokens * n_in), seed);
  if (kind == Acts::kOutliers) {
    // A few channels 50x larger, as in real LLM residual streams.
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t i = 7; i < n_in; i += 97) x[size_t(t * n_in + i)] *= 50.0f;
    }
  } else if (kind == Acts::kExactInt8) {
    // Integers in [-127, 127] times 2^-4 with +-127 in every 32-block: 8-bit codes represent them exactly.
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> code(-127, 127);
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 32 == 5 ? (i % 64 < 32 ? 127 : -127) : code(rng)) / 16.0f;
  }
  return x;
}

// References are reused across targets and paths.
const std::vector<float>& reference(GgmlType type, Shape s, const std::vector<uint8_t>& w, Acts kind, int64_t n_tokens,
                                    const std::vector<float>& x) {
  static std::map<std::tuple<int, int64_t, int64_t, int, int64_t>, std::vector<float>> cache;
  auto key = std::make_tuple(int(type), s.n_in, s.n_out, int(kind), n_tokens);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::vector<float> y(size_t(n_tokens * s.n_out));  // [n_tokens, n_out]
  matmul_ref(WeightMatrix{type, w.data(), s.n_in, s.n_out}, x.data(), y.data(), n_tokens);
  return cache.emplace(key, std::move(y)).first->second;
}

class MatmulTarget : public ::testing::TestWithParam<std::tuple<int64_t, GgmlType>> {
 protected:
  // One thread: the SIMD target is what varies here (ResultsIndependentOfThreadCount covers threads),
  // and a shared, loaded machine makes thousands of short OpenMP barriers slow.
  void SetUp() override {
    hwy::SetSupportedTargetsForTest(std::get<0>(GetParam()));
    saved_threads_ = omp_get_max_threads();
    omp_set_num_threads(1);
  }
  void TearDown() override {
    hwy::SetSupportedTargetsForTest(0);
    omp_set_num_threads(saved_threads_);
  }
  GgmlType type() const { return std::get<1>(GetParam()); }
  int saved_threads_ = 1;

  // Runs every shape x token count with `kind` activations on `path`; checks rel. RMSE <= max_err.
  void check(Acts kind, Path path, double max_err) {
    for (const Shape s : shapes_for(type())) {
      const std::vector<uint8_t> w = random_weights(type(), s, uint32_t(s.n_in * 31 + s.n_out));
      const WeightMatrix wm{type(), w.data(), s.n_in, s.n_out};
      for (int64_t n_tokens : kTokenCounts) {
        SCOPED_TRACE(testing::Message() << "n_in " << s.n_in << " n_out " << s.n_out << " tokens " << n_tokens);
        const std::vector<float> x = make_acts(kind, n_tokens, s.n_in, uint32_t(n_tokens * 7 + s.n_in));
        const std::vector<float>& ref = reference(type(), s, w, kind, n_tokens, x);
        std::vector<float> y(ref.size(), std::nanf(""));  // [n_tokens, n_out]; NaN exposes unwritten outputs
        const Projection out{wm, y.data()};
        matmul_detail::matmul_with_path({&out, 1}, x.data(), n_tokens, path);
        EXPECT_LE(rel_rmse(y, ref), max_err);
      }
    }
  }
};

TEST_P(MatmulTarget, FloatPathMatchesReference) { check(Acts::kGaussian, Path::kFloat, kMaxRelRmseFloat); }

TEST_P(MatmulTarget, DefaultPathMatchesReference) {
  const bool quantized = type_traits(type()).quantized;
  check(Acts::kGaussian, Path::kAuto, quantized ? kMaxRelRmseInt8Gaussian : kMaxRelRmseFloat);
}

// A prompt longer than the largest token block (512, matmul_internal.h) runs in several blocks, each over
// every chunk of n_in: the second block must read its own tokens' activations and write their rows.
TEST_P(MatmulTarget, PromptsLongerThanATokenBlock) {
  Shape s = shapes_for(type()).back();  // n_in > kWideChunk, not a multiple of it
  s.n_out = std::min<int64_t>(s.n_out, 9);
  const std::vector<uint8_t> w = random_weights(type(), s, 5);
  const WeightMatrix wm{type(), w.data(), s.n_in, s.n_out};
  const int64_t n_tokens = 512 + 37;
  const std::vector<float> x = make_acts(Acts::kGaussian, n_tokens, s.n_in, 9);
  const std::vector<float>& ref = reference(type(), s, w, Acts::kGaussian, n_tokens, x);
  std::vector<float> y(ref.size(), std::nanf(""));  // [n_tokens, n_out]
  matmul(wm, x.data(), y.data(), n_tokens);
  const double max_err = type_traits(type()).quantized ? kMaxRelRmseInt8Gaussian : kMaxRelRmseFloat;
  const std::vector<float> tail_y(y.end() - 37 * s.n_out, y.end()), tail_ref(ref.end() - 37 * s.n_out, ref.end());
  EXPECT_LE(rel_rmse(y, ref), max_err);
  EXPECT_LE(rel_rmse(tail_y, tail_ref), max_err) << "tokens of the second block";
}

// Batched decode (kvq serve --parallel) computes each sequence's token exactly as a decode of that token
// alone: greedy answers do not depend on which other requests share the step.
TEST_P(MatmulTarget, FewTokensEqualOneTokenAtATime) {
  for (const Shape s : shapes_for(type())) {
    const std::vector<uint8_t> w = random_weights(type(), s, uint32_t(s.n_in * 31 + s.n_out));
    const WeightMatrix wm{type(), w.data(), s.n_in, s.n_out};
    for (int64_t n_tokens = 2; n_tokens <= matmul_detail::kMaxGemvTokens; ++n_tokens) {
      SCOPED_TRACE(testing::Message() << "n_in " << s.n_in << " n_out " << s.n_out << " tokens " << n_tokens);
      const std::vector<float> x = make_acts(Acts::kGaussian, n_tokens, s.n_in, uint32_t(n_tokens + s.n_in));
      std::vector<float> batched(size_t(n_tokens * s.n_out)), alone(batched.size());  // [n_tokens, n_out]
      matmul(wm, x.data(), batched.data(), n_tokens);
      for (int64_t t = 0; t < n_tokens; ++t) matmul(wm, x.data() + t * s.n_in, alone.data() + t * s.n_out, 1);
      EXPECT_EQ(0, std::memcmp(batched.data(), alone.data(), sizeof(float) * batched.size()));
    }
  }
}

// The int8 path exists for quantized weights only.
class MatmulTargetInt8 : public MatmulTarget {};

TEST_P(MatmulTargetInt8, Int8PathWithOutlierChannels) { check(Acts::kOutliers, Path::kInt8, kMaxRelRmseInt8Outliers); }

// Exact activations isolate the weight decoding and the kernel: any wrong code, scale or min shows.
TEST_P(MatmulTargetInt8, Int8PathExactForRepresentableActivations) {
  check(Acts::kExactInt8, Path::kInt8, kMaxRelRmseInt8Exact);
}

std::string target_type_name(const ::testing::TestParamInfo<std::tuple<int64_t, GgmlType>>& info) {
  return std::string(hwy::TargetName(std::get<0>(info.param))) + "_" + std::string(type_name(std::get<1>(info.param)));
}

std::vector<GgmlType> quantized_types() {
  std::vector<GgmlType> out;
  for (GgmlType t : kAllTypes) {
    if (type_traits(t).quantized) out.push_back(t);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllTargetsAllTypes, MatmulTarget,
                         ::testing::Combine(::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                                            ::testing::ValuesIn(kAllTypes)),
                         target_type_name);
INSTANTIATE_TEST_SUITE_P(AllTargetsQuantizedTypes, MatmulTargetInt8,
                         ::testing::Combine(::testing::ValuesIn(hwy::SupportedAndGeneratedTargets()),
                                            ::testing::ValuesIn(quantized_types())),
                         target_type_name);

TEST(Matmul, SupportsExactlyTheKernelTypes) {
  for (GgmlType type : kAllTypes) EXPECT_TRUE(matmul_supports(type)) << type_name(type);
  EXPECT_FALSE(matmul_supports(GgmlType::Q8_K));
  EXPECT_FALSE(matmul_supports(GgmlType::Q8_1));
  EXPECT_FALSE(matmul_supports(GgmlType::I8));
  EXPECT_FALSE(matmul_supports(GgmlType::IQ2_XXS));
}

// Each output row is computed by one thread in a fixed order: results must not depend on the count.
// kvq bench names the kernel behind every figure: one for every type and token count, and on ARM the one the
// CPU's extensions select (sdot only where the dot product exists, smmla for prompts where i8mm does).
TEST(Matmul, NamesTheKernelItRuns) {
  for (GgmlType type : kAllTypes) {
    for (int64_t n_tokens : {1, 4, 512}) {
      const std::string name = matmul_kernel_name(type, n_tokens);
      EXPECT_FALSE(name.empty() || name == "unsupported") << type_name(type) << " " << n_tokens;
      if (std::string(simd_target_name()) == "NEON" && type_traits(type).quantized) {
        const bool mmla = cpu_has_arm_i8mm() && n_tokens > matmul_detail::kMaxGemvTokens;
        EXPECT_EQ(name.find("smmla") != std::string::npos, mmla) << name;
        EXPECT_EQ(name.find("sdot") != std::string::npos, cpu_has_arm_dotprod() && !mmla) << name;
      }
    }
  }
  EXPECT_EQ(matmul_kernel_name(GgmlType(999), 1), "unsupported");
}

// The token block follows the CPU's L2 (three quarters of it, 1 MiB when unknown) and stays a multiple of 4
// in [16, 512].
TEST(Matmul, TokenBlockFollowsTheL2Cache) {
  const uint64_t l2 = cpu_l2_cache_bytes();
  if (l2 > 0) {
    EXPECT_GE(l2, uint64_t(64) << 10);
    EXPECT_LE(l2, uint64_t(1) << 30);
  }
  EXPECT_EQ(matmul_detail::act_l2_budget(), l2 > 0 ? int64_t(l2 / 4 * 3) : int64_t(1) << 20);
  for (int64_t bytes : {int64_t(1), int64_t(1536), int64_t(4608), int64_t(12672), int64_t(1) << 30}) {
    const int64_t block = matmul_detail::token_block(bytes);
    EXPECT_TRUE(block >= 16 && block <= 512 && block % 4 == 0) << bytes << " -> " << block;
  }
}

TEST(Matmul, ResultsIndependentOfThreadCount) {
  const Shape s{512, 37};
  for (GgmlType type : kAllTypes) {
    const std::vector<uint8_t> w = random_weights(type, s, 11);
    const std::vector<float> x = make_acts(Acts::kGaussian, 9, s.n_in, 5);
    std::vector<float> y1(size_t(9 * s.n_out)), y3(y1.size());  // [9, n_out]
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    matmul(WeightMatrix{type, w.data(), s.n_in, s.n_out}, x.data(), y1.data(), 9);
    omp_set_num_threads(3);
    matmul(WeightMatrix{type, w.data(), s.n_in, s.n_out}, x.data(), y3.data(), 9);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(y1.data(), y3.data(), sizeof(float) * y1.size())) << type_name(type);
  }
}

TEST(Matmul, ZeroActivationsGiveZeros) {
  const Shape s{256, 10};
  for (GgmlType type : kAllTypes) {
    const std::vector<uint8_t> w = random_weights(type, s, 3);
    const std::vector<float> x(size_t(2 * s.n_in), 0.0f);
    std::vector<float> y(size_t(2 * s.n_out), 1.0f);
    matmul(WeightMatrix{type, w.data(), s.n_in, s.n_out}, x.data(), y.data(), 2);
    for (float v : y) EXPECT_EQ(v, 0.0f) << type_name(type);
  }
}

// Matrices sharing one input give exactly what separate calls give (each row is computed the same way,
// whichever matrix its chunk neighbours belong to): q4_0 (the decode triples), a k-quant with a 256-value
// block, an 8-bit type, a single-row matrix and an empty one in one call; and float types in another,
// since a call mixing families runs them one by one.
TEST(Matmul, SharedInputMatchesSeparateCalls) {
  const int64_t n_in = 512;
  const std::vector<std::vector<std::pair<GgmlType, int64_t>>> groups = {
      {{GgmlType::Q4_0, 200}, {GgmlType::Q6_K, 67}, {GgmlType::Q8_0, 1}, {GgmlType::Q4_0, 0}, {GgmlType::Q4_K, 130}},
      {{GgmlType::F16, 70}, {GgmlType::F32, 9}},
      {{GgmlType::Q4_0, 64}, {GgmlType::F16, 33}}};
  for (const auto& group : groups) {
    for (int64_t n_tokens : {1, 5}) {
      const std::vector<float> x = make_acts(Acts::kGaussian, n_tokens, n_in, 9);
      std::vector<std::vector<uint8_t>> weights;
      std::vector<WeightMatrix> ms;
      std::vector<std::vector<float>> separate, shared;  // [matrix][n_tokens, n_out]
      for (const auto& [type, n_out] : group) {
        weights.push_back(random_weights(type, Shape{n_in, std::max<int64_t>(n_out, 1)}, uint32_t(n_out + 3)));
        ms.push_back(WeightMatrix{type, weights.back().data(), n_in, n_out});
      }
      std::vector<Projection> outs;
      for (const WeightMatrix& m : ms) {
        separate.emplace_back(size_t(n_tokens * m.n_out));
        matmul(m, x.data(), separate.back().data(), n_tokens);
        shared.emplace_back(size_t(n_tokens * m.n_out), std::nanf(""));
      }
      for (size_t i = 0; i < ms.size(); ++i) outs.push_back(Projection{ms[i], shared[i].data()});
      matmul_shared_input(outs, x.data(), n_tokens);
      for (size_t i = 0; i < ms.size(); ++i) {
        ASSERT_EQ(separate[i].size(), shared[i].size());
        if (shared[i].empty()) continue;  // the empty matrix: nothing to compare (memcmp wants non-null)
        EXPECT_EQ(0, std::memcmp(separate[i].data(), shared[i].data(), sizeof(float) * shared[i].size()))
            << type_name(ms[i].type) << " tokens " << n_tokens;
      }
    }
  }
}

TEST(Matmul, NoTokensWritesNothing) {
  const Shape s{256, 4};
  const std::vector<uint8_t> w = random_weights(GgmlType::Q8_0, s, 1);
  float y = 42.0f;
  matmul(WeightMatrix{GgmlType::Q8_0, w.data(), s.n_in, s.n_out}, nullptr, &y, 0);
  EXPECT_EQ(y, 42.0f);
}

}  // namespace
}  // namespace kvq
