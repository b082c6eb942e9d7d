// The perplexity method (eval/perplexity.h) bound to a Model: what `kvq perplexity` and
// `kvq sweep` run, and what the tests compare against llama.cpp's numbers.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "eval/kld.h"
#include "eval/perplexity.h"
#include "eval/sweep.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace kvq::eval {

// The text as the perplexity method tokenizes it: the whole file, BOS first when the vocabulary
// adds one (llama.cpp's add_special), plus the BOS to write over each chunk's first token.
struct EvalText {
  std::vector<int32_t> tokens;  // [n_tokens]
  int32_t bos = -1;             // -1: the vocabulary adds no BOS, chunks are left as they are
};
EvalText tokenize_eval_text(const Tokenizer& tokenizer, std::string_view text);

// Evaluates each chunk from position 0 of `cache` (overwriting the previous chunk) with all logits.
// model and cache must outlive the evaluator.
ChunkEvaluator model_chunk_evaluator(Model& model, KvCache& cache);

struct ModelPerplexityOptions {
  int max_chunks = 0;                       // <= 0: every chunk the text holds
  KldBase* record_base = nullptr;           // filled with this run's scored positions
  const KldBase* compare_base = nullptr;    // KL-divergence against this baseline
  const std::atomic<bool>* stop = nullptr;  // checked after every chunk
  std::function<void(int chunks_done, int n_chunks)> on_chunk;
};

struct ModelPerplexityResult {
  ChunkPlan plan;
  PerplexityResult ppl;
  std::optional<KldStats> kld;  // with compare_base
};

// Perplexity at the cache's context. record_base must have been constructed with an identity for
// this plan (see plan_chunks); compare_base must match it (checked by the caller with
// KldBase::check_matches, which names the difference).
Result<ModelPerplexityResult> model_perplexity(Model& model, KvCache& cache, const EvalText& text,
                                               const ModelPerplexityOptions& options);

// A SweepBackend over a model: a fresh cache per configuration, uniform types on every layer.
// model and text must outlive the backend.
SweepBackend model_sweep_backend(Model& model, const EvalText& text, const KldIdentity& identity);

}  // namespace kvq::eval
