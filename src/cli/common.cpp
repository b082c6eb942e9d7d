#include "cli/common.h"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <algorithm>
#include <iostream>

#include "cli/commands.h"

namespace kvq::cli {

void add_sampling_options(CLI::App* command, SamplerParams& params) {
  command->add_option("--temp", params.temperature, "temperature (0 = greedy)")->capture_default_str();
  command->add_option("--top-k", params.top_k, "top-k (0 = off)")->capture_default_str();
  command->add_option("--top-p", params.top_p, "top-p (1 = off)")->capture_default_str();
  command->add_option("--min-p", params.min_p, "min-p (0 = off)")->capture_default_str();
}

void add_kv_options(CLI::App* command, KvOptions& options) {
  const char* type_help =
      "bits (16, 8, 5, 4) or type: f32 f16 bf16 q8_0 q5_1 q5_0 q4_1 q4_0 iq4_nl, or a head-scaled type q8_h nl5_h "
      "nl4_h nl3_h nl2_h";
  command->add_option("--kvq-key,--cache-type-k", options.key,
                      std::string("key cache type (also -ctk), env KVQ_KEY; ") + type_help + " (default f16)");
  command->add_option("--kvq-val,--cache-type-v", options.val,
                      std::string("value cache type (also -ctv), env KVQ_VAL; ") + type_help + " (default f16)");
  command->add_option("--kvq-rot", options.rotation,
                      "rotate keys (k) or keys and values (kv) by an orthogonal transform per head before they are "
                      "quantized: none, k, kv, auto (default auto: kv when K or V is quantized)");
  command
      ->add_option("--kvq-centre", options.centre,
                   "store quantized keys and values minus their mean over the first stored batch (exact; helps "
                   "after long prompts, hurts after short ones)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  add_kept_options(command, options);
  command->add_option("--kvq-layers", options.layers,
                      "per-layer overrides, e.g. \"0-1:f16/f16,2-21:q8_0/q4_0+rk\" (+rk / +rkv: rotated), or @FILE: "
                      "a spec written by kvq tune");
}

void add_kept_options(CLI::App* command, KvOptions& options) {
  command
      ->add_option("--kvq-sinks", options.sinks,
                   "also keep the first N positions (attention sinks) at --kvq-keep beside quantized keys and values")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command
      ->add_option("--kvq-window", options.window,
                   "every query also reads its last R positions at --kvq-keep (the rest stays quantized)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  command->add_option("--kvq-keep", options.keep, "type of the sinks and the recent window (a cache type)")
      ->capture_default_str();
}

KvCacheLayout kv_cache_layout(const KvOptions& options) { return KvCacheLayout{options.centre == "on"}; }

Result<KvKept> kv_kept(const KvOptions& options) {
  auto type = parse_kv_type(options.keep);
  if (!type) return make_error("--kvq-keep: {}", type.error().message);
  return KvKept{options.sinks, options.window, *type};
}

Result<std::vector<KvTypes>> resolve_kv_types(const KvOptions& options, const ModelIdentity& model) {
  const int n_layer = model.n_layer;
  KvTypes defaults;
  auto pick = [](const std::string& flag, const char* env, const char* name, GgmlType& out) -> Status {
    std::string text = flag;
    if (text.empty()) {
      if (const char* value = std::getenv(env); value && *value) text = value;
    }
    if (text.empty()) return Status::Ok();
    auto type = parse_kv_type(text);
    if (!type) return make_error("{}: {}", name, type.error().message);
    out = *type;
    return Status::Ok();
  };
  KVQ_RETURN_IF_ERROR(pick(options.key, "KVQ_KEY", "--kvq-key", defaults.k));
  KVQ_RETURN_IF_ERROR(pick(options.val, "KVQ_VAL", "--kvq-val", defaults.v));
  defaults.rotation = KvRotation::kAuto;
  auto kept = kv_kept(options);
  if (!kept) return kept.error();
  defaults.kept = *kept;
  if (!options.rotation.empty()) {
    auto rotation = parse_kv_rotation(options.rotation);
    if (!rotation) return make_error("--kvq-rot: {}", rotation.error().message);
    defaults.rotation = *rotation;
  }
  std::vector<KvTypes> layers(size_t(n_layer), defaults);
  if (!options.layers.empty() && options.layers.front() == '@') {
    const std::string path = options.layers.substr(1);
    auto text = read_text_file(path);
    if (!text) return make_error("--kvq-layers: {}", text.error().message);
    auto spec = parse_kv_spec_file(*text);
    if (!spec) return make_error("--kvq-layers {}: {}", options.layers, spec.error().message);
    if (Status st = check_kv_spec_model(*spec, model); !st) {
      return make_error("--kvq-layers {}: {}", options.layers, st.message());
    }
    layers = spec->layers;
    // A spec names types; rotation follows --kvq-rot (auto by default, as kvq tune measured them), and the
    // kept positions --kvq-sinks / --kvq-window where the spec names none.
    for (KvTypes& t : layers) {
      t.rotation = defaults.rotation;
      if (!t.kept.any()) t.kept = defaults.kept;
    }
  } else if (!options.layers.empty()) {
    auto parsed = parse_kv_layers(options.layers, n_layer, defaults);
    if (!parsed) return make_error("--kvq-layers: {}", parsed.error().message);
    layers = std::move(*parsed);
  }
  for (KvTypes& t : layers) t = resolve_rotation(t);
  return layers;
}

std::string describe_kv_types(const std::vector<KvTypes>& types) {
  for (const KvTypes& t : types) {
    if (t != types[0]) return "per-layer mix";
  }
  return types.empty() ? "none" : kv_types_name(types[0]);
}

Result<std::vector<GgmlType>> parse_kv_type_list(const std::vector<std::string>& names, const char* flag) {
  std::vector<GgmlType> types;
  for (const std::string& name : names) {
    auto t = parse_kv_type(name);
    if (!t) return make_error("{}: {}", flag, t.error().message);
    if (std::find(types.begin(), types.end(), *t) == types.end()) types.push_back(*t);
  }
  return types;
}

std::vector<std::string_view> split_commas(std::string_view text) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return parts;
    start = comma + 1;
  }
}

Result<std::string> read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("{}: cannot open the text file", path);
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return make_error("{}: read error", path);
  return s.str();
}

void report_error(const Error& error) {
  std::fprintf(stderr, "kvq: error: %s\n", error.message.c_str());
  set_exit_code(1);
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (std::fabs(bytes) >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[unit]);
}

Result<uint64_t> parse_size(const std::string& text) {
  char* end = nullptr;
  const double number = std::strtod(text.c_str(), &end);
  std::string suffix = end ? std::string(end) : "";
  for (char& ch : suffix) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  double scale = 0;
  if (suffix.empty() || suffix == "b")
    scale = 1;
  else if (suffix == "k" || suffix == "kib")
    scale = 1024.0;
  else if (suffix == "m" || suffix == "mib")
    scale = 1024.0 * 1024;
  else if (suffix == "g" || suffix == "gib")
    scale = 1024.0 * 1024 * 1024;
  else if (suffix == "t" || suffix == "tib")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else if (suffix == "kb")
    scale = 1e3;
  else if (suffix == "mb")
    scale = 1e6;
  else if (suffix == "gb")
    scale = 1e9;
  else if (suffix == "tb")
    scale = 1e12;
  if (end == text.c_str() || scale == 0 || !(number >= 0) || number * scale > 1.8e19) {
    return make_error("'{}' is not a size (examples: 4GiB, 512MiB, 8GB, 1e9)", text);
  }
  return uint64_t(number * scale);
}

int set_threads(int n_threads) {
  if (n_threads <= 0) n_threads = omp_get_num_procs();
  omp_set_num_threads(n_threads);
  return n_threads;
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace kvq::cli
