// The measurements file of `kvq tune --resume FILE`: every finished slot measurement, rewritten
// atomically after each one, so that a run stopped by Ctrl-C (or killed) goes on where it stopped.
//
//   {"kvq_tune_measurements": 1, "model_bytes": ..., "model_hash": "…16 hex…", "text_bytes": ...,
//    "text_hash": "…", "n_ctx": 256, "calib_chunks": 6, "n_layer": 6, "kept": "none",
//    "measurements": [{"layer": 0, "side": "k", "type": "q8_0", "kld": 1.2e-5, "ln_ppl_ratio": 3e-6}, ...]}
//
// A file made from another model, text, context or calibration split is refused (its measurements
// would be of something else). The parser returns errors, never throws (fuzz/kv_spec_file_fuzz.cpp).
#pragma once

#include <string>
#include <string_view>

#include "eval/kld.h"
#include "eval/tune.h"
#include "eval/tune_measure.h"

namespace kvq::eval {

// What the measurements were taken on; a resumed run must match every field.
struct TuneCacheKey {
  KldIdentity identity;  // model_bytes, model_hash, text_bytes, text_hash are compared
  int n_layer = 0;
  int n_ctx = 0;
  int calib_chunks = 0;
  std::string kept = "none";  // the table's kept positions ("s1+w16+keep=q8_0"); a file without it has none
};

std::string tune_cache_text(const TuneCacheKey& key, const SensitivityTable& table);

// Fills table slots from the file's measurements of the table's candidate types (others are ignored).
// Returns how many were taken. Errors: malformed file, or a key that differs (the message names it).
Result<int> load_tune_cache(std::string_view text, const TuneCacheKey& key, SensitivityTable& table);

}  // namespace kvq::eval
