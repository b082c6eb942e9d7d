#include "cli/tune_output.h"

#include <fmt/format.h>

namespace kvq::cli {
namespace {

// The measured KLD of one slot at its type (0 for the baseline type).
double slot_kld(const eval::SensitivityTable& table, int layer, KvSide side, GgmlType type) {
  return table.at(layer, side, table.type_index(type)).kld;
}

nlohmann::json candidate_json(const TuneCandidate& c, const KvCacheShape& shape) {
  nlohmann::json j = {{"label", c.label},
                      {"kvq_layers", eval::kv_layers_string(c.choice.layers)},
                      {"bytes", c.choice.bytes},
                      {"bits_per_value", eval::assignment_bits_per_value(shape, c.choice.layers)},
                      {"predicted_kld", c.choice.predicted_kld},
                      {"predicted_dppl_pct", c.choice.predicted_dppl_pct}};
  if (c.calibration_kld) j["calibration_kld"] = *c.calibration_kld;
  if (c.held_out) {
    j["held_out"] = {{"ppl", c.held_out->ppl},
                     {"dppl_pct", c.held_out->dppl_pct},
                     {"dppl_pct_stderr", c.held_out->dppl_pct_stderr},
                     {"kld_mean", c.held_out->kld.kld_mean},
                     {"kld_stderr", c.held_out->kld.kld_stderr},
                     {"top1_pct", c.held_out->kld.top1_pct}};
  }
  return j;
}

}  // namespace

std::string tune_layer_table(const eval::SensitivityTable& table, const KvCacheShape& shape,
                             const std::vector<KvTypes>& layers) {
  std::string out =
      "| layer | K      | V      |    bytes |    K KLD |    V KLD |\n"
      "|-------|--------|--------|----------|----------|----------|\n";
  for (int l = 0; l < table.n_layer(); ++l) {
    const KvTypes& t = layers[size_t(l)];
    const uint64_t bytes = KvCache::side_bytes(shape, l, t.k, KvSide::kKey, t.kept) +
                           KvCache::side_bytes(shape, l, t.v, KvSide::kValue, t.kept);
    out += fmt::format("| {:5} | {:<6} | {:<6} | {:8} | {:8.2e} | {:8.2e} |\n", l, type_name(t.k), type_name(t.v),
                       bytes, slot_kld(table, l, KvSide::kKey, t.k), slot_kld(table, l, KvSide::kValue, t.v));
  }
  return out;
}

std::string tune_comparison_table(const TuneReport& report, const KvCacheShape& shape) {
  std::string out =
      "| config     | bits/value |    bytes | predicted KLD | measured KLD |        ΔPPL % | top-1 % | --kvq-layers |\n"
      "|------------|------------|----------|---------------|--------------|---------------|---------|--------------|"
      "\n";
  for (const TuneCandidate& c : report.compared) {
    const std::string measured = c.held_out ? fmt::format("{:12.3e}", c.held_out->kld.kld_mean) : "           -";
    const std::string dppl = c.held_out
                                 ? fmt::format("{:+6.3f} ± {:.3f}", c.held_out->dppl_pct, c.held_out->dppl_pct_stderr)
                                 : "            -";
    const std::string top1 = c.held_out ? fmt::format("{:7.2f}", c.held_out->kld.top1_pct) : "      -";
    out += fmt::format("| {:<10} | {:10.3f} | {:8} | {:13.3e} | {} | {} | {} | {} |\n", c.label,
                       eval::assignment_bits_per_value(shape, c.choice.layers), c.choice.bytes, c.choice.predicted_kld,
                       measured, dppl, top1, eval::kv_layers_string(c.choice.layers));
  }
  return out;
}

nlohmann::json tune_json(const TuneReport& report, const eval::SensitivityTable& table, const KvCacheShape& shape) {
  nlohmann::json sensitivity = nlohmann::json::array();
  for (int l = 0; l < table.n_layer(); ++l) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      nlohmann::json kld = nlohmann::json::object(), ln_ppl = nlohmann::json::object();
      for (int t = 0; t < int(table.types().size()); ++t) {
        const std::string name(type_name(table.types()[size_t(t)]));
        kld[name] = table.at(l, side, t).kld;
        ln_ppl[name] = table.at(l, side, t).ln_ppl_ratio;
      }
      sensitivity.push_back({{"layer", l}, {"side", eval::side_name(side)}, {"kld", kld}, {"ln_ppl_ratio", ln_ppl}});
    }
  }
  nlohmann::json layers = nlohmann::json::array();
  const std::vector<KvTypes>& tuned = report.compared.front().choice.layers;
  for (int l = 0; l < table.n_layer(); ++l) {
    const KvTypes& t = tuned[size_t(l)];
    layers.push_back({{"layer", l},
                      {"k", std::string(type_name(t.k))},
                      {"v", std::string(type_name(t.v))},
                      {"bytes", KvCache::side_bytes(shape, l, t.k, KvSide::kKey, t.kept) +
                                    KvCache::side_bytes(shape, l, t.v, KvSide::kValue, t.kept)},
                      {"k_kld", slot_kld(table, l, KvSide::kKey, t.k)},
                      {"v_kld", slot_kld(table, l, KvSide::kValue, t.v)}});
  }
  nlohmann::json compared = nlohmann::json::array();
  for (const TuneCandidate& c : report.compared) compared.push_back(candidate_json(c, shape));
  return {{"model", report.model},
          {"target", report.target},
          {"budget_bytes", report.budget_bytes},
          {"n_ctx", report.n_ctx},
          {"calib_chunks", report.split.calib_chunks},
          {"eval_chunks", report.split.eval_chunks},
          {"held_out_base_ppl", report.base_ppl},
          {"kvq_layers", eval::kv_layers_string(tuned)},
          {"spec", report.spec_path},
          {"layers", layers},
          {"compared", compared},
          {"sensitivity", sensitivity},
          {"tune_seconds", report.tune_seconds},
          {"eval_seconds", report.eval_seconds}};
}

}  // namespace kvq::cli
