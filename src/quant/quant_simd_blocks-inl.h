// Per-target kernels for the 32-value block formats; included by quant_simd.cpp inside
// namespace kvq::HWY_NAMESPACE once per Highway target (hence no include guard), after the
// DF/DI/... tags. Every formula mirrors quant_ref.cpp operation for operation; see there for the
// ggml semantics.

// The iq4_nl codebook as floats, for gathers.
HWY_ALIGN static constexpr float kIq4nlFloat[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                    1,    13,   25,  38,  53,  69,  89,  113};

// Codes of values j.. (low nibbles of qs[j..]) and j + 16.. (high nibbles), as i32 lanes.
HWY_INLINE void LoadNibbles(const uint8_t* qs, size_t j, VI* lo, VI* hi) {
  const VI bytes = hn::PromoteTo(DI(), hn::LoadU(DU8(), qs + j));
  *lo = hn::And(bytes, hn::Set(DI(), 0x0F));
  *hi = hn::ShiftRight<4>(bytes);
}

// Bit 4 of the 5-bit codes of values first_bit.. (stored as bits first_bit.. of qh), as 0 or 16.
HWY_INLINE VI HighBits(uint32_t qh, size_t first_bit) {
  const DU du;
  const VU bit = hn::And(hn::Shr(hn::Set(du, qh), hn::Iota(du, uint32_t(first_bit))), hn::Set(du, 1));
  return hn::BitCast(DI(), hn::ShiftLeft<4>(bit));
}

// Packs codes (low nibble of each) of values j.. and j + 16.. into qs[j..].
HWY_INLINE void StoreNibbles(VI lo, VI hi, uint8_t* qs_j) {
  const DI di;
  const VI packed = hn::Or(hn::And(lo, hn::Set(di, 0x0F)), hn::ShiftLeft<4>(hn::And(hi, hn::Set(di, 0x0F))));
  hn::StoreU(hn::DemoteTo(DU8(), packed), DU8(), qs_j);
}

// The qh bits (bit 4 of each code) of values first_bit.., placed at bit positions first_bit...
HWY_INLINE uint32_t HighBitsMask(VI codes, size_t first_bit) {
  const DU du;
  const VU bit = hn::And(hn::ShiftRight<4>(hn::BitCast(du, codes)), hn::Set(du, 1));
  return hn::GetLane(hn::SumOfLanes(du, bit << hn::Iota(du, uint32_t(first_bit))));  // distinct bits: sum = or
}

// truncate_code: trunc(v) clamped to [0, hi], NaN -> 0.
HWY_INLINE VI TruncCode(VF v, float hi) {
  const DF df;
  const VF clamped = hn::IfThenElseZero(hn::Ge(v, hn::Zero(df)), hn::Min(v, hn::Set(df, hi)));
  return hn::ConvertTo(DI(), clamped);  // truncates toward zero
}

// round_code: round half away from zero (roundf), clamped to [-127, 127], NaN -> 0.
HWY_INLINE VI RoundCode(VF v) {
  const DF df;
  const VF t = hn::Trunc(v);
  const VF frac = hn::Abs(hn::Sub(v, t));  // exact
  const VF away = hn::Add(t, hn::CopySign(hn::Set(df, 1.0f), v));
  VF r = hn::IfThenElse(hn::Ge(frac, hn::Set(df, 0.5f)), away, t);
  r = hn::Min(hn::Max(r, hn::Set(df, -127.0f)), hn::Set(df, 127.0f));
  return hn::ConvertTo(DI(), hn::IfThenElseZero(hn::Eq(v, v), r));
}

HWY_INLINE float MaxAbs32(const float* x) {
  const DF df;
  VF m = hn::Zero(df);
  for (size_t j = 0; j < kQK; j += hn::Lanes(df)) m = hn::Max(m, hn::Abs(hn::LoadU(df, x + j)));
  return hn::GetLane(hn::MaxOfLanes(df, m));
}

// The first x[j] equal to `value` (as ggml's strict running comparisons keep it; this fixes the
// sign of a zero result), or `value` itself when none is (ggml's FLT_MAX start values).
HWY_INLINE float FirstEqual32(const float* x, float value) {
  const DF df;
  for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
    const intptr_t k = hn::FindFirstTrue(df, hn::Eq(hn::LoadU(df, x + j), hn::Set(df, value)));
    if (k >= 0) return x[j + size_t(k)];
  }
  return value;
}

// signed_absmax: the first value of largest magnitude, +0 for an all-zero block.
HWY_INLINE float SignedAbsMax32(const float* x) {
  const DF df;
  const float amax = MaxAbs32(x);
  if (!(amax > 0.0f)) return 0.0f;
  for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
    const intptr_t k = hn::FindFirstTrue(df, hn::Eq(hn::Abs(hn::LoadU(df, x + j)), hn::Set(df, amax)));
    if (k >= 0) return x[j + size_t(k)];
  }
  return 0.0f;
}

HWY_INLINE void MinMax32(const float* x, float* min, float* max) {
  const DF df;
  VF lo = hn::Set(df, 3.402823466e+38f), hi = hn::Set(df, -3.402823466e+38f);
  for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
    const VF v = hn::LoadU(df, x + j);
    lo = hn::Min(lo, v);
    hi = hn::Max(hi, v);
  }
  *min = FirstEqual32(x, hn::GetLane(hn::MinOfLanes(df, lo)));
  *max = FirstEqual32(x, hn::GetLane(hn::MaxOfLanes(df, hi)));
}

// ---- dequantization ----

void DequantizeQ8_0(const void* src, float* y, int64_t n) {
  const DF df;
  const auto* x = static_cast<const BlockQ8_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const VF d = hn::Set(df, fp16_to_f32(x[i].d));
    for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
      const VI q = hn::PromoteTo(DI(), hn::LoadU(DI8(), x[i].qs + j));
      hn::StoreU(hn::Mul(hn::ConvertTo(df, q), d), df, y + j);
    }
  }
}

void DequantizeQ4_0(const void* src, float* y, int64_t n) {
  const DF df;
  const VI k8 = hn::Set(DI(), 8);
  const auto* x = static_cast<const BlockQ4_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const VF d = hn::Set(df, fp16_to_f32(x[i].d));
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      VI lo, hi;
      LoadNibbles(x[i].qs, j, &lo, &hi);
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::Sub(lo, k8)), d), df, y + j);
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::Sub(hi, k8)), d), df, y + kQK / 2 + j);
    }
  }
}

void DequantizeQ4_1(const void* src, float* y, int64_t n) {
  const DF df;
  const auto* x = static_cast<const BlockQ4_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const VF d = hn::Set(df, fp16_to_f32(x[i].d));
    const VF m = hn::Set(df, fp16_to_f32(x[i].m));
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      VI lo, hi;
      LoadNibbles(x[i].qs, j, &lo, &hi);
      hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, lo), d), m), df, y + j);
      hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, hi), d), m), df, y + kQK / 2 + j);
    }
  }
}

void DequantizeQ5_0(const void* src, float* y, int64_t n) {
  const DF df;
  const VI k16 = hn::Set(DI(), 16);
  const auto* x = static_cast<const BlockQ5_0*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const VF d = hn::Set(df, fp16_to_f32(x[i].d));
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      VI lo, hi;
      LoadNibbles(x[i].qs, j, &lo, &hi);
      lo = hn::Sub(hn::Or(lo, HighBits(qh, j)), k16);
      hi = hn::Sub(hn::Or(hi, HighBits(qh, j + kQK / 2)), k16);
      hn::StoreU(hn::Mul(hn::ConvertTo(df, lo), d), df, y + j);
      hn::StoreU(hn::Mul(hn::ConvertTo(df, hi), d), df, y + kQK / 2 + j);
    }
  }
}

void DequantizeQ5_1(const void* src, float* y, int64_t n) {
  const DF df;
  const auto* x = static_cast<const BlockQ5_1*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const VF d = hn::Set(df, fp16_to_f32(x[i].d));
    const VF m = hn::Set(df, fp16_to_f32(x[i].m));
    uint32_t qh;
    std::memcpy(&qh, x[i].qh, 4);
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      VI lo, hi;
      LoadNibbles(x[i].qs, j, &lo, &hi);
      lo = hn::Or(lo, HighBits(qh, j));
      hi = hn::Or(hi, HighBits(qh, j + kQK / 2));
      hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, lo), d), m), df, y + j);
      hn::StoreU(hn::Add(hn::Mul(hn::ConvertTo(df, hi), d), m), df, y + kQK / 2 + j);
    }
  }
}

void DequantizeIQ4_NL(const void* src, float* y, int64_t n) {
  const DF df;
  const auto* x = static_cast<const BlockIQ4_NL*>(src);
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const VF d = hn::Set(df, fp16_to_f32(x[i].d));
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      VI lo, hi;
      LoadNibbles(x[i].qs, j, &lo, &hi);
      hn::StoreU(hn::Mul(d, hn::GatherIndex(df, kIq4nlFloat, lo)), df, y + j);
      hn::StoreU(hn::Mul(d, hn::GatherIndex(df, kIq4nlFloat, hi)), df, y + kQK / 2 + j);
    }
  }
}

// ---- quantization ----

void QuantizeQ8_0(const float* x, void* dst, int64_t n) {
  const DF df;
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = MaxAbs32(x) / 127;
    const VF id = hn::Set(df, d != 0.0f ? 1.0f / d : 0.0f);
    y[i].d = f32_to_fp16(d);
    for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
      const VI q = RoundCode(hn::Mul(hn::LoadU(df, x + j), id));
      hn::StoreU(hn::DemoteTo(DI8(), q), DI8(), y[i].qs + j);
    }
  }
}

void QuantizeQ4_0(const float* x, void* dst, int64_t n) {
  const DF df;
  const VF offset = hn::Set(df, 8.5f);
  auto* y = static_cast<BlockQ4_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = SignedAbsMax32(x) / -8;
    const VF id = hn::Set(df, d != 0.0f ? 1.0f / d : 0.0f);
    y[i].d = f32_to_fp16(d);
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      const VI lo = TruncCode(hn::Add(hn::Mul(hn::LoadU(df, x + j), id), offset), 15.0f);
      const VI hi = TruncCode(hn::Add(hn::Mul(hn::LoadU(df, x + kQK / 2 + j), id), offset), 15.0f);
      StoreNibbles(lo, hi, y[i].qs + j);
    }
  }
}

void QuantizeQ4_1(const float* x, void* dst, int64_t n) {
  const DF df;
  const VF half = hn::Set(df, 0.5f);
  auto* y = static_cast<BlockQ4_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min, max;
    MinMax32(x, &min, &max);
    const float d = (max - min) / 15;
    const VF id = hn::Set(df, d != 0.0f ? 1.0f / d : 0.0f);
    const VF vmin = hn::Set(df, min);
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      const VI lo = TruncCode(hn::Add(hn::Mul(hn::Sub(hn::LoadU(df, x + j), vmin), id), half), 15.0f);
      const VI hi = TruncCode(hn::Add(hn::Mul(hn::Sub(hn::LoadU(df, x + kQK / 2 + j), vmin), id), half), 15.0f);
      StoreNibbles(lo, hi, y[i].qs + j);
    }
  }
}

void QuantizeQ5_0(const float* x, void* dst, int64_t n) {
  const DF df;
  const VF offset = hn::Set(df, 16.5f);
  auto* y = static_cast<BlockQ5_0*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    const float d = SignedAbsMax32(x) / -16;
    const VF id = hn::Set(df, d != 0.0f ? 1.0f / d : 0.0f);
    y[i].d = f32_to_fp16(d);
    uint32_t qh = 0;
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      const VI lo = TruncCode(hn::Add(hn::Mul(hn::LoadU(df, x + j), id), offset), 31.0f);
      const VI hi = TruncCode(hn::Add(hn::Mul(hn::LoadU(df, x + kQK / 2 + j), id), offset), 31.0f);
      StoreNibbles(lo, hi, y[i].qs + j);
      qh |= HighBitsMask(lo, j) | HighBitsMask(hi, j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

void QuantizeQ5_1(const float* x, void* dst, int64_t n) {
  const DF df;
  const VF half = hn::Set(df, 0.5f);
  auto* y = static_cast<BlockQ5_1*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    float min, max;
    MinMax32(x, &min, &max);
    const float d = (max - min) / 31;
    const VF id = hn::Set(df, d != 0.0f ? 1.0f / d : 0.0f);
    const VF vmin = hn::Set(df, min);
    y[i].d = f32_to_fp16(d);
    y[i].m = f32_to_fp16(min);
    uint32_t qh = 0;
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      const VI lo = TruncCode(hn::Add(hn::Mul(hn::Sub(hn::LoadU(df, x + j), vmin), id), half), 31.0f);
      const VI hi = TruncCode(hn::Add(hn::Mul(hn::Sub(hn::LoadU(df, x + kQK / 2 + j), vmin), id), half), 31.0f);
      StoreNibbles(lo, hi, y[i].qs + j);
      qh |= HighBitsMask(lo, j) | HighBitsMask(hi, j + kQK / 2);
    }
    std::memcpy(y[i].qh, &qh, 4);
  }
}

// best_index_int8 over the iq4_nl codebook, per lane: hi = number of entries <= v, then the nearer
// of entries hi - 1 and hi (ties to hi); below / above the codebook -> 0 / 15; NaN -> 15 as the
// reference.
HWY_INLINE VI BestIndexIq4(VF v) {
  const DF df;
  const DI di;
  VI hi = hn::Zero(di);
  for (int j = 0; j < 16; ++j) {
    hi = hn::Add(hi, hn::IfThenElseZero(hn::RebindMask(di, hn::Le(hn::Set(df, kIq4nlFloat[j]), v)), hn::Set(di, 1)));
  }
  hi = hn::Min(hn::Max(hi, hn::Set(di, 1)), hn::Set(di, 15));
  const VI lo = hn::Sub(hi, hn::Set(di, 1));
  const VF lower = hn::GatherIndex(df, kIq4nlFloat, lo), upper = hn::GatherIndex(df, kIq4nlFloat, hi);
  VI index = hn::IfThenElse(hn::RebindMask(di, hn::Lt(hn::Sub(v, lower), hn::Sub(upper, v))), lo, hi);
  index = hn::IfThenElse(hn::RebindMask(di, hn::Le(v, hn::Set(df, kIq4nlFloat[0]))), hn::Zero(di), index);
  const auto top = hn::Or(hn::Ge(v, hn::Set(df, kIq4nlFloat[15])), hn::Not(hn::Eq(v, v)));
  return hn::IfThenElse(hn::RebindMask(di, top), hn::Set(di, 15), index);
}

// One candidate scale of quantize_row_iq4_nl_ref: snaps id * x to the codebook and returns the
// weighted sums. The per-value products are vectorised; the sums stay sequential in value order, as
// the reference (and ggml) add them, so the chosen scale and the bytes are identical.
HWY_INLINE void Iq4TrialSums(const float* x, const float* w, float id, float* sumqx, float* sumq2) {
  const DF df;
  HWY_ALIGN float qx[kQK], q2[kQK];  // [32] f32: w * q * x and w * q * q per value
  for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
    const VF xv = hn::LoadU(df, x + j);
    const VF q = hn::GatherIndex(df, kIq4nlFloat, BestIndexIq4(hn::Mul(hn::Set(df, id), xv)));
    const VF wq = hn::Mul(hn::LoadU(df, w + j), q);
    hn::StoreU(hn::Mul(wq, xv), df, qx + j);
    hn::StoreU(hn::Mul(wq, q), df, q2 + j);
  }
  float sx = 0.0f, s2 = 0.0f;
  for (size_t j = 0; j < kQK; ++j) {
    sx += qx[j];
    s2 += q2[j];
  }
  *sumqx = sx;
  *sumq2 = s2;
}

void QuantizeIQ4_NL(const float* x, void* dst, int64_t n) {
  const DF df;
  constexpr int kNtry = 7;
  constexpr float kGroupMaxEps = 1e-15f;
  auto* y = static_cast<BlockIQ4_NL*>(dst);
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    HWY_ALIGN float weight[kQK];  // [32] f32: x^2
    for (size_t j = 0; j < kQK; j += hn::Lanes(df)) {
      const VF xv = hn::LoadU(df, x + j);
      hn::StoreU(hn::Mul(xv, xv), df, weight + j);
    }
    const float max = SignedAbsMax32(x);
    float scale = 0.0f;
    if (std::fabs(max) >= kGroupMaxEps) {
      float sumqx, sumq2;
      Iq4TrialSums(x, weight, 1.0f / (-max / kIq4nlFloat[0]), &sumqx, &sumq2);
      scale = sumqx / sumq2;
      float best = scale * sumqx;
      for (int itry = -kNtry; itry <= kNtry; ++itry) {
        Iq4TrialSums(x, weight, float(itry + int(kIq4nlValues[0])) / max, &sumqx, &sumq2);
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
          scale = sumqx / sumq2;
          best = scale * sumqx;
        }
      }
    }
    y[i].d = f32_to_fp16(scale);
    const VF id = hn::Set(df, scale != 0.0f ? 1.0f / scale : 0.0f);
    for (size_t j = 0; j < kQK / 2; j += hn::Lanes(df)) {
      StoreNibbles(BestIndexIq4(hn::Mul(id, hn::LoadU(df, x + j))),
                   BestIndexIq4(hn::Mul(id, hn::LoadU(df, x + kQK / 2 + j))), y[i].qs + j);
    }
  }
}
