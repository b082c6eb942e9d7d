// The per-token operations of the forward pass against textbook formulas written independently here:
// RoPE in both pair layouts with partial rotary, YaRN as Hugging Face states it, GELU(tanh), softcapping.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "kernels/ops.h"

namespace kvq {
namespace {

// f32 angle recurrences and cos/sin against f64: a few ulps of angles up to ~1e3 radians.
constexpr double kMaxAbsRopeError = 2e-4;
constexpr double kMaxRelActivationError = 1e-6;

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// Hugging Face's YaRN inverse frequencies (rope_utils: _compute_yarn_parameters), in f64, and its
// attention factor 0.1 ln(factor) + 1; factor 1 gives plain RoPE.
struct HfRope {
  std::vector<double> inv_freq;  // [n_rot / 2]
  double attention_factor = 1.0;
};

HfRope hf_rope(int n_rot, double base, double factor, int original_ctx) {
  const int half = n_rot / 2;
  HfRope r;
  r.inv_freq.resize(size_t(half));
  const auto correction_dim = [&](double rotations) {
    return n_rot * std::log(original_ctx / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
  };
  double low = std::max(0.0, std::floor(correction_dim(32.0)));
  double high = std::min(double(n_rot - 1), std::ceil(correction_dim(1.0)));
  if (low == high) high += 0.001;
  for (int i = 0; i < half; ++i) {
    const double extrapolated = std::pow(base, -2.0 * i / n_rot);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extrapolation_share = factor == 1.0 ? 1.0 : 1.0 - ramp;
    r.inv_freq[size_t(i)] = extrapolated / factor * (1 - extrapolation_share) + extrapolated * extrapolation_share;
  }
  if (factor != 1.0) r.attention_factor = 0.1 * std::log(factor) + 1.0;
  return r;
}

// Rotates one head as the model's reference code does: NEOX halves or adjacent pairs, first n_rot dims.
void reference_rope(std::vector<double>& head, int n_rot, double pos, const HfRope& r, RopeLayout layout) {
  const int half = n_rot / 2;
  for (int i = 0; i < half; ++i) {
    const double angle = pos * r.inv_freq[size_t(i)];
    const double c = std::cos(angle) * r.attention_factor, s = std::sin(angle) * r.attention_factor;
    const size_t a = layout == RopeLayout::kHalves ? size_t(i) : size_t(2 * i);
    const size_t b = layout == RopeLayout::kHalves ? size_t(i + half) : size_t(2 * i + 1);
    const double x0 = head[a], x1 = head[b];
    head[a] = x0 * c - x1 * s;
    head[b] = x0 * s + x1 * c;
  }
}

struct RopeCase {
  RopeLayout layout;
  int head_dim, n_rot;
  double factor;  // 1: plain RoPE; > 1: YaRN over original_ctx
};

TEST(Rope, MatchesReferenceInBothLayoutsPartialRotaryAndYarn) {
  const int n_head = 3, n_tokens = 5, original_ctx = 64;
  const float base = 1e6f;
  for (const RopeCase c :
       {RopeCase{RopeLayout::kAdjacentPairs, 64, 64, 1.0}, RopeCase{RopeLayout::kHalves, 64, 64, 1.0},
        RopeCase{RopeLayout::kHalves, 32, 16, 1.0}, RopeCase{RopeLayout::kAdjacentPairs, 48, 32, 1.0},
        RopeCase{RopeLayout::kHalves, 64, 64, 4.0}, RopeCase{RopeLayout::kHalves, 128, 128, 8.0}}) {
    RopeParams p;
    p.n_head = n_head;
    p.head_dim = c.head_dim;
    p.n_rot = c.n_rot;
    p.freq_base = base;
    p.layout = c.layout;
    if (c.factor != 1.0) {
      p.freq_scale = float(1.0 / c.factor);
      p.yarn = rope_yarn_corrections(c.n_rot, original_ctx, base, 32.0f, 1.0f);
    }
    const int64_t pos0 = 200;  // past the original context: YaRN's interpolation matters
    std::vector<float> x = randn(size_t(n_tokens) * n_head * c.head_dim, uint32_t(c.head_dim + c.n_rot));
    const std::vector<float> before = x;
    rope(x.data(), n_tokens, pos0, p);
    const HfRope hf = hf_rope(c.n_rot, base, c.factor, original_ctx);
    double max_err = 0.0;
    for (int t = 0; t < n_tokens; ++t) {
      for (int h = 0; h < n_head; ++h) {
        const size_t off = (size_t(t) * n_head + h) * c.head_dim;
        std::vector<double> head(before.begin() + off, before.begin() + off + c.head_dim);
        reference_rope(head, c.n_rot, double(pos0 + t), hf, c.layout);
        for (int d = 0; d < c.head_dim; ++d) max_err = std::max(max_err, std::abs(head[size_t(d)] - x[off + d]));
        for (int d = c.n_rot; d < c.head_dim; ++d) EXPECT_EQ(x[off + d], before[off + d]);  // not rotated
      }
    }
    EXPECT_LE(max_err, kMaxAbsRopeError) << "head_dim " << c.head_dim << " n_rot " << c.n_rot << " factor " << c.factor;
  }
}

TEST(Activations, GatedActivationsMatchFormulas) {
  // 1037 values: a tail that no vector width divides; plus extremes where exp and tanh saturate.
  std::vector<float> gate = randn(1037, 1), up = randn(1037, 2);
  for (float x : {-90.0f, -50.0f, -9.0f, 0.0f, 9.0f, 50.0f, 88.0f}) gate.push_back(x), up.push_back(1.5f);
  const int64_t n = int64_t(gate.size());
  std::vector<float> out(gate.size()), ref(gate.size());
  geglu(gate.data(), up.data(), out.data(), n);
  geglu_ref(gate.data(), up.data(), ref.data(), n);
  for (size_t i = 0; i < out.size(); ++i) {
    const double g = gate[i];
    const double expected =
        0.5 * g * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (g + 0.044715 * g * g * g))) * up[i];
    EXPECT_NEAR(out[i], expected, kMaxRelActivationError * (1 + std::abs(expected))) << "geglu " << g;
    EXPECT_NEAR(ref[i], expected, kMaxRelActivationError * (1 + std::abs(expected))) << "geglu_ref " << g;
  }
  swiglu(gate.data(), up.data(), out.data(), n);
  swiglu_ref(gate.data(), up.data(), ref.data(), n);
  for (size_t i = 0; i < out.size(); ++i) {
    const double g = gate[i];
    const double expected = g / (1 + std::exp(-g)) * up[i];
    EXPECT_NEAR(out[i], expected, kMaxRelActivationError * (1 + std::abs(expected))) << "swiglu " << g;
    EXPECT_NEAR(ref[i], expected, kMaxRelActivationError * (1 + std::abs(expected))) << "swiglu_ref " << g;
  }
  // In place (out == gate), as the forward pass calls them; and a batch large enough to be split.
  std::vector<float> big = randn(100000, 3), big_up = randn(100000, 4), expected(big.size());
  swiglu_ref(big.data(), big_up.data(), expected.data(), int64_t(big.size()));
  swiglu(big.data(), big_up.data(), big.data(), int64_t(big.size()));
  for (size_t i = 0; i < big.size(); ++i)
    ASSERT_NEAR(big[i], expected[i], kMaxRelActivationError * (1 + std::abs(expected[i])));
}

TEST(Activations, SoftcapMatchesFormula) {
  std::vector<float> logits = {-100.0f, -3.0f, 0.0f, 0.5f, 29.0f, 1e4f};
  const std::vector<float> raw = logits;
  softcap_inplace(logits.data(), int64_t(logits.size()), 30.0f);
  for (size_t i = 0; i < raw.size(); ++i) {
    EXPECT_NEAR(logits[i], 30.0 * std::tanh(raw[i] / 30.0), kMaxRelActivationError * 30);
    EXPECT_LT(std::abs(logits[i]), 30.0f + 1e-4f);
  }
}

}  // namespace
}  // namespace kvq
