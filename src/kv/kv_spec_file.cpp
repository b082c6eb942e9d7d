#include "kv/kv_spec_file.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace kvq {
namespace {

using nlohmann::json;

// Returns the string at obj[key], or an error naming the key.
Result<std::string> get_string(const json& obj, const char* key, const char* where) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return make_error("{}: \"{}\" must be a string", where, key);
  return it->get_ref<const std::string&>();
}

// Returns the integer at obj[key] within [lo, hi], or an error naming the key and the range.
Result<int> get_int(const json& obj, const char* key, const char* where, int64_t lo, int64_t hi) {
  const auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return make_error("{}: \"{}\" must be an integer", where, key);
  // Unsigned and signed integers both land here; read through the signed view only when it fits.
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(hi)) {
    return make_error("{}: \"{}\" is {}, expected {}..{}", where, key, it->get<uint64_t>(), lo, hi);
  }
  const int64_t value = it->get<int64_t>();
  if (value < lo || value > hi) return make_error("{}: \"{}\" is {}, expected {}..{}", where, key, value, lo, hi);
  return int(value);
}

}  // namespace

std::string fingerprint_hex(uint64_t fingerprint) { return fmt::format("{:016x}", fingerprint); }

Result<KvSpecFile> parse_kv_spec_file(std::string_view json_text) {
  constexpr int kMaxLayers = 1 << 16;  // far above any model; bounds the work a hostile file can ask for
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error("the KV spec file is not valid JSON");
  if (!j.is_object()) return make_error("the KV spec file must hold a JSON object");
  auto version = get_int(j, "kvq_spec", "KV spec file", 1, 1 << 20);
  if (!version) return version.error();
  if (*version != KvSpecFile::kVersion) {
    return make_error("KV spec file version {} is not supported (expected {})", *version, KvSpecFile::kVersion);
  }
  KvSpecFile spec;
  const auto model = j.find("model");
  if (model == j.end() || !model->is_object()) return make_error("KV spec file: \"model\" must be an object");
  auto name = get_string(*model, "name", "KV spec file model");
  if (!name) return name.error();
  auto n_layer = get_int(*model, "n_layer", "KV spec file model", 1, kMaxLayers);
  if (!n_layer) return n_layer.error();
  auto fingerprint = get_string(*model, "fingerprint", "KV spec file model");
  if (!fingerprint) return fingerprint.error();
  const std::string& hex = *fingerprint;
  const auto [end, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), spec.model.fingerprint, 16);
  if (hex.size() != 16 || ec != std::errc() || end != hex.data() + hex.size()) {
    return make_error("KV spec file model: \"fingerprint\" '{}' must be 16 hex digits", hex);
  }
  spec.model.name = *name;
  spec.model.n_layer = *n_layer;

  const auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) return make_error("KV spec file: \"layers\" must be an array");
  if (layers->size() != size_t(*n_layer)) {
    return make_error("KV spec file: \"layers\" has {} entries; the model has {} layers", layers->size(), *n_layer);
  }
  std::vector<bool> seen(size_t(*n_layer), false);  // [n_layer] layers named so far
  spec.layers.resize(size_t(*n_layer));
  for (const json& item : *layers) {
    if (!item.is_object()) return make_error("KV spec file: every \"layers\" entry must be an object");
    auto layer = get_int(item, "layer", "KV spec file layer entry", 0, *n_layer - 1);
    if (!layer) return layer.error();
    if (seen[size_t(*layer)]) return make_error("KV spec file: layer {} appears twice", *layer);
    seen[size_t(*layer)] = true;
    KvTypes& types = spec.layers[size_t(*layer)];
    for (auto [key, out] : {std::pair{"k", &types.k}, std::pair{"v", &types.v}}) {
      auto text = get_string(item, key, "KV spec file layer entry");
      if (!text) return text.error();
      auto type = parse_kv_type(*text);
      if (!type) return make_error("KV spec file layer {} \"{}\": {}", *layer, key, type.error().message);
      *out = *type;
    }
    // Optional: the layer's kept positions (kv/kv_types.h, KvKept).
    for (auto [key, out] : {std::pair{"sinks", &types.kept.sinks}, std::pair{"window", &types.kept.recent}}) {
      if (!item.contains(key)) continue;
      auto count = get_int(item, key, "KV spec file layer entry", 0, 1 << 30);
      if (!count) return count.error();
      *out = *count;
    }
    if (item.contains("keep")) {
      auto text = get_string(item, "keep", "KV spec file layer entry");
      if (!text) return text.error();
      auto type = parse_kv_type(*text);
      if (!type) return make_error("KV spec file layer {} \"keep\": {}", *layer, type.error().message);
      types.kept.type = *type;
    }
  }
  // n_layer distinct entries in 0 .. n_layer - 1: every layer is named (no check needed beyond `seen`).
  if (const auto tuned = j.find("tuned"); tuned != j.end()) {
    if (!tuned->is_object()) return make_error("KV spec file: \"tuned\" must be an object");
    spec.tuned_json = tuned->dump();
  }
  return spec;
}

std::string kv_spec_file_text(const KvSpecFile& spec) {
  json layers = json::array();
  for (size_t l = 0; l < spec.layers.size(); ++l) {
    const KvTypes& t = spec.layers[l];
    json layer = {{"layer", l}, {"k", std::string(type_name(t.k))}, {"v", std::string(type_name(t.v))}};
    if (t.kept.any()) {
      layer["sinks"] = t.kept.sinks;
      layer["window"] = t.kept.recent;
      layer["keep"] = std::string(type_name(t.kept.type));
    }
    layers.push_back(std::move(layer));
  }
  json j = {{"kvq_spec", KvSpecFile::kVersion},
            {"model",
             {{"name", spec.model.name},
              {"n_layer", spec.model.n_layer},
              {"fingerprint", fingerprint_hex(spec.model.fingerprint)}}},
            {"layers", layers}};
  if (!spec.tuned_json.empty()) {
    json tuned = json::parse(spec.tuned_json, nullptr, false);
    KVQ_CHECK(tuned.is_object());
    j["tuned"] = std::move(tuned);
  }
  return j.dump(2) + "\n";
}

Status check_kv_spec_model(const KvSpecFile& spec, const ModelIdentity& model) {
  const ModelIdentity& s = spec.model;
  if (s.n_layer != model.n_layer) {
    return make_error("the KV spec was made for a model of {} layers ('{}'); this model ('{}') has {}", s.n_layer,
                      s.name, model.name, model.n_layer);
  }
  if (s.fingerprint != model.fingerprint || s.name != model.name) {
    return make_error(
        "the KV spec was made for another model: '{}' (tensor fingerprint {}); this model is '{}' "
        "(fingerprint {})",
        s.name, fingerprint_hex(s.fingerprint), model.name, fingerprint_hex(model.fingerprint));
  }
  return Status::Ok();
}

}  // namespace kvq
