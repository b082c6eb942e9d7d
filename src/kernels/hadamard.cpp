// Walsh–Hadamard transform of many short vectors (the rotation of cached keys and values, kv/rotation.h),
// vectorised: the butterflies of the stages whose partner lies in the same SIMD vector are one table lookup
// and one multiply-add (partner + x · (±1)), the wider stages plain adds and subtracts between vectors.
// As scalar loops the transform of q, k, v and the output took 4 % of TinyLlama's prefill.
#include <algorithm>

#include "kernels/ops.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/hadamard.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// foreach_target.h must come first.
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr size_t kMaxLanes = HWY_MAX_BYTES / sizeof(float);

// Rows [begin, end) of x. No OpenMP in here: clang outlines a parallel region into a function without the
// target's attributes, where SIMD instructions cannot be selected; the caller splits the rows.
void HadamardRows(float* x, int64_t begin, int64_t end, int dim, const float* signs, bool inverse) {
  const hn::ScalableTag<float> d;
  const int lanes = int(hn::Lanes(d));
  if (dim < lanes || dim % lanes != 0) return hadamard_rows_ref(x + begin * dim, end - begin, dim, signs, inverse);
  // Stage `half` < lanes: lane i's partner is lane i ^ half; lanes with that bit set take partner - x.
  HWY_ALIGN int32_t partner[8 * sizeof(size_t)][kMaxLanes];
  HWY_ALIGN float sign[8 * sizeof(size_t)][kMaxLanes];
  int n_inner = 0;
  for (int half = 1; half < lanes; half *= 2, ++n_inner) {
    for (int i = 0; i < lanes; ++i) {
      partner[n_inner][i] = i ^ half;
      sign[n_inner][i] = (i & half) ? -1.0f : 1.0f;
    }
  }
  for (int64_t row = begin; row < end; ++row) {
    float* v = x + row * dim;
    if (!inverse) {
      for (int c = 0; c < dim; c += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, v + c), hn::LoadU(d, signs + c)), d, v + c);
    }
    for (int c = 0; c < dim; c += lanes) {
      auto chunk = hn::LoadU(d, v + c);
      for (int s = 0; s < n_inner; ++s) {
        const auto other = hn::TableLookupLanes(chunk, hn::SetTableIndices(d, partner[s]));
        chunk = hn::MulAdd(chunk, hn::Load(d, sign[s]), other);
      }
      hn::StoreU(chunk, d, v + c);
    }
    for (int half = lanes; half < dim; half *= 2) {
      for (int i = 0; i < dim; i += 2 * half) {
        for (int j = i; j < i + half; j += lanes) {
          const auto a = hn::LoadU(d, v + j), b = hn::LoadU(d, v + j + half);
          hn::StoreU(hn::Add(a, b), d, v + j);
          hn::StoreU(hn::Sub(a, b), d, v + j + half);
        }
      }
    }
    if (inverse) {
      for (int c = 0; c < dim; c += lanes) hn::StoreU(hn::Mul(hn::LoadU(d, v + c), hn::LoadU(d, signs + c)), d, v + c);
    }
  }
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {
HWY_EXPORT(HadamardRows);

void hadamard_rows(float* x, int64_t n_vectors, int dim, const float* signs, bool inverse) {
  constexpr int64_t kRowsPerTask = 128;  // a decode step's few rows are not worth a fork
  const int64_t tasks = (n_vectors + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    HWY_DYNAMIC_DISPATCH(HadamardRows)
    (x, t * kRowsPerTask, std::min(n_vectors, (t + 1) * kRowsPerTask), dim, signs, inverse);
  }
}

void hadamard_rows_ref(float* x, int64_t n_vectors, int dim, const float* signs, bool inverse) {
  for (int64_t row = 0; row < n_vectors; ++row) {
    float* v = x + row * dim;
    if (!inverse) {
      for (int c = 0; c < dim; ++c) v[c] *= signs[c];
    }
    for (int half = 1; half < dim; half *= 2) {
      for (int i = 0; i < dim; i += 2 * half) {
        for (int j = i; j < i + half; ++j) {
          const float a = v[j], b = v[j + half];
          v[j] = a + b;
          v[j + half] = a - b;
        }
      }
    }
    if (inverse) {
      for (int c = 0; c < dim; ++c) v[c] *= signs[c];
    }
  }
}

}  // namespace kvq
#endif  // HWY_ONCE
