// Prompt GEMM on NEON with the int8 matrix multiply (FEAT_I8MM: Apple M2 and later, Graviton 3 and later).
// `smmla` multiplies a 2 x 8 block of int8 by an 8 x 2 one into a 2 x 2 int32 tile: 32 products per
// instruction against sdot's 16, so two weight rows meet two tokens at once. A fragment of matmul_int.cpp,
// included inside its HWY_NAMESPACE for the NEON target only (after PanelIn, ActsIn and DotMicroKernel);
// MatmulInt8Rows runs it for prompts (more than kMaxGemvTokens tokens) where cpu_has_arm_i8mm(), on tiles of
// 2-4 tokens (a last single token takes DotMicroKernel).
//
// It reads the 4-row panel every weight type decodes to, laid out again once per chunk as two row pairs whose
// 8-code runs alternate (smmla's first operand); the tokens' codes are zipped in pairs in registers. Panel
// codes are valid s8 (unsigned ones are <= 63, 8-bit types decode signed). A row's scale is constant over
// matmul_detail::panel_scale_span(type) values (a whole 32-value block or sub-block, or 16 values),
// so a span sums in int32 and is rescaled once per (row, token): per 32 values and 4 rows x 4 tokens, 16
// smmla in a 74-instruction loop against sdot's 226 (docs/platforms.md).

// The panel's two row pairs in smmla's order.
struct MmlaPanel {
  alignas(16) int8_t q[2][2 * kIntChunk];      // [row pair][len / 8][2 rows][8 codes]
  alignas(16) float sc[2][kIntChunk / 16][4];  // [row pair][16-value group]: scale of row 0, row 0, row 1, row 1
  alignas(16) float mn[2][kIntChunk / 16][4];  // the same for the mins
};

inline void LayOutMmlaPanel(const PanelIn& p, MmlaPanel& out) {
  for (int rp = 0; rp < 2; ++rp) {
    const int r0 = 2 * rp, r1 = 2 * rp + 1;
    for (int64_t k = 0; k < p.len; k += 8) {
      std::memcpy(out.q[rp] + 2 * k, p.q + r0 * kIntChunk + k, 8);
      std::memcpy(out.q[rp] + 2 * k + 8, p.q + r1 * kIntChunk + k, 8);
    }
    for (int64_t g = 0; g < p.len / 16; ++g) {
      const float s0 = p.sc[r0 * kScStride + 4 * g], s1 = p.sc[r1 * kScStride + 4 * g];
      const float m0 = p.mn[r0 * kMnStride + g], m1 = p.mn[r1 * kMnStride + g];
      const float sc[4] = {s0, s0, s1, s1}, mn[4] = {m0, m0, m1, m1};
      std::memcpy(out.sc[rp][g], sc, sizeof sc);
      std::memcpy(out.mn[rp][g], mn, sizeof mn);
    }
  }
}

// {v(t0), v(t1), v(t0), v(t1)}: a token pair's scales in the lanes of its 2 x 2 tiles.
KVQ_TARGET_I8MM HWY_INLINE float32x4_t TokenPairLanes(float t0, float t1) {
  return vtrn1q_f32(vdupq_n_f32(t0), vdupq_n_f32(t1));
}

// out[r][t] for the 4 panel rows and tokens t < nt (2..4; kPairs = ceil(nt / 2), an odd last token is
// computed twice). Each accumulator's lanes are (row 2rp, token 2tp), (2rp, 2tp + 1), (2rp + 1, 2tp),
// (2rp + 1, 2tp + 1): smmla's 2 x 2 tile.
template <int kPairs, int kSpan>
KVQ_TARGET_I8MM void MmlaMicroKernel(const MmlaPanel& p, int64_t len, const ActsIn& a, int nt, bool has_min,
                                     float (&out)[kPanelRows][4]) {
  const int8_t* x[2 * kPairs];
  const float* sx[2 * kPairs];
  const float* s16[2 * kPairs];
  for (int t = 0; t < 2 * kPairs; ++t) {
    const int src = t < nt ? t : nt - 1;
    x[t] = a.q[src], sx[t] = a.sc[src], s16[t] = a.s16[src];
  }
  float32x4_t acc[2][kPairs];
  KVQ_UNROLL for (int rp = 0; rp < 2; ++rp) {
    KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) acc[rp][tp] = vdupq_n_f32(0.0f);
  }
  for (int64_t k = 0; k < len; k += kSpan) {
    int32x4_t dot[2][kPairs];
    KVQ_UNROLL for (int rp = 0; rp < 2; ++rp) {
      KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) dot[rp][tp] = vdupq_n_s32(0);
    }
    KVQ_UNROLL for (int h = 0; h < kSpan; h += 16) {
      int8x16_t xs[kPairs][2];  // values k + h .. + 7 of tokens 2tp, 2tp + 1; then values + 8 .. + 15
      KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) {
        const int64x2_t u = vreinterpretq_s64_s8(vld1q_s8(x[2 * tp] + k + h));
        const int64x2_t v = vreinterpretq_s64_s8(vld1q_s8(x[2 * tp + 1] + k + h));
        xs[tp][0] = vreinterpretq_s8_s64(vzip1q_s64(u, v));
        xs[tp][1] = vreinterpretq_s8_s64(vzip2q_s64(u, v));
      }
      KVQ_UNROLL for (int rp = 0; rp < 2; ++rp) {
        const int8x16_t w0 = vld1q_s8(p.q[rp] + 2 * (k + h)), w1 = vld1q_s8(p.q[rp] + 2 * (k + h) + 16);
        KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) {
          dot[rp][tp] = vmmlaq_s32(vmmlaq_s32(dot[rp][tp], w0, xs[tp][0]), w1, xs[tp][1]);
        }
      }
    }
    KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) {
      const float32x4_t sxv = TokenPairLanes(sx[2 * tp][k / 4], sx[2 * tp + 1][k / 4]);
      KVQ_UNROLL for (int rp = 0; rp < 2; ++rp) {
        const float32x4_t scale = vmulq_f32(vld1q_f32(p.sc[rp][k / 16]), sxv);
        acc[rp][tp] = vfmaq_f32(acc[rp][tp], vcvtq_f32_s32(dot[rp][tp]), scale);
      }
    }
  }
  if (has_min) {
    for (int64_t g = 0; g < len / 16; ++g) {
      KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) {
        const float32x4_t s = TokenPairLanes(s16[2 * tp][g], s16[2 * tp + 1][g]);
        KVQ_UNROLL for (int rp = 0; rp < 2; ++rp) acc[rp][tp] = vfmsq_f32(acc[rp][tp], vld1q_f32(p.mn[rp][g]), s);
      }
    }
  }
  KVQ_UNROLL for (int rp = 0; rp < 2; ++rp) {
    KVQ_UNROLL for (int tp = 0; tp < kPairs; ++tp) {
      float lanes[4];
      vst1q_f32(lanes, acc[rp][tp]);
      out[2 * rp][2 * tp] = lanes[0], out[2 * rp][2 * tp + 1] = lanes[1];
      out[2 * rp + 1][2 * tp] = lanes[2], out[2 * rp + 1][2 * tp + 1] = lanes[3];
    }
  }
}

// A tile of nt in [2, 4] tokens over the laid-out panel of a weight type.
inline void RunMmlaTile(GgmlType type, int nt, const MmlaPanel& p, int64_t len, const ActsIn& a, bool has_min,
                        float (&out)[kPanelRows][4]) {
  const bool span32 = matmul_detail::panel_scale_span(type) == 32;
  if (nt == 2) {
    return span32 ? MmlaMicroKernel<1, 32>(p, len, a, nt, has_min, out)
                  : MmlaMicroKernel<1, 16>(p, len, a, nt, has_min, out);
  }
  return span32 ? MmlaMicroKernel<2, 32>(p, len, a, nt, has_min, out)
                : MmlaMicroKernel<2, 16>(p, len, a, nt, has_min, out);
}
