// What synth puts in each matrix: the weight type (one type everywhere, or llama.cpp's Q4_K_M mix with its
// per-role rules and fallbacks) and deterministic random contents.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cli/synth.h"
#include "quant/quant.h"
#include "util/half.h"

namespace kvq::cli {
namespace {

constexpr int kFileTypeQ4_K_M = 15;  // LLAMA_FTYPE_MOSTLY_Q4_K_M

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer between.
bool use_more_bits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// The Q4_K_M rule of llama.cpp's llama_tensor_get_type, for the tensor roles synth writes.
GgmlType q4_k_m_role_type(const MatrixRole& role) {
  // The output matrix, or token_embd when it doubles as the output (tied), gets q6_K.
  if (role.name == "output.weight" || (role.tied && role.name == "token_embd.weight")) return GgmlType::Q6_K;
  if (role.layer < 0) return GgmlType::Q4_K;
  // The fused q/k/v projection (phi3) gets one step more than q4_K, not attn_v's rule.
  if (contains(role.name, "attn_qkv.")) return GgmlType::Q5_K;
  if (contains(role.name, "attn_v.") || contains(role.name, "ffn_down.")) {
    return use_more_bits(role.layer, role.n_layer) ? GgmlType::Q6_K : GgmlType::Q4_K;
  }
  return GgmlType::Q4_K;
}

// llama.cpp's convert_incompatible_tensor: a k-quant whose 256-value blocks don't tile the row falls back
// to a 32-value type of about the same size, and to f16 when even that does not fit.
GgmlType fallback_type(GgmlType type, int64_t n_in) {
  if (n_in % type_traits(type).block_size == 0) return type;
  GgmlType fallback = GgmlType::F16;
  switch (type) {
    case GgmlType::Q4_K:
      fallback = GgmlType::Q5_0;
      break;
    case GgmlType::Q5_K:
      fallback = GgmlType::Q5_1;
      break;
    case GgmlType::Q6_K:
      fallback = GgmlType::Q8_0;
      break;
    default:
      break;
  }
  return n_in % type_traits(fallback).block_size == 0 ? fallback : GgmlType::F16;
}

// k-quant rows have no quantizer here (ggml's needs an iterative scale search): they get random codes with
// fixed sub-block scales chosen so that the values have mean ~0 and standard deviation ~std_dev, which is
// all a speed measurement needs.
void random_k_row(GgmlType type, uint64_t seed, float std_dev, uint8_t* dst, int64_t n) {
  uint64_t state = seed;
  const auto random_bytes = [&](uint8_t* p, size_t count) {
    for (size_t i = 0; i < count; i += 8) {
      const uint64_t r = splitmix64(state);
      std::memcpy(p + i, &r, std::min<size_t>(8, count - i));
    }
  };
  constexpr int kScale = 32;  // 6-bit q4_K/q5_K scale and min; q6_K's 8-bit scales use 2 x kScale
  // Scales and mins 0-3 in bytes 0-3 and 4-7; those of 4-7 split into the low and high nibbles of bytes 8-11
  // (low 4 bits) and the top 2 bits of bytes 0-3 and 4-7 (high 2 bits). Same packing in q4_K and q5_K.
  const auto set_scales = [](uint8_t* scales) {
    std::memset(scales, kScale | ((kScale >> 4) << 6), 8);
    std::memset(scales + 8, (kScale & 0x0F) | ((kScale & 0x0F) << 4), 4);
  };
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    if (type == GgmlType::Q4_K) {
      BlockQ4_K& x = reinterpret_cast<BlockQ4_K*>(dst)[b];
      random_bytes(x.qs, sizeof(x.qs));
      // Codes uniform in 0..15: mean 7.5, standard deviation 4.61; the min cancels the mean.
      const float d = std_dev / (4.61f * kScale);
      x.d = f32_to_fp16(d);
      x.dmin = f32_to_fp16(7.5f * d);
      set_scales(x.scales);
    } else if (type == GgmlType::Q5_K) {
      BlockQ5_K& x = reinterpret_cast<BlockQ5_K*>(dst)[b];
      random_bytes(x.qs, sizeof(x.qs));
      random_bytes(x.qh, sizeof(x.qh));
      // Codes uniform in 0..31: mean 15.5, standard deviation 9.23.
      const float d = std_dev / (9.23f * kScale);
      x.d = f32_to_fp16(d);
      x.dmin = f32_to_fp16(15.5f * d);
      set_scales(x.scales);
    } else {
      KVQ_CHECK(type == GgmlType::Q6_K);
      BlockQ6_K& x = reinterpret_cast<BlockQ6_K*>(dst)[b];
      random_bytes(x.ql, sizeof(x.ql));
      random_bytes(x.qh, sizeof(x.qh));
      std::memset(x.scales, 2 * kScale, sizeof(x.scales));
      x.d = f32_to_fp16(std_dev / (18.5f * 2 * kScale));  // codes - 32 uniform in -32..31: deviation 18.5
    }
  }
}

}  // namespace

Result<SynthTypes> parse_synth_types(const std::string& name) {
  if (name == "q4_k_m" || name == "Q4_K_M") return SynthTypes{GgmlType::Q4_K, true};
  auto type = parse_type_name(name);
  SynthTypes types;
  if (type) types.type = *type;
  if (!type || !has_quantizer(*type) || file_type_id(types) < 0) {
    return make_error("--type '{}' unsupported (supported: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl q4_k_m)", name);
  }
  return types;
}

int file_type_id(const SynthTypes& types) {
  if (types.q4_k_m) return kFileTypeQ4_K_M;
  // ggml's general.file_type ids for files whose matrices are all one type.
  switch (types.type) {
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q4_0:
      return 2;
    case GgmlType::Q4_1:
      return 3;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::Q5_0:
      return 8;
    case GgmlType::Q5_1:
      return 9;
    case GgmlType::IQ4_NL:
      return 25;
    case GgmlType::BF16:
      return 32;
    default:
      return -1;
  }
}

GgmlType matrix_type(const SynthTypes& types, const MatrixRole& role, int64_t n_in) {
  if (!types.q4_k_m) return types.type;  // a single-type file: the caller checked the widths
  const GgmlType wanted = q4_k_m_role_type(role);
  // The output rule checks the width before choosing q6_K and takes q8_0 when it does not fit.
  if (wanted == GgmlType::Q6_K && role.layer < 0 && n_in % kQK_K != 0) return fallback_type(GgmlType::Q8_0, n_in);
  return fallback_type(wanted, n_in);
}

uint64_t tensor_seed(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h ^ (seed * 0x9e3779b97f4a7c15ull);
}

void random_normal_row(uint64_t seed, float std_dev, float* row, int64_t n) {
  // Box-Muller on one splitmix stream per row, so the thread count never changes the values.
  uint64_t state = seed;
  for (int64_t i = 0; i < n; i += 2) {
    const double u1 = (double(splitmix64(state) >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = double(splitmix64(state) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * std_dev;
    row[i] = float(r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < n) row[i + 1] = float(r * std::sin(2.0 * M_PI * u2));
  }
}

void fill_random_row(GgmlType type, uint64_t seed, float std_dev, uint8_t* dst, int64_t n, float* scratch) {
  if (type == GgmlType::Q4_K || type == GgmlType::Q5_K || type == GgmlType::Q6_K) {
    random_k_row(type, seed, std_dev, dst, n);
    return;
  }
  random_normal_row(seed, std_dev, scratch, n);
  quantize_row(type, scratch, dst, n);
}

}  // namespace kvq::cli
