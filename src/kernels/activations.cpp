// The gated FFN activations, vectorised: SwiGLU (Llama, Qwen, Phi) and GELU(tanh) (Gemma) take one exp or
// tanh per n_ff value per token. As scalar libm calls GELU cost Gemma-3-4B about an eighth of each generated
// token (tg64 13.6 -> 15.5 tok/s when vectorised, docs/results.md). The scalar forms stay as the reference.
#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/activations.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target.h must come first.
#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kMaxFloatLanes = HWY_MAX_BYTES / sizeof(float);

// out[i] = act(gate[i]) * up[i] over [begin, end).
template <class Act>
HWY_INLINE void GatedRange(const float* HWY_RESTRICT gate, const float* HWY_RESTRICT up, float* out, int64_t begin,
                           int64_t end, Act act) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = int64_t(hn::Lanes(d));
  int64_t i = begin;
  for (; i + lanes <= end; i += lanes) {
    hn::StoreU(hn::Mul(act(d, hn::LoadU(d, gate + i)), hn::LoadU(d, up + i)), d, out + i);
  }
  if (i < end) {  // the tail through a zero-padded vector (this Highway has no LoadN)
    HWY_ALIGN float g[kMaxFloatLanes] = {}, u[kMaxFloatLanes] = {};
    const int64_t n = end - i;
    std::copy_n(gate + i, n, g);
    std::copy_n(up + i, n, u);
    hn::Store(hn::Mul(act(d, hn::Load(d, g)), hn::Load(d, u)), d, g);
    std::copy_n(g, n, out + i);
  }
}

// silu(x) = x / (1 + e^-x)
struct Silu {
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    return hn::Div(x, hn::Add(hn::Set(d, 1.0f), hn::Exp(d, hn::Neg(x))));
  }
};

// gelu(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
struct GeluTanh {
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    const auto inner =
        hn::Mul(hn::Set(d, 0.79788456080286535588f), hn::MulAdd(hn::Mul(hn::Set(d, 0.044715f), x), hn::Mul(x, x), x));
    return hn::Mul(hn::Mul(hn::Set(d, 0.5f), x), hn::Add(hn::Set(d, 1.0f), hn::Tanh(d, inner)));
  }
};

void SwigluRange(const float* gate, const float* up, float* out, int64_t begin, int64_t end) {
  GatedRange(gate, up, out, begin, end, Silu());
}
void GegluRange(const float* gate, const float* up, float* out, int64_t begin, int64_t end) {
  GatedRange(gate, up, out, begin, end, GeluTanh());
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {
HWY_EXPORT(SwigluRange);
HWY_EXPORT(GegluRange);

namespace {

constexpr int64_t kParallelBlock = 16384;  // values per OpenMP task: one token's n_ff is not worth a fork

template <class Range>
void gated_parallel(Range range, const float* gate, const float* up, float* out, int64_t n) {
  const int64_t blocks = (n + kParallelBlock - 1) / kParallelBlock;
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (int64_t b = 0; b < blocks; ++b) range(gate, up, out, b * kParallelBlock, std::min(n, (b + 1) * kParallelBlock));
}

}  // namespace

void swiglu(const float* gate, const float* up, float* out, int64_t n) {
  gated_parallel(HWY_DYNAMIC_DISPATCH(SwigluRange), gate, up, out, n);
}

void geglu(const float* gate, const float* up, float* out, int64_t n) {
  gated_parallel(HWY_DYNAMIC_DISPATCH(GegluRange), gate, up, out, n);
}

void swiglu_ref(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void geglu_ref(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(kSqrt2OverPi * g * (1.0f + 0.044715f * g * g))) * up[i];
  }
}

}  // namespace kvq
#endif  // HWY_ONCE
