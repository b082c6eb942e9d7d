// Per-target decoding of KV-cache token rows into f32 tiles for the fused attention (attention-inl.h).
// Included once per SIMD target by attention.cpp. Each decoder reads the cache's blocks as stored and
// writes the same values as quant/quant_ref.cpp's dequantizers (value = d * q, d * q + m, d * table[q]).

// Target-independent part: where a KV head lies inside a token row.
#ifndef KVQ_KERNELS_ATTENTION_DEQUANT_SHARED_
#define KVQ_KERNELS_ATTENTION_DEQUANT_SHARED_

#include <cstddef>
#include <cstdint>

#include "quant/blocks.h"

namespace kvq::attention_detail {

// The values of token rows that attention decodes for one KV head: whole 32-value blocks for the quantized
// types (a head of head_dim < 32 shares its block with its neighbours), exactly the head otherwise.
// Rows of f32 a kernel reads: row t of a head starts at data + t * stride.
struct F32RowsView {
  const float* data = nullptr;
  size_t stride = 0;
};

struct HeadSlice {
  int first = 0;   // first decoded value of the row
  int cover = 0;   // values decoded per row
  int offset = 0;  // where the head starts inside the decoded values
};

inline HeadSlice head_slice(GgmlType type, int kv_head, int head_dim) {
  if (is_head_scaled(type)) return HeadSlice{kv_head * head_dim, head_dim, 0};  // one record per head
  const int block = type_traits(type).block_size;
  const int begin = kv_head * head_dim;
  const int end = begin + head_dim;
  HeadSlice s;
  s.first = begin / block * block;
  s.cover = (end + block - 1) / block * block - s.first;
  s.offset = begin - s.first;
  return s;
}

// Bit j set in entry j: selects the 5th bit of value j of a q5 block from its 32-bit qh.
alignas(64) inline constexpr uint32_t kBitOfValue[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,  1u << 8,  1u << 9,  1u << 10,
    1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15, 1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21,
    1u << 22, 1u << 23, 1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

// Code bits of a "_h" type, 0 for the others (a constant expression, for the decoders' templates).
constexpr int head_code_bits(GgmlType type) {
  switch (type) {
    case GgmlType::Q8_H:
      return 8;
    case GgmlType::NL5_H:
      return 5;
    case GgmlType::NL4_H:
      return 4;
    case GgmlType::NL3_H:
      return 3;
    case GgmlType::NL2_H:
      return 2;
    default:
      return 0;
  }
}

// kIq4nlValues as floats, the table the iq4_nl decoder gathers from.
alignas(64) inline constexpr float kIq4nlFloat[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                      1,    13,   25,  38,  53,  69,  89,  113};

// The levels of an nl*_h type as floats for two codes at once: entry c holds the levels of codes c & mask and
// c >> bits (kNl*Levels of quant/blocks.h). A group of 8 codes decodes with 4 lookups of 8 bytes, about
// 2.5x faster than extracting and looking up each code (5-bit: 8 KiB, still L1-resident).
template <int kBits>
struct NlPairLevels {
  float pair[1 << (2 * kBits)][2];
  constexpr NlPairLevels() : pair() {
    const int8_t* src = nl_levels(kBits);
    for (int c = 0; c < (1 << (2 * kBits)); ++c) {
      pair[c][0] = float(src[c & ((1 << kBits) - 1)]);
      pair[c][1] = float(src[c >> kBits]);
    }
  }
};
template <int kBits>
inline constexpr NlPairLevels<kBits> kNlPairs{};

// NlHeadLevelsVbmi's byte tables: lane g byte b of a 64-code step takes byte g * kBits + b of the codes;
// output byte j of a lane is bits kBits * j of it; the levels repeated over 64 entries.
template <int kBits>
struct NlVbmiTables {
  alignas(64) uint8_t spread[64];
  alignas(64) uint8_t shift[64];
  alignas(64) int8_t table[64];
  constexpr NlVbmiTables() : spread(), shift(), table() {
    const int8_t* src = nl_levels(kBits);
    for (int i = 0; i < 64; ++i) {
      spread[i] = uint8_t((i / 8) * kBits + i % 8);
      shift[i] = uint8_t(kBits * (i % 8));
      table[i] = src[i % (1 << kBits)];
    }
  }
};
template <int kBits>
inline constexpr NlVbmiTables<kBits> kNlVbmi{};

}  // namespace kvq::attention_detail

#endif  // KVQ_KERNELS_ATTENTION_DEQUANT_SHARED_

#if defined(KVQ_KERNELS_ATTENTION_DEQUANT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVQ_KERNELS_ATTENTION_DEQUANT_INL_H_
#undef KVQ_KERNELS_ATTENTION_DEQUANT_INL_H_
#else
#define KVQ_KERNELS_ATTENTION_DEQUANT_INL_H_
#endif

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "hwy/highway.h"
#include "util/half.h"
#include "util/result.h"

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 lanes: one vector then never crosses the 16-value halves of a 4/5-bit block.
using DFA = hn::CappedTag<float, 16>;

// Block scales through the hardware conversion where there is one (F16C / NEON fp16), not the branchy
// scalar reference: a decode of q8_0 or q4_0 spends a fifth of its time here otherwise.
HWY_INLINE float ScaleF32(const fp16_bits& bits) {
  const hn::CappedTag<float, 1> d1;
  const hn::Rebind<hwy::float16_t, decltype(d1)> dh1;
  return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(dh1, reinterpret_cast<const hwy::float16_t*>(&bits))));
}

// value = d * (q + bias) for the 32 codes of one block; `codes(j)` yields the i32 vector of codes j.. .
template <class CodesFn>
HWY_INLINE void StoreScaled(float d, float m, bool has_min, float* HWY_RESTRICT dst, const CodesFn& codes) {
  const DFA df;
  const hn::Vec<DFA> vd = hn::Set(df, d);
  const hn::Vec<DFA> vm = hn::Set(df, m);
  for (int j = 0; j < kQK; j += int(hn::Lanes(df))) {
    const hn::Vec<DFA> q = hn::ConvertTo(df, codes(j));
    hn::StoreU(has_min ? hn::MulAdd(q, vd, vm) : hn::Mul(q, vd), df, dst + j);
  }
}

// Low (j < 16) or high (j >= 16) nibbles of qs as i32 codes of values j .. j + lanes - 1.
HWY_INLINE hn::Vec<hn::RebindToSigned<DFA>> Nibbles(const uint8_t* qs, int j) {
  const hn::RebindToSigned<DFA> di;
  const hn::Rebind<uint8_t, DFA> du8;
  const auto bytes = hn::LoadU(du8, qs + (j & 15));
  const auto nib = j < 16 ? hn::And(bytes, hn::Set(du8, 0x0F)) : hn::ShiftRight<4>(bytes);
  return hn::PromoteTo(di, nib);
}

// The 5th bit of values j .. j + lanes - 1 as 16 or 0.
HWY_INLINE hn::Vec<hn::RebindToSigned<DFA>> HighBits(uint32_t qh, int j) {
  const hn::RebindToUnsigned<DFA> du;
  const auto bit = hn::And(hn::Set(du, qh), hn::LoadU(du, attention_detail::kBitOfValue + j));
  return hn::BitCast(hn::RebindToSigned<DFA>(), hn::IfThenElseZero(hn::Ne(bit, hn::Zero(du)), hn::Set(du, 16u)));
}

// Decodes blocks first_block .. first_block + n_blocks - 1 of a row into dst [n_blocks * 32] f32.
template <GgmlType kType>
HWY_INLINE void DecodeBlocks(const uint8_t* blocks, int first_block, int n_blocks, float* HWY_RESTRICT dst) {
  const hn::RebindToSigned<DFA> di;
  for (int b = first_block; b < first_block + n_blocks; ++b, dst += kQK) {
    if constexpr (kType == GgmlType::Q8_0) {
      const auto* x = reinterpret_cast<const BlockQ8_0*>(blocks) + b;
      const hn::Rebind<int8_t, DFA> di8;
      StoreScaled(ScaleF32(x->d), 0.0f, false, dst,
                  [&](int j) { return hn::PromoteTo(di, hn::LoadU(di8, x->qs + j)); });
    } else if constexpr (kType == GgmlType::Q4_0) {
      const auto* x = reinterpret_cast<const BlockQ4_0*>(blocks) + b;
      StoreScaled(ScaleF32(x->d), 0.0f, false, dst, [&](int j) { return hn::Sub(Nibbles(x->qs, j), hn::Set(di, 8)); });
    } else if constexpr (kType == GgmlType::Q4_1) {
      const auto* x = reinterpret_cast<const BlockQ4_1*>(blocks) + b;
      StoreScaled(ScaleF32(x->d), ScaleF32(x->m), true, dst, [&](int j) { return Nibbles(x->qs, j); });
    } else if constexpr (kType == GgmlType::Q5_0) {
      const auto* x = reinterpret_cast<const BlockQ5_0*>(blocks) + b;
      uint32_t qh;
      std::memcpy(&qh, x->qh, 4);
      StoreScaled(ScaleF32(x->d), 0.0f, false, dst,
                  [&](int j) { return hn::Sub(hn::Add(Nibbles(x->qs, j), HighBits(qh, j)), hn::Set(di, 16)); });
    } else if constexpr (kType == GgmlType::Q5_1) {
      const auto* x = reinterpret_cast<const BlockQ5_1*>(blocks) + b;
      uint32_t qh;
      std::memcpy(&qh, x->qh, 4);
      StoreScaled(ScaleF32(x->d), ScaleF32(x->m), true, dst,
                  [&](int j) { return hn::Add(Nibbles(x->qs, j), HighBits(qh, j)); });
    } else if constexpr (kType == GgmlType::IQ4_NL) {
      // The codebook is not affine: gather the level of each nibble, then scale (StoreScaled converts the
      // levels, which are small integers, exactly).
      const auto* x = reinterpret_cast<const BlockIQ4_NL*>(blocks) + b;
      const DFA df;
      const hn::Vec<DFA> vd = hn::Set(df, ScaleF32(x->d));
      for (int j = 0; j < kQK; j += int(hn::Lanes(df))) {
        const hn::Vec<DFA> level = hn::GatherIndex(df, attention_detail::kIq4nlFloat, Nibbles(x->qs, j));
        hn::StoreU(hn::Mul(level, vd), df, dst + j);
      }
    }
  }
}

// Decodes values [first, first + n) of a row of 16-bit floats (f16 or bf16).
template <class T>
HWY_INLINE void DecodeHalfs(const T* HWY_RESTRICT src, int n, float* HWY_RESTRICT dst) {
  const DFA df;
  const hn::Rebind<T, DFA> dh;
  const int lanes = int(hn::Lanes(df));
  int j = 0;
  for (; j + lanes <= n; j += lanes) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, src + j)), df, dst + j);
  for (; j < n; ++j) {
    uint16_t bits;
    std::memcpy(&bits, src + j, 2);
    dst[j] = std::is_same_v<T, hwy::float16_t> ? fp16_to_f32(bits) : bf16_to_f32(bits);
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// The int8 levels of 64 kBits-bit codes (kBits = 2, 3, 4 or 5) plus `offset` (0, or 128 for vpdpbusd's
// unsigned side) as 64 bytes: vpermb puts group g's kBits bytes in 64-bit lane g, vpmultishiftqb pulls code j
// of each lane out of bits kBits * j, vpermb looks the levels up. Reads 64 bytes at `codes` (kKvReadSlack).
template <int kBits>
class NlLevelsVbmi {
 public:
  explicit NlLevelsVbmi(int offset)
      : spread_(_mm512_load_si512(attention_detail::kNlVbmi<kBits>.spread)),
        shift_(_mm512_load_si512(attention_detail::kNlVbmi<kBits>.shift)),
        table_(_mm512_add_epi8(_mm512_load_si512(attention_detail::kNlVbmi<kBits>.table),
                               _mm512_set1_epi8(char(offset)))),
        mask_(_mm512_set1_epi8(char((1 << kBits) - 1))) {}
  HWY_INLINE __m512i operator()(const uint8_t* HWY_RESTRICT codes) const {
    const __m512i groups = _mm512_permutexvar_epi8(spread_, _mm512_loadu_si512(codes));
    return _mm512_permutexvar_epi8(_mm512_and_si512(_mm512_multishift_epi64_epi8(shift_, groups), mask_), table_);
  }

 private:
  __m512i spread_, shift_, table_, mask_;
};

// The levels of an nl*_h record's head_dim codes, plus `offset`, into out [head_dim] bytes, 64 per step.
template <int kBits>
HWY_INLINE void NlHeadLevelsVbmi(const uint8_t* HWY_RESTRICT codes, int head_dim, int offset,
                                 uint8_t* HWY_RESTRICT out) {
  const NlLevelsVbmi<kBits> levels(offset);
  for (int j = 0; j < head_dim; j += 64, codes += 8 * kBits) {
    const int n = std::min(64, head_dim - j);
    _mm512_mask_storeu_epi8(out + j, n == 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1, levels(codes));
  }
}
#endif

// The f16 scale at the start of a head record (records of odd size sit at any byte offset).
HWY_INLINE float RecordScale(const uint8_t* record) {
  fp16_bits bits;
  std::memcpy(&bits, record, sizeof bits);
  return ScaleF32(bits);
}

// Decodes one head record of an nl*_h type (kBits-bit codes) into dst [head_dim] f32: each group of 8 codes
// through the two-code level table, then one vector pass for the scale.
template <int kBits>
HWY_INLINE void DecodeNlHead(const uint8_t* HWY_RESTRICT record, int head_dim, float* HWY_RESTRICT dst) {
#if HWY_TARGET == HWY_AVX3_DL
  alignas(64) int8_t level_bytes[kQK * 16];  // [head_dim] int8 levels, head_dim <= 512
  if (head_dim <= kQK * 16) {
    NlHeadLevelsVbmi<kBits>(record + 2, head_dim, 0, reinterpret_cast<uint8_t*>(level_bytes));
    const __m512 d = _mm512_set1_ps(RecordScale(record));
    int j = 0;
    for (; j + 16 <= head_dim; j += 16) {
      const __m512i v = _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(level_bytes + j)));
      _mm512_storeu_ps(dst + j, _mm512_mul_ps(_mm512_cvtepi32_ps(v), d));
    }
    for (; j < head_dim; ++j) dst[j] = float(level_bytes[j]) * _mm512_cvtss_f32(d);
    return;
  }
#endif
#if HWY_TARGET != HWY_SCALAR
  if constexpr (kBits == 4) {  // 16 codes per byte shuffle: nibbles interleaved into order, then the level table
    const hn::Full128<uint8_t> d8;
    const DFA df;
    const hn::RebindToSigned<DFA> di;
    const hn::Rebind<int8_t, DFA> di8;
    const auto table = hn::LoadU(d8, reinterpret_cast<const uint8_t*>(kNl4Levels));
    const auto d = hn::Set(df, RecordScale(record));
    const auto low = hn::Set(d8, uint8_t{0x0F});
    alignas(16) int8_t levels[16];
    for (int j = 0; j < head_dim; j += 16) {  // head_dim is a multiple of 8: the last step may decode 8 extra
      const auto bytes = hn::LoadU(d8, record + 2 + j / 2);  // kKvReadSlack covers the over-read
      const auto codes = hn::InterleaveLower(d8, hn::And(bytes, low), hn::ShiftRight<4>(bytes));
      hn::Store(hn::TableLookupBytes(table, codes), d8, reinterpret_cast<uint8_t*>(levels));
      const int n = std::min(16, head_dim - j);
      for (int i = 0; i < n; i += int(hn::Lanes(df))) {
        const auto v = hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(di8, levels + i)));
        hn::StoreU(hn::Mul(v, d), df, dst + j + i);
      }
    }
    return;
  }
#endif
  const auto& pairs = attention_detail::kNlPairs<kBits>.pair;
  constexpr uint64_t kPairMask = (uint64_t(1) << (2 * kBits)) - 1;
  constexpr uint64_t kGroupMask = kBits == 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * kBits)) - 1;
  const uint8_t* codes = record + 2;
  for (int g = 0; g < head_dim / kHeadGroup; ++g, codes += kBits) {
    uint64_t word = 0;
    std::memcpy(&word, codes, 8);  // little-endian hosts (x86, ARM); the cache has kKvReadSlack bytes after
    word &= kGroupMask;            // the last row, so a group may over-read
    float* out = dst + g * kHeadGroup;
    for (int c = 0; c < kHeadGroup / 2; ++c) std::memcpy(out + 2 * c, pairs[(word >> (2 * kBits * c)) & kPairMask], 8);
  }
  const DFA df;
  const auto d = hn::Set(df, RecordScale(record));
  const int lanes = int(hn::Lanes(df));
  int j = 0;
  for (; j + lanes <= head_dim; j += lanes) hn::StoreU(hn::Mul(hn::LoadU(df, dst + j), d), df, dst + j);
  for (; j < head_dim; ++j) dst[j] *= hn::GetLane(d);
}

// The same for q8_h: int8 codes times the scale.
HWY_INLINE void DecodeQ8Head(const uint8_t* HWY_RESTRICT record, int head_dim, float* HWY_RESTRICT dst) {
  const float d = RecordScale(record);
  const auto* codes = reinterpret_cast<const int8_t*>(record + 2);
  const hn::CappedTag<float, 8> df;
  const hn::Rebind<int32_t, decltype(df)> di;
  const hn::Rebind<int8_t, decltype(df)> di8;
  for (int j = 0; j < head_dim; j += int(hn::Lanes(df))) {  // head_dim is a multiple of 8
    hn::StoreU(hn::Mul(hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(di8, codes + j))), hn::Set(df, d)), df, dst + j);
  }
}

template <GgmlType kType>
HWY_INLINE void DecodeRowsOf(const uint8_t* rows, size_t row_bytes, int n_rows, const attention_detail::HeadSlice& s,
                             float* HWY_RESTRICT dst) {
  for (int t = 0; t < n_rows; ++t) {
    const uint8_t* row = rows + size_t(t) * row_bytes;
    float* out = dst + size_t(t) * size_t(s.cover);
    if constexpr (kType == GgmlType::F32) {
      std::memcpy(out, row + size_t(s.first) * 4, size_t(s.cover) * 4);
    } else if constexpr (kType == GgmlType::F16) {
      DecodeHalfs(reinterpret_cast<const hwy::float16_t*>(row) + s.first, s.cover, out);
    } else if constexpr (kType == GgmlType::BF16) {
      DecodeHalfs(reinterpret_cast<const hwy::bfloat16_t*>(row) + s.first, s.cover, out);
    } else if constexpr (attention_detail::head_code_bits(kType) > 0) {  // "_h" types: s.cover = head_dim
      const uint8_t* record = row + size_t(s.first / s.cover) * head_record_bytes(kType, s.cover);
      if constexpr (kType == GgmlType::Q8_H) {
        DecodeQ8Head(record, s.cover, out);
      } else {
        DecodeNlHead<attention_detail::head_code_bits(kType)>(record, s.cover, out);
      }
    } else {
      DecodeBlocks<kType>(row, s.first / kQK, s.cover / kQK, out);
    }
  }
}

// Returns n_rows rows of one KV head, decoded into `scratch` [n_rows, s.cover] unless the cache already
// holds f32 (then the cache itself, when `direct_ok`: the caller reads no further than n_rows).
HWY_INLINE attention_detail::F32RowsView DecodeHeadRows(GgmlType type, const uint8_t* rows, size_t row_bytes,
                                                        int n_rows, const attention_detail::HeadSlice& s,
                                                        bool direct_ok, float* HWY_RESTRICT scratch) {
  if (type == GgmlType::F32 && direct_ok) {
    return {reinterpret_cast<const float*>(rows) + s.first + s.offset, row_bytes / sizeof(float)};
  }
  switch (type) {
    case GgmlType::F32:
      DecodeRowsOf<GgmlType::F32>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::F16:
      DecodeRowsOf<GgmlType::F16>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::BF16:
      DecodeRowsOf<GgmlType::BF16>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::Q8_0:
      DecodeRowsOf<GgmlType::Q8_0>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::Q5_1:
      DecodeRowsOf<GgmlType::Q5_1>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::Q5_0:
      DecodeRowsOf<GgmlType::Q5_0>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::Q4_1:
      DecodeRowsOf<GgmlType::Q4_1>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::Q4_0:
      DecodeRowsOf<GgmlType::Q4_0>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::IQ4_NL:
      DecodeRowsOf<GgmlType::IQ4_NL>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::Q8_H:
      DecodeRowsOf<GgmlType::Q8_H>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::NL5_H:
      DecodeRowsOf<GgmlType::NL5_H>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::NL4_H:
      DecodeRowsOf<GgmlType::NL4_H>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::NL3_H:
      DecodeRowsOf<GgmlType::NL3_H>(rows, row_bytes, n_rows, s, scratch);
      break;
    case GgmlType::NL2_H:
      DecodeRowsOf<GgmlType::NL2_H>(rows, row_bytes, n_rows, s, scratch);
      break;
    default:
      KVQ_CHECK(false && "attention: not a KV cache type");
  }
  return {scratch + s.offset, size_t(s.cover)};
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
}  // namespace HWY_NAMESPACE
}  // namespace kvq
HWY_AFTER_NAMESPACE();

#endif  // KVQ_KERNELS_ATTENTION_DEQUANT_INL_H_
