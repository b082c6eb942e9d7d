#include "eval/tune_measure.h"

#include <algorithm>

#include <fmt/format.h>

namespace kvq::eval {
namespace {

// Perplexity (and KLD) of `layers` on chunks [first, first + n) of the text.
struct RangeRun {
  PerplexityResult ppl;
  std::optional<KldStats> kld;
};

Result<RangeRun> run_range(const TuneBackend& backend, int n_ctx, int first, int n_chunks,
                           const std::vector<KvTypes>& layers, KldBase* record, const KldBase* compare,
                           const TuneCallbacks& callbacks, double chunks_before, std::string_view status) {
  auto evaluator = backend.make_evaluator(layers, n_ctx);
  if (!evaluator) return evaluator.error();
  std::optional<KldAccumulator> kld;
  if (compare) kld.emplace(*compare);
  PerplexityRun run;
  run.tokens = backend.tokens.subspan(size_t(first) * size_t(n_ctx), size_t(n_chunks) * size_t(n_ctx));
  run.plan = ChunkPlan{n_ctx, n_chunks, n_ctx / 2};
  run.n_vocab = backend.n_vocab;
  run.bos = backend.bos;
  run.evaluate = std::move(*evaluator);
  if (record || kld) {
    run.observe = [&](const ScoredPosition& p) {
      if (record) record->append(p);
      if (kld) kld->add(p);
    };
  }
  run.stop = callbacks.stop;
  if (callbacks.progress) {
    callbacks.progress(chunks_before, status);
    run.on_chunk = [&](int done) { callbacks.progress(chunks_before + done, status); };
  }
  auto ppl = run_perplexity(run);
  if (!ppl) return ppl.error();
  RangeRun out{std::move(*ppl), std::nullopt};
  if (kld && !out.ppl.interrupted) out.kld = kld->finish();
  return out;
}

KldIdentity range_identity(const TuneBackend& backend, int n_ctx, int n_chunks) {
  KldIdentity id = backend.identity;
  id.n_vocab = backend.n_vocab;
  id.n_ctx = n_ctx;
  id.n_chunks = n_chunks;
  id.base_kv = "f16/f16";
  return id;
}

}  // namespace

Status check_split(const TuneSplit& split, size_t n_tokens) {
  if (split.n_ctx < 4) return make_error("context {} is too small (at least 4)", split.n_ctx);
  if (split.calib_chunks <= 0 || split.eval_chunks <= 0) {
    return make_error("--calib-chunks ({}) and --eval-chunks ({}) must be positive", split.calib_chunks,
                      split.eval_chunks);
  }
  const size_t needed = size_t(split.calib_chunks + split.eval_chunks) * size_t(split.n_ctx);
  if (n_tokens < needed) {
    return make_error("the text has {} tokens; {} calibration + {} held-out chunks of {} need {}", n_tokens,
                      split.calib_chunks, split.eval_chunks, split.n_ctx, needed);
  }
  return Status::Ok();
}

double sensitivity_chunks(const SensitivityTable& table, const TuneSplit& split) {
  const int runs = table.unmeasured() + (table.unmeasured() > 0 ? 1 : 0);  // + the baseline
  return double(runs) * split.calib_chunks;
}

Result<bool> measure_sensitivities(const TuneBackend& backend, const TuneSplit& split, SensitivityTable& table,
                                   const TuneCallbacks& callbacks) {
  KVQ_CHECK(backend.n_layer == table.n_layer());
  if (table.unmeasured() == 0) return true;
  const GgmlType base_type = table.types()[0];
  // [n_layer] the baseline: f16 keeps nothing, a slot of a quantized type keeps table.kept()
  const std::vector<KvTypes> base_layers(size_t(table.n_layer()), table.layer_types(base_type, base_type));
  // The one baseline every slot measurement compares with.
  KldBase base(range_identity(backend, split.n_ctx, split.calib_chunks));
  double done = 0;
  auto base_run = run_range(backend, split.n_ctx, 0, split.calib_chunks, base_layers, &base, nullptr, callbacks, done,
                            "calibration baseline");
  if (!base_run) return base_run.error();
  if (base_run->ppl.interrupted) return false;
  done += split.calib_chunks;
  const double base_mean_nll = base_run->ppl.nll.mean();

  for (int l = 0; l < table.n_layer(); ++l) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      for (int t = 1; t < int(table.types().size()); ++t) {
        if (table.at(l, side, t).measured) continue;
        const GgmlType type = table.types()[size_t(t)];
        std::vector<KvTypes> layers = base_layers;  // [n_layer] the baseline but for one slot
        (side == KvSide::kKey ? layers[size_t(l)].k : layers[size_t(l)].v) = type;
        const std::string status = fmt::format("layer {} {} {}", l, side_name(side), type_name(type));
        auto run =
            run_range(backend, split.n_ctx, 0, split.calib_chunks, layers, nullptr, &base, callbacks, done, status);
        if (!run) return make_error("{}: {}", status, run.error().message);
        if (run->ppl.interrupted) return false;
        done += split.calib_chunks;
        SlotMeasurement m{run->kld->kld_mean, run->ppl.nll.mean() - base_mean_nll, true};
        table.at(l, side, t) = m;
        if (callbacks.on_measurement) KVQ_RETURN_IF_ERROR(callbacks.on_measurement(l, side, type, m));
      }
    }
  }
  return true;
}

Result<HeldOutEvaluation> HeldOutEvaluation::create(const TuneBackend& backend, const TuneSplit& split,
                                                    const TuneCallbacks& callbacks, double chunks_before,
                                                    std::string name) {
  KldBase base(range_identity(backend, split.n_ctx, split.eval_chunks));
  const std::vector<KvTypes> base_layers(size_t(backend.n_layer));  // f16/f16 on every layer
  auto run = run_range(backend, split.n_ctx, split.calib_chunks, split.eval_chunks, base_layers, &base, nullptr,
                       callbacks, chunks_before, name + " baseline");
  if (!run) return run.error();
  if (run->ppl.interrupted) return make_error("interrupted");
  return HeldOutEvaluation(backend, split, std::move(name), std::move(base), run->ppl.ppl());
}

Result<HeldOutResult> HeldOutEvaluation::evaluate(const std::vector<KvTypes>& layers, const TuneCallbacks& callbacks,
                                                  double chunks_before) const {
  auto run = run_range(*backend_, split_.n_ctx, split_.calib_chunks, split_.eval_chunks, layers, nullptr, &base_,
                       callbacks, chunks_before, name_ + " " + kv_layers_string(layers));
  if (!run) return run.error();
  if (run->ppl.interrupted) return make_error("interrupted");
  HeldOutResult r;
  r.ppl = run->ppl.ppl();
  r.dppl_pct = 100.0 * (r.ppl / base_ppl_ - 1.0);
  r.kld = *run->kld;
  r.dppl_pct_stderr = 100.0 * r.kld.ppl_ratio_stderr;
  return r;
}

Result<std::vector<double>> measure_finalists(const TuneBackend& backend, const TuneSplit& split,
                                              const std::vector<std::vector<KvTypes>>& finalists,
                                              const TuneCallbacks& callbacks, double chunks_before) {
  // The calibration chunks as a held-out range [0, calib_chunks).
  auto calibration = HeldOutEvaluation::create(backend, TuneSplit{split.n_ctx, 0, split.calib_chunks}, callbacks,
                                               chunks_before, "calibration");
  if (!calibration) return calibration.error();
  std::vector<double> kld;
  for (size_t i = 0; i < finalists.size(); ++i) {
    const auto same = std::find(finalists.begin(), finalists.begin() + ptrdiff_t(i), finalists[i]);
    if (same != finalists.begin() + ptrdiff_t(i)) {  // measured already
      kld.push_back(kld[size_t(same - finalists.begin())]);
      continue;
    }
    auto r = calibration->evaluate(finalists[i], callbacks, chunks_before + double(i + 1) * split.calib_chunks);
    if (!r) return r.error();
    kld.push_back(r->kld.kld_mean);
  }
  return kld;
}

}  // namespace kvq::eval
