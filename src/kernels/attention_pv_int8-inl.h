// Integer p·v for q4_0 and nl2_h / nl3_h / nl4_h values on AVX-512 VNNI, decode layout (8 rows, token-pair
// score lanes).
// Included once per SIMD target by attention-inl.h; the kernel exists only for HWY_AVX3_DL.
//
// Why: in f32, p·v costs 16 FMAs per token and value block for the 8 query rows of a GQA group, plus the
// block's decode, all on the one port that runs 512-bit FMAs here: at 8K context it was ~40% of
// q8_0/q4_0 decode attention and held that to ~0.6x the f16 cache's time for 0.41x the bytes. (vdpbf16ps,
// two tokens per instruction, measured slower than the FMAs on this CPU.) Here 4 tokens go into each
// vpdpbusd: 4 per token and block.
//
// How: per chunk, value block b and row r, the weights w(t) = p(r, t) * |d_v(t, b)| (the value block's
// scale folded into the probability; a negative d flips the sign of that token's codes instead) are
// rounded to u8 on the row's own grid W = max_t w(t) / 255, and sum_t w(t) * code(t) = W * sum_t u(t) *
// code(t) runs in int32 against the signed codes, nibble - 8. That rounding, relative to the chunk's
// largest weight (weights below 1/510 of it vanish), is the one error it adds: 1.7-3.4e-5 output NMSE on
// the oracle tests' sharp softmax (kMaxNmseInt8Weights), where 4-bit values themselves cost 5-8e-3. It
// would double what 8-bit values cost (3e-5), so q8_0 values keep the f32 p·v (AccumulatePVInt).
//
// Value layout for vpdpbusd: quad q of tokens 4q .. 4q + 3, per block: 16 lanes x 4 bytes = the 4 tokens'
// codes of dim d (dims 0..15), then a second vector for dims 16..31; one vpermb per vector transposes the
// 4 tokens' code rows into it.

#if defined(KVQ_KERNELS_ATTENTION_PV_INT8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_ATTENTION_PV_INT8_INL_H_
#undef KVQ_KERNELS_ATTENTION_PV_INT8_INL_H_
#else
#define KVQ_KERNELS_ATTENTION_PV_INT8_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "quant/blocks.h"

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3_DL
#define KVQ_TARGET_PV_INT8 __attribute__((target(HWY_TARGET_STR ",avx512vnni")))

// vpermb index: output byte 4d + j = byte d of the j-th 16-byte row (token j of the quad).
HWY_INLINE KVQ_TARGET_PV_INT8 __m512i QuadTransposeIndex() {
  alignas(64) uint8_t index[64];
  for (int i = 0; i < 64; ++i) index[i] = uint8_t(16 * (i % 4) + i / 4);
  return _mm512_load_si512(index);
}

// vpermt2b index over two vectors of int32 weights, pair 2q (u0: lanes 2r + o = row r, token o) and pair
// 2q + 1 (u1, tokens 2 and 3): output byte 4r + j = the low byte of token j's lane of row r.
HWY_INLINE KVQ_TARGET_PV_INT8 __m512i WeightGatherIndex() {
  alignas(64) uint8_t index[64] = {};
  for (int i = 0; i < 32; ++i) {
    const int r = i / 4, j = i % 4;
    index[i] = uint8_t(j < 2 ? 4 * (2 * r + j) : 64 + 4 * (2 * r + j - 2));
  }
  return _mm512_load_si512(index);
}

// Bytes [off, off + 16) of 4 consecutive tokens' rows (the first at `row`) as 4 x 16-byte rows of one
// vector; rows from `valid` on repeat the last valid one (their weights are 0).
HWY_INLINE KVQ_TARGET_PV_INT8 __m512i LoadQuadRows(const uint8_t* row, size_t row_bytes, int valid) {
  const auto at = [&](int j) {
    const size_t k = size_t(j < valid ? j : valid - 1);
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k * row_bytes));
  };
  const __m512i lo = _mm512_inserti32x4(_mm512_castsi128_si512(at(0)), at(1), 1);
  return _mm512_inserti32x4(_mm512_inserti32x4(lo, at(2), 2), at(3), 3);
}

// The u8 weights of n_quads token quads: w(t) = p(r, t) * scale(t) (scales [4 n_quads] f32, non-negative)
// rounded on each row's grid, u [quad][row] = the 4 tokens' bytes; returns each row's largest weight (lanes
// 2r, 2r + 1), which times 1 / 255 turns the integer sums back into weights.
HWY_INLINE KVQ_TARGET_PV_INT8 __m512 RowWeightsU8(const float* HWY_RESTRICT s, const float* HWY_RESTRICT scales,
                                                  int n_quads, const __m512i gather_u8, uint32_t (*HWY_RESTRICT u)[8]) {
  alignas(64) float w[2 * attention_detail::kChunk / 4][16];  // [pair][lane]: p x |d_v|
  __m512 wmax = _mm512_setzero_ps();
  for (int p = 0; p < 2 * n_quads; ++p) {
    double d2;  // the pair's two value scales as one 64-bit pattern: lanes alternate tokens like s
    std::memcpy(&d2, scales + 2 * p, 8);
    const __m512 wp = _mm512_mul_ps(_mm512_loadu_ps(s + size_t(p) * 16), _mm512_castpd_ps(_mm512_set1_pd(d2)));
    _mm512_store_ps(w[p], wp);
    wmax = _mm512_max_ps(wmax, wp);
  }
  wmax = _mm512_max_ps(wmax, _mm512_permute_ps(wmax, 0xB1));  // both tokens of each row
  const __mmask16 live = _mm512_cmp_ps_mask(wmax, _mm512_setzero_ps(), _CMP_GT_OQ);
  const __m512 to_u8 = _mm512_maskz_div_ps(live, _mm512_set1_ps(255.0f), wmax);
  for (int q = 0; q < n_quads; ++q) {
    // Codes 0..255 in the low byte of each int32 lane; one vpermt2b gathers them as [row][t0 t1 t2 t3]
    // (half the ops of saturating narrowing and unpacking).
    const __m512i u0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(w[2 * q]), to_u8));
    const __m512i u1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(w[2 * q + 1]), to_u8));
    const __m512i rows_u8 = _mm512_maskz_permutex2var_epi8(~__mmask64(0), u0, gather_u8, u1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(u[q]), _mm512_castsi512_si256(rows_u8));
  }
  return wmax;
}

// acc [8, n_blocks * 32] f32 += sum_t p(r, t) * v(t) for tokens 0 .. n - 1 of q4_0 values (rows of
// row_bytes, the head's first block at byte `first`), p(r, t) = s[(t / 2) * 16 + 2r + t % 2], which holds
// zeros for t >= n up to a multiple of 4. half_scales: the head's rows of GatherValueScales; scales: scratch
// of kChunk + 16 floats.
HWY_NOINLINE KVQ_TARGET_PV_INT8 void AccumulatePVQ4_0(const uint8_t* rows, size_t row_bytes, size_t first, int n,
                                                      int n_blocks, const float* HWY_RESTRICT s,
                                                      const uint16_t* HWY_RESTRICT half_scales,
                                                      float* HWY_RESTRICT scales, float* HWY_RESTRICT acc) {
  using Block = BlockQ4_0;
  constexpr int kMaxQuads = attention_detail::kChunk / 4;
  const int n_quads = (n + 3) / 4;
  const __m512i transpose = QuadTransposeIndex();
  const __m512i gather_u8 = WeightGatherIndex();
  const size_t hd = size_t(n_blocks) * kQK;
  alignas(64) uint32_t u[kMaxQuads][8];  // [quad][row]: the 4 tokens' u8 weights
  const int n_pad = 4 * n_quads;
  for (int b = 0; b < n_blocks; ++b) {
    // |d| in f32 for the weights. q4_0's d takes the sign of the block's largest value; that sign goes to
    // the codes instead (bit t of `negative`), so the weights stay unsigned.
    const uint16_t* hb = half_scales + size_t(b) * n_pad;
    uint64_t negative = 0;
    for (int t = 0; t < n_pad; t += 16) {
      const __mmask16 m = n_pad - t >= 16 ? 0xFFFF : __mmask16((1u << (n_pad - t)) - 1);
      const __m256i h = _mm256_maskz_loadu_epi16(m, hb + t);
      _mm512_storeu_ps(scales + t, _mm512_abs_ps(_mm512_cvtph_ps(h)));
      negative |= uint64_t(_mm256_movepi16_mask(h)) << t;
    }
    // Weights on each row's grid (lanes 2r and 2r + 1 are row r's two tokens of a pair).
    const __m512 wmax = RowWeightsU8(s, scales, n_quads, gather_u8, u);
    __m512i lo[8], hi[8];  // rows' int32 sums for dims 0..15 and 16..31 of the block (registers)
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
    const int qs_off = int(offsetof(Block, qs)) + b * int(sizeof(Block));
    for (int q = 0; q < n_quads; ++q) {
      const uint8_t* quad = rows + size_t(4 * q) * row_bytes + first + qs_off;  // token 4q's codes
      // s8 codes (nibble - 8) of dims 0..15 and 16..31, 4 tokens per lane; byte i of a lane is token
      // 4q + i % 4, negated where that token's d is negative.
      const __m512i v = _mm512_permutexvar_epi8(transpose, LoadQuadRows(quad, row_bytes, std::min(4, n - 4 * q)));
      const __m512i eight = _mm512_set1_epi8(8), nibble = _mm512_set1_epi8(0x0F);
      const __mmask64 flip = ((negative >> (4 * q)) & 0xF) * 0x1111111111111111ull;
      __m512i v_lo = _mm512_sub_epi8(_mm512_and_si512(v, nibble), eight);
      __m512i v_hi = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), nibble), eight);
      v_lo = _mm512_mask_sub_epi8(v_lo, flip, _mm512_setzero_si512(), v_lo);
      v_hi = _mm512_mask_sub_epi8(v_hi, flip, _mm512_setzero_si512(), v_hi);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        const __m512i ur = _mm512_set1_epi32(int(u[q][r]));
        lo[r] = _mm512_dpbusd_epi32(lo[r], ur, v_lo);
        hi[r] = _mm512_dpbusd_epi32(hi[r], ur, v_hi);
      }
    }
    // acc += W * sum u * code, W = the row's largest weight / 255.
    alignas(64) float grid[16];
    _mm512_store_ps(grid, _mm512_mul_ps(wmax, _mm512_set1_ps(1.0f / 255.0f)));
    float* a = acc + size_t(b) * kQK;
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512 grid_r = _mm512_set1_ps(grid[2 * r]);
      _mm512_storeu_ps(a + r * hd, _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[r]), grid_r, _mm512_loadu_ps(a + r * hd)));
      _mm512_storeu_ps(a + r * hd + 16,
                       _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[r]), grid_r, _mm512_loadu_ps(a + r * hd + 16)));
    }
  }
}
// The f16 scale of every head record of an nl4_h value row, tokens 0 .. 4 ceil(n / 4) - 1 (0 past n):
// half_scales [head][token], in one pass over the chunk's rows.
HWY_INLINE void GatherHeadScales(const uint8_t* rows, size_t row_bytes, size_t record_bytes, int n, int n_kv,
                                 uint16_t* HWY_RESTRICT half_scales) {
  const int n_pad = (n + 3) / 4 * 4;
  for (int t = 0; t < n_pad; ++t) {
    for (int h = 0; h < n_kv; ++h) {
      uint16_t bits = 0;
      if (t < n) std::memcpy(&bits, rows + size_t(t) * row_bytes + size_t(h) * record_bytes, 2);
      half_scales[size_t(h) * n_pad + t] = bits;
    }
  }
}

// Byte tables of AccumulatePVNl: for output vector V (dims 16V .. 16V + 15 of a 32-dim block), `spread`
// puts into 64-bit lane Q the 4 tokens' 16-bit windows (token t at byte 16t of LoadQuadRows' vector) that
// hold codes c and c + 1 of group g = 2V + Q / 4, c = 2 (Q % 4); `shift` (vpmultishiftqb) then pulls code
// c + j of token t into byte 4j + t. Every int32 lane is then one dim of the 4 tokens, in dim order.
template <int kBits>
struct NlQuadTables {
  alignas(64) uint8_t spread[2][64];
  alignas(64) uint8_t shift[2][64];
  constexpr NlQuadTables() : spread(), shift() {
    for (int v = 0; v < 2; ++v) {
      for (int i = 0; i < 64; ++i) {
        const int q = i / 8, g = 2 * v + q / 4, c = 2 * (q % 4);
        const int window = kBits * g + kBits * c / 8;  // the window's first byte in the block's codes
        spread[v][i] = uint8_t(16 * (i % 8 / 2) + window + i % 2);
        shift[v][i] = uint8_t(16 * (i % 4) + kBits * (c + i % 8 / 4) - 8 * (kBits * c / 8));
      }
    }
  }
};
template <int kBits>
inline constexpr NlQuadTables<kBits> kNlQuad{};

// AccumulatePVQ4_0 for nl*_h values of 2, 3 or 4 bits: the same weights (p times the head's scale, which is
// never negative, on each row's u8 grid) against the codes' int8 levels. Per quad of tokens and 32-dim block
// (4 kBits bytes of each token), two vpermb + vpmultishiftqb + vpermb (level table) steps give the 4
// tokens' levels of dims 0..15 and 16..31. record: the head's first byte in a row; half_scales: the head's
// row of GatherHeadScales.
template <int kBits>
HWY_NOINLINE KVQ_TARGET_PV_INT8 void AccumulatePVNl(const uint8_t* rows, size_t row_bytes, size_t record, int n,
                                                    int n_blocks, const float* HWY_RESTRICT s,
                                                    const uint16_t* HWY_RESTRICT half_scales,
                                                    float* HWY_RESTRICT scales, float* HWY_RESTRICT acc) {
  static_assert(kBits >= 2 && kBits <= 4, "a block's codes must fit LoadQuadRows' 16 bytes per token");
  constexpr int kMaxQuads = attention_detail::kChunk / 4;
  const int n_quads = (n + 3) / 4;
  const int n_pad = 4 * n_quads;
  const __m512i gather_u8 = WeightGatherIndex();
  const auto& t = kNlQuad<kBits>;
  const __m512i spread[2] = {_mm512_load_si512(t.spread[0]), _mm512_load_si512(t.spread[1])};
  const __m512i shift[2] = {_mm512_load_si512(t.shift[0]), _mm512_load_si512(t.shift[1])};
  const __m512i levels = _mm512_load_si512(attention_detail::kNlVbmi<kBits>.table);
  const size_t hd = size_t(n_blocks) * kQK;
  for (int i = 0; i < n_pad; i += 16) {  // one scale per token for every block of the head
    const __mmask16 m = n_pad - i >= 16 ? 0xFFFF : __mmask16((1u << (n_pad - i)) - 1);
    _mm512_storeu_ps(scales + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, half_scales + i)));
  }
  alignas(64) uint32_t u[kMaxQuads][8];  // [quad][row]: the 4 tokens' u8 weights
  const __m512 wmax = RowWeightsU8(s, scales, n_quads, gather_u8, u);
  alignas(64) float grid[16];
  _mm512_store_ps(grid, _mm512_mul_ps(wmax, _mm512_set1_ps(1.0f / 255.0f)));
  for (int b = 0; b < n_blocks; ++b) {
    __m512i lo[8], hi[8];  // rows' int32 sums for dims 0..15 and 16..31 of the block
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
    for (int q = 0; q < n_quads; ++q) {
      const uint8_t* quad = rows + size_t(4 * q) * row_bytes + record + 2 + size_t(b) * 4 * kBits;
      const __m512i x = LoadQuadRows(quad, row_bytes, std::min(4, n - 4 * q));
      // Dims 0..15 and 16..31: each token's code windows, the codes pulled out, their levels looked up.
      const __m512i v_lo = _mm512_permutexvar_epi8(
          _mm512_multishift_epi64_epi8(shift[0], _mm512_permutexvar_epi8(spread[0], x)), levels);
      const __m512i v_hi = _mm512_permutexvar_epi8(
          _mm512_multishift_epi64_epi8(shift[1], _mm512_permutexvar_epi8(spread[1], x)), levels);
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        const __m512i ur = _mm512_set1_epi32(int(u[q][r]));
        lo[r] = _mm512_dpbusd_epi32(lo[r], ur, v_lo);
        hi[r] = _mm512_dpbusd_epi32(hi[r], ur, v_hi);
      }
    }
    float* a = acc + size_t(b) * kQK;
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const __m512 grid_r = _mm512_set1_ps(grid[2 * r]);
      _mm512_storeu_ps(a + r * hd, _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[r]), grid_r, _mm512_loadu_ps(a + r * hd)));
      _mm512_storeu_ps(a + r * hd + 16,
                       _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi[r]), grid_r, _mm512_loadu_ps(a + r * hd + 16)));
    }
  }
}
#undef KVQ_TARGET_PV_INT8
#endif  // HWY_TARGET == HWY_AVX3_DL

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_ATTENTION_PV_INT8_INL_H_
