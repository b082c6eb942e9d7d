#include "kv/rotation.h"

#include <cmath>
#include <random>

#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace kvq {
namespace {

bool is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }

}  // namespace

Result<KvRotation> parse_kv_rotation(std::string_view text) {
  if (text == "none") return KvRotation::kNone;
  if (text == "k") return KvRotation::kKeys;
  if (text == "kv") return KvRotation::kKeysValues;
  if (text == "auto") return KvRotation::kAuto;
  return make_error("invalid KV rotation '{}' (valid: none, k, kv, auto)", text);
}

std::string_view kv_rotation_name(KvRotation rotation) {
  switch (rotation) {
    case KvRotation::kKeys: return "k";
    case KvRotation::kKeysValues: return "kv";
    case KvRotation::kAuto: return "auto";
    case KvRotation::kNone: break;
  }
  return "none";
}

HeadRotation::HeadRotation(int head_dim, uint64_t seed) : head_dim_(head_dim) {
  KVQ_CHECK(head_dim > 0);
  std::mt19937_64 rng(seed + uint64_t(head_dim));
  const size_t d = size_t(head_dim);
  if (is_power_of_two(head_dim)) {
    signs_.resize(d);
    const float scale = 1.0f / std::sqrt(float(head_dim));
    for (float& s : signs_) s = (rng() & 1) ? scale : -scale;
  } else {
    build_random_orthogonal(rng);
  }
}

void HeadRotation::build_random_orthogonal(std::mt19937_64& rng) {
  const size_t d = size_t(head_dim_);
  // Gram–Schmidt (twice, for orthogonality to float precision) of a Gaussian matrix, in double.
  std::normal_distribution<double> normal;
  std::vector<double> m(d * d);  // [d, d] row-major; rows become the orthonormal basis
  for (double& v : m) v = normal(rng);
  for (size_t i = 0; i < d; ++i) {
    double* row = m.data() + i * d;
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t j = 0; j < i; ++j) {
        const double* prev = m.data() + j * d;
        double dot = 0;
        for (size_t c = 0; c < d; ++c) dot += row[c] * prev[c];
        for (size_t c = 0; c < d; ++c) row[c] -= dot * prev[c];
      }
    }
    double norm = 0;
    for (size_t c = 0; c < d; ++c) norm += row[c] * row[c];
    norm = std::sqrt(norm);
    for (size_t c = 0; c < d; ++c) row[c] /= norm;
  }
  matrix_.assign(m.begin(), m.end());
  transposed_.resize(d * d);
  for (size_t r = 0; r < d; ++r) {
    for (size_t c = 0; c < d; ++c) transposed_[c * d + r] = matrix_[r * d + c];
  }
}

void HeadRotation::forward(float* x, int64_t n_vectors) const { apply(x, n_vectors, false); }

void HeadRotation::inverse(float* x, int64_t n_vectors) const { apply(x, n_vectors, true); }

void HeadRotation::apply(float* x, int64_t n_vectors, bool inverse) const {
  if (matrix_.empty()) return hadamard_rows(x, n_vectors, head_dim_, signs_.data(), inverse);
  if (n_vectors >= kMatmulVectors) return apply_matmul(x, n_vectors, inverse ? transposed_ : matrix_);
  const int d = head_dim_;
  std::vector<float> tmp(static_cast<size_t>(d));  // [head_dim]
  for (int64_t i = 0; i < n_vectors; ++i) {
    float* v = x + i * d;
    for (int r = 0; r < d; ++r) {
      const float* row = (inverse ? transposed_ : matrix_).data() + size_t(r) * size_t(d);
      float sum = 0.0f;
      for (int c = 0; c < d; ++c) sum += row[c] * v[c];
      tmp[size_t(r)] = sum;
    }
    std::copy(tmp.begin(), tmp.end(), v);
  }
}

void HeadRotation::apply_matmul(float* x, int64_t n_vectors, const std::vector<float>& matrix) const {
  thread_local std::vector<float> out;  // [n_vectors, head_dim]
  out.resize(size_t(n_vectors * head_dim_));
  const WeightMatrix w{GgmlType::F32, reinterpret_cast<const uint8_t*>(matrix.data()), head_dim_, head_dim_};
  matmul(w, x, out.data(), n_vectors);
  std::copy(out.begin(), out.end(), x);
}

std::vector<float> HeadRotation::dense() const {
  const size_t d = size_t(head_dim_);
  if (!matrix_.empty()) return matrix_;
  std::vector<float> out(d * d);  // [d, d]: column c is R e_c
  std::vector<float> e(d);
  for (size_t c = 0; c < d; ++c) {
    std::fill(e.begin(), e.end(), 0.0f);
    e[c] = 1.0f;
    forward(e.data(), 1);
    for (size_t r = 0; r < d; ++r) out[r * d + c] = e[r];
  }
  return out;
}

}  // namespace kvq
