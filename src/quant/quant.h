// Row conversions between f32 and every block format of quant/blocks.h.
// `_ref` functions are the scalar reference (the test oracle); the unsuffixed ones dispatch at run
// time to the best Highway target compiled in and must agree with the reference (exactly for
// dequantization, byte for byte for quantization).
//
// Bit compatibility: the references reproduce ggml's dequantize_row_* results and
// quantize_row_*_ref bytes (iq4_nl: ggml's quantize_iq4_nl without importance matrix). Both files
// are compiled with floating-point contraction off so that no compiler turns `a * b + c` into an
// FMA and changes the rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/blocks.h"

namespace kvq {

// n must be a multiple of the type's block size. Types: every TypeTraits::kernels type, plus q8_1
// and q8_K. Never fails on any bytes: NaN/inf scales from a file simply propagate through the float
// arithmetic.
void dequantize_row_ref(GgmlType type, const void* src, float* dst, int64_t n);
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Types with a quantizer: f32, f16, bf16, q8_0, q8_1, q4_0, q4_1, q5_0, q5_1, iq4_nl, q8_K.
// Inputs must be finite; non-finite or extreme inputs never crash but give unspecified (clamped)
// codes.
bool has_quantizer(GgmlType type);
void quantize_row_ref(GgmlType type, const float* src, void* dst, int64_t n);
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Element types the KV cache may store: f32, f16, bf16, q8_0, q5_1, q5_0, q4_1, q4_0, iq4_nl and the
// head-scaled q8_h, nl5_h, nl4_h, nl3_h, nl2_h.
bool is_kv_cache_type(GgmlType type);

// The KV cache's quantizer: quantize_row, except iq4_nl skips the 15-scale search (as llama.cpp's
// cache store does). Rows are quantized on every appended token, where the search costs 16 codebook passes
// per block instead of one, and the logits then agree with llama.cpp's quantized-cache fixtures (KLD 6e-3
// instead of 6e-2).
void quantize_row_kv(GgmlType type, const float* src, void* dst, int64_t n);

// One KV-cache token row of n_heads heads of head_dim values, in any KV type: head records for the "_h"
// types (quant/blocks.h; scalar reference, which the cache uses: the nl*_h scale fit runs per head),
// otherwise quantize_row_kv over the row zero-padded to the block size. dst rows are
// kv_row_bytes(type, n_heads, head_dim) apart; staging is scratch for padded rows.
void quantize_kv_rows(GgmlType type, const float* src, uint8_t* dst, int n_rows, int n_heads, int head_dim,
                      std::vector<float>& staging);
void dequantize_kv_row_ref(GgmlType type, const uint8_t* src, float* dst, int n_heads, int head_dim);
void quantize_head_row_ref(GgmlType type, const float* x, uint8_t* dst, int n_heads, int head_dim);
void dequantize_head_row_ref(GgmlType type, const uint8_t* src, float* y, int n_heads, int head_dim);

// Typed scalar references, for callers that know the format statically (n values, a multiple of the
// block size; y holds n / block_size blocks).
void dequantize_row_q4_0_ref(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q4_1_ref(const BlockQ4_1* x, float* y, int64_t n);
void dequantize_row_q5_0_ref(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_row_q5_1_ref(const BlockQ5_1* x, float* y, int64_t n);
void dequantize_row_q8_0_ref(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q8_1_ref(const BlockQ8_1* x, float* y, int64_t n);
void dequantize_row_iq4_nl_ref(const BlockIQ4_NL* x, float* y, int64_t n);
void dequantize_row_q2_K_ref(const BlockQ2_K* x, float* y, int64_t n);
void dequantize_row_q3_K_ref(const BlockQ3_K* x, float* y, int64_t n);
void dequantize_row_q4_K_ref(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K_ref(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K_ref(const BlockQ6_K* x, float* y, int64_t n);
void dequantize_row_q8_K_ref(const BlockQ8_K* x, float* y, int64_t n);
void dequantize_row_iq4_xs_ref(const BlockIQ4_XS* x, float* y, int64_t n);

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n);
void quantize_row_q4_1_ref(const float* x, BlockQ4_1* y, int64_t n);
void quantize_row_q5_0_ref(const float* x, BlockQ5_0* y, int64_t n);
void quantize_row_q5_1_ref(const float* x, BlockQ5_1* y, int64_t n);
void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n);
void quantize_row_q8_1_ref(const float* x, BlockQ8_1* y, int64_t n);
void quantize_row_iq4_nl_ref(const float* x, BlockIQ4_NL* y, int64_t n);
// iq4_nl without the scale search: codes from the extreme value, then their least-squares scale.
void quantize_row_iq4_nl_nosearch_ref(const float* x, BlockIQ4_NL* y, int64_t n);
// The activation format of k-quant dot products: f32 scale, quants in -127..127, sums per 16
// values.
void quantize_row_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n);

}  // namespace kvq
