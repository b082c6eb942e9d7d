// Pieces of the matmul shared by the driver (matmul.cpp), the per-target kernels (matmul_int.cpp,
// matmul_float.cpp), the test and the benchmark. Not part of the public API.
//
// Scheme. The OpenMP driver quantizes the activations once per call, then gives each thread a contiguous
// range of output rows. A thread walks its rows kPanelRows at a time: it decodes those rows, one chunk of
// n_in at a time, into a small "panel" in a kernel-friendly form (decoded once per kTokenBlock tokens,
// whatever the weight type), then runs a register-tiled micro-kernel of kPanelRows rows x up to 4 tokens
// over the chunk. For n_tokens = 1 (decode) this streams the weights once; for prompts each weight block is
// decoded once per 64 tokens and every loaded activation vector is reused for 4 rows.
#pragma once

#include <cstdint>

#include "kernels/matmul.h"

namespace kvq::matmul_detail {

inline constexpr int64_t kPanelRows = 4;  // micro-kernel height: weight rows decoded together
// Values of n_in per panel chunk (a multiple of every block size). Int8 panel of 4 rows (2 bytes/value)
// + 4 tokens of activations (2.25 bytes/value) = 34 KiB: stays in a 48 KiB L1.
inline constexpr int64_t kIntChunk = 2048;
inline constexpr int64_t kFloatChunk = 1024;  // f32 panel of 4 rows + 4 f32 tokens = 32 KiB
// Tokens whose activations stay cache-resident while one panel is reused for all of them:
// 64 tokens x 2048 values x 2.25 bytes = 288 KiB of L2.
inline constexpr int64_t kTokenBlock = 64;

// Activations quantized to 8-bit codes with one f32 scale per 32 values (value ~= scale * code), laid
// out for the integer kernels. The scale is repeated for every 4 values so that a kernel loads the scale
// of each int32 lane of a 4-byte dot product directly.
struct QuantizedActs {
  const int8_t* q;      // [n_tokens, n_in] codes in -127..127
  const float* scale;   // [n_tokens, n_in / 4] scale of the 32-block, once per 4 values
  const float* sum16;   // [n_tokens, n_in / 16] scale * (sum of the 16 codes): multiplies the weight mins
  int64_t n_in;
};
inline constexpr int64_t kActBytesPerValue4 = 4 + 4 + 1;  // bytes per 4 values: 4 codes, 1 scale, 1/4 sum16

// Per-thread scratch for one panel (kPanelRows rows of one chunk), 64-byte aligned.
// Int8 panel: weight value = scale * code - min, with codes unsigned (u8) or, for kernels that ask for
// it on 8-bit types, signed (s8, min = 0).
struct PanelScratch {
  uint8_t* q;     // [kPanelRows, kIntChunk] codes
  float* scale;   // [kPanelRows, kIntChunk / 4] scale of each group of 4 values
  float* min;     // [kPanelRows, kIntChunk / 16] min of each group of 16 values
  float* f;       // [kPanelRows, kFloatChunk] dequantized weights for the float path
};

// Which kernel family computes a call; kAuto picks the measured-faster one for the type.
enum class Path { kAuto, kInt8, kFloat };

// matmul() with a forced kernel family (tests and benchmark compare them). kInt8 needs a quantized type.
void matmul_with_path(const WeightMatrix& w, const float* x, float* y, int64_t n_tokens, Path path);

// Per-target entry points (Highway dynamic dispatch inside). Each computes output rows [r0, r1) of y
// for all tokens; y is [n_tokens, w.n_out].
void quantize_activations(const float* x, int64_t n_in, int8_t* q, float* scale, float* sum16);  // 1 token
void matmul_int8_rows(const WeightMatrix& w, const QuantizedActs& a, int64_t n_tokens, int64_t r0,
                      int64_t r1, float* y, const PanelScratch& scratch);
void matmul_float_rows(const WeightMatrix& w, const float* x, int64_t n_tokens, int64_t r0, int64_t r1,
                       float* y, const PanelScratch& scratch);

}  // namespace kvq::matmul_detail
