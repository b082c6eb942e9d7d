// kvq tune, the measuring half: one f16 baseline of the calibration chunks, then each slot's KLD
// (only that layer's K, or only its V, in a candidate type), each finished measurement handed to a
// callback so that an interrupted run can resume (eval/tune_cache.h); and the held-out evaluation
// of whole assignments on chunks disjoint from the calibration ones.
//
// The model is reached through a TuneBackend so the orchestration is testable without one.
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/kld.h"
#include "eval/perplexity.h"
#include "eval/tune.h"

namespace kvq::eval {

// The text as chunks of n_ctx: calibration [0, calib_chunks), held-out [calib_chunks, + eval_chunks).
struct TuneSplit {
  int n_ctx = 0;
  int calib_chunks = 0;
  int eval_chunks = 0;
};

struct TuneBackend {
  std::span<const int32_t> tokens;  // [n_tokens] the whole text, BOS first when the vocab adds one
  int n_vocab = 0;
  int32_t bos = -1;
  int n_layer = 0;
  KldIdentity identity;  // model and text, for the in-memory baselines
  // An evaluator of chunks of n_ctx with these per-layer types (it owns its cache).
  std::function<Result<ChunkEvaluator>(const std::vector<KvTypes>& layers, int n_ctx)> make_evaluator;
};

// Checks the text holds both parts; errors give the token counts.
Status check_split(const TuneSplit& split, size_t n_tokens);

struct TuneCallbacks {
  const std::atomic<bool>* stop = nullptr;  // checked after every chunk
  // After each finished slot measurement (persist it here); an error ends the measuring.
  std::function<Status(int layer, KvSide side, GgmlType type, const SlotMeasurement&)> on_measurement;
  // Evaluated chunks so far (baseline included) and what is running.
  std::function<void(double chunks_done, std::string_view status)> progress;
};

// Chunks measure_sensitivities will evaluate for this table: the progress bar's total.
double sensitivity_chunks(const SensitivityTable& table, const TuneSplit& split);

// Fills every unmeasured slot of `table`. Returns false when stopped (the finished ones are kept).
Result<bool> measure_sensitivities(const TuneBackend& backend, const TuneSplit& split, SensitivityTable& table,
                                   const TuneCallbacks& callbacks);

// One assignment on the held-out chunks against their baseline.
struct HeldOutResult {
  double ppl = 0;
  double dppl_pct = 0;         // 100 * (ppl / base ppl - 1)
  double dppl_pct_stderr = 0;  // of the paired per-token differences (KldStats::ppl_ratio_stderr)
  KldStats kld;
};

// The f16 baseline of the held-out chunks, once, and any number of assignments against it. `name` labels
// the progress ("held-out", or "calibration" where a split of 0 calibration chunks stands for them).
class HeldOutEvaluation {
 public:
  // Evaluates the baseline; errors come from the model, or say "interrupted" when stopped.
  static Result<HeldOutEvaluation> create(const TuneBackend& backend, const TuneSplit& split,
                                          const TuneCallbacks& callbacks, double chunks_before,
                                          std::string name = "held-out");
  // Result of `layers`; an interrupted run is an error too (nothing partial is reported as measured).
  Result<HeldOutResult> evaluate(const std::vector<KvTypes>& layers, const TuneCallbacks& callbacks,
                                 double chunks_before) const;
  double base_ppl() const { return base_ppl_; }

 private:
  HeldOutEvaluation(const TuneBackend& backend, const TuneSplit& split, std::string name, KldBase base, double base_ppl)
      : backend_(&backend), split_(split), name_(std::move(name)), base_(std::move(base)), base_ppl_(base_ppl) {}
  const TuneBackend* backend_;
  TuneSplit split_;
  std::string name_;
  KldBase base_;  // the held-out chunks' f16 log-probabilities
  double base_ppl_ = 0;
};

// The budget search's last step: the finalists (its optimum, the best predicted uniform pairs, first/last)
// measured as wholes on the calibration chunks, against the calibration baseline. The additive prediction
// ranks near-equal assignments by its own error and misses interactions between slots; the whole-assignment
// KLD does neither. Returns each finalist's mean KLD (the lowest is the tuned assignment); chunks_before as
// for the progress callback.
Result<std::vector<double>> measure_finalists(const TuneBackend& backend, const TuneSplit& split,
                                              const std::vector<std::vector<KvTypes>>& finalists,
                                              const TuneCallbacks& callbacks, double chunks_before);

}  // namespace kvq::eval
