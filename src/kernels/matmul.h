// Weight matrix times activations: the hottest code in the engine (every projection of every layer).
// Weights are read in place from the memory-mapped GGUF file, in any TypeTraits::kernels type.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "quant/blocks.h"

namespace kvq {

// A weight matrix as stored in GGUF: n_out rows of n_in values (ne[0] = n_in is contiguous),
// each row row_bytes(type, n_in) bytes, rows back to back.
struct WeightMatrix {
  GgmlType type;
  const uint8_t* data;
  int64_t n_in;
  int64_t n_out;
};

// y[t, o] = sum_i W[o, i] * x[t, i].  x: [n_tokens, n_in] f32 row-major, y: [n_tokens, n_out] f32.
// Multi-threaded inside with OpenMP (omp_get_max_threads() threads; the caller sets the count).
// Quantized weights use integer dot products against activations quantized on the fly to 8 bits
// per 32 values (relative error ~1e-3..1e-2, as ggml's q8 activations); float weights are exact to f32.
void matmul(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens);

// One output of matmul_shared_input: y [n_tokens, w.n_out] = W x.
struct Projection {
  const WeightMatrix& w;
  float* y;
};

// Matrices applied to the same input x [n_tokens, n_in] (q/k/v, gate/up): x is quantized once, and in
// decode the rows of all of them are shared out in one parallel loop, so the threads fork, and wait for
// the slower one, once per group instead of once per matrix.
void matmul_shared_input(std::span<const Projection> outs, const float* x, int64_t n_tokens);

// Scalar reference: dequantize each row with dequantize_row_ref and accumulate in double. The test oracle.
void matmul_ref(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens);

// True for every TypeTraits::kernels type.
bool matmul_supports(GgmlType type);

// The SIMD target Highway dispatches to on this CPU ("AVX3_ZEN4", "AVX2", "NEON", ...), and the kernel that
// matmul() runs for a weight type at n_tokens (1 = decode): what kvq bench prints beside its figures.
const char* simd_target_name();
std::string matmul_kernel_name(GgmlType type, int64_t n_tokens);

}  // namespace kvq
