// Fused decode kernels for NEON with the dot product (ARM CPUs with FEAT_DotProd): q4_0 and q8_0 weights,
// 4 rows at a time, each block unpacked in registers and dotted with the token's 8-bit activations by two
// `sdot`s, with no panel round trip: ~16 (q4_0) / ~13 (q8_0) instructions per 32 weights and row in GCC 12's
// code, against ~28 for decode-to-panel + the panel's sdot kernel (docs/platforms.md; there is no ARM
// machine here to time either). Included by matmul_gemv-inl.h inside its HWY_NAMESPACE for the NEON target
// only (after kernels/arm_dotprod.h); FusedGemvTokens checks cpu_has_arm_dotprod().

// Rows [r, r + kRows) of y = W a for one token (the unused row slots of a short tail repeat the last row).
template <GgmlType kType, int kRows>
KVQ_TARGET_DOTPROD void GemvRowsNeonDot(const uint8_t* const (&rows)[4], const matmul_detail::QuantizedActs& a,
                                        float (&out)[4]) {
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
  if (!dotprod || (w.type != GgmlType::Q4_0 && w.type != GgmlType::Q8_0)) return false;
  const int64_t n_in = a.n_in;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const matmul_detail::QuantizedActs one{a.q + t * n_in, a.scale + t * n_in / 4, a.sum16 + t * n_in / 16, n_in};
    if (w.type == GgmlType::Q4_0) {
      GemvAllRowsNeonDot<GgmlType::Q4_0>(w, one, r0, r1, y + t * w.n_out);
    } else {
      GemvAllRowsNeonDot<GgmlType::Q8_0>(w, one, r0, r1, y + t * w.n_out);
    }
  }
  return true;
}
