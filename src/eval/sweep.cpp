#include "eval/sweep.h"

#include <fmt/format.h>

#include <algorithm>

namespace kvq::eval {
namespace {

std::vector<KvTypes> pairs_of(const SweepSpec& spec) {
  std::vector<KvTypes> pairs;
  for (GgmlType k : spec.keys) {
    for (GgmlType v : spec.vals) {
      for (KvRotation rotation : spec.rotations) {
        const KvTypes kv = resolve_rotation(KvTypes{k, v, rotation, spec.kept});
        if (std::find(pairs.begin(), pairs.end(), kv) == pairs.end()) pairs.push_back(kv);
      }
    }
  }
  return pairs;
}

bool contains(const std::vector<KvTypes>& pairs, const KvTypes& kv) {
  return std::find(pairs.begin(), pairs.end(), kv) != pairs.end();
}

// Runs evaluated per context: every pair, plus the baseline when it is not one of them.
int runs_per_context(const SweepSpec& spec) {
  const std::vector<KvTypes> pairs = pairs_of(spec);
  return int(pairs.size()) + (contains(pairs, spec.base) ? 0 : 1);
}

SweepRow make_row(const SweepBackend& backend, KvTypes kv, KvTypes base, const ChunkPlan& plan,
                  const PerplexityResult& run, double base_ppl, const KldStats& kld) {
  SweepRow row;
  row.kv = kv;
  row.baseline = kv == base;
  row.n_ctx = plan.n_ctx;
  row.n_chunks = run.n_chunks;
  row.n_scored = run.nll.count;
  row.kv_bytes = backend.cache_bytes(kv, plan.n_ctx);
  // Every byte at this context (scales, padding, centring means) against f16's 16 bits per value.
  row.bits_per_value = 16.0 * double(row.kv_bytes) / double(backend.cache_bytes(KvTypes{}, plan.n_ctx));
  row.base_kv_bytes = backend.cache_bytes(base, plan.n_ctx);
  row.saved_pct = row.base_kv_bytes ? 100.0 * (1.0 - double(row.kv_bytes) / double(row.base_kv_bytes)) : 0.0;
  row.ppl = run.ppl();
  row.ppl_stderr = run.ppl_stderr();
  row.base_ppl = base_ppl;
  row.dppl_pct = 100.0 * (row.ppl / base_ppl - 1.0);
  row.kld = kld;
  row.seconds = run.seconds;
  row.tokens_per_second = run.tokens_per_second;
  return row;
}

}  // namespace

Result<double> sweep_total_tokens(const SweepSpec& spec, size_t n_tokens) {
  double total = 0;
  for (int n_ctx : spec.contexts) {
    auto plan = plan_chunks(n_tokens, n_ctx, spec.max_chunks);
    if (!plan) return plan.error();
    total += double(runs_per_context(spec)) * plan->n_chunks * n_ctx;
  }
  return total;
}

Result<SweepResult> run_sweep(const SweepSpec& spec, const SweepBackend& backend, const SweepCallbacks& callbacks) {
  if (spec.keys.empty() || spec.vals.empty() || spec.contexts.empty()) {
    return make_error("a sweep needs at least one key type, one value type and one context");
  }
  std::vector<ChunkPlan> plans;
  for (int n_ctx : spec.contexts) {
    auto plan = plan_chunks(backend.tokens.size(), n_ctx, spec.max_chunks);
    if (!plan) return plan.error();
    plans.push_back(*plan);
  }
  auto total = sweep_total_tokens(spec, backend.tokens.size());
  if (!total) return total.error();
  const std::vector<KvTypes> pairs = pairs_of(spec);

  SweepResult result;
  double done = 0;  // tokens evaluated by finished runs
  auto stopped = [&] { return callbacks.stop && callbacks.stop->load(std::memory_order_relaxed); };

  // One configuration at one context; observe sees every scored position.
  auto evaluate = [&](KvTypes kv, const ChunkPlan& plan, PositionObserver observe) -> Result<PerplexityResult> {
    auto evaluator = backend.make_evaluator(kv, plan.n_ctx);
    if (!evaluator) return evaluator.error();
    const std::string status = fmt::format("{} @ {}", kv_types_name(kv), plan.n_ctx);
    if (callbacks.progress) callbacks.progress(done, *total, status);
    PerplexityRun run;
    run.tokens = backend.tokens;
    run.plan = plan;
    run.n_vocab = backend.n_vocab;
    run.bos = backend.bos;
    run.evaluate = std::move(*evaluator);
    run.observe = std::move(observe);
    run.stop = callbacks.stop;
    const double before = done;
    run.on_chunk = [&](int chunks) {
      if (callbacks.progress) {
        callbacks.progress(before + double(chunks) * plan.n_ctx, *total, status);
      }
    };
    auto r = run_perplexity(run);
    if (r) done = before + double(plan.n_chunks) * plan.n_ctx;
    return r;
  };

  auto finish_row = [&](SweepRow row) -> Status {
    result.rows.push_back(std::move(row));
    return callbacks.on_row ? callbacks.on_row(result.rows) : Status::Ok();
  };

  for (const ChunkPlan& plan : plans) {
    if (stopped()) return result.interrupted = true, result;
    KldIdentity identity = backend.identity;
    identity.n_vocab = backend.n_vocab;
    identity.n_ctx = plan.n_ctx;
    identity.n_chunks = plan.n_chunks;
    identity.base_kv = kv_types_name(spec.base);
    KldBase base(identity);
    // The baseline's own row compares it with its stored form: the storage's KLD floor.
    KldAccumulator self(base);
    auto base_run = evaluate(spec.base, plan, [&](const ScoredPosition& p) {
      base.append(p);
      self.add(p);
    });
    if (!base_run) return base_run.error();
    if (base_run->interrupted) return result.interrupted = true, result;
    const double base_ppl = base_run->ppl();
    if (contains(pairs, spec.base)) {
      KVQ_RETURN_IF_ERROR(
          finish_row(make_row(backend, spec.base, spec.base, plan, *base_run, base_ppl, self.finish())));
    }
    for (const KvTypes& kv : pairs) {
      if (kv == spec.base) continue;
      if (stopped()) return result.interrupted = true, result;
      KldAccumulator kld(base);
      auto run = evaluate(kv, plan, [&](const ScoredPosition& p) { kld.add(p); });
      if (!run) return run.error();
      if (run->interrupted) return result.interrupted = true, result;
      KVQ_RETURN_IF_ERROR(finish_row(make_row(backend, kv, spec.base, plan, *run, base_ppl, kld.finish())));
    }
  }
  return result;
}

}  // namespace kvq::eval
