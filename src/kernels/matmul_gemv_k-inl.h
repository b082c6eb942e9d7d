// q4_K and q6_K decode kernels (the types of Q4_K_M files). A fragment of matmul_gemv-inl.h: included inside
// its namespace, once per x86 target (its per-target guard covers this file), after its helpers.
//
// q4_K: 256 values (144 bytes: d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles) per row
// and step; value = d x scale_k x code - dmin x min_k in sub-block k of 32. Against 8-bit activations with
// one scale dx_k per 32 values, a row's dot product is sum_k d scale_k dx_k (codes . activation codes) -
// dmin min_k dx_k (sum of activation codes of sub-block k). The block's first 16 bytes are unpacked in one
// vector register (Q4KScalesMins): as scalar code that was a third of the AVX-512 kernel's instructions
// (15 -> 17 GB/s on `matmul_bench --benchmark_filter=tinyllama_projections/tg1/q4_K`, 2 threads).

struct Q4KConsts {
  __m128i pick_low;   // pshufb: packed bytes 0-3, 8-11, 4-7, 8-11 (see Q4KScalesMins)
  __m128i pick_high;  // pshufb: -, packed 0-3, -, packed 4-7: the top 2 bits of scales and mins 4-7
#if HWY_TARGET == HWY_AVX3_DL
  __m512i pick[4];      // vpermps: lanes 0-7 take product k, lanes 8-15 product k + 2; k = 0, 1, 4, 5
  __m512i d_then_dmin;  // vpermps: lanes 0-7 take lane 0 (d), lanes 8-15 lane 1 (dmin)
#endif
};

inline Q4KConsts MakeQ4KConsts() {
  Q4KConsts c;
  // Byte 4 + i of the block is packed byte i; see ScaleMinK4 for the 12-byte layout.
  c.pick_low = _mm_setr_epi8(4, 5, 6, 7, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
  c.pick_high = _mm_setr_epi8(0, 0, 0, 0, 4, 5, 6, 7, 0, 0, 0, 0, 8, 9, 10, 11);
#if HWY_TARGET == HWY_AVX3_DL
  constexpr int kFirst[4] = {0, 1, 4, 5};
  for (int v = 0; v < 4; ++v) {
    alignas(64) int32_t idx[16];
    for (int l = 0; l < 16; ++l) idx[l] = kFirst[v] + (l < 8 ? 0 : 2);
    c.pick[v] = _mm512_load_si512(idx);
  }
  c.d_then_dmin = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
#endif
  return c;
}

// [scale 0..7, min 0..7] of a q4_K block as 16 bytes, from the block's first 16 bytes.
KVQ_GEMV_TARGET HWY_INLINE __m128i Q4KScalesMins(__m128i head, const Q4KConsts& c) {
  const __m128i low = _mm_shuffle_epi8(head, c.pick_low);
  const __m128i high = _mm_shuffle_epi8(head, c.pick_high);
  const __m128i six_bits = _mm_and_si128(low, _mm_set1_epi8(0x3F));  // scales and mins 0-3
  // 4-7: a nibble of packed 8-11 (low for scales, high for mins: dword 3 shifted) | top 2 bits << 4.
  const __m128i nibble = _mm_and_si128(_mm_blend_epi32(low, _mm_srli_epi16(low, 4), 0b1000), _mm_set1_epi8(0x0F));
  const __m128i top = _mm_and_si128(_mm_srli_epi16(high, 2), _mm_set1_epi8(0x30));
  return _mm_blend_epi32(six_bits, _mm_or_si128(nibble, top), 0b1010);
}

#if HWY_TARGET == HWY_AVX3_DL
// A q4_K block's first 16 bytes as the AVX-512 kernels use them: lanes 0-7 d and scale_k, lanes 8-15 dmin
// and min_k (k = 0..7).
struct Q4KHead {
  __m512 d_dmin;
  __m512 scales_mins;
};
KVQ_GEMV_TARGET HWY_INLINE Q4KHead LoadQ4KHead(const uint8_t* block, const Q4KConsts& c) {
  const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
  return {_mm512_maskz_permutexvar_ps(kAll16, c.d_then_dmin, _mm512_castps128_ps512(_mm_cvtph_ps(head))),
          _mm512_maskz_cvtepi32_ps(kAll16, _mm512_maskz_cvtepu8_epi32(kAll16, Q4KScalesMins(head, c)))};
}

// AVX-512 VNNI: a 64-byte load of the nibbles holds sub-blocks 2g (low nibbles of bytes 0-31), 2g + 2 (low,
// bytes 32-63) and 2g + 1, 2g + 3 (high), so each vpdpbusd against activations [values of sub-block k |
// values of sub-block k + 2] gives 8 int32 lanes per sub-block, scaled per lane by d x scale_k x dx_k
// (vpermps from 8 products). The mins' term is subtracted in lanes 8-15.
//
// out[r] = dot(row r, token) for R rows of q4_K. dx_sums: [n_in / 256][16]: per block the activation scale
// of each 32 values, then scale x sum of their codes.
template <int R>
KVQ_GEMV_TARGET void GemvRowsQ4_K(const uint8_t* const (&rows)[8], const matmul_detail::QuantizedActs& a,
                                  const float* dx_sums, const Q4KConsts& c, float* out) {
  const int64_t nb = a.n_in / kQK_K;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[R];
  KVQ_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    // Activations [k | k + 2] for k = 0, 1 (values 0-127) and 4, 5 (values 128-255).
    const int8_t* q = a.q + kQK_K * b;
    const auto pair = [&](int k) {
      const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kQK * k));
      const __m256i second = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kQK * (k + 2)));
      return _mm512_maskz_inserti64x4(0xFF, _mm512_castsi256_si512(first), second, 1);
    };
    const __m512i x[4] = {pair(0), pair(1), pair(4), pair(5)};
    const __m512 act = _mm512_loadu_ps(dx_sums + 16 * b);
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + sizeof(BlockQ4_K) * size_t(b);
      PrefetchAhead<3>(block);
      const auto* blk = reinterpret_cast<const BlockQ4_K*>(block);
      const auto [d_dmin, scales_mins] = LoadQ4KHead(block, c);
      // Lanes 0-7: d x scale_k x dx_k; lanes 8-15: dmin x min_k x dx_k x sum of codes_k.
      const __m512 f = _mm512_mul_ps(scales_mins, _mm512_mul_ps(d_dmin, act));
      acc[r] = _mm512_mask_sub_ps(acc[r], 0xFF00, acc[r], f);
      KVQ_UNROLL for (int h = 0; h < 2; ++h) {  // nibbles of sub-blocks 0-3, then 4-7
        const __m512i v = _mm512_loadu_si512(blk->qs + 64 * h);
        const __m512i lo = _mm512_and_si512(v, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        const __m512i dot_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, x[2 * h]);
        const __m512i dot_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi, x[2 * h + 1]);
        acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll16, dot_lo),
                                 _mm512_maskz_permutexvar_ps(kAll16, c.pick[2 * h], f), acc[r]);
        acc[r] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll16, dot_hi),
                                 _mm512_maskz_permutexvar_ps(kAll16, c.pick[2 * h + 1], f), acc[r]);
      }
    }
  }
  KVQ_UNROLL for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]);
}

// Constants of the AVX-512 q6_K kernels and the unpacking of one half block (128 values) into two vectors
// of 64 consecutive codes 0..63: vector 0 the low nibbles of ql with qh's bit pairs 0 (first 32 bytes) and
// 2 (next 32), vector 1 the high nibbles with bit pairs 4 and 6.
struct Q6KConsts {
  __m512i low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
  // Per 16-bit word: first 32 bytes move qh's bit pair 0 (vector 0) or 4 (vector 1) to bits 4-5; next 32
  // bytes pair 2 or 6.
  __m512i shl_lo = _mm512_maskz_inserti64x4(0xFF, _mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
  __m512i shr_hi = _mm512_maskz_inserti64x4(0xFF, _mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  alignas(64) int32_t group_idx[4][16];  // vpermps: lane l of vector k takes scale 4k + l / 4
  Q6KConsts() {
    for (int k = 0; k < 4; ++k) {
      for (int l = 0; l < 16; ++l) group_idx[k][l] = 4 * k + l / 4;
    }
  }
};
KVQ_GEMV_TARGET HWY_INLINE void UnpackQ6KHalf(const BlockQ6_K* blk, int h, const Q6KConsts& c, __m512i* codes) {
  const __m512i ql = _mm512_loadu_si512(blk->ql + 64 * h);
  const __m512i qh =
      _mm512_maskz_broadcast_i64x4(0xFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * h)));
  codes[0] = _mm512_or_si512(_mm512_and_si512(ql, c.low4), _mm512_and_si512(_mm512_sllv_epi16(qh, c.shl_lo), c.bits45));
  codes[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), c.low4),
                             _mm512_and_si512(_mm512_srlv_epi16(qh, c.shr_hi), c.bits45));
}

// q6_K on AVX-512 VNNI: 256 values (210 bytes) per row and step, as 4 vectors of 64 consecutive values:
// vector 2h takes the low nibbles of ql[64h ..] with qh's bit pairs 0 (first 32 bytes) and 2 (next 32),
// vector 2h + 1 the high nibbles with bit pairs 4 and 6, so the activations are plain loads. Codes 0..63
// are unsigned for vpdpbusd; the offset of 32 costs -32 x d x sum over the 16-value groups of scale x
// (dx x sum of codes). Each int32 lane (4 values) is scaled by its group's scale (vpermps from the 16)
// times its activation scale, which the activations already store per 4 values.
template <int R>
KVQ_GEMV_TARGET void GemvRowsQ6_K(const uint8_t* const (&rows)[8], const matmul_detail::QuantizedActs& a, float* out) {
  const int64_t nb = a.n_in / kQK_K;
  const Q6KConsts c;
  __m512 acc[R];
  KVQ_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.q + kQK_K * b;
    const __m512 neg32_sums = _mm512_mul_ps(_mm512_loadu_ps(a.sum16 + 16 * b), _mm512_set1_ps(-32.0f));
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + sizeof(BlockQ6_K) * size_t(b);
      PrefetchAhead<4>(block);
      const auto* blk = reinterpret_cast<const BlockQ6_K*>(block);
      const __m512 scales = _mm512_maskz_cvtepi32_ps(
          kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales))));
      __m512 sum = _mm512_mul_ps(scales, neg32_sums);  // this block's dot product / d
      KVQ_UNROLL for (int h = 0; h < 2; ++h) {
        __m512i codes[2];
        UnpackQ6KHalf(blk, h, c, codes);
        KVQ_UNROLL for (int j = 0; j < 2; ++j) {
          const int k = 2 * h + j;
          const __m512i x = _mm512_loadu_si512(q + 64 * k);
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[j], x);
          const __m512 lane_scale =
              _mm512_mul_ps(_mm512_maskz_permutexvar_ps(kAll16, _mm512_load_si512(c.group_idx[k]), scales),
                            _mm512_loadu_ps(a.scale + 64 * b + 16 * k));
          sum = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll16, dot), lane_scale, sum);
        }
      }
      acc[r] = _mm512_fmadd_ps(sum, _mm512_set1_ps(_cvtsh_ss(blk->d)), acc[r]);
    }
  }
  KVQ_UNROLL for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]);
}

// Batched decode (2-8 sequences): the kernels above for T tokens at once, each row block unpacked once and
// dotted with every token, so the unpacking no longer repeats per token. Per token the operations are those
// of the one-token kernels in the same order: results are bit-identical to running them token by token.
// pairs[t], dx_sums[t]: token t's activations from matmul_detail::make_q4k_pairs (the vectors the one-token
// kernel builds per block, laid out once per call). out: [T][out_stride].
template <int R, int T>
KVQ_GEMV_TARGET void GemvRowsQ4_KTokens(const uint8_t* const (&rows)[8], int64_t nb, const int8_t* const (&pairs)[T],
                                        const float* const (&dx_sums)[T], const Q4KConsts& c, float* out,
                                        int64_t out_stride) {
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  __m512 acc[R][T];
  KVQ_UNROLL for (int r = 0; r < R; ++r) { KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps(); }
  for (int64_t b = 0; b < nb; ++b) {
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + sizeof(BlockQ4_K) * size_t(b);
      PrefetchAhead<3>(block);
      const auto* blk = reinterpret_cast<const BlockQ4_K*>(block);
      const auto [d_dmin, scales_mins] = LoadQ4KHead(block, c);
      __m512i codes[4];  // low nibbles of bytes 0-63, high ones, then the same of bytes 64-127
      KVQ_UNROLL for (int h = 0; h < 2; ++h) {
        const __m512i v = _mm512_loadu_si512(blk->qs + 64 * h);
        codes[2 * h] = _mm512_and_si512(v, low4);
        codes[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      }
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const __m512 f = _mm512_mul_ps(scales_mins, _mm512_mul_ps(d_dmin, _mm512_loadu_ps(dx_sums[t] + 16 * b)));
        acc[r][t] = _mm512_mask_sub_ps(acc[r][t], 0xFF00, acc[r][t], f);
        const int8_t* x = pairs[t] + kQK_K * b;
        KVQ_UNROLL for (int k = 0; k < 4; ++k) {
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[k], _mm512_loadu_si512(x + 64 * k));
          acc[r][t] = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll16, dot),
                                      _mm512_maskz_permutexvar_ps(kAll16, c.pick[k], f), acc[r][t]);
        }
      }
    }
  }
  KVQ_UNROLL for (int t = 0; t < T; ++t) {
    KVQ_UNROLL for (int r = 0; r < R; ++r) out[t * out_stride + r] = HorizontalSum(acc[r][t]);
  }
}

// q6_K for T tokens (see GemvRowsQ4_KTokens). a: all tokens, [n_tokens, n_in] as QuantizedActs lays out.
template <int R, int T>
KVQ_GEMV_TARGET void GemvRowsQ6_KTokens(const uint8_t* const (&rows)[8], const matmul_detail::QuantizedActs& a,
                                        int64_t t0, float* out, int64_t out_stride) {
  const int64_t n_in = a.n_in, nb = n_in / kQK_K;
  const Q6KConsts c;
  __m512 acc[R][T];
  KVQ_UNROLL for (int r = 0; r < R; ++r) { KVQ_UNROLL for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps(); }
  for (int64_t b = 0; b < nb; ++b) {
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + sizeof(BlockQ6_K) * size_t(b);
      PrefetchAhead<4>(block);
      const auto* blk = reinterpret_cast<const BlockQ6_K*>(block);
      const __m512 scales = _mm512_maskz_cvtepi32_ps(
          kAll16, _mm512_maskz_cvtepi8_epi32(kAll16, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales))));
      __m512i codes[4];
      __m512 group_scale[4];
      KVQ_UNROLL for (int h = 0; h < 2; ++h) UnpackQ6KHalf(blk, h, c, codes + 2 * h);
      KVQ_UNROLL for (int k = 0; k < 4; ++k) {
        group_scale[k] = _mm512_maskz_permutexvar_ps(kAll16, _mm512_load_si512(c.group_idx[k]), scales);
      }
      const __m512 d = _mm512_set1_ps(_cvtsh_ss(blk->d));
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const int64_t token = t0 + t;
        const int8_t* q = a.q + token * n_in + kQK_K * b;
        const float* dx = a.scale + token * n_in / 4 + 64 * b;
        const __m512 neg32_sums =
            _mm512_mul_ps(_mm512_loadu_ps(a.sum16 + token * n_in / 16 + 16 * b), _mm512_set1_ps(-32.0f));
        __m512 sum = _mm512_mul_ps(scales, neg32_sums);
        KVQ_UNROLL for (int k = 0; k < 4; ++k) {
          const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes[k], _mm512_loadu_si512(q + 64 * k));
          const __m512 lane_scale = _mm512_mul_ps(group_scale[k], _mm512_loadu_ps(dx + 16 * k));
          sum = _mm512_fmadd_ps(_mm512_maskz_cvtepi32_ps(kAll16, dot), lane_scale, sum);
        }
        acc[r][t] = _mm512_fmadd_ps(sum, d, acc[r][t]);
      }
    }
  }
  KVQ_UNROLL for (int t = 0; t < T; ++t) {
    KVQ_UNROLL for (int r = 0; r < R; ++r) out[t * out_stride + r] = HorizontalSum(acc[r][t]);
  }
}

#else
// AVX2 / AVX-512 without VNNI (same arguments): 32 bytes of nibbles per step = sub-blocks 2g (low) and
// 2g + 1 (high), each dotted with its 32 activation codes (maddubs; pairs of 15 x 127 fit int16) and scaled
// by d x scale_k x dx_k broadcast from 8 products. Activations stay in L1 and are read as memory operands:
// AVX2 has 16 vector registers.
template <int R>
KVQ_GEMV_TARGET void GemvRowsQ4_K(const uint8_t* const (&rows)[8], const matmul_detail::QuantizedActs& a,
                                  const float* dx_sums, const Q4KConsts& c, float* out) {
  const int64_t nb = a.n_in / kQK_K;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc[R];
  KVQ_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.q + kQK_K * b;
    const __m256 dx8 = _mm256_loadu_ps(dx_sums + 16 * b);
    const __m256 sums8 = _mm256_loadu_ps(dx_sums + 16 * b + 8);
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + sizeof(BlockQ4_K) * size_t(b);
      PrefetchAhead<3>(block);
      const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
      const __m128 d_dmin = _mm_cvtph_ps(head);
      const __m128i scales_mins = Q4KScalesMins(head, c);
      const __m256 f8 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(scales_mins)),
                                      _mm256_mul_ps(_mm256_broadcastss_ps(d_dmin), dx8));
      const __m256 min8 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(scales_mins, 8))),
                                        _mm256_mul_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d_dmin)), sums8));
      acc[r] = _mm256_sub_ps(acc[r], min8);
      const uint8_t* qs = reinterpret_cast<const BlockQ4_K*>(block)->qs;
      KVQ_UNROLL for (int g = 0; g < 4; ++g) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * g));
        const __m256i x_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * g));
        const __m256i x_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 64 * g + 32));
        const __m256i dot_lo = DotU8S8(_mm256_and_si256(v, low4), x_lo);
        const __m256i dot_hi = DotU8S8(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), x_hi);
        acc[r] =
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_lo), _mm256_permutevar8x32_ps(f8, _mm256_set1_epi32(2 * g)), acc[r]);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_hi), _mm256_permutevar8x32_ps(f8, _mm256_set1_epi32(2 * g + 1)),
                                 acc[r]);
      }
    }
  }
  KVQ_UNROLL for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]);
}

// Batched decode of q4_K on AVX2 / AVX-512 without VNNI: the kernel above for T tokens of one row, each
// block's scales and nibbles unpacked once; per token the operations of the one-token kernel in its order,
// so results are bit-identical to decoding each token alone. q[t], dx_sums[t]: token t's codes in their
// natural order and its GemvAllRowsK-style scales. out: [T][out_stride].
template <int R, int T>
KVQ_GEMV_TARGET void GemvRowsQ4_KTokens(const uint8_t* const (&rows)[8], int64_t nb, const int8_t* const (&q)[T],
                                        const float* const (&dx_sums)[T], const Q4KConsts& c, float* out,
                                        int64_t out_stride) {
  static_assert(R == 1, "one row per pass: 16 vector registers hold T accumulators and T scale vectors");
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc[T];
  KVQ_UNROLL for (int t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* block = rows[0] + sizeof(BlockQ4_K) * size_t(b);
    PrefetchAhead<3>(block);
    const __m128i head = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block));
    const __m128 d_dmin = _mm_cvtph_ps(head);
    const __m128i scales_mins = Q4KScalesMins(head, c);
    const __m256 scales = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(scales_mins));
    const __m256 mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(scales_mins, 8)));
    const __m256 d = _mm256_broadcastss_ps(d_dmin), dmin = _mm256_broadcastss_ps(_mm_movehdup_ps(d_dmin));
    __m256 f8[T];
    KVQ_UNROLL for (int t = 0; t < T; ++t) {
      f8[t] = _mm256_mul_ps(scales, _mm256_mul_ps(d, _mm256_loadu_ps(dx_sums[t] + 16 * b)));
      const __m256 min8 = _mm256_mul_ps(mins, _mm256_mul_ps(dmin, _mm256_loadu_ps(dx_sums[t] + 16 * b + 8)));
      acc[t] = _mm256_sub_ps(acc[t], min8);
    }
    const uint8_t* qs = reinterpret_cast<const BlockQ4_K*>(block)->qs;
    KVQ_UNROLL for (int g = 0; g < 4; ++g) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * g));
      const __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      KVQ_UNROLL for (int t = 0; t < T; ++t) {
        const int8_t* x = q[t] + kQK_K * b + 64 * g;
        const __m256i dot_lo = DotU8S8(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
        const __m256i dot_hi = DotU8S8(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32)));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_lo), _mm256_permutevar8x32_ps(f8[t], _mm256_set1_epi32(2 * g)),
                                 acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_hi),
                                 _mm256_permutevar8x32_ps(f8[t], _mm256_set1_epi32(2 * g + 1)), acc[t]);
      }
    }
  }
  KVQ_UNROLL for (int t = 0; t < T; ++t) out[t * out_stride] = HorizontalSum(acc[t]);
}

// q6_K on AVX2 / AVX-512 without VNNI: each half block (128 values) is 32 bytes of ql twice and 32 of qh;
// codes of values 32j .. 32j + 31 are a nibble of ql | a bit pair of qh << 4 (0..63, unsigned for maddubs:
// pairs of 63 x 127 fit int16), dotted with their 32 activation codes. Lane scale: the 16-value group's
// scale (vpermps from 8) x the activation scale of its 4 values; the offset of 32 as in GemvRowsQ6_K.
// TinyLlama-shaped q6_K projections, AVX2 target forced on Zen 5 (`KVQ_BENCH_TARGET=avx2 matmul_bench
// --benchmark_filter=tinyllama_projections/tg1/q6_K`, 2 threads): 17.7 GB/s, against 11.4 through the
// panel path before (q4_K's kernel above: 27.8).
template <int R>
KVQ_GEMV_TARGET void GemvRowsQ6_K(const uint8_t* const (&rows)[8], const matmul_detail::QuantizedActs& a, float* out) {
  const int64_t nb = a.n_in / kQK_K;
  const __m256i low4 = _mm256_set1_epi8(0x0F), pair = _mm256_set1_epi8(0x03);
  __m256 acc[R];
  KVQ_UNROLL for (int r = 0; r < R; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const int8_t* q = a.q + kQK_K * b;
    const float* dx = a.scale + 64 * b;  // activation scale per 4 values
    const __m256 neg32 = _mm256_set1_ps(-32.0f);
    const __m256 sums_lo = _mm256_mul_ps(_mm256_loadu_ps(a.sum16 + 16 * b), neg32);
    const __m256 sums_hi = _mm256_mul_ps(_mm256_loadu_ps(a.sum16 + 16 * b + 8), neg32);
    KVQ_UNROLL for (int r = 0; r < R; ++r) {
      const uint8_t* block = rows[r] + sizeof(BlockQ6_K) * size_t(b);
      PrefetchAhead<4>(block);
      const auto* blk = reinterpret_cast<const BlockQ6_K*>(block);
      const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->scales));
      const __m256 scales[2] = {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)),
                                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8)))};
      __m256 sum = _mm256_fmadd_ps(scales[1], sums_hi, _mm256_mul_ps(scales[0], sums_lo));
      KVQ_UNROLL for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk->qh + 32 * h));
        const __m256i codes[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, pair), 4)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), pair), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), pair), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), pair), 4))};
        KVQ_UNROLL for (int j = 0; j < 4; ++j) {
          const int chunk = 4 * h + j;  // values 32 chunk .. 32 chunk + 31: groups 2 chunk, 2 chunk + 1
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 32 * chunk));
          const __m256i dot = DotU8S8(codes[j], x);
          const __m256i group = _mm256_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1, 2 * j + 1, 2 * j + 1,
                                                  2 * j + 1);  // within this half's 8 scales
          const __m256 lane_scale =
              _mm256_mul_ps(_mm256_permutevar8x32_ps(scales[h], group), _mm256_loadu_ps(dx + 8 * chunk));
          sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), lane_scale, sum);
        }
      }
      acc[r] = _mm256_fmadd_ps(sum, _mm256_set1_ps(_cvtsh_ss(blk->d)), acc[r]);
    }
  }
  KVQ_UNROLL for (int r = 0; r < R; ++r) out[r] = HorizontalSum(acc[r]);
}
#endif

// Rows [r0, r1) of a q4_K or q6_K matrix: on AVX-512 VNNI 8 rows per pass (more streams in flight: +5%
// over 4 rows for q4_K on `matmul_bench --benchmark_filter=tinyllama_projections/tg1/q4_K`, 2 threads; 12
// or 16 rows were no faster), then 4, then 1; elsewhere 4, then 1.
template <GgmlType kType>
void GemvAllRowsK(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t r0, int64_t r1, float* y) {
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  const int64_t n_sub = a.n_in / kQK;
  thread_local std::vector<float> dx_sums;  // q4_K: [n_in / 256][16]: dx of each 32 values, then dx x code sum
  Q4KConsts consts;
  if constexpr (kType == GgmlType::Q4_K) {
    dx_sums.resize(size_t(2 * n_sub));
    for (int64_t k = 0; k < n_sub; ++k) {
      dx_sums[size_t(16 * (k / 8) + k % 8)] = a.scale[kQK / 4 * k];
      dx_sums[size_t(16 * (k / 8) + 8 + k % 8)] = a.sum16[2 * k] + a.sum16[2 * k + 1];
    }
    consts = MakeQ4KConsts();
  }
  const auto run = [&](auto n_rows, int64_t at) {
    constexpr int kRows = decltype(n_rows)::value;
    const uint8_t* rows[8];
    for (int j = 0; j < 8; ++j) rows[j] = w.data + size_t(at + (j < kRows ? j : 0)) * w_row_bytes;
    if constexpr (kType == GgmlType::Q4_K) {
      GemvRowsQ4_K<kRows>(rows, a, dx_sums.data(), consts, y + at);
    } else {
      GemvRowsQ6_K<kRows>(rows, a, y + at);
    }
  };
  int64_t r = r0;
#if HWY_TARGET == HWY_AVX3_DL
  for (; r + 8 <= r1; r += 8) run(std::integral_constant<int, 8>(), r);
#endif
  for (; r + 4 <= r1; r += 4) run(std::integral_constant<int, 4>(), r);
  for (; r < r1; ++r) run(std::integral_constant<int, 1>(), r);
}

// Rows [r0, r1) of a q4_K or q6_K (AVX-512 VNNI only) matrix for 2-8 tokens: 2 rows per pass on AVX-512
// VNNI (2 x 4 token accumulators), 1 on AVX2; the tokens in groups of up to 4 over the same rows (the
// second group finds them in L1). q4_K reads matmul_detail::make_q4k_pairs' layout.
template <GgmlType kType>
void GemvAllRowsKTokens(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t n_tokens, int64_t r0,
                        int64_t r1, float* y) {
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  const int64_t n_in = a.n_in, nb = n_in / kQK_K;
  Q4KConsts consts;
  if constexpr (kType == GgmlType::Q4_K) consts = MakeQ4KConsts();
  const auto run = [&](auto n_rows, auto n_tokens_here, int64_t at, int64_t t0) {
    constexpr int kRows = decltype(n_rows)::value, kTokens = decltype(n_tokens_here)::value;
    const uint8_t* rows[8];
    for (int j = 0; j < 8; ++j) rows[j] = w.data + size_t(at + (j < kRows ? j : 0)) * w_row_bytes;
    float* out = y + t0 * w.n_out + at;
    if constexpr (kType == GgmlType::Q4_K) {
      const int8_t* token_pairs[kTokens];
      const float* token_dx[kTokens];
      for (int t = 0; t < kTokens; ++t) {
#if HWY_TARGET == HWY_AVX3_DL
        token_pairs[t] = a.q4k_pairs + (t0 + t) * n_in;
#else
        token_pairs[t] = a.q + (t0 + t) * n_in;  // the 256-bit kernel reads codes in their own order
#endif
        token_dx[t] = a.q4k_dx_sums + (t0 + t) * n_in / 16;
      }
      GemvRowsQ4_KTokens<kRows, kTokens>(rows, nb, token_pairs, token_dx, consts, out, w.n_out);
    } else {
#if HWY_TARGET == HWY_AVX3_DL
      GemvRowsQ6_KTokens<kRows, kTokens>(rows, a, t0, out, w.n_out);
#endif
    }
  };
  const auto all_tokens = [&](auto n_rows, int64_t at) {
    int64_t t0 = 0;
    for (; t0 + 4 <= n_tokens; t0 += 4) run(n_rows, std::integral_constant<int, 4>(), at, t0);
    switch (n_tokens - t0) {
      case 3:
        return run(n_rows, std::integral_constant<int, 3>(), at, t0);
      case 2:
        return run(n_rows, std::integral_constant<int, 2>(), at, t0);
      case 1:
        return run(n_rows, std::integral_constant<int, 1>(), at, t0);
      default:
        return;
    }
  };
  int64_t r = r0;
#if HWY_TARGET == HWY_AVX3_DL
  for (; r + 2 <= r1; r += 2) all_tokens(std::integral_constant<int, 2>(), r);
#endif
  for (; r < r1; ++r) all_tokens(std::integral_constant<int, 1>(), r);
}
