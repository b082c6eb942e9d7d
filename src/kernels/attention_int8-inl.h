// Integer K·q for decode on AVX-512 VNNI (attention-inl.h's AttendItemT, token-pair layout, 16 score lanes):
// the query heads of a GQA group are quantized once per item to 8-bit blocks of 32 (q8_0-style, one scale
// per head and block), and the scores are sums of u8 key codes × s8 query codes (`vpdpbusd`, 64 products per
// instruction), rescaled per block by d_key * d_query. Included once per SIMD target by attention.cpp; the
// kernels exist only for HWY_AVX3_DL (whose CPU check includes AVX512-VNNI); other targets keep the f32 path.
//
// Why it pays: the f32 path decodes each key to f32, interleaves token pairs and spends 64 FMAs per token pair
// and head; here a pair costs 16 `vpdpbusd` plus 2 rescales, and the keys go from the cache into the pair
// layout with a few byte shuffles. Measured per key type (TinyLlama decode at 8K, V = f16, one thread, µs per
// layer, f32 path -> int8 path): q8_0 1493 -> 1044, q4_0 1469 -> 1009, iq4_nl 1784 -> 980 (f16/f16: 1564), so
// all three score in integers. q5_0 / q5_1 / q4_1 keys stay on the f32 path (the 5th bit or the min term
// would need more shuffles or a second product; not measured yet).
//
// Codes are made unsigned for `vpdpbusd` (u8 × s8): q8_0 keys as code + 128, q4_0 keys are the raw nibble
// (value = nibble - 8), iq4_nl keys as table[nibble] + 128, the head-scaled keys (q8_h, nl*_h) as their int8
// level + 128 with the head's scale on each of its blocks. sum(u * q) - off * sum(q) = sum(k * q), and
// off * sum(q) is a per-head constant of the call, preloaded into the integer accumulator.
//
// Layout of a token pair's keys: per 32-value block, 8 steps of 8 bytes = 4 codes of token 2p then 4 codes of
// token 2p + 1, so one 64-bit broadcast feeds both tokens (even lanes: token 2p). Step s holds dims
// 4 * group(s) .. + 3 of the block; the query codes use the same order (Int8StepGroup).

#if defined(KVQ_KERNELS_ATTENTION_INT8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_ATTENTION_INT8_INL_H_
#undef KVQ_KERNELS_ATTENTION_INT8_INL_H_
#else
#define KVQ_KERNELS_ATTENTION_INT8_INL_H_
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "hwy/highway.h"
#include "quant/blocks.h"
#include "util/half.h"

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {

inline constexpr int kInt8Lanes = 16;  // score lanes: 8 query rows x 2 tokens
inline constexpr int kInt8Steps = 8;   // 4-code steps per 32-value block

// Key types scored in integers, and the offset that makes their codes unsigned. The head-scaled types'
// levels are int8 (quant/blocks.h), so they score like q8_0 with the head's scale on each of its blocks.
inline bool Int8KeyType(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::IQ4_NL || is_head_scaled(t);
}
inline int Int8KeyOffset(GgmlType t) { return t == GgmlType::Q4_0 ? 8 : 128; }

// Group of 4 dims that step s of a block holds, per key type (the order the byte shuffles produce).
inline int Int8StepGroup(GgmlType t, int s) {
  static constexpr int kQ8Order[kInt8Steps] = {0, 1, 4, 5, 2, 3, 6, 7};  // 256-bit unpack works per 128 bits
  return t == GgmlType::Q8_0 || is_head_scaled(t) ? kQ8Order[s] : s;
}

// Quantized queries of one KV head, ready for the score kernel.
//   codes: [n_blocks, 8 steps, 16 lanes, 4] s8   corr: [n_blocks, 16] i32 = -off * sum(codes)
//   scale: [n_blocks, 16] f32 = d_query (0 for padding rows)
struct Int8Queries {
  int8_t* codes;
  int32_t* corr;
  float* scale;
};

#undef KVQ_INT8_SCORES
#if HWY_TARGET == HWY_AVX3_DL
#define KVQ_INT8_SCORES 1
// Highway's AVX3_DL target string names avxvnni but not avx512vnni; its CPU check requires AVX512-VNNI.
#define KVQ_TARGET_VNNI __attribute__((target(HWY_TARGET_STR ",avx512vnni")))

// Quantizes row r's query (already multiplied by the softmax scale) into lanes 2r and 2r + 1; q == nullptr
// writes a zero row. hd is a multiple of 32. Rounds to nearest even, as lrint would.
HWY_INLINE void QuantizeQueryRow(const float* q, int r, int hd, GgmlType k_type, const Int8Queries& out) {
  const int off = Int8KeyOffset(k_type);
  for (int b = 0; b < hd / kQK; ++b) {
    const __m512 x0 = q != nullptr ? _mm512_loadu_ps(q + b * kQK) : _mm512_setzero_ps();
    const __m512 x1 = q != nullptr ? _mm512_loadu_ps(q + b * kQK + 16) : _mm512_setzero_ps();
    alignas(64) float m[16];
    _mm512_store_ps(m, _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
    float amax = 0.0f;
    for (float v : m) amax = std::max(amax, v);
    const float d = amax / 127.0f;
    const __m512 inv = _mm512_set1_ps(d > 0.0f ? 1.0f / d : 0.0f);
    const __m512 lim = _mm512_set1_ps(127.0f);
    const auto codes = [&](__m512 x) {
      return _mm512_cvtps_epi32(
          _mm512_min_ps(lim, _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), lim), _mm512_mul_ps(x, inv))));
    };
    const __m512i c0 = codes(x0), c1 = codes(x1);
    alignas(64) int8_t block[kQK];
    _mm_store_si128(reinterpret_cast<__m128i*>(block), _mm512_cvtsepi32_epi8(c0));
    _mm_store_si128(reinterpret_cast<__m128i*>(block + 16), _mm512_cvtsepi32_epi8(c1));
    alignas(64) int32_t sums[16];
    _mm512_store_si512(sums, _mm512_add_epi32(c0, c1));
    int32_t sum = 0;
    for (int32_t v : sums) sum += v;
    for (int s = 0; s < kInt8Steps; ++s) {
      const int8_t* four = block + 4 * Int8StepGroup(k_type, s);
      for (int o = 0; o < 2; ++o) {
        std::memcpy(out.codes + ((size_t(b) * kInt8Steps + s) * kInt8Lanes + 2 * r + o) * 4, four, 4);
      }
    }
    for (int o = 0; o < 2; ++o) {
      out.corr[b * kInt8Lanes + 2 * r + o] = -off * sum;
      out.scale[b * kInt8Lanes + 2 * r + o] = d;
    }
  }
}

// One token pair's block: 8 steps x (4 codes of token a, 4 codes of token b) as unsigned bytes.
template <GgmlType kType, class Block>
HWY_INLINE KVQ_TARGET_VNNI void PackPairBlock(const Block& xa, const Block& xb, uint8_t* HWY_RESTRICT out) {
  if constexpr (kType == GgmlType::Q8_0) {
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    const __m256i ya = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xa.qs));
    const __m256i yb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_xor_si256(_mm256_unpacklo_epi32(ya, yb), flip));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32), _mm256_xor_si256(_mm256_unpackhi_epi32(ya, yb), flip));
  } else {
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m128i xa16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xa.qs));
    const __m128i xb16 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.qs));
    const __m256i y = _mm256_set_m128i(_mm_unpackhi_epi32(xa16, xb16), _mm_unpacklo_epi32(xa16, xb16));
    __m256i lo = _mm256_and_si256(y, nibble);                        // dims 0..15 of the block
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(y, 4), nibble);  // dims 16..31
    if constexpr (kType == GgmlType::IQ4_NL) {
      // iq4_nl levels + 128 as u8, in both 128-bit halves.
      const __m256i lut =
          _mm256_setr_epi8(1, 24, 45, 63, 79, 93, 106, 118, char(129), char(141), char(153), char(166), char(181),
                           char(197), char(217), char(241), 1, 24, 45, 63, 79, 93, 106, 118, char(129), char(141),
                           char(153), char(166), char(181), char(197), char(217), char(241));
      lo = _mm256_shuffle_epi8(lut, lo);
      hi = _mm256_shuffle_epi8(lut, hi);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32), hi);
  }
}

// Packs the keys of tokens 0 .. n - 1 (rows of row_bytes, the head's first block at byte `first`) into
// pairs [n_pairs][n_blocks][8 steps][8] u8 and their scales into [n_pairs][n_blocks][2] f32 (gathered as
// f16 bits into half_scales [n_pairs * n_blocks * 2 + 16], then converted 16 at a time). Tokens n ..
// 2 * n_pairs - 1 get scale 0 (finite scores; the softmax masks them).
template <GgmlType kType>
HWY_NOINLINE KVQ_TARGET_VNNI void PackKeysInt8(const uint8_t* rows, size_t row_bytes, size_t first, int n, int n_pairs,
                                               int n_blocks, uint8_t* HWY_RESTRICT packed,
                                               uint16_t* HWY_RESTRICT half_scales, float* HWY_RESTRICT scales) {
  using Block = std::conditional_t<kType == GgmlType::Q8_0, BlockQ8_0,
                                   std::conditional_t<kType == GgmlType::Q4_0, BlockQ4_0, BlockIQ4_NL>>;
  static_assert(kIq4nlValues[0] + 128 == 1 && kIq4nlValues[15] + 128 == 241, "PackPairBlock's iq4_nl table");
  const int full = std::min(n / 2, n_pairs);
  for (int p = 0; p < full; ++p) {
    const auto* a = reinterpret_cast<const Block*>(rows + size_t(2 * p) * row_bytes + first);
    const auto* b = reinterpret_cast<const Block*>(rows + size_t(2 * p + 1) * row_bytes + first);
    for (int blk = 0; blk < n_blocks; ++blk) {
      const size_t i = size_t(p) * n_blocks + blk;
      std::memcpy(half_scales + 2 * i, &a[blk].d, 2);
      std::memcpy(half_scales + 2 * i + 1, &b[blk].d, 2);
      PackPairBlock<kType>(a[blk], b[blk], packed + i * 64);
    }
  }
  static const Block kZero{};  // stands in for tokens past n
  for (int p = full; p < n_pairs; ++p) {
    const auto* a = 2 * p < n ? reinterpret_cast<const Block*>(rows + size_t(2 * p) * row_bytes + first) : nullptr;
    for (int blk = 0; blk < n_blocks; ++blk) {
      const size_t i = size_t(p) * n_blocks + blk;
      const uint16_t zero = 0;
      std::memcpy(half_scales + 2 * i, a != nullptr ? &a[blk].d : &zero, 2);
      half_scales[2 * i + 1] = 0;
      PackPairBlock<kType>(a != nullptr ? a[blk] : kZero, kZero, packed + i * 64);
    }
  }
  const int n_scales = n_pairs * n_blocks * 2;
  for (int i = 0; i < n_scales; i += 16) {  // the buffers hold 16 spare entries
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(half_scales + i));
    _mm512_storeu_ps(scales + i, _mm512_cvtph_ps(h));
  }
}

// s[p][lane] = sum over blocks of d_k(token) * d_q(row) * (sum u * q - off * sum q) for n_pairs (a multiple of
// 4) pairs: 4 pairs in flight, query codes read from L1 by every pair. packed and scales point at the head's
// first block of pair 0; a pair spans pair_blocks blocks (those of every head).
HWY_NOINLINE KVQ_TARGET_VNNI void ScoresInt8(const Int8Queries& q, const uint8_t* HWY_RESTRICT packed,
                                             const float* HWY_RESTRICT scales, int n_pairs, int n_blocks,
                                             int pair_blocks, float* HWY_RESTRICT s) {
  const size_t pair_bytes = size_t(pair_blocks) * 64;
  for (int p = 0; p < n_pairs; p += 4) {
    __m512 f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps(), f2 = _mm512_setzero_ps(), f3 = _mm512_setzero_ps();
    for (int b = 0; b < n_blocks; ++b) {
      const __m512i corr = _mm512_loadu_si512(q.corr + b * kInt8Lanes);
      __m512i i0 = corr, i1 = corr, i2 = corr, i3 = corr;
      const uint8_t* k0 = packed + size_t(p) * pair_bytes + size_t(b) * 64;
      const int8_t* qb = q.codes + size_t(b) * kInt8Steps * kInt8Lanes * 4;
      for (int st = 0; st < kInt8Steps; ++st) {
        const __m512i qv = _mm512_loadu_si512(qb + st * 64);
        int64_t w0, w1, w2, w3;
        std::memcpy(&w0, k0 + st * 8, 8);
        std::memcpy(&w1, k0 + pair_bytes + st * 8, 8);
        std::memcpy(&w2, k0 + 2 * pair_bytes + st * 8, 8);
        std::memcpy(&w3, k0 + 3 * pair_bytes + st * 8, 8);
        i0 = _mm512_dpbusd_epi32(i0, _mm512_set1_epi64(w0), qv);
        i1 = _mm512_dpbusd_epi32(i1, _mm512_set1_epi64(w1), qv);
        i2 = _mm512_dpbusd_epi32(i2, _mm512_set1_epi64(w2), qv);
        i3 = _mm512_dpbusd_epi32(i3, _mm512_set1_epi64(w3), qv);
      }
      const __m512 dq = _mm512_loadu_ps(q.scale + b * kInt8Lanes);
      const float* sc = scales + (size_t(p) * pair_blocks + b) * 2;
      const size_t sc_pair = size_t(pair_blocks) * 2;
      double d0, d1, d2, d3;  // the two tokens' key scales, as one 64-bit pattern
      std::memcpy(&d0, sc, 8);
      std::memcpy(&d1, sc + sc_pair, 8);
      std::memcpy(&d2, sc + 2 * sc_pair, 8);
      std::memcpy(&d3, sc + 3 * sc_pair, 8);
      f0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(dq, _mm512_castpd_ps(_mm512_set1_pd(d0))), f0);
      f1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), _mm512_mul_ps(dq, _mm512_castpd_ps(_mm512_set1_pd(d1))), f1);
      f2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i2), _mm512_mul_ps(dq, _mm512_castpd_ps(_mm512_set1_pd(d2))), f2);
      f3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i3), _mm512_mul_ps(dq, _mm512_castpd_ps(_mm512_set1_pd(d3))), f3);
    }
    _mm512_storeu_ps(s + size_t(p + 0) * kInt8Lanes, f0);
    _mm512_storeu_ps(s + size_t(p + 1) * kInt8Lanes, f1);
    _mm512_storeu_ps(s + size_t(p + 2) * kInt8Lanes, f2);
    _mm512_storeu_ps(s + size_t(p + 3) * kInt8Lanes, f3);
  }
}

// Decodes the values of tokens 0 .. n - 1 (q4_0 or q8_0, the head's first block at byte `first` of each row)
// into dst [n, n_blocks * 32] f32, with the block scales gathered as f16 bits into half_scales
// [n * n_blocks + 16] and converted 16 at a time into scales [n * n_blocks + 16] f32. Same values as
// dequantize_row_ref: (q - 8) * d as one FMA of q * d + (-8 * d), which rounds once, like the product.
// Twice the speed of the generic decoder (no per-block scalar scale conversion, 16 codes per widening load).
template <GgmlType kType>
HWY_NOINLINE KVQ_TARGET_VNNI void DecodeValuesInt(const uint8_t* rows, size_t row_bytes, size_t first, int n,
                                                  int n_blocks, uint16_t* HWY_RESTRICT half_scales,
                                                  float* HWY_RESTRICT scales, float* HWY_RESTRICT dst) {
  using Block = std::conditional_t<kType == GgmlType::Q8_0, BlockQ8_0, BlockQ4_0>;
  for (int t = 0; t < n; ++t) {
    const auto* x = reinterpret_cast<const Block*>(rows + size_t(t) * row_bytes + first);
    for (int b = 0; b < n_blocks; ++b) std::memcpy(half_scales + size_t(t) * n_blocks + b, &x[b].d, 2);
  }
  for (int i = 0; i < n * n_blocks; i += 16) {
    _mm512_storeu_ps(scales + i,
                     _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(half_scales + i))));
  }
  const __m512i nibble = _mm512_set1_epi32(0x0F);
  for (int t = 0; t < n; ++t) {
    const auto* x = reinterpret_cast<const Block*>(rows + size_t(t) * row_bytes + first);
    for (int b = 0; b < n_blocks; ++b) {
      const __m512 d = _mm512_set1_ps(scales[size_t(t) * n_blocks + b]);
      float* out = dst + (size_t(t) * n_blocks + b) * kQK;
      if constexpr (kType == GgmlType::Q8_0) {
        const __m512i lo = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs)));
        const __m512i hi = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs + 16)));
        _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(out + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
      } else {
        const __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].qs)));
        const __m512 offset = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
        const __m512i lo = _mm512_and_si512(codes, nibble);  // values 0..15
        const __m512i hi = _mm512_srli_epi32(codes, 4);      // values 16..31
        _mm512_storeu_ps(out, _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo), d, offset));
        _mm512_storeu_ps(out + 16, _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), d, offset));
      }
    }
  }
}

// The f16 scale of every value block (q4_0 or q8_0: d comes first, blocks of block_bytes) of tokens 0 ..
// 4 ceil(n / 4) - 1, 0 past n: half_scales [block][token] for blocks 0 .. n_blocks - 1 of each row (all
// heads), in one pass over the rows of a chunk (strided passes per head stalled on first touch).
HWY_INLINE void GatherValueScales(const uint8_t* rows, size_t row_bytes, size_t block_bytes, int n, int n_blocks,
                                  uint16_t* HWY_RESTRICT half_scales) {
  const int n_pad = (n + 3) / 4 * 4;
  for (int t = 0; t < n_pad; ++t) {
    const uint8_t* x = rows + size_t(t) * row_bytes;
    for (int b = 0; b < n_blocks; ++b) {
      uint16_t h = 0;
      if (t < n) std::memcpy(&h, x + size_t(b) * block_bytes, 2);
      half_scales[size_t(b) * n_pad + t] = h;
    }
  }
}

// Decode layout, fused q8_0 value decode and p·v: acc [8, n_blocks * 32] f32 += sum_t p(r, t) * v(t), with
// p(r, t) = s[(t / 2) * 16 + 2r + t % 2] (the scores' token-pair lanes). One 32-value block at a time for all
// 8 rows (16 accumulators in registers), so each value block is decoded once, straight into registers: no f32
// value tile is written and read back (that round trip cost as much as the decode). half_scales: the head's
// rows of GatherValueScales; scales: scratch of n_blocks * (kChunk + 16) floats. (q4_0 values take the
// integer p·v of attention_pv_int8-inl.h instead.)
HWY_NOINLINE KVQ_TARGET_VNNI void AccumulatePVQ8_0(const uint8_t* rows, size_t row_bytes, size_t first, int n,
                                                   int n_blocks, const float* HWY_RESTRICT s,
                                                   const uint16_t* HWY_RESTRICT half_scales, float* HWY_RESTRICT scales,
                                                   float* HWY_RESTRICT acc) {
  using Block = BlockQ8_0;
  const int n_pad = (n + 3) / 4 * 4;
  for (int i = 0; i < n_pad * n_blocks; i += 16) {
    const __mmask16 m = n_pad * n_blocks - i >= 16 ? 0xFFFF : __mmask16((1u << (n_pad * n_blocks - i)) - 1);
    _mm512_storeu_ps(scales + i, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, half_scales + i)));
  }
  const size_t hd = size_t(n_blocks) * kQK;
  for (int b = 0; b < n_blocks; ++b) {
    float* a = acc + size_t(b) * kQK;
    __m512 a00 = _mm512_loadu_ps(a), a01 = _mm512_loadu_ps(a + 16);
    __m512 a10 = _mm512_loadu_ps(a + hd), a11 = _mm512_loadu_ps(a + hd + 16);
    __m512 a20 = _mm512_loadu_ps(a + 2 * hd), a21 = _mm512_loadu_ps(a + 2 * hd + 16);
    __m512 a30 = _mm512_loadu_ps(a + 3 * hd), a31 = _mm512_loadu_ps(a + 3 * hd + 16);
    __m512 a40 = _mm512_loadu_ps(a + 4 * hd), a41 = _mm512_loadu_ps(a + 4 * hd + 16);
    __m512 a50 = _mm512_loadu_ps(a + 5 * hd), a51 = _mm512_loadu_ps(a + 5 * hd + 16);
    __m512 a60 = _mm512_loadu_ps(a + 6 * hd), a61 = _mm512_loadu_ps(a + 6 * hd + 16);
    __m512 a70 = _mm512_loadu_ps(a + 7 * hd), a71 = _mm512_loadu_ps(a + 7 * hd + 16);
    const float* sb = scales + size_t(b) * n_pad;
    for (int t = 0; t < n; ++t) {
      const auto& x = reinterpret_cast<const Block*>(rows + size_t(t) * row_bytes + first)[b];
      const __m512 d = _mm512_set1_ps(sb[t]);
      const __m512 v0 = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs)))), d);
      const __m512 v1 = _mm512_mul_ps(
          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs + 16)))), d);
      const float* p = s + size_t(t / 2) * kInt8Lanes + t % 2;
      __m512 w = _mm512_set1_ps(p[0]);
      a00 = _mm512_fmadd_ps(w, v0, a00), a01 = _mm512_fmadd_ps(w, v1, a01);
      w = _mm512_set1_ps(p[2]);
      a10 = _mm512_fmadd_ps(w, v0, a10), a11 = _mm512_fmadd_ps(w, v1, a11);
      w = _mm512_set1_ps(p[4]);
      a20 = _mm512_fmadd_ps(w, v0, a20), a21 = _mm512_fmadd_ps(w, v1, a21);
      w = _mm512_set1_ps(p[6]);
      a30 = _mm512_fmadd_ps(w, v0, a30), a31 = _mm512_fmadd_ps(w, v1, a31);
      w = _mm512_set1_ps(p[8]);
      a40 = _mm512_fmadd_ps(w, v0, a40), a41 = _mm512_fmadd_ps(w, v1, a41);
      w = _mm512_set1_ps(p[10]);
      a50 = _mm512_fmadd_ps(w, v0, a50), a51 = _mm512_fmadd_ps(w, v1, a51);
      w = _mm512_set1_ps(p[12]);
      a60 = _mm512_fmadd_ps(w, v0, a60), a61 = _mm512_fmadd_ps(w, v1, a61);
      w = _mm512_set1_ps(p[14]);
      a70 = _mm512_fmadd_ps(w, v0, a70), a71 = _mm512_fmadd_ps(w, v1, a71);
    }
    _mm512_storeu_ps(a, a00), _mm512_storeu_ps(a + 16, a01);
    _mm512_storeu_ps(a + hd, a10), _mm512_storeu_ps(a + hd + 16, a11);
    _mm512_storeu_ps(a + 2 * hd, a20), _mm512_storeu_ps(a + 2 * hd + 16, a21);
    _mm512_storeu_ps(a + 3 * hd, a30), _mm512_storeu_ps(a + 3 * hd + 16, a31);
    _mm512_storeu_ps(a + 4 * hd, a40), _mm512_storeu_ps(a + 4 * hd + 16, a41);
    _mm512_storeu_ps(a + 5 * hd, a50), _mm512_storeu_ps(a + 5 * hd + 16, a51);
    _mm512_storeu_ps(a + 6 * hd, a60), _mm512_storeu_ps(a + 6 * hd + 16, a61);
    _mm512_storeu_ps(a + 7 * hd, a70), _mm512_storeu_ps(a + 7 * hd + 16, a71);
  }
}

// The unsigned codes (level + 128) of one head record's dims j .. j + 63 as 64 bytes (past head_dim: bytes
// of the read slack, which the caller does not store).
template <GgmlType kType>
class HeadCodesU8 {
  static constexpr int kBits = attention_detail::head_code_bits(kType);

 public:
  explicit HeadCodesU8(int head_dim) : head_dim_(head_dim), levels_(128) {}
  HWY_INLINE __m512i operator()(const uint8_t* HWY_RESTRICT record, int j) const {
    if constexpr (kBits == 8) {  // q8_h: the codes are the levels; no read past the record's head_dim codes
      const __mmask64 live = head_dim_ - j >= 64 ? ~__mmask64(0) : (__mmask64(1) << (head_dim_ - j)) - 1;
      return _mm512_xor_si512(_mm512_maskz_loadu_epi8(live, record + 2 + j), _mm512_set1_epi8(char(0x80)));
    } else {
      return levels_(record + 2 + j / 8 * kBits);
    }
  }

 private:
  int head_dim_;
  std::conditional_t<kBits == 8, int, NlLevelsVbmi<kBits>> levels_;  // q8_h needs no table
};

// PackKeysInt8 for a head-scaled key type: the same pair layout [n_pairs][n_kv * head_dim / 32][64] u8 and
// scales [n_pairs][n_kv * head_dim / 32][2] f32, each block of a head taking the head's scale. head_dim is a
// multiple of 32; tokens n .. 2 * n_pairs - 1 get scale 0. In registers, 64 dims of a pair at a time:
// unpack{lo,hi}_epi32 interleave the two tokens' 4-code groups per 128-bit lane, and two vshufi64x2 gather
// lanes 0-1 (dims 0-31) and 2-3 (dims 32-63) of both into the two blocks' pair layouts.
template <GgmlType kType>
HWY_NOINLINE KVQ_TARGET_VNNI void PackHeadKeysInt8(const uint8_t* rows, size_t row_bytes, int n, int n_pairs, int n_kv,
                                                   int head_dim, uint8_t* HWY_RESTRICT packed,
                                                   float* HWY_RESTRICT scales) {
  const size_t record = head_record_bytes(kType, head_dim);
  const int n_blocks = head_dim / kQK, all_blocks = n_kv * n_blocks;
  const HeadCodesU8<kType> codes(head_dim);
  const __m512i absent = _mm512_set1_epi8(char(128));  // level 0 for a padding token
  // Token t's record of head h, nullptr for a padding token (past n: no row to read).
  const auto record_of = [&](int t, int h) {
    return t < n ? rows + size_t(t) * row_bytes + size_t(h) * record : nullptr;
  };
  for (int p = 0; p < n_pairs; ++p) {
    for (int h = 0; h < n_kv; ++h) {
      const uint8_t* rec_a = record_of(2 * p, h);
      const uint8_t* rec_b = record_of(2 * p + 1, h);
      const float d_a = rec_a != nullptr ? RecordScale(rec_a) : 0.0f,
                  d_b = rec_b != nullptr ? RecordScale(rec_b) : 0.0f;
      const size_t first = size_t(p) * all_blocks + size_t(h) * n_blocks;
      for (int j = 0; j < head_dim; j += 64) {
        const __m512i la = rec_a != nullptr ? codes(rec_a, j) : absent;
        const __m512i lb = rec_b != nullptr ? codes(rec_b, j) : absent;
        const __m512i lo = _mm512_unpacklo_epi32(la, lb), hi = _mm512_unpackhi_epi32(la, lb);
        uint8_t* out = packed + (first + j / kQK) * 64;
        _mm512_storeu_si512(out, _mm512_shuffle_i64x2(lo, hi, 0x44));
        if (j + 64 <= head_dim) _mm512_storeu_si512(out + 64, _mm512_shuffle_i64x2(lo, hi, 0xEE));
      }
      for (int blk = 0; blk < n_blocks; ++blk) {
        scales[2 * (first + blk)] = d_a;
        scales[2 * (first + blk) + 1] = d_b;
      }
    }
  }
}

HWY_INLINE void PackHeadKeysInt8Any(GgmlType t, const uint8_t* rows, size_t row_bytes, int n, int n_pairs, int n_kv,
                                    int head_dim, uint8_t* packed, float* scales) {
  switch (t) {
    case GgmlType::Q8_H:
      return PackHeadKeysInt8<GgmlType::Q8_H>(rows, row_bytes, n, n_pairs, n_kv, head_dim, packed, scales);
    case GgmlType::NL5_H:
      return PackHeadKeysInt8<GgmlType::NL5_H>(rows, row_bytes, n, n_pairs, n_kv, head_dim, packed, scales);
    case GgmlType::NL4_H:
      return PackHeadKeysInt8<GgmlType::NL4_H>(rows, row_bytes, n, n_pairs, n_kv, head_dim, packed, scales);
    case GgmlType::NL3_H:
      return PackHeadKeysInt8<GgmlType::NL3_H>(rows, row_bytes, n, n_pairs, n_kv, head_dim, packed, scales);
    default:
      return PackHeadKeysInt8<GgmlType::NL2_H>(rows, row_bytes, n, n_pairs, n_kv, head_dim, packed, scales);
  }
}

// Packs one chunk of keys of the int8 key types (Int8KeyType).
HWY_INLINE void PackKeysInt8Any(GgmlType t, const uint8_t* rows, size_t row_bytes, size_t first, int n, int n_pairs,
                                int n_blocks, uint8_t* packed, uint16_t* half_scales, float* scales) {
  switch (t) {
    case GgmlType::Q8_0:
      return PackKeysInt8<GgmlType::Q8_0>(rows, row_bytes, first, n, n_pairs, n_blocks, packed, half_scales, scales);
    case GgmlType::Q4_0:
      return PackKeysInt8<GgmlType::Q4_0>(rows, row_bytes, first, n, n_pairs, n_blocks, packed, half_scales, scales);
    default:
      return PackKeysInt8<GgmlType::IQ4_NL>(rows, row_bytes, first, n, n_pairs, n_blocks, packed, half_scales, scales);
  }
}
#undef KVQ_TARGET_VNNI
#else
#define KVQ_INT8_SCORES 0
#endif  // HWY_TARGET == HWY_AVX3_DL

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_ATTENTION_INT8_INL_H_
