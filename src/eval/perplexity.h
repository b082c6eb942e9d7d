// Perplexity over a tokenized text, the way llama.cpp's `perplexity` tool computes it (DESIGN.md §5):
// chunks of n_ctx tokens, each chunk's first token replaced by BOS, every chunk evaluated from an
// empty cache with all logits, and tokens n_ctx/2 .. n_ctx-1 scored as predictions from positions
// n_ctx/2 .. n_ctx-2 (the first half is context only). PPL = exp(mean NLL) ± its standard error.
//
// The model is reached through a ChunkEvaluator so the method itself is testable without one.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "util/result.h"

namespace kvq::eval {

// log softmax(logits)[i] for all i, in double (a float sum over 32K exps loses digits).
// logits: [n_vocab] f32, out: [n_vocab] f64.
void log_softmax(const float* logits, int n_vocab, double* out);

// Running sums of per-token negative log-likelihoods.
struct NllStats {
  double sum = 0;
  double sum2 = 0;
  int64_t count = 0;

  void add(double nll) {
    sum += nll;
    sum2 += nll * nll;
    ++count;
  }
  double mean() const { return count ? sum / double(count) : 0.0; }
  double ppl() const;
  // llama.cpp's estimate: sqrt(var(nll) / (count - 1)) * PPL (first-order error propagation).
  double ppl_stderr() const;
};

struct ChunkPlan {
  int n_ctx = 0;
  int n_chunks = 0;
  int first = 0;  // n_ctx / 2: first position whose prediction is scored

  int scored_per_chunk() const { return n_ctx - 1 - first; }
  int64_t scored_total() const { return int64_t(scored_per_chunk()) * n_chunks; }
};

// Chunks of n_ctx tokens that fit in n_tokens, at most max_chunks (<= 0: all). Like llama.cpp, a
// text shorter than 2 * n_ctx tokens is an error; so is n_ctx < 4 (nothing would be scored).
Result<ChunkPlan> plan_chunks(size_t n_tokens, int n_ctx, int max_chunks);

// Evaluates one chunk from an empty cache: tokens [n_ctx] -> logits [n_ctx, n_vocab] f32.
using ChunkEvaluator = std::function<Status(std::span<const int32_t> tokens, float* logits)>;

// One scored position, as seen by an observer (KL-divergence, baseline recording).
struct ScoredPosition {
  int chunk = 0;
  int pos = 0;                        // position in the chunk whose logits predict `target`
  std::span<const double> log_probs;  // [n_vocab] log softmax of the logits at pos
  int32_t target = 0;                 // the next token (at pos + 1)
  int32_t top = 0;                    // argmax of log_probs
};
using PositionObserver = std::function<void(const ScoredPosition&)>;

struct PerplexityRun {
  std::span<const int32_t> tokens;  // [n_tokens] the whole text, BOS first when the vocab adds one
  ChunkPlan plan;
  int n_vocab = 0;
  int32_t bos = -1;  // written over each chunk's first token; -1: leave chunks as they are
  ChunkEvaluator evaluate;
  PositionObserver observe;                       // optional
  const std::atomic<bool>* stop = nullptr;        // optional: checked after every chunk
  std::function<void(int chunks_done)> on_chunk;  // optional: progress
};

struct PerplexityResult {
  NllStats nll;
  int n_chunks = 0;              // chunks finished
  bool interrupted = false;      // stopped by the stop flag before the last chunk
  double seconds = 0;            // wall time of evaluation and scoring
  double tokens_per_second = 0;  // evaluated (not only scored) tokens per second

  double ppl() const { return nll.ppl(); }
  double ppl_stderr() const { return nll.ppl_stderr(); }
};

// Errors come from the evaluator (with the chunk named). The stop flag is not an error: the result
// then covers the chunks finished so far and has interrupted set.
Result<PerplexityResult> run_perplexity(const PerplexityRun& run);

}  // namespace kvq::eval
