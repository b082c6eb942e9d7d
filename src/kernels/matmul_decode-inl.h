// Weight-row decoders for the integer matmul: one GGUF row chunk -> panel row of 8-bit codes, a scale per
// 4 values and a min per 16 values (weight = scale * code - min). Compiled once per Highway target (the
// plain loops auto-vectorize for it). Every kernels type decodes to this one form, so one micro-kernel per
// target serves them all: 32-value types repeat their block scale, k-quants their sub-block scales.
//
// Codes are unsigned (0..255) by default: what VNNI's u8 x s8 dot product and maddubs need, and a
// per-16 min absorbs the offset (q4_0: code 0..15, min = 8 * d). Types whose codes span 8 bits (q8_0,
// iq4_nl, iq4_xs) can instead be decoded signed with no min (kSignedCodes), for kernels whose 16-bit
// pair sums would saturate on 255 * 127 * 2.

#if defined(KVQ_KERNELS_MATMUL_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_MATMUL_DECODE_INL_H_
#undef KVQ_KERNELS_MATMUL_DECODE_INL_H_
#else
#define KVQ_KERNELS_MATMUL_DECODE_INL_H_
#endif

#include <cstdint>
#include <cstring>

#include "hwy/highway.h"
#include "quant/blocks.h"
#include "util/half.h"
#include "util/result.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace matmul_decode {

namespace hn = hwy::HWY_NAMESPACE;
// At most 16 byte lanes: the 16-byte groups of the block formats map onto whole vectors (and
// TableLookupBytes stays within one 128-bit block).
using ByteTag = hn::CappedTag<uint8_t, 16>;

// fp16 bits -> f32: the F16C instruction where the target has it (one op instead of ~10).
HWY_INLINE float HalfToFloat(uint16_t h) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(h);
#else
  return fp16_to_f32(h);
#endif
}

// Panel row pointers, advanced block by block.
struct PanelRowOut {
  uint8_t* q;  // [len] codes
  float* sc;   // [len / 4]
  float* mn;   // [len / 16]
};

inline void FillScales(PanelRowOut& o, int n_values, float scale, float min) {
  for (int i = 0; i < n_values / 4; ++i) o.sc[i] = scale;
  for (int i = 0; i < n_values / 16; ++i) o.mn[i] = min;
}
inline void Advance(PanelRowOut& o, int n_values) {
  o.q += n_values;
  o.sc += n_values / 4;
  o.mn += n_values / 16;
}

// n_bytes (a multiple of 16) bytes of nibbles: low nibbles to lo[0..n_bytes), high ones to hi[...].
HWY_INLINE void UnpackNibbles(const uint8_t* qs, int n_bytes, uint8_t* lo, uint8_t* hi) {
  const ByteTag d;
  const auto mask = hn::Set(d, uint8_t{0x0F});
  for (int i = 0; i < n_bytes; i += int(hn::Lanes(d))) {
    const auto v = hn::LoadU(d, qs + i);
    hn::StoreU(hn::And(v, mask), d, lo + i);
    hn::StoreU(hn::ShiftRight<4>(v), d, hi + i);
  }
}
// 4-bit codes in ggml's 32-block layout: byte j holds value j (low nibble) and j + 16 (high nibble).
HWY_INLINE void UnpackNibbles32(const uint8_t* qs, uint8_t* q) { UnpackNibbles(qs, 16, q, q + 16); }

template <bool kSignedCodes>
void DecodeQ8_0(const BlockQ8_0* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i, Advance(o, kQK)) {
    const float d = HalfToFloat(b[i].d);
    // Unsigned code = q + 128: flipping the sign bit maps -128..127 to 0..255.
    const ByteTag du;
    const auto flip = hn::Set(du, uint8_t{kSignedCodes ? 0 : 0x80});
    for (int j = 0; j < kQK; j += int(hn::Lanes(du))) {
      hn::StoreU(hn::Xor(hn::LoadU(du, reinterpret_cast<const uint8_t*>(b[i].qs) + j), flip), du, o.q + j);
    }
    FillScales(o, kQK, d, kSignedCodes ? 0.0f : 128.0f * d);
  }
}

inline void DecodeQ4_0(const BlockQ4_0* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i, Advance(o, kQK)) {
    const float d = HalfToFloat(b[i].d);
    UnpackNibbles32(b[i].qs, o.q);
    FillScales(o, kQK, d, 8.0f * d);
  }
}

inline void DecodeQ4_1(const BlockQ4_1* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i, Advance(o, kQK)) {
    UnpackNibbles32(b[i].qs, o.q);
    FillScales(o, kQK, HalfToFloat(b[i].d), -HalfToFloat(b[i].m));
  }
}

// 5-bit codes: nibbles as q4_0 plus bit j of qh as bit 4 of value j.
inline void UnpackQ5(const uint8_t* qs, const uint8_t* qh_bytes, uint8_t* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = uint8_t((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
    q[j + 16] = uint8_t((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
}

inline void DecodeQ5_0(const BlockQ5_0* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i, Advance(o, kQK)) {
    const float d = HalfToFloat(b[i].d);
    UnpackQ5(b[i].qs, b[i].qh, o.q);
    FillScales(o, kQK, d, 16.0f * d);
  }
}

inline void DecodeQ5_1(const BlockQ5_1* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i, Advance(o, kQK)) {
    UnpackQ5(b[i].qs, b[i].qh, o.q);
    FillScales(o, kQK, HalfToFloat(b[i].d), -HalfToFloat(b[i].m));
  }
}

// Codebook lookup for iq4_nl / iq4_xs 32-value groups; unsigned codes are the value + 128.
template <bool kSignedCodes>
void UnpackIq4(const uint8_t* qs, uint8_t* q) {
#if HWY_TARGET == HWY_SCALAR  // one-lane vectors cannot hold the 16-entry table
  for (int j = 0; j < 16; ++j) {
    q[j] = uint8_t(kIq4nlValues[qs[j] & 0x0F] + (kSignedCodes ? 0 : 128));
    q[j + 16] = uint8_t(kIq4nlValues[qs[j] >> 4] + (kSignedCodes ? 0 : 128));
  }
#else
  static_assert(hn::MaxLanes(ByteTag()) == 16, "the codebook lookup needs 16-byte vectors");
  alignas(16) static constexpr uint8_t kTable[16] = {
      uint8_t(kIq4nlValues[0] + (kSignedCodes ? 0 : 128)),  uint8_t(kIq4nlValues[1] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[2] + (kSignedCodes ? 0 : 128)),  uint8_t(kIq4nlValues[3] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[4] + (kSignedCodes ? 0 : 128)),  uint8_t(kIq4nlValues[5] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[6] + (kSignedCodes ? 0 : 128)),  uint8_t(kIq4nlValues[7] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[8] + (kSignedCodes ? 0 : 128)),  uint8_t(kIq4nlValues[9] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[10] + (kSignedCodes ? 0 : 128)), uint8_t(kIq4nlValues[11] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[12] + (kSignedCodes ? 0 : 128)), uint8_t(kIq4nlValues[13] + (kSignedCodes ? 0 : 128)),
      uint8_t(kIq4nlValues[14] + (kSignedCodes ? 0 : 128)), uint8_t(kIq4nlValues[15] + (kSignedCodes ? 0 : 128))};
  const ByteTag d;
  const auto table = hn::Load(d, kTable);
  const auto v = hn::LoadU(d, qs);
  hn::StoreU(hn::TableLookupBytes(table, hn::And(v, hn::Set(d, uint8_t{0x0F}))), d, q);
  hn::StoreU(hn::TableLookupBytes(table, hn::ShiftRight<4>(v)), d, q + 16);
#endif
}

template <bool kSignedCodes>
void DecodeIq4Nl(const BlockIQ4_NL* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i, Advance(o, kQK)) {
    const float d = HalfToFloat(b[i].d);
    UnpackIq4<kSignedCodes>(b[i].qs, o.q);
    FillScales(o, kQK, d, kSignedCodes ? 0.0f : 128.0f * d);
  }
}

template <bool kSignedCodes>
void DecodeIq4Xs(const BlockIQ4_XS* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d);
    for (int ib = 0; ib < kQK_K / 32; ++ib, Advance(o, 32)) {
      const int ls = ((b[i].scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F) | (((b[i].scales_h >> (2 * ib)) & 3) << 4);
      const float dl = d * float(ls - 32);
      UnpackIq4<kSignedCodes>(b[i].qs + 16 * ib, o.q);
      FillScales(o, 32, dl, kSignedCodes ? 0.0f : 128.0f * dl);
    }
  }
}

// q4_K / q5_K: 8 sub-blocks of 32 with 6-bit scale and min; see dequantize_row_q4_K_ref.
inline void ScaleMinK4(int j, const uint8_t* s, int* scale, int* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

inline void DecodeQ4_K(const BlockQ4_K* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d), dmin = HalfToFloat(b[i].dmin);
    // Each 32 bytes of qs hold 64 values: sub-block 2g in the low nibbles, 2g + 1 in the high ones.
    for (int g = 0; g < 4; ++g) {
      UnpackNibbles(b[i].qs + 32 * g, 32, o.q, o.q + 32);
      for (int half = 0; half < 2; ++half, Advance(o, 32)) {
        int sc, m;
        ScaleMinK4(2 * g + half, b[i].scales, &sc, &m);
        FillScales(o, 32, d * float(sc), dmin * float(m));
      }
    }
  }
}

inline void DecodeQ5_K(const BlockQ5_K* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d), dmin = HalfToFloat(b[i].dmin);
    for (int g = 0; g < 4; ++g) {
      const uint8_t* qs = b[i].qs + 32 * g;
      for (int half = 0; half < 2; ++half, Advance(o, 32)) {
        int sc, m;
        ScaleMinK4(2 * g + half, b[i].scales, &sc, &m);
        const int hbit = 2 * g + half;  // bit of qh[l] that is bit 4 of this sub-block's value l
        for (int l = 0; l < 32; ++l) {
          o.q[l] = uint8_t(((qs[l] >> (4 * half)) & 0x0F) | (((b[i].qh[l] >> hbit) & 1) << 4));
        }
        FillScales(o, 32, d * float(sc), dmin * float(m));
      }
    }
  }
}

// q6_K: per 128 values, ql[0..63] low nibbles and qh[0..31] 4 x 2 high bits; 16 int8 scales, offset 32.
inline void DecodeQ6_K(const BlockQ6_K* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b[i].ql + 64 * half;
      const uint8_t* qh = b[i].qh + 32 * half;
      const ByteTag du;
      const auto low4 = hn::Set(du, uint8_t{0x0F});
      const auto two = hn::Set(du, uint8_t{0x30});  // 2 high bits, already in place (<< 4)
      for (int l = 0; l < 32; l += int(hn::Lanes(du))) {
        const auto l0 = hn::LoadU(du, ql + l), l1 = hn::LoadU(du, ql + l + 32), h = hn::LoadU(du, qh + l);
        hn::StoreU(hn::Or(hn::And(l0, low4), hn::And(hn::ShiftLeft<4>(h), two)), du, o.q + l);
        hn::StoreU(hn::Or(hn::And(l1, low4), hn::And(hn::ShiftLeft<2>(h), two)), du, o.q + l + 32);
        hn::StoreU(hn::Or(hn::ShiftRight<4>(l0), hn::And(h, two)), du, o.q + l + 64);
        hn::StoreU(hn::Or(hn::ShiftRight<4>(l1), hn::And(hn::ShiftRight<2>(h), two)), du, o.q + l + 96);
      }
      for (int s = 0; s < 8; ++s) {
        const float scale = d * float(b[i].scales[8 * half + s]);
        PanelRowOut part{o.q + 16 * s, o.sc + 4 * s, o.mn + s};
        FillScales(part, 16, scale, 32.0f * scale);
      }
      Advance(o, 128);
    }
  }
}

// q2_K / q3_K: each 32 bytes of qs hold 128 values, 2 bits each at shifts 0, 2, 4, 6 (32 values per
// shift); scales per 16 values.
inline void DecodeQ2_K(const BlockQ2_K* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d), dmin = HalfToFloat(b[i].dmin);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* qs = b[i].qs + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int l = 0; l < 32; ++l) o.q[l] = uint8_t((qs[l] >> shift) & 3);
        for (int part = 0; part < 2; ++part) {
          const uint8_t sc = b[i].scales[8 * half + shift + part];
          PanelRowOut p{o.q + 16 * part, o.sc + 4 * part, o.mn + part};
          FillScales(p, 16, d * float(sc & 0x0F), dmin * float(sc >> 4));
        }
        Advance(o, 32);
      }
    }
  }
}

inline void DecodeQ3_K(const BlockQ3_K* b, int64_t nb, PanelRowOut o) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d);
    const uint8_t* packed = b[i].scales;
    int is = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* qs = b[i].qs + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        const int hbit = 4 * half + shift / 2;  // bit of hmask[l]: set means code = low 2 bits, else - 4
        for (int l = 0; l < 32; ++l) {
          o.q[l] = uint8_t(((qs[l] >> shift) & 3) | (((b[i].hmask[l] >> hbit) & 1) << 2));
        }
        for (int part = 0; part < 2; ++part, ++is) {
          // 6-bit scale with offset 32: low nibble in bytes 0..7, top 2 bits in bytes 8..11.
          const int low = is < 8 ? (packed[is] & 0x0F) : (packed[is - 8] >> 4);
          const int high = (packed[8 + (is % 4)] >> (2 * (is / 4))) & 3;
          const float scale = d * float((low | (high << 4)) - 32);
          PanelRowOut p{o.q + 16 * part, o.sc + 4 * part, o.mn + part};
          FillScales(p, 16, scale, 4.0f * scale);  // value = scale * (code - 4)
        }
        Advance(o, 32);
      }
    }
  }
}

// Decodes nb blocks of one weight row, starting at `blocks`, into a panel row.
// kSignedCodes only changes the 8-bit types; the others are always unsigned with a min.
template <bool kSignedCodes>
void DecodeRow(GgmlType type, const uint8_t* blocks, int64_t nb, PanelRowOut o) {
  switch (type) {
    case GgmlType::Q4_0:
      return DecodeQ4_0(reinterpret_cast<const BlockQ4_0*>(blocks), nb, o);
    case GgmlType::Q4_1:
      return DecodeQ4_1(reinterpret_cast<const BlockQ4_1*>(blocks), nb, o);
    case GgmlType::Q5_0:
      return DecodeQ5_0(reinterpret_cast<const BlockQ5_0*>(blocks), nb, o);
    case GgmlType::Q5_1:
      return DecodeQ5_1(reinterpret_cast<const BlockQ5_1*>(blocks), nb, o);
    case GgmlType::Q8_0:
      return DecodeQ8_0<kSignedCodes>(reinterpret_cast<const BlockQ8_0*>(blocks), nb, o);
    case GgmlType::IQ4_NL:
      return DecodeIq4Nl<kSignedCodes>(reinterpret_cast<const BlockIQ4_NL*>(blocks), nb, o);
    case GgmlType::Q2_K:
      return DecodeQ2_K(reinterpret_cast<const BlockQ2_K*>(blocks), nb, o);
    case GgmlType::Q3_K:
      return DecodeQ3_K(reinterpret_cast<const BlockQ3_K*>(blocks), nb, o);
    case GgmlType::Q4_K:
      return DecodeQ4_K(reinterpret_cast<const BlockQ4_K*>(blocks), nb, o);
    case GgmlType::Q5_K:
      return DecodeQ5_K(reinterpret_cast<const BlockQ5_K*>(blocks), nb, o);
    case GgmlType::Q6_K:
      return DecodeQ6_K(reinterpret_cast<const BlockQ6_K*>(blocks), nb, o);
    case GgmlType::IQ4_XS:
      return DecodeIq4Xs<kSignedCodes>(reinterpret_cast<const BlockIQ4_XS*>(blocks), nb, o);
    default:
      KVQ_CHECK(false && "matmul: no int8 decoder for this type");
  }
}

}  // namespace matmul_decode
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_MATMUL_DECODE_INL_H_
