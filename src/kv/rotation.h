// Rotation of the cached keys (and optionally values) by a fixed orthogonal transform R per KV head.
//
// Keys are stored as R k and queries multiplied by R before attention, so every score q·k = (Rq)·(Rk) is
// unchanged while the vectors the quantizer sees have their outlier channels spread over the whole head
// (QuaRot, SpinQuant; llama.cpp rotates when head_dim % 64 == 0). With values rotated too the attention
// output comes out as R o and is turned back with Rᵀ once per token and head. The cache never needs
// un-rotating: the cost is per token and head, never per cached position.
//
// R = H·diag(s)/√d with seeded random signs s and H a Hadamard matrix: Walsh–Hadamard when head_dim is a
// power of two (d log d adds, in place), Paley's construction (times powers of two) for 12, 20, 24, 48, 72,
// 80, 96, ... (dense, d² per vector); otherwise a seeded random orthogonal matrix (Gram–Schmidt of a
// Gaussian one), so every head size works (stories15M: 48, stories260K: 8).
#pragma once

#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace kvq {

enum class KvRotation : uint8_t {
  kNone,        // keys and values stored as they are
  kKeys,        // keys (and queries) rotated
  kKeysValues,  // keys and values rotated; the attention output is rotated back
  kAuto,        // what measures best for the layer's types (resolve_rotation in kv_types.h); never in a cache
};

// "none", "k", "kv", "auto"; the error lists them.
Result<KvRotation> parse_kv_rotation(std::string_view text);
std::string_view kv_rotation_name(KvRotation rotation);

class HeadRotation {
 public:
  static constexpr uint64_t kDefaultSeed = 0x6b7671726f74ULL;  // "kvqrot": one fixed transform per head size

  // Builds the transform for vectors of head_dim values (head_dim > 0).
  explicit HeadRotation(int head_dim, uint64_t seed = kDefaultSeed);

  // x: [n_vectors, head_dim], transformed in place: x <- R x (forward) or x <- Rᵀ x (inverse).
  void forward(float* x, int64_t n_vectors) const;
  void inverse(float* x, int64_t n_vectors) const;

  int head_dim() const { return head_dim_; }
  // Whether R is a Walsh–Hadamard transform (power-of-two head_dim, applied in place).
  bool is_walsh_hadamard() const { return matrix_.empty(); }
  // Returns R as a dense [head_dim, head_dim] row-major matrix (tests; the oracle of forward()).
  std::vector<float> dense() const;

  // From this many vectors on (a prompt's q of all heads) a dense R runs as one f32 matmul, SIMD and
  // threaded; fewer (decode) stay scalar, where a parallel region per call would cost more than the
  // transform. The Hadamard form is vectorised at every size (kernels/hadamard.cpp).
  static constexpr int64_t kMatmulVectors = 256;

 private:
  void build_random_orthogonal(std::mt19937_64& rng);
  void set_matrix(std::vector<float> matrix);  // R, and Rᵀ beside it
  void apply(float* x, int64_t n_vectors, bool inverse) const;
  void apply_matmul(float* x, int64_t n_vectors, const std::vector<float>& matrix) const;

  int head_dim_;
  std::vector<float> signs_;       // [head_dim] ±1/√d before the Hadamard transform (power-of-two head_dim)
  std::vector<float> matrix_;      // [head_dim, head_dim] row-major R otherwise
  std::vector<float> transposed_;  // [head_dim, head_dim] Rᵀ, with matrix_
};

}  // namespace kvq
