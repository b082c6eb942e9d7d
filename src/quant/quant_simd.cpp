// Highway kernels for the hot row conversions (the KV-cache formats), compiled once per SIMD target
// and chosen at run time. Each one must agree with quant_ref.cpp: dequantization bit for bit,
// quantization byte for byte, so the reference stays the oracle (tests/quant_test.cpp checks every
// compiled target).
//
// No FP contraction (GCC would fuse Highway's Mul + Add into an FMA on AVX2 and change the
// rounding).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/quant_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "quant/quant.h"
#include "util/half.h"
#include "util/result.h"

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 float lanes, so one vector never spans more than the 16 values of a half block (a
// 32-value block is stored as two halves: value j in the low nibble of byte j, value j + 16 in its
// high nibble).
using DF = hn::CappedTag<float, 16>;
using DI = hn::RebindToSigned<DF>;
using DU = hn::RebindToUnsigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;
using DI8 = hn::Rebind<int8_t, DF>;
using DU16 = hn::Rebind<uint16_t, DF>;
using VF = hn::Vec<DF>;
using VI = hn::Vec<DI>;
using VU = hn::Vec<DU>;

// ---- f16 / bf16, with integer bit manipulation so that every target (with or without F16C) rounds
// exactly as util/half.h: nearest-even, overflow to inf, NaN payloads kept. ----

VF F16BitsToF32(VU h) {
  const DF df;
  const DU du;
  const VU sign = hn::ShiftLeft<16>(hn::And(h, hn::Set(du, 0x8000)));
  const VU exponent = hn::And(hn::ShiftRight<10>(h), hn::Set(du, 0x1f));
  const VU mantissa = hn::And(h, hn::Set(du, 0x3ff));
  const VU normal = hn::Or(hn::ShiftLeft<23>(hn::Add(exponent, hn::Set(du, 112))), hn::ShiftLeft<13>(mantissa));
  const VU special = hn::Or(hn::Set(du, 0x7f800000u), hn::ShiftLeft<13>(mantissa));  // inf / nan
  // Subnormal (and zero): mantissa * 2^-24, exact in f32.
  const VF sub = hn::Mul(hn::ConvertTo(df, hn::BitCast(DI(), mantissa)), hn::Set(df, 1.0f / 16777216.0f));
  VU bits = hn::IfThenElse(hn::Eq(exponent, hn::Zero(du)), hn::BitCast(du, sub), normal);
  bits = hn::IfThenElse(hn::Eq(exponent, hn::Set(du, 0x1f)), special, bits);
  return hn::BitCast(df, hn::Or(bits, sign));
}

VU F32ToF16Bits(VF f) {
  const DF df;
  const DU du;
  const VU bits = hn::BitCast(du, f);
  const VU abs = hn::And(bits, hn::Set(du, 0x7fffffffu));
  const VU sign = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 0x8000));
  // Normal range: drop 13 mantissa bits with round-to-nearest-even by adding 0xfff + the kept lsb.
  const VU lsb = hn::And(hn::ShiftRight<13>(abs), hn::Set(du, 1));
  const VU normal =
      hn::ShiftRight<13>(hn::Add(hn::Sub(abs, hn::Set(du, 0x38000000u)), hn::Add(hn::Set(du, 0xfff), lsb)));
  // Subnormal range: adding 0.5f leaves the value in units of 2^-24 in the low mantissa bits,
  // rounded to nearest even by the FP adder itself.
  const VF shifted = hn::Add(hn::BitCast(df, abs), hn::Set(df, 0.5f));
  const VU subnormal = hn::Sub(hn::BitCast(du, shifted), hn::Set(du, 0x3f000000u));
  const VU nan = hn::Or(hn::Set(du, 0x7e00), hn::And(hn::ShiftRight<13>(abs), hn::Set(du, 0x3ff)));
  // |f| as bits is < 2^31, so signed comparisons order it (Highway lacks some unsigned ones).
  const DI di;
  const auto abs_i = hn::BitCast(di, abs);
  VU result = hn::IfThenElse(hn::RebindMask(du, hn::Lt(abs_i, hn::Set(di, 0x38800000))), subnormal, normal);
  result = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x477fefff))), hn::Set(du, 0x7c00), result);
  result = hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x7f800000))), nan, result);
  return hn::Or(result, sign);
}

VU F32ToBF16Bits(VF f) {
  const DU du;
  const VU bits = hn::BitCast(du, f);
  const VU lsb = hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1));
  const VU rounded = hn::ShiftRight<16>(hn::Add(bits, hn::Add(hn::Set(du, 0x7fff), lsb)));
  const VU quiet_nan = hn::Or(hn::ShiftRight<16>(bits), hn::Set(du, 64));
  const DI di;
  const auto abs_i = hn::BitCast(di, hn::And(bits, hn::Set(du, 0x7fffffffu)));
  return hn::IfThenElse(hn::RebindMask(du, hn::Gt(abs_i, hn::Set(di, 0x7f800000))), quiet_nan, rounded);
}

// Stores the low 16 bits of each u32 lane (all values are < 2^16, so the saturating demotion is
// exact).
void StoreU16(VU v, uint16_t* dst) { hn::StoreU(hn::DemoteTo(DU16(), hn::BitCast(DI(), v)), DU16(), dst); }

void DequantizeF16(const void* src, float* y, int64_t n) {
  const DF df;
  const auto* h = static_cast<const uint16_t*>(src);  // [n] binary16 bits
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(F16BitsToF32(hn::PromoteTo(DU(), hn::LoadU(DU16(), h + i))), df, y + i);
  for (; i < n; ++i) y[i] = fp16_to_f32(h[i]);
}

void DequantizeBF16(const void* src, float* y, int64_t n) {
  const DF df;
  const auto* h = static_cast<const uint16_t*>(src);  // [n] bfloat16 bits
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const VU bits = hn::ShiftLeft<16>(hn::PromoteTo(DU(), hn::LoadU(DU16(), h + i)));
    hn::StoreU(hn::BitCast(df, bits), df, y + i);
  }
  for (; i < n; ++i) y[i] = bf16_to_f32(h[i]);
}

void QuantizeF16(const float* x, void* dst, int64_t n) {
  const DF df;
  auto* h = static_cast<uint16_t*>(dst);  // [n] binary16 bits
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) StoreU16(F32ToF16Bits(hn::LoadU(df, x + i)), h + i);
  for (; i < n; ++i) h[i] = f32_to_fp16(x[i]);
}

void QuantizeBF16(const float* x, void* dst, int64_t n) {
  const DF df;
  auto* h = static_cast<uint16_t*>(dst);  // [n] bfloat16 bits
  const int64_t N = int64_t(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) StoreU16(F32ToBF16Bits(hn::LoadU(df, x + i)), h + i);
  for (; i < n; ++i) h[i] = f32_to_bf16(x[i]);
}

#include "quant/quant_simd_blocks-inl.h"

}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvq {

HWY_EXPORT(DequantizeF16);
HWY_EXPORT(DequantizeBF16);
HWY_EXPORT(DequantizeQ8_0);
HWY_EXPORT(DequantizeQ4_0);
HWY_EXPORT(DequantizeQ4_1);
HWY_EXPORT(DequantizeQ5_0);
HWY_EXPORT(DequantizeQ5_1);
HWY_EXPORT(DequantizeIQ4_NL);
HWY_EXPORT(QuantizeF16);
HWY_EXPORT(QuantizeBF16);
HWY_EXPORT(QuantizeQ8_0);
HWY_EXPORT(QuantizeQ4_0);
HWY_EXPORT(QuantizeQ4_1);
HWY_EXPORT(QuantizeQ5_0);
HWY_EXPORT(QuantizeQ5_1);
HWY_EXPORT(QuantizeIQ4_NL);

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  KVQ_CHECK(n >= 0 && n % type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F16:
      return HWY_DYNAMIC_DISPATCH(DequantizeF16)(src, dst, n);
    case GgmlType::BF16:
      return HWY_DYNAMIC_DISPATCH(DequantizeBF16)(src, dst, n);
    case GgmlType::Q8_0:
      return HWY_DYNAMIC_DISPATCH(DequantizeQ8_0)(src, dst, n);
    case GgmlType::Q4_0:
      return HWY_DYNAMIC_DISPATCH(DequantizeQ4_0)(src, dst, n);
    case GgmlType::Q4_1:
      return HWY_DYNAMIC_DISPATCH(DequantizeQ4_1)(src, dst, n);
    case GgmlType::Q5_0:
      return HWY_DYNAMIC_DISPATCH(DequantizeQ5_0)(src, dst, n);
    case GgmlType::Q5_1:
      return HWY_DYNAMIC_DISPATCH(DequantizeQ5_1)(src, dst, n);
    case GgmlType::IQ4_NL:
      return HWY_DYNAMIC_DISPATCH(DequantizeIQ4_NL)(src, dst, n);
    default:
      return dequantize_row_ref(type, src, dst, n);  // f32 copy, k-quants, q8_1, q8_K
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  KVQ_CHECK(n >= 0 && n % type_traits(type).block_size == 0);
  switch (type) {
    case GgmlType::F16:
      return HWY_DYNAMIC_DISPATCH(QuantizeF16)(src, dst, n);
    case GgmlType::BF16:
      return HWY_DYNAMIC_DISPATCH(QuantizeBF16)(src, dst, n);
    case GgmlType::Q8_0:
      return HWY_DYNAMIC_DISPATCH(QuantizeQ8_0)(src, dst, n);
    case GgmlType::Q4_0:
      return HWY_DYNAMIC_DISPATCH(QuantizeQ4_0)(src, dst, n);
    case GgmlType::Q4_1:
      return HWY_DYNAMIC_DISPATCH(QuantizeQ4_1)(src, dst, n);
    case GgmlType::Q5_0:
      return HWY_DYNAMIC_DISPATCH(QuantizeQ5_0)(src, dst, n);
    case GgmlType::Q5_1:
      return HWY_DYNAMIC_DISPATCH(QuantizeQ5_1)(src, dst, n);
    case GgmlType::IQ4_NL:
      return HWY_DYNAMIC_DISPATCH(QuantizeIQ4_NL)(src, dst, n);
    default:
      return quantize_row_ref(type, src, dst, n);  // f32, q8_1, q8_K (or aborts)
  }
}

}  // namespace kvq
#endif  // HWY_ONCE
