// Fused decode kernels for NEON with the dot product (ARM CPUs with FEAT_DotProd): q4_0, q8_0, q4_K and q6_K
// weights, 4 rows at a time, each block unpacked in registers and dotted with the token's 8-bit activations
// by `sdot`, with no panel round trip: ~16 (q4_0) / ~13 (q8_0) instructions per 32 weights and row in GCC
// 12's code, against ~28 for decode-to-panel + the panel's sdot kernel (docs/platforms.md; there is no ARM
// machine here to time either). Included by matmul_gemv-inl.h inside its HWY_NAMESPACE for the NEON target
// only (after kernels/arm_dotprod.h); FusedGemvTokens checks cpu_has_arm_dotprod().
//
// The k-quants keep their scales in integers where the activations' 32-value blocks allow: q4_K sums a
// sub-block (32 values, one 6-bit scale and min) in two `sdot`s and takes d * scale * x_scale in f32, its
// min term from the activations' precomputed sums; q6_K (scales per 16 values) multiplies each 16-value
// `sdot` by its int8 scale in int32 before the 32-block's f32 rescale, with the codes made signed (q - 32).

// Rows [r, r + kRows) of y = W a for one token (the unused row slots of a short tail repeat the last row).
// One super-block (256 values) of a q4_K or q6_K row against the token's activations from value 256 * i:
// acc (4 lanes summed later) += the block's dot; q4_K's min term goes to *min_sum (subtracted at the end).
template <GgmlType kType>
KVQ_TARGET_DOTPROD HWY_INLINE void DotSuperBlockNeon(const uint8_t* block, const matmul_detail::QuantizedActs& a,
                                                     int64_t i, float32x4_t* acc, float* min_sum) {
  const int8_t* x = a.q + kQK_K * i;
  const float* x_scale = a.scale + kQK_K / 4 * i;  // once per 4 values: the 32-block's is x_scale[8 * sub]
  if constexpr (kType == GgmlType::Q4_K) {
    const auto& b = *reinterpret_cast<const BlockQ4_K*>(block);
    __fp16 d, dmin;
    std::memcpy(&d, &b.d, sizeof d);
    std::memcpy(&dmin, &b.dmin, sizeof dmin);
    const float* sum16 = a.sum16 + kQK_K / 16 * i;
    int sc[8], m[8];  // the 6-bit scales and mins of the 8 sub-blocks (matmul_decode::ScaleMinK4, inlined)
    KVQ_UNROLL for (int j = 0; j < 4; ++j) {
      sc[j] = b.scales[j] & 63, m[j] = b.scales[j + 4] & 63;
      sc[j + 4] = (b.scales[j + 8] & 0x0F) | ((b.scales[j] >> 6) << 4);
      m[j + 4] = (b.scales[j + 8] >> 4) | ((b.scales[j + 4] >> 6) << 4);
    }
    float mins = 0.0f;
    KVQ_UNROLL for (int g = 0; g < 4; ++g) {  // qs[32 g ..]: sub-block 2g in the low nibbles, 2g + 1 in the high
      const uint8x16_t q0 = vld1q_u8(b.qs + 32 * g), q1 = vld1q_u8(b.qs + 32 * g + 16);
      const int8x16_t lo[2] = {vreinterpretq_s8_u8(vandq_u8(q0, vdupq_n_u8(0x0F))),
                               vreinterpretq_s8_u8(vandq_u8(q1, vdupq_n_u8(0x0F)))};
      const int8x16_t hi[2] = {vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vreinterpretq_s8_u8(vshrq_n_u8(q1, 4))};
      KVQ_UNROLL for (int half = 0; half < 2; ++half) {
        const int sub = 2 * g + half;
        const int8x16_t* w = half == 0 ? lo : hi;
        const int32x4_t dot =
            vdotq_s32(vdotq_s32(vdupq_n_s32(0), w[0], vld1q_s8(x + 32 * sub)), w[1], vld1q_s8(x + 32 * sub + 16));
        *acc = vfmaq_n_f32(*acc, vcvtq_f32_s32(dot), float(d) * float(sc[sub]) * x_scale[8 * sub]);
        mins += float(m[sub]) * (sum16[2 * sub] + sum16[2 * sub + 1]);
      }
    }
    *min_sum += float(dmin) * mins;
  } else {  // q6_K: value l of half h = (ql low/high nibble | 2 bits of qh) - 32, scale per 16 values
    const auto& b = *reinterpret_cast<const BlockQ6_K*>(block);
    __fp16 d;
    std::memcpy(&d, &b.d, sizeof d);
    KVQ_UNROLL for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      KVQ_UNROLL for (int part = 0; part < 2; ++part) {  // l = 16 part .. 16 part + 15 of each of the 4 quarters
        const uint8x16_t l0 = vld1q_u8(ql + 16 * part), l1 = vld1q_u8(ql + 32 + 16 * part);
        const uint8x16_t hb = vld1q_u8(qh + 16 * part), three = vdupq_n_u8(3);
        const uint8x16_t codes[4] = {
            vorrq_u8(vandq_u8(l0, vdupq_n_u8(0x0F)), vshlq_n_u8(vandq_u8(hb, three), 4)),
            vorrq_u8(vandq_u8(l1, vdupq_n_u8(0x0F)), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 2), three), 4)),
            vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(hb, 4), three), 4)),
            vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(hb, 6), 4)),
        };
        KVQ_UNROLL for (int quarter = 0; quarter < 4; ++quarter) {  // values 128 h + 32 quarter + 16 part + (0..15)
          const int first = 128 * h + 32 * quarter + 16 * part;
          const int8x16_t w = vsubq_s8(vreinterpretq_s8_u8(codes[quarter]), vdupq_n_s8(32));
          const int32x4_t dot = vmulq_n_s32(vdotq_s32(vdupq_n_s32(0), w, vld1q_s8(x + first)), b.scales[first / 16]);
          *acc = vfmaq_n_f32(*acc, vcvtq_f32_s32(dot), float(d) * x_scale[first / 4]);
        }
      }
    }
  }
}

template <GgmlType kType, int kRows>
KVQ_TARGET_DOTPROD void GemvRowsNeonDot(const uint8_t* const (&rows)[4], const matmul_detail::QuantizedActs& a,
                                        float (&out)[4]) {
  if constexpr (kType == GgmlType::Q4_K || kType == GgmlType::Q6_K) {
    constexpr size_t kBlockBytes = kType == GgmlType::Q4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ6_K);
    // One row at a time: a super-block's unpacking already fills the registers (4 rows at once spilled).
    for (int j = 0; j < kRows; ++j) {
      float32x4_t row_acc = vdupq_n_f32(0.0f);
      float min_sum = 0.0f;
      for (int64_t i = 0; i < a.n_in / kQK_K; ++i) {
        DotSuperBlockNeon<kType>(rows[j] + size_t(i) * kBlockBytes, a, i, &row_acc, &min_sum);
      }
      out[j] = vaddvq_f32(row_acc) - min_sum;
    }
    return;
  }
  constexpr size_t kBlockBytes = kType == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0);
  float32x4_t acc[kRows];
  KVQ_UNROLL for (int j = 0; j < kRows; ++j) acc[j] = vdupq_n_f32(0.0f);
  const int64_t n_blocks = a.n_in / kQK;
  for (int64_t b = 0; b < n_blocks; ++b) {
    const int8x16_t x0 = vld1q_s8(a.q + kQK * b), x1 = vld1q_s8(a.q + kQK * b + 16);
    const float x_scale = a.scale[kQK / 4 * b];  // the 32-block's activation scale (repeated per 4 values)
    KVQ_UNROLL for (int j = 0; j < kRows; ++j) {
      const uint8_t* block = rows[j] + size_t(b) * kBlockBytes;
      __fp16 d;  // the block's f16 scale
      std::memcpy(&d, block, sizeof(d));
      int8x16_t w0, w1;
      if constexpr (kType == GgmlType::Q4_0) {  // values j and j + 16 in the low and high nibbles of byte j
        const uint8x16_t qs = vld1q_u8(block + 2);
        w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(qs, vdupq_n_u8(0x0F))), vdupq_n_s8(8));
        w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(qs, 4)), vdupq_n_s8(8));
      } else {
        w0 = vld1q_s8(reinterpret_cast<const int8_t*>(block + 2));
        w1 = vld1q_s8(reinterpret_cast<const int8_t*>(block + 18));
      }
      const int32x4_t dot = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
      acc[j] = vfmaq_n_f32(acc[j], vcvtq_f32_s32(dot), float(d) * x_scale);
    }
  }
  KVQ_UNROLL for (int j = 0; j < kRows; ++j) out[j] = vaddvq_f32(acc[j]);
}

template <GgmlType kType>
void GemvAllRowsNeonDot(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t r0, int64_t r1,
                        float* y) {
  const size_t w_row_bytes = row_bytes(w.type, w.n_in);
  const auto run = [&](auto n_rows, int64_t at) {
    constexpr int kRows = decltype(n_rows)::value;
    const uint8_t* rows[4];
    for (int j = 0; j < 4; ++j) rows[j] = w.data + size_t(at + (j < kRows ? j : 0)) * w_row_bytes;
    float out[4];
    GemvRowsNeonDot<kType, kRows>(rows, a, out);
    for (int j = 0; j < kRows; ++j) y[at + j] = out[j];
  };
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) run(std::integral_constant<int, 4>(), r);
  for (; r < r1; ++r) run(std::integral_constant<int, 1>(), r);
}

// n_tokens in [1, kMaxGemvTokens]: each token runs the one-token kernel on the same rows, which the first
// token has brought into cache (as x86's q4_0 / q8_0 kernels do). False for other types or CPUs.
inline bool FusedGemvTokens(const WeightMatrix& w, const matmul_detail::QuantizedActs& a, int64_t n_tokens, int64_t r0,
                            int64_t r1, float* y) {
  static const bool dotprod = cpu_has_arm_dotprod();
  const auto run = [&](auto type_tag) {
    constexpr GgmlType kType = decltype(type_tag)::value;
    const int64_t n_in = a.n_in;
    for (int64_t t = 0; t < n_tokens; ++t) {
      const matmul_detail::QuantizedActs one{a.q + t * n_in, a.scale + t * n_in / 4, a.sum16 + t * n_in / 16, n_in};
      GemvAllRowsNeonDot<kType>(w, one, r0, r1, y + t * w.n_out);
    }
    return true;
  };
  if (!dotprod) return false;
  switch (w.type) {
    case GgmlType::Q4_0:
      return run(std::integral_constant<GgmlType, GgmlType::Q4_0>());
    case GgmlType::Q8_0:
      return run(std::integral_constant<GgmlType, GgmlType::Q8_0>());
    case GgmlType::Q4_K:
      return run(std::integral_constant<GgmlType, GgmlType::Q4_K>());
    case GgmlType::Q6_K:
      return run(std::integral_constant<GgmlType, GgmlType::Q6_K>());
    default:
      return false;
  }
}
