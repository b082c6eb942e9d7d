// libFuzzer target for the JSON files of kvq tune: the per-layer spec (`--kvq-layers @FILE`) and the
// measurements file of --resume. Any bytes parse or fail with a message, never an exception or a crash;
// a parsed spec has one type pair per layer and prints back to a file that parses to the same spec.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "eval/tune_cache.h"
#include "kv/kv_spec_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = kvq::parse_kv_spec_file(text);
  if (spec.ok()) {
    if (spec->layers.size() != size_t(spec->model.n_layer)) __builtin_trap();
    auto again = kvq::parse_kv_spec_file(kvq::kv_spec_file_text(*spec));
    if (!again.ok() || again->layers != spec->layers || again->model.fingerprint != spec->model.fingerprint) {
      __builtin_trap();
    }
  } else if (spec.error().message.empty()) {
    __builtin_trap();
  }
  // The measurements file, against the key of its seed (so that mutations reach the measurements).
  kvq::eval::TuneCacheKey key;
  key.identity.model_bytes = 1000;
  key.identity.model_hash = 0xfeed;
  key.identity.text_bytes = 77;
  key.identity.text_hash = 0xbeef;
  key.n_layer = 2;
  key.n_ctx = 64;
  key.calib_chunks = 3;
  kvq::eval::SensitivityTable table(2, {kvq::GgmlType::F16, kvq::GgmlType::Q8_0, kvq::GgmlType::Q4_0});
  auto taken = kvq::eval::load_tune_cache(text, key, table);
  if (taken.ok() && (*taken < 0 || table.unmeasured() < 0)) __builtin_trap();
  if (!taken.ok() && taken.error().message.empty()) __builtin_trap();
  return 0;
}
