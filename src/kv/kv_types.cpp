#include "kv/kv_types.h"

#include <charconv>
#include <string>

namespace kvq {
namespace {

std::string valid_kv_types() {
  std::string names = "16, 8, 5, 4";
  for (GgmlType type : kKvCacheTypes) {
    names += ", ";
    names += type_name(type);
  }
  return names;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Returns the decimal integer spelled by all of `s`, or -1 (layers are never negative).
int parse_layer_index(std::string_view s) {
  s = trim(s);
  int value = -1;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || value < 0) return -1;
  return value;
}

// One "+..." suffix of a layer spec item (parse_kv_layers) applied to `types`.
Status parse_suffix(std::string_view suffix, std::string_view spec, KvTypes& types) {
  if (suffix == "r0" || suffix == "rk" || suffix == "rkv") {
    types.rotation = suffix == "r0" ? KvRotation::kNone : suffix == "rk" ? KvRotation::kKeys : KvRotation::kKeysValues;
    return Status::Ok();
  }
  if (suffix.substr(0, 5) == "keep=") {
    const Result<GgmlType> type = parse_kv_type(suffix.substr(5));
    if (!type) return make_error("in KV layer spec '{}': keep: {}", spec, type.error().message);
    types.kept.type = *type;
    return Status::Ok();
  }
  const int count = suffix.size() > 1 ? parse_layer_index(suffix.substr(1)) : -1;
  if (count >= 0 && (suffix.front() == 's' || suffix.front() == 'w')) {
    (suffix.front() == 's' ? types.kept.sinks : types.kept.recent) = count;
    return Status::Ok();
  }
  return make_error("in KV layer spec '{}': invalid suffix '+{}' (valid: +rk, +rkv, +r0, +sN, +wR, +keep=TYPE)", spec,
                    suffix);
}

}  // namespace

bool is_kv_type(GgmlType type) {
  for (GgmlType t : kKvCacheTypes) {
    if (t == type) return true;
  }
  return false;
}

Result<GgmlType> parse_kv_type(std::string_view text) {
  const std::string_view s = trim(text);
  if (s == "16") return GgmlType::F16;
  if (s == "8") return GgmlType::Q8_0;
  if (s == "5") return GgmlType::Q5_0;
  if (s == "4") return GgmlType::Q4_0;
  const std::optional<GgmlType> type = parse_type_name(s);
  if (!type || !is_kv_type(*type)) {
    return make_error("invalid KV cache type '{}' (valid: {})", text, valid_kv_types());
  }
  return *type;
}

KvTypes resolve_rotation(KvTypes types) {
  if (types.rotation == KvRotation::kAuto) {
    const bool quantized = type_traits(types.k).quantized || type_traits(types.v).quantized;
    types.rotation = quantized ? KvRotation::kKeysValues : KvRotation::kNone;
  }
  return types;
}

std::string kv_types_name(const KvTypes& types) {
  std::string name = std::string(type_name(types.k)) + "/" + std::string(type_name(types.v));
  if (types.rotation != KvRotation::kNone) name += "+r" + std::string(kv_rotation_name(types.rotation));
  if (types.kept.any()) name += "+" + kv_kept_name(types.kept);
  return name;
}

std::string kv_kept_name(const KvKept& kept) {
  if (!kept.any()) return "none";
  std::string name;
  if (kept.sinks > 0) name += "s" + std::to_string(kept.sinks) + "+";
  if (kept.recent > 0) name += "w" + std::to_string(kept.recent) + "+";
  return name + "keep=" + std::string(type_name(kept.type));
}

Result<std::vector<KvTypes>> parse_kv_layers(std::string_view spec, int n_layer, KvTypes defaults) {
  if (n_layer <= 0) return make_error("invalid layer count {} for KV layer spec", n_layer);
  std::vector<KvTypes> layers(size_t(n_layer), defaults);
  if (trim(spec).empty()) return layers;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = spec.find(',', start);
    const std::string_view item = spec.substr(start, comma == std::string_view::npos ? spec.npos : comma - start);
    start = comma == std::string_view::npos ? spec.size() + 1 : comma + 1;

    // item = LAYERS ':' KTYPE '/' VTYPE
    const size_t colon = item.find(':');
    const size_t slash = colon == item.npos ? item.npos : item.find('/', colon);
    if (colon == item.npos || slash == item.npos) {
      return make_error(
          "invalid KV layer spec item '{}' in '{}' (expected FIRST[-LAST]:KTYPE/VTYPE, e.g. "
          "0-1:f16/f16,2-21:q8_0/q4_0)",
          item, spec);
    }
    const std::string_view range = item.substr(0, colon);
    const size_t dash = range.find('-');
    const int first = parse_layer_index(range.substr(0, dash));
    const int last = dash == range.npos ? first : parse_layer_index(range.substr(dash + 1));
    if (first < 0 || last < 0) {
      return make_error("invalid layer range '{}' in KV layer spec '{}' (expected N or FIRST-LAST)", range, spec);
    }
    if (first > last || last >= n_layer) {
      return make_error("layer range '{}' in KV layer spec '{}' is outside 0-{}", range, spec, n_layer - 1);
    }
    const Result<GgmlType> k = parse_kv_type(item.substr(colon + 1, slash - colon - 1));
    if (!k) return make_error("in KV layer spec '{}': {}", spec, k.error().message);
    std::string_view v_text = item.substr(slash + 1);
    KvTypes types = defaults;
    types.k = *k;
    for (size_t plus = v_text.rfind('+'); plus != v_text.npos; plus = v_text.rfind('+')) {
      KVQ_RETURN_IF_ERROR(parse_suffix(trim(v_text.substr(plus + 1)), spec, types));
      v_text = v_text.substr(0, plus);
    }
    const Result<GgmlType> v = parse_kv_type(v_text);
    if (!v) return make_error("in KV layer spec '{}': {}", spec, v.error().message);
    types.v = *v;
    for (int layer = first; layer <= last; ++layer) layers[size_t(layer)] = types;
  }
  return layers;
}

}  // namespace kvq
