#include "quant/blocks.h"

#include "util/result.h"

namespace kvq {
namespace {

// Block formats kvq knows the layout of. `kernels` = kvq dequantizes it.
constexpr TypeTraits kTypes[] = {
    {GgmlType::F32, "f32", 1, 4, false, true},
    {GgmlType::F16, "f16", 1, 2, false, true},
    {GgmlType::BF16, "bf16", 1, 2, false, true},
    {GgmlType::Q4_0, "q4_0", kQK, sizeof(BlockQ4_0), true, true},
    {GgmlType::Q4_1, "q4_1", kQK, sizeof(BlockQ4_1), true, true},
    {GgmlType::Q5_0, "q5_0", kQK, sizeof(BlockQ5_0), true, true},
    {GgmlType::Q5_1, "q5_1", kQK, sizeof(BlockQ5_1), true, true},
    {GgmlType::Q8_0, "q8_0", kQK, sizeof(BlockQ8_0), true, true},
    {GgmlType::Q8_1, "q8_1", kQK, sizeof(BlockQ8_1), true, false},
    {GgmlType::IQ4_NL, "iq4_nl", kQK, sizeof(BlockIQ4_NL), true, true},
    {GgmlType::Q2_K, "q2_K", kQK_K, sizeof(BlockQ2_K), true, true},
    {GgmlType::Q3_K, "q3_K", kQK_K, sizeof(BlockQ3_K), true, true},
    {GgmlType::Q4_K, "q4_K", kQK_K, sizeof(BlockQ4_K), true, true},
    {GgmlType::Q5_K, "q5_K", kQK_K, sizeof(BlockQ5_K), true, true},
    {GgmlType::Q6_K, "q6_K", kQK_K, sizeof(BlockQ6_K), true, true},
    {GgmlType::Q8_K, "q8_K", kQK_K, sizeof(BlockQ8_K), true, false},
    {GgmlType::IQ4_XS, "iq4_xs", kQK_K, sizeof(BlockIQ4_XS), true, true},
    {GgmlType::I8, "i8", 1, 1, false, false},
    {GgmlType::I16, "i16", 1, 2, false, false},
    {GgmlType::I32, "i32", 1, 4, false, false},
    {GgmlType::I64, "i64", 1, 8, false, false},
    {GgmlType::F64, "f64", 1, 8, false, false},
    {GgmlType::Q8_H, "q8_h", kHeadGroup, 8, true, false, true},
    {GgmlType::NL5_H, "nl5_h", kHeadGroup, 5, true, false, true},
    {GgmlType::NL4_H, "nl4_h", kHeadGroup, 4, true, false, true},
    {GgmlType::NL3_H, "nl3_h", kHeadGroup, 3, true, false, true},
    {GgmlType::NL2_H, "nl2_h", kHeadGroup, 2, true, false, true},
};

}  // namespace

const TypeTraits* find_type_traits(uint32_t id) {
  for (const TypeTraits& t : kTypes) {
    if (uint32_t(t.type) == id) return &t;
  }
  return nullptr;
}

const TypeTraits& type_traits(GgmlType type) {
  const TypeTraits* t = find_type_traits(uint32_t(type));
  KVQ_CHECK(t != nullptr);
  return *t;
}

size_t kv_row_bytes(GgmlType type, int n_heads, int head_dim) {
  if (is_head_scaled(type)) return size_t(n_heads) * head_record_bytes(type, head_dim);
  const int block = type_traits(type).block_size;
  return row_bytes(type, (int64_t(n_heads) * head_dim + block - 1) / block * block);
}

std::optional<GgmlType> parse_type_name(std::string_view name) {
  for (const TypeTraits& t : kTypes) {
    if (t.name.size() != name.size()) continue;
    bool same = true;  // case-insensitive: "Q8_0" and "q8_0" both name q8_0
    for (size_t i = 0; i < name.size() && same; ++i) {
      auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; };
      same = lower(t.name[i]) == lower(name[i]);
    }
    if (same) return t.type;
  }
  return std::nullopt;
}

}  // namespace kvq
