#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace kvq::eval {

void log_softmax(const float* logits, int n_vocab, double* out) {
  double max = logits[0];
  for (int i = 1; i < n_vocab; ++i) max = std::max(max, double(logits[i]));
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i]) - max);
  const double log_norm = max + std::log(sum);
  for (int i = 0; i < n_vocab; ++i) out[i] = double(logits[i]) - log_norm;
}

double NllStats::ppl() const { return std::exp(mean()); }

double NllStats::ppl_stderr() const {
  if (count < 2) return 0.0;
  const double m = mean();
  const double variance = sum2 / double(count) - m * m;
  if (!(variance > 0)) return 0.0;
  return std::sqrt(variance / double(count - 1)) * ppl();
}

Result<ChunkPlan> plan_chunks(size_t n_tokens, int n_ctx, int max_chunks) {
  if (n_ctx < 4) return make_error("context {} is too small for perplexity (at least 4)", n_ctx);
  if (n_tokens < 2 * size_t(n_ctx)) {
    return make_error(
        "the text has {} tokens; perplexity at context {} needs at least {} "
        "(2 x context), use a longer text or a smaller -c",
        n_tokens, n_ctx, 2 * size_t(n_ctx));
  }
  ChunkPlan plan;
  plan.n_ctx = n_ctx;
  plan.first = n_ctx / 2;
  plan.n_chunks = int(n_tokens / size_t(n_ctx));
  if (max_chunks > 0) plan.n_chunks = std::min(plan.n_chunks, max_chunks);
  return plan;
}

Result<PerplexityResult> run_perplexity(const PerplexityRun& run) {
  const ChunkPlan& plan = run.plan;
  KVQ_CHECK(run.evaluate && run.n_vocab > 0 && plan.n_ctx > 0);
  KVQ_CHECK(run.tokens.size() >= size_t(plan.n_chunks) * size_t(plan.n_ctx));
  const size_t n_vocab = size_t(run.n_vocab);

  std::vector<int32_t> chunk(size_t(plan.n_ctx));           // [n_ctx] token ids
  std::vector<float> logits(size_t(plan.n_ctx) * n_vocab);  // [n_ctx, n_vocab] f32
  std::vector<double> log_probs(n_vocab);                   // [n_vocab] f64

  PerplexityResult result;
  const auto start = std::chrono::steady_clock::now();
  for (int c = 0; c < plan.n_chunks; ++c) {
    if (run.stop && run.stop->load(std::memory_order_relaxed)) {
      result.interrupted = true;
      break;
    }
    const int32_t* source = run.tokens.data() + size_t(c) * size_t(plan.n_ctx);
    std::copy(source, source + plan.n_ctx, chunk.begin());
    if (run.bos >= 0) chunk[0] = run.bos;
    if (Status st = run.evaluate(chunk, logits.data()); !st) {
      return make_error("chunk {} of {}: {}", c + 1, plan.n_chunks, st.message());
    }
    for (int pos = plan.first; pos < plan.n_ctx - 1; ++pos) {
      const float* row = logits.data() + size_t(pos) * n_vocab;
      log_softmax(row, run.n_vocab, log_probs.data());
      // The target is the original next token: only position 0 of a chunk is replaced by BOS.
      const int32_t target = source[pos + 1];
      KVQ_CHECK(target >= 0 && size_t(target) < n_vocab);
      result.nll.add(-log_probs[size_t(target)]);
      if (run.observe) {
        const int32_t top = int32_t(std::max_element(log_probs.begin(), log_probs.end()) - log_probs.begin());
        run.observe(ScoredPosition{c, pos, log_probs, target, top});
      }
    }
    result.n_chunks = c + 1;
    if (run.on_chunk) run.on_chunk(c + 1);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (result.seconds > 0) {
    result.tokens_per_second = double(result.n_chunks) * plan.n_ctx / result.seconds;
  }
  return result;
}

}  // namespace kvq::eval
