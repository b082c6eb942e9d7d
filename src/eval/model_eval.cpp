#include "eval/model_eval.h"

namespace kvq::eval {

EvalText tokenize_eval_text(const Tokenizer& tokenizer, std::string_view text) {
  EvalText t;
  t.tokens = tokenizer.encode(text, /*add_special=*/true);
  t.bos = tokenizer.add_bos() ? tokenizer.bos() : -1;
  return t;
}

ChunkEvaluator model_chunk_evaluator(Model& model, KvCache& cache) {
  return [&model, &cache](std::span<const int32_t> tokens, float* logits) {
    return model.forward(tokens, /*pos=*/0, cache, logits, /*all_logits=*/true);
  };
}

Result<ModelPerplexityResult> model_perplexity(Model& model, KvCache& cache, const EvalText& text,
                                               const ModelPerplexityOptions& options) {
  const int n_ctx = cache.shape().n_ctx;
  auto plan = plan_chunks(text.tokens.size(), n_ctx, options.max_chunks);
  if (!plan) return plan.error();
  const int n_vocab = model.config().n_vocab;
  if (options.record_base) {
    KVQ_CHECK(options.record_base->size() == 0 && options.record_base->identity().n_vocab == n_vocab);
  }
  std::optional<KldAccumulator> kld;
  if (options.compare_base) {
    if (options.compare_base->size() != size_t(plan->scored_total())) {
      return make_error("the KLD base holds {} positions; this run scores {}", options.compare_base->size(),
                        plan->scored_total());
    }
    kld.emplace(*options.compare_base);
  }

  PerplexityRun run;
  run.tokens = text.tokens;
  run.plan = *plan;
  run.n_vocab = n_vocab;
  run.bos = text.bos;
  run.evaluate = model_chunk_evaluator(model, cache);
  if (options.record_base || kld) {
    run.observe = [&](const ScoredPosition& p) {
      if (options.record_base) options.record_base->append(p);
      if (kld) kld->add(p);
    };
  }
  run.stop = options.stop;
  if (options.on_chunk) {
    run.on_chunk = [&](int done) { options.on_chunk(done, plan->n_chunks); };
  }
  auto ppl = run_perplexity(run);
  if (!ppl) return ppl.error();
  ModelPerplexityResult result{*plan, std::move(*ppl), std::nullopt};
  if (kld) result.kld = kld->finish();
  return result;
}

SweepBackend model_sweep_backend(Model& model, const EvalText& text, const KldIdentity& identity) {
  SweepBackend b;
  b.tokens = text.tokens;
  b.n_vocab = model.config().n_vocab;
  b.bos = text.bos;
  b.identity = identity;
  const ModelConfig& c = model.config();
  b.make_evaluator = [&model, n_layer = c.n_layer](KvTypes kv, int n_ctx) -> Result<ChunkEvaluator> {
    auto cache = model.make_cache(n_ctx, std::vector<KvTypes>(size_t(n_layer), kv));
    if (!cache) return cache.error();
    // The evaluator owns its cache: one configuration's cache lives as long as its run.
    auto owned = std::make_shared<KvCache>(std::move(*cache));
    return ChunkEvaluator([&model, owned](std::span<const int32_t> tokens, float* logits) {
      return model.forward(tokens, 0, *owned, logits, true);
    });
  };
  b.cache_bytes = [&model, n_layer = c.n_layer](KvTypes kv, int n_ctx) {
    return KvCache::bytes(model.cache_shape(n_ctx), std::vector<KvTypes>(size_t(n_layer), kv));
  };
  return b;
}

}  // namespace kvq::eval
