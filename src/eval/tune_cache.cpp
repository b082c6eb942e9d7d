#include "eval/tune_cache.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

namespace kvq::eval {
namespace {

using nlohmann::json;

constexpr int kVersion = 1;

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

// Returns obj[key] as an unsigned integer (or, with hex, parsed from a 16-hex-digit string).
Result<uint64_t> get_u64(const json& obj, const char* key, bool hex) {
  const auto it = obj.find(key);
  if (it == obj.end()) return make_error("tune measurements: \"{}\" is missing", key);
  if (hex) {
    uint64_t v = 0;
    if (!it->is_string()) return make_error("tune measurements: \"{}\" must be a hex string", key);
    const std::string& s = it->get_ref<const std::string&>();
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
      return make_error("tune measurements: \"{}\" '{}' is not hex", key, s);
    }
    return v;
  }
  if (!it->is_number_unsigned()) return make_error("tune measurements: \"{}\" must be a non-negative integer", key);
  return it->get<uint64_t>();
}

}  // namespace

std::string tune_cache_text(const TuneCacheKey& key, const SensitivityTable& table) {
  json measurements = json::array();
  for (int l = 0; l < table.n_layer(); ++l) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      for (int t = 1; t < int(table.types().size()); ++t) {  // types[0] is the baseline: zero by definition
        const SlotMeasurement& m = table.at(l, side, t);
        if (!m.measured) continue;
        measurements.push_back({{"layer", l},
                                {"side", side_name(side)},
                                {"type", std::string(type_name(table.types()[size_t(t)]))},
                                {"kld", m.kld},
                                {"ln_ppl_ratio", m.ln_ppl_ratio}});
      }
    }
  }
  const json j = {{"kvq_tune_measurements", kVersion},
                  {"model", key.identity.model_path},
                  {"model_bytes", key.identity.model_bytes},
                  {"model_hash", hex64(key.identity.model_hash)},
                  {"text_bytes", key.identity.text_bytes},
                  {"text_hash", hex64(key.identity.text_hash)},
                  {"n_ctx", key.n_ctx},
                  {"calib_chunks", key.calib_chunks},
                  {"n_layer", key.n_layer},
                  {"kept", key.kept},
                  {"measurements", measurements}};
  return j.dump(1) + "\n";
}

Result<int> load_tune_cache(std::string_view text, const TuneCacheKey& key, SensitivityTable& table) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return make_error("tune measurements: not a JSON object");
  auto version = get_u64(j, "kvq_tune_measurements", false);
  if (!version) return version.error();
  if (*version != kVersion)
    return make_error("tune measurements: version {} is not supported (expected {})", *version, kVersion);
  // Every field of the key, each with both values in the message.
  const struct {
    const char* name;
    bool hex;
    uint64_t expected;
  } fields[] = {{"model_bytes", false, key.identity.model_bytes},
                {"model_hash", true, key.identity.model_hash},
                {"text_bytes", false, key.identity.text_bytes},
                {"text_hash", true, key.identity.text_hash},
                {"n_ctx", false, uint64_t(key.n_ctx)},
                {"calib_chunks", false, uint64_t(key.calib_chunks)},
                {"n_layer", false, uint64_t(key.n_layer)}};
  for (const auto& f : fields) {
    auto value = get_u64(j, f.name, f.hex);
    if (!value) return value.error();
    if (*value != f.expected) {
      return make_error(
          "the measurements were taken with {} = {}; this run has {} (another model, text, -c or "
          "--calib-chunks: use another --resume file)",
          f.name, f.hex ? hex64(*value) : std::to_string(*value),
          f.hex ? hex64(f.expected) : std::to_string(f.expected));
    }
  }
  const auto kept = j.find("kept");
  if (kept != j.end() && !kept->is_string()) return make_error("tune measurements: \"kept\" must be a string");
  const std::string kept_text = kept == j.end() ? "none" : kept->get<std::string>();
  if (kept_text != key.kept) {
    return make_error(
        "the measurements were taken with kept positions {}; this run keeps {} (use another --resume file)", kept_text,
        key.kept);
  }
  const auto measurements = j.find("measurements");
  if (measurements == j.end() || !measurements->is_array()) {
    return make_error("tune measurements: \"measurements\" must be an array");
  }
  int taken = 0;
  for (const json& m : *measurements) {
    if (!m.is_object()) return make_error("tune measurements: every measurement must be an object");
    const auto layer = m.find("layer"), side = m.find("side"), type = m.find("type");
    const auto kld = m.find("kld"), ln_ppl = m.find("ln_ppl_ratio");
    if (layer == m.end() || !layer->is_number_unsigned() || side == m.end() || !side->is_string() || type == m.end() ||
        !type->is_string() || kld == m.end() || !kld->is_number() || ln_ppl == m.end() || !ln_ppl->is_number()) {
      return make_error("tune measurements: a measurement needs layer, side, type, kld and ln_ppl_ratio");
    }
    const uint64_t l = layer->get<uint64_t>();
    const std::string& side_text = side->get_ref<const std::string&>();
    const double kld_value = kld->get<double>(), ln_value = ln_ppl->get<double>();
    if (l >= uint64_t(table.n_layer()) || (side_text != "k" && side_text != "v") || !std::isfinite(kld_value) ||
        kld_value < 0 || !std::isfinite(ln_value)) {
      return make_error("tune measurements: bad measurement {}", m.dump());
    }
    auto parsed = parse_kv_type(type->get_ref<const std::string&>());
    if (!parsed) return make_error("tune measurements: {}", parsed.error().message);
    const int t = table.type_index(*parsed);
    if (t <= 0) continue;  // not a candidate of this run, or the baseline itself
    table.at(int(l), side_text == "k" ? KvSide::kKey : KvSide::kValue, t) = SlotMeasurement{kld_value, ln_value, true};
    ++taken;
  }
  return taken;
}

}  // namespace kvq::eval
