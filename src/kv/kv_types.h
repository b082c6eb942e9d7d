// Key and value element types of the KV cache, chosen independently and optionally per layer.
#pragma once

#include <string_view>
#include <vector>

#include "kv/rotation.h"
#include "quant/blocks.h"
#include "util/result.h"

namespace kvq {

// Positions a layer's quantized sides also keep at a more precise type (kv/kv_cache.h, "Sinks and a recent
// window"): the first `sinks` and the last `recent` that each query reads.
struct KvKept {
  int sinks = 0;
  int recent = 0;
  GgmlType type = GgmlType::F16;
  bool any() const { return sinks > 0 || recent > 0; }
  bool operator==(const KvKept&) const = default;
};

// The element types of one layer's cached keys and values.
struct KvTypes {
  GgmlType k = GgmlType::F16;
  GgmlType v = GgmlType::F16;
  KvRotation rotation = KvRotation::kNone;  // kv/rotation.h
  KvKept kept = {};                         // sinks and recent window; applies to the quantized sides
  bool operator==(const KvTypes&) const = default;
};

// Every type the KV cache stores and the fused attention reads (DESIGN.md §2), most precise first within
// each family: ggml's block formats, then kvq's head-scaled ones (quant/blocks.h; head_dim % 8 == 0).
inline constexpr GgmlType kKvCacheTypes[] = {GgmlType::F32,    GgmlType::F16,  GgmlType::BF16,  GgmlType::Q8_0,
                                             GgmlType::Q5_1,   GgmlType::Q5_0, GgmlType::Q4_1,  GgmlType::Q4_0,
                                             GgmlType::IQ4_NL, GgmlType::Q8_H, GgmlType::NL5_H, GgmlType::NL4_H,
                                             GgmlType::NL3_H,  GgmlType::NL2_H};

bool is_kv_type(GgmlType type);

// Seed-style bit counts "16" (f16), "8" (q8_0), "5" (q5_0), "4" (q4_0), or a type name of kKvCacheTypes
// (case-insensitive: "Q8_0" works). The error lists the valid spellings.
Result<GgmlType> parse_kv_type(std::string_view text);

// A per-layer spec "0-1:f16/f16,2-21:q8_0/q4_0" (ranges inclusive; "5:q8_0/q4_0" for one layer; types as
// parse_kv_type) applied over `defaults`, which fills every layer the spec does not name. Suffixes after the
// value type, each after a '+': "rk" / "rkv" rotate that range's keys / keys and values, "r0" turns a
// default rotation off; "sN" keeps N sinks, "wR" a recent window of R, "keep=TYPE" their type (unnamed
// ones come from `defaults`; "s0+w0" turns them off). Later items win. Errors: bad syntax, a layer outside
// 0 .. n_layer - 1, a bad type.
Result<std::vector<KvTypes>> parse_kv_layers(std::string_view spec, int n_layer, KvTypes defaults);

// kAuto made concrete: keys and values rotated when either is quantized (stories15M, `kvq sweep -c 256
// --chunks 60`: mean KLD of q8_0/q4_0 0.65x, q4_0/q4_0 0.46x unrotated; docs/results.md), none for float
// caches, where rotation changes nothing but rounding. Other rotations are returned as they are.
KvTypes resolve_rotation(KvTypes types);

// "s1+w16+keep=q8_0" (the layer spec's suffixes), or "none"
std::string kv_kept_name(const KvKept& kept);

// "q8_0/q4_0", with "+rk" or "+rkv" when rotated and "+s1+w16+keep=q8_0" when positions are kept: what
// parse_kv_layers reads back.
std::string kv_types_name(const KvTypes& types);

}  // namespace kvq
