// Pieces of the matmul shared by the driver (matmul.cpp), the per-target kernels (matmul_int.cpp,
// matmul_float.cpp), the test and the benchmark. Not part of the public API.
//
// Scheme. The OpenMP driver quantizes the activations once per call, then gives each thread a contiguous
// range of output rows. A thread walks its rows kPanelRows at a time: it decodes those rows, one chunk of
// n_in at a time, into a small "panel" in a kernel-friendly form (decoded once per token_block() tokens,
// whatever the weight type), then runs a register-tiled micro-kernel of kPanelRows rows x up to 4 tokens
// over the chunk. For n_tokens = 1 (decode) this streams the weights once; for prompts each weight block is
// decoded once per token block and every loaded activation vector is reused for 4 rows (16 in the AVX-512
// VNNI kernel, matmul_wide-inl.h).
#pragma once

#include <cstdint>
#include <span>

#include "kernels/matmul.h"
#include "util/system.h"

// Fully unrolls a register-tile loop: without it GCC -O2 keeps the arrays of accumulators in memory.
#define KVQ_UNROLL _Pragma("GCC unroll 16")

namespace kvq::matmul_detail {

inline constexpr int64_t kPanelRows = 4;  // micro-kernel height: weight rows decoded together
// Values of n_in per panel chunk (a multiple of every block size). Int8 panel of 4 rows (2 bytes/value)
// + 4 tokens of activations (2.25 bytes/value) = 34 KiB: stays in a 48 KiB L1.
inline constexpr int64_t kIntChunk = 2048;
inline constexpr int64_t kFloatChunk = 1024;
// Prompt-processing kernel with 16 rows interleaved in one AVX-512 vector (matmul_wide-inl.h): panel of
// 16 rows x 1024 values (16 KiB codes + 8 KiB scales and mins) + 8 tokens of codes (8 KiB) in L1.
inline constexpr int64_t kWideRows = 16;
inline constexpr int64_t kWideChunk = 1024;  // f32 panel of 4 rows + 4 f32 tokens = 32 KiB
// Decode hands out output rows first come first served, in units of this many rows and runs of units that
// shrink as the work runs out (OpenMP guided): a thread slowed down (by the other's memory traffic, or the
// OS) no longer leaves the other waiting at the barrier. A static split cost ~10% of decode time (libgomp
// spin-wait in a profile of `kvq bench -n 64`); fixed chunks of 64 rows still cost ~4% against this
// (31.3 vs 32.9-33.2 tok/s, alternated runs; units of 16, 32 or 64 rows measure the same).
inline constexpr int64_t kDecodeRows = 32;
// Up to this many tokens (batched decode of several sequences) a matmul runs the decode kernels on each row
// unit for all its tokens (q4_K / q6_K on AVX-512 VNNI unpack each block once for all of them; other fused
// types run the one-token kernel per token on the cached rows); above, the prompt kernels. Measured on
// Zen 5, q4_K 5632 x 2048: panel 374 / 901 / 965 us for 2 / 4 / 8 tokens against 105 us for one token's GEMV.
inline constexpr int64_t kMaxGemvTokens = 8;
// Values over which a decoded weight row keeps one scale and min (and the activations, quantized per 32
// values, one scale): a whole 32-value block or sub-block, or the 16-value groups of q2_K / q3_K / q6_K. The
// prompt kernels sum a span in int32 and rescale it once.
inline int panel_scale_span(GgmlType type) {
  return type == GgmlType::Q2_K || type == GgmlType::Q3_K || type == GgmlType::Q6_K ? 16 : 32;
}
// Bytes of L2 given to the activations of one token block: the decoded weight panel is reused for all the
// block's tokens, so bigger blocks decode less often. Three quarters of the core's L2 (SPR 2 MiB, Zen 5
// 1 MiB), 1 MiB where the CPU does not say.
inline int64_t act_l2_budget() {
  static const int64_t budget = cpu_l2_cache_bytes() > 0 ? int64_t(cpu_l2_cache_bytes() / 4 * 3) : int64_t(1) << 20;
  return budget;
}

// Tokens per block for activations of `bytes_per_token` bytes: a multiple of 4 in [16, 512].
inline int64_t token_block(int64_t bytes_per_token) {
  const int64_t n = act_l2_budget() / (bytes_per_token > 0 ? bytes_per_token : 1) / 4 * 4;
  return n < 16 ? 16 : (n > 512 ? 512 : n);
}

// One token's activations laid out for the AVX-512 q4_0 GEMV, which loads 3 raw q4_0 blocks (54 bytes:
// f16 d, 16 bytes of nibbles, three times) into one 64-byte vector and dots it as it is: byte p of the
// load holds values j (low nibble) and j + 16 (high nibble) of block p / 18, j = p % 18 - 2, so lo[p]
// and hi[p] are the activation codes of those two values, and 0 where p is a scale byte or beyond 54.
// A 4-byte lane then never mixes blocks, so lane l belongs to block {0-4: 0, 5-8: 1, 9-13: 2}.
struct alignas(64) Q4Triple {
  int8_t lo[64];     // codes against the low nibbles
  int8_t hi[64];     // codes against the high nibbles
  int32_t neg8[16];  // per lane: -8 x (sum of its 8 codes), q4_0's offset
  float scale[16];   // activation scale of block [0, 1, 2] repeated 4 times (12 used)
};
static_assert(sizeof(Q4Triple) == 256, "Q4Triple: four 64-byte vectors");
inline constexpr int64_t kTripleValues = 3 * 32;
// Lays out one token (n_in a multiple of 32) as ceil(n_in / 96) triples.
void make_q4_triples(const int8_t* q, const float* scale, int64_t n_in, Q4Triple* out);

// Batched decode of q4_K (GemvRowsQ4_KTokens): each token's codes of a 256-value block as the AVX-512 VNNI
// kernel's four 64-byte vectors [sub-block k | sub-block k + 2] for k = 0, 1, 4, 5, and per block the
// activation scale of each 32 values then scale x their code sum (16 floats, which the AVX2 kernel reads
// too). Laid out once per call.
void make_q4k_pairs(const int8_t* q, const float* scale, const float* sum16, int64_t n_in, int8_t* pairs,
                    float* dx_sums);

// Activations quantized to 8-bit codes with one f32 scale per 32 values (value ~= scale * code), laid
// out for the integer kernels. The scale is repeated for every 4 values so that a kernel loads the scale
// of each int32 lane of a 4-byte dot product directly.
struct QuantizedActs {
  const int8_t* q;     // [n_tokens, n_in] codes in -127..127
  const float* scale;  // [n_tokens, n_in / 4] scale of the 32-block, once per 4 values
  const float* sum16;  // [n_tokens, n_in / 16] scale * (sum of the 16 codes): multiplies the weight mins
  int64_t n_in;
  const Q4Triple* q4_triples = nullptr;  // [n_tokens][ceil(n_in / 96)] decode of q4_0 on AVX-512 only
  const int8_t* q4k_pairs = nullptr;     // [n_tokens, n_in] batched decode of q4_K (x86 from AVX2)
  const float* q4k_dx_sums = nullptr;    // [n_tokens, n_in / 256, 16] with q4k_pairs
};

inline constexpr int64_t kActBytesPerValue4 = 4 + 4 + 1;  // bytes per 4 values: 4 codes, 1 scale, 1/4 sum16

// Per-thread scratch for one panel (kPanelRows rows of one chunk), 64-byte aligned.
// Int8 panel: weight value = scale * code - min, with codes unsigned (u8) or, for kernels that ask for
// it on 8-bit types, signed (s8, min = 0).
struct PanelScratch {
  uint8_t* q;         // [kPanelRows, kIntChunk] codes
  float* scale;       // [kPanelRows, kIntChunk / 4] scale of each group of 4 values
  float* min;         // [kPanelRows, kIntChunk / 16] min of each group of 16 values
  float* f;           // [kPanelRows, kFloatChunk] dequantized weights for the float path
  uint8_t* wide_q;    // [kWideChunk / 4, kWideRows, 4] codes, 4 consecutive values of each row together
  float* wide_scale;  // [kWideChunk / 16, kWideRows] scale of each group of 16 values
  float* wide_min;    // [kWideChunk / 16, kWideRows] min of each group of 16 values
  // Activations of one token block and chunk regrouped by tiles of kWideTokens tokens, so the kernel
  // walks one pointer: codes [tiles][kWideChunk / 4][kWideTokens] x 4 bytes, then scales and code sums
  // [tiles][kWideChunk / 16][kWideTokens] f32 each.
  uint8_t* wide_acts;
};
inline constexpr int64_t kWideTokens = 8;
inline constexpr int64_t kWideMaxTiles = (512 + kWideTokens - 1) / kWideTokens + 1;  // token_block() <= 512
inline constexpr int64_t kWideTileBytes = kWideTokens * kWideChunk + 2 * 4 * kWideTokens * kWideChunk / 16;

// Which kernel family computes a call; kAuto picks the measured-faster one for the type.
enum class Path { kAuto, kInt8, kFloat };

// matmul_shared_input() with a forced kernel family (tests and benchmark compare them). kInt8 needs quantized types.
void matmul_with_path(std::span<const Projection> outs, const float* x, int64_t n_tokens, Path path);

// Per-target entry points (Highway dynamic dispatch inside). Each computes output rows [r0, r1) of y
// for all tokens; y is [n_tokens, w.n_out].
void quantize_activations(const float* x, int64_t n_in, int8_t* q, float* scale, float* sum16);  // 1 token
// Whether this CPU's q4_0 decode kernel reads Q4Triple activations (AVX-512 VNNI and GFNI).
bool gemv_uses_q4_triples();
// Whether this CPU's batched q4_K decode kernel reads make_q4k_pairs() activations (x86 from AVX2; the
// 256-bit kernel uses only its scales).
bool gemv_uses_q4k_pairs();
// The int8 kernel this CPU runs for the type at n_tokens (matmul_kernel_name).
const char* int8_kernel_name(GgmlType type, int64_t n_tokens);
void matmul_int8_rows(const WeightMatrix& w, const QuantizedActs& a, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                      const PanelScratch& scratch);
void matmul_float_rows(const WeightMatrix& w, const float* x, int64_t n_tokens, int64_t r0, int64_t r1, float* y,
                       const PanelScratch& scratch);

}  // namespace kvq::matmul_detail
