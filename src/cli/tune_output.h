// What `kvq tune` prints: the per-layer table, the comparison against the uniform and first/last
// configurations, and the same as JSON (--json).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/tune.h"
#include "eval/tune_measure.h"

namespace kvq::cli {

// One configuration of the comparison: chosen on the calibration chunks, measured on the held-out ones.
struct TuneCandidate {
  std::string label;  // "tuned", "uniform", "first/last"
  eval::TuneChoice choice;
  std::optional<eval::HeldOutResult> held_out;  // absent with --no-eval
  std::optional<double> calibration_kld;        // measured as a whole (budget runs: the finalists)
};

struct TuneReport {
  std::string model;
  std::string target;  // "budget 5 bits/value = 1105920 bytes at 256 tokens", "KLD <= 0.01"
  uint64_t budget_bytes = 0;
  int n_ctx = 0;
  eval::TuneSplit split;
  double base_ppl = 0;                  // held-out f16 PPL (0 with --no-eval)
  std::vector<TuneCandidate> compared;  // tuned first
  double tune_seconds = 0;              // measuring + searching
  double eval_seconds = 0;              // held-out runs
  std::string spec_path;
};

// Markdown: | layer | K | V | bytes | K KLD | V KLD | (KLD of each slot at its chosen type).
std::string tune_layer_table(const eval::SensitivityTable& table, const KvCacheShape& shape,
                             const std::vector<KvTypes>& layers);
// Markdown: | config | bits/value | bytes | predicted KLD | measured KLD | ΔPPL % | top-1 % | layers |
std::string tune_comparison_table(const TuneReport& report, const KvCacheShape& shape);

nlohmann::json tune_json(const TuneReport& report, const eval::SensitivityTable& table, const KvCacheShape& shape);

}  // namespace kvq::cli
