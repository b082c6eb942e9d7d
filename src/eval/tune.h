// kvq tune, the arithmetic half: per-layer sensitivities, the additive prediction of a whole
// assignment's KL-divergence, and the search for the assignment that fits a memory budget (or meets a
// quality target) at the lowest predicted cost. Measuring the sensitivities is eval/tune_measure.h.
//
// A "slot" is one side (K or V) of one layer; its sensitivity to type t is the mean KLD against the
// baseline (f16 everywhere) when only that slot takes t. The prediction of an assignment is the sum
// over slots: independent quantization noises add to first order (KL ≈ ½ δᵀFδ, the cross terms of
// independent zero-mean errors average out), which tests/tune_test.cpp checks on a real model.
//
// The search is a multiple-choice knapsack over slots solved exactly by dynamic programming on bytes,
// with each slot's bytes from KvCache::side_bytes (the arithmetic of KvCache::bytes and `kvq info`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "util/result.h"

namespace kvq::eval {

// The types tune chooses from, the baseline first. A new cache type (rotated, 3-bit, ...) is one line.
inline constexpr GgmlType kTuneCandidates[] = {
    GgmlType::F16,  // the baseline: its sensitivity is 0 by definition, never measured
    GgmlType::Q8_0,   GgmlType::Q5_1,  GgmlType::Q5_0,  GgmlType::Q4_1,  GgmlType::Q4_0,
    GgmlType::IQ4_NL, GgmlType::NL5_H, GgmlType::NL4_H, GgmlType::NL3_H, GgmlType::NL2_H,
};

const char* side_name(KvSide side);  // "k" or "v"

// What one slot costs in one type, measured on the calibration chunks.
struct SlotMeasurement {
  double kld = 0;           // mean KL(baseline || run)
  double ln_ppl_ratio = 0;  // mean nll - nll_base
  bool measured = false;
};

class SensitivityTable {
 public:
  SensitivityTable() = default;
  // types[0] is the baseline type: its slots are measured (zero) from the start. When baseline_is_choice
  // is false it is only the reference (`kvq tune --types q8_0,q4_0`): no search picks it. `kept` are the
  // positions every quantized side keeps (`kvq tune --kvq-window 16`): measured with them, counted in bytes.
  SensitivityTable(int n_layer, std::vector<GgmlType> types, bool baseline_is_choice = true, KvKept kept = {});

  int n_layer() const { return n_layer_; }
  const std::vector<GgmlType>& types() const { return types_; }
  const KvKept& kept() const { return kept_; }
  // What a layer of types k and v is in an assignment of this table (its kept positions included).
  KvTypes layer_types(GgmlType k, GgmlType v) const { return KvTypes{k, v, KvRotation::kNone, kept_}; }
  int type_index(GgmlType type) const;  // -1 when not a candidate
  SlotMeasurement& at(int layer, KvSide side, int type_index);
  const SlotMeasurement& at(int layer, KvSide side, int type_index) const;
  int unmeasured() const;
  // Whether a search may assign types()[type_index].
  bool is_choice(int type_index) const { return type_index > 0 || baseline_is_choice_; }

 private:
  int n_layer_ = 0;
  std::vector<GgmlType> types_;
  std::vector<SlotMeasurement> slots_;  // [n_layer, 2 sides, n_types]
  bool baseline_is_choice_ = true;
  KvKept kept_;
};

// Sums of the slot measurements; every type of the assignment must be a measured candidate.
double predict_kld(const SensitivityTable& table, const std::vector<KvTypes>& assignment);
// 100 * (exp(sum of ln PPL ratios) - 1), each slot's ratio floored at 0 (a slot that happens to lower
// the calibration PPL is noise, not a gain to spend elsewhere).
double predict_dppl_pct(const SensitivityTable& table, const std::vector<KvTypes>& assignment);

struct TuneChoice {
  std::vector<KvTypes> layers;  // [n_layer]
  uint64_t bytes = 0;           // KvCache::bytes at the tuning shape
  double predicted_kld = 0;
  double predicted_dppl_pct = 0;
};

// What a search minimises under: a byte budget, or a predicted quality ceiling (then bytes are minimised).
struct TuneTarget {
  enum class Kind { kBudget, kMaxKld, kMaxDppl } kind = Kind::kBudget;
  uint64_t budget_bytes = 0;  // kBudget
  double max_value = 0;       // kMaxKld: mean KLD; kMaxDppl: ΔPPL in percent
};

// The assignment meeting the target at the lowest predicted KLD (budget) or the fewest bytes (quality).
// Errors with the figures: a budget below the smallest assignment, a target no assignment meets.
Result<TuneChoice> search_assignment(const SensitivityTable& table, const KvCacheShape& shape,
                                     const TuneTarget& target);

// The same types on every layer, every fitting candidate pair, lowest predicted KLD first.
std::vector<TuneChoice> uniform_choices(const SensitivityTable& table, const KvCacheShape& shape, uint64_t budget);

// "First and last layers at higher precision": layers 0 and n_layer - 1 take one pair, the others a
// cheaper one (no side more precise); the fitting combination of lowest predicted KLD. Errors when none fits.
Result<TuneChoice> first_last_choice(const SensitivityTable& table, const KvCacheShape& shape, uint64_t budget);

// A TuneChoice for a given assignment (bytes and both predictions).
TuneChoice describe_choice(const SensitivityTable& table, const KvCacheShape& shape, std::vector<KvTypes> layers);

// Bits per value of an assignment: 16 x its bytes / the f16 cache's bytes (kvq info's column).
double assignment_bits_per_value(const KvCacheShape& shape, const std::vector<KvTypes>& layers);

// "0-1:q8_0/q4_0,2:f16/q8_0,..." (runs of equal layers merged): what --kvq-layers takes.
std::string kv_layers_string(const std::vector<KvTypes>& layers);

}  // namespace kvq::eval
