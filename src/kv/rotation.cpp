#include "kv/rotation.h"

#include <cmath>
#include <random>

#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace kvq {
namespace {

bool is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }

bool is_prime(int n) {
  if (n < 2) return false;
  for (int f = 2; f * f <= n; ++f) {
    if (n % f == 0) return false;
  }
  return true;
}

// A ±1 Hadamard matrix of order n ([n, n] row-major) when n = 2^a · (q + 1) with q a prime ≡ 3 mod 4
// (Paley's first construction, then Sylvester doubling: 12, 20, 24, 48, 72, 80, 96, ...); empty otherwise.
std::vector<float> hadamard_matrix(int n) {
  int core = n, doublings = 0;
  while (core % 2 == 0 && !(is_prime(core - 1) && (core - 1) % 4 == 3)) core /= 2, ++doublings;
  const int q = core - 1;
  if (!is_prime(q) || q % 4 != 3) return {};
  std::vector<int> residue(size_t(q), -1);  // χ(x): +1 for a nonzero square mod q, -1 otherwise
  for (int x = 1; x < q; ++x) residue[size_t(x * x % q)] = 1;
  std::vector<float> h(size_t(core) * size_t(core));  // H = I + S, S = [[0, 1ᵀ], [-1, Q]], Q_ij = χ(j - i)
  for (int i = 0; i < core; ++i) {
    for (int j = 0; j < core; ++j) {
      float s = 0.0f;
      if (i == 0 && j > 0) s = 1.0f;
      if (i > 0 && j == 0) s = -1.0f;
      if (i > 0 && j > 0 && i != j) s = float(residue[size_t(((j - i) % q + q) % q)]);
      h[size_t(i * core + j)] = s + (i == j ? 1.0f : 0.0f);
    }
  }
  for (int m = core; doublings-- > 0; m *= 2) {  // [[H, H], [H, -H]]
    std::vector<float> next(size_t(4 * m) * size_t(m));
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < m; ++j) {
        const float v = h[size_t(i * m + j)];
        next[size_t(i * 2 * m + j)] = v;
        next[size_t(i * 2 * m + m + j)] = v;
        next[size_t((m + i) * 2 * m + j)] = v;
        next[size_t((m + i) * 2 * m + m + j)] = -v;
      }
    }
    h = std::move(next);
  }
  return h;
}

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
    case KvRotation::kKeys:
      return "k";
    case KvRotation::kKeysValues:
      return "kv";
    case KvRotation::kAuto:
      return "auto";
    case KvRotation::kNone:
      break;
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
  } else if (std::vector<float> h = hadamard_matrix(head_dim); !h.empty()) {
    // Dense H diag(s) / √d: every entry ±1/√d, which spreads one channel evenly (measured against random
    // orthogonal matrices: docs/results.md).
    const float scale = 1.0f / std::sqrt(float(head_dim));
    std::vector<float> sign(d);
    for (float& v : sign) v = (rng() & 1) ? scale : -scale;
    for (size_t r = 0; r < d; ++r) {
      for (size_t c = 0; c < d; ++c) h[r * d + c] *= sign[c];
    }
    set_matrix(std::move(h));
  } else {
    build_random_orthogonal(rng);
  }
}

void HeadRotation::set_matrix(std::vector<float> matrix) {
  const size_t d = size_t(head_dim_);
  matrix_ = std::move(matrix);
  transposed_.resize(d * d);
  for (size_t r = 0; r < d; ++r) {
    for (size_t c = 0; c < d; ++c) transposed_[c * d + r] = matrix_[r * d + c];
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
  set_matrix(std::vector<float>(m.begin(), m.end()));
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
