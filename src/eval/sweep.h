// kvq sweep: perplexity and KL-divergence for every (key type, value type, context) of a matrix,
// each context's baseline (f16/f16 by default) evaluated once and kept in memory.
//
// The model is reached through a SweepBackend so the orchestration (row order, baseline reuse,
// stopping between chunks, persisting each finished row) is testable with a fake model.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "eval/kld.h"
#include "eval/perplexity.h"
#include "kv/kv_types.h"

namespace kvq::eval {

struct SweepSpec {
  std::vector<GgmlType> keys;
  std::vector<GgmlType> vals;
  std::vector<KvRotation> rotations = {KvRotation::kNone};  // every K/V pair runs with each
  KvKept kept = {};                                         // every K/V pair keeps these positions
  std::vector<int> contexts;
  int max_chunks = 0;  // per context; <= 0: every chunk the text holds
  KvTypes base{GgmlType::F16, GgmlType::F16};
};

struct SweepRow {
  KvTypes kv;
  bool baseline = false;  // this row is the baseline run itself (its KLD is the storage floor)
  int n_ctx = 0;
  int n_chunks = 0;
  int64_t n_scored = 0;
  double bits_per_value = 0;   // 16 x the cache bytes at n_ctx over those of f16 (scales, padding, means)
  uint64_t kv_bytes = 0;       // whole cache at n_ctx
  uint64_t base_kv_bytes = 0;  // the baseline's cache at n_ctx
  double saved_pct = 0;        // memory saved against the baseline
  double ppl = 0, ppl_stderr = 0;
  double base_ppl = 0;
  double dppl_pct = 0;  // 100 * (ppl / base_ppl - 1)
  KldStats kld;         // against the baseline of this context
  double seconds = 0;
  double tokens_per_second = 0;
};

// What the sweep needs from a model (the CLI binds a Model, tests a fake).
struct SweepBackend {
  std::span<const int32_t> tokens;  // [n_tokens] the whole text
  int n_vocab = 0;
  int32_t bos = -1;      // -1: the vocabulary adds none
  KldIdentity identity;  // model and text; n_ctx / n_chunks are filled per context
  // An evaluator for one uniform K/V configuration at a context (it owns its cache).
  std::function<Result<ChunkEvaluator>(KvTypes kv, int n_ctx)> make_evaluator;
  // Bytes of a cache of n_ctx tokens of these types.
  std::function<uint64_t(KvTypes kv, int n_ctx)> cache_bytes;
};

struct SweepCallbacks {
  const std::atomic<bool>* stop = nullptr;  // checked after every chunk
  // Called after each finished row with every row so far: persist them here. An error ends the sweep.
  std::function<Status(const std::vector<SweepRow>&)> on_row;
  // done / total in evaluated tokens; status names the running configuration.
  std::function<void(double done, double total, std::string_view status)> progress;
};

struct SweepResult {
  std::vector<SweepRow> rows;  // finished rows only, in run order
  bool interrupted = false;    // stopped by the flag; an unfinished row is dropped
};

// Plans every context first, so a context the text is too short for fails before any work.
Result<SweepResult> run_sweep(const SweepSpec& spec, const SweepBackend& backend, const SweepCallbacks& callbacks);

// Tokens the sweep will evaluate (baselines included): the progress bar's total.
Result<double> sweep_total_tokens(const SweepSpec& spec, size_t n_tokens);

}  // namespace kvq::eval
