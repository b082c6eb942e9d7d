#include "eval/tune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

namespace kvq::eval {
namespace {

// The dynamic programme keeps one choice byte per (slot, capacity unit); past this many cells the unit
// grows (and slot bytes are rounded up to it, so whatever fits the coarse budget fits the true one).
constexpr uint64_t kMaxSearchCells = uint64_t(1) << 25;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Per slot and candidate: its exact bytes and its cost in the objective.
struct SlotOptions {
  int layer = 0;
  KvSide side = KvSide::kKey;
  std::vector<uint64_t> bytes;  // [n_types] KvCache::side_bytes
  std::vector<double> cost;     // [n_types] kld or floored ln PPL ratio; +inf when not measured
};

std::vector<SlotOptions> slot_options(const SensitivityTable& table, const KvCacheShape& shape, bool by_dppl) {
  std::vector<SlotOptions> slots;  // [2 * n_layer] layer-major, K then V
  for (int l = 0; l < table.n_layer(); ++l) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) {
      SlotOptions s{l, side, {}, {}};
      for (int t = 0; t < int(table.types().size()); ++t) {
        const SlotMeasurement& m = table.at(l, side, t);
        s.bytes.push_back(KvCache::side_bytes(shape, l, table.types()[size_t(t)], side, table.kept()));
        const bool usable = m.measured && table.is_choice(t);
        s.cost.push_back(!usable ? kInfinity : by_dppl ? std::max(m.ln_ppl_ratio, 0.0) : m.kld);
      }
      slots.push_back(std::move(s));
    }
  }
  return slots;
}

// The exact knapsack: for every capacity c (in units), the lowest total cost of slots with bytes <= c.
struct Knapsack {
  uint64_t unit = 1;
  std::vector<double> best;     // [capacity + 1] lowest cost within c units, all slots chosen
  std::vector<uint8_t> choice;  // [n_slots, capacity + 1] type index chosen for slot s at capacity c
  std::vector<uint64_t> units;  // [n_slots, n_types] slot bytes in units, rounded up
};

Knapsack solve_knapsack(const std::vector<SlotOptions>& slots, uint64_t max_bytes) {
  const size_t n_types = slots.front().bytes.size();
  KVQ_CHECK(n_types <= 255);
  Knapsack k;
  // Exact unit: the gcd of every slot's bytes; coarser only when the table would be too large.
  k.unit = 0;
  for (const SlotOptions& s : slots) {
    for (uint64_t b : s.bytes) k.unit = std::gcd(k.unit, b);
  }
  k.unit = std::max<uint64_t>(k.unit, 1);
  const uint64_t min_unit = (max_bytes / std::max<uint64_t>(1, kMaxSearchCells / slots.size())) + 1;
  if (k.unit < min_unit) k.unit = (min_unit + k.unit - 1) / k.unit * k.unit;
  const size_t capacity = size_t(max_bytes / k.unit);
  for (const SlotOptions& s : slots) {
    for (uint64_t b : s.bytes) k.units.push_back((b + k.unit - 1) / k.unit);
  }
  std::vector<double> prev(capacity + 1, 0.0), next(capacity + 1);  // [capacity + 1] cost of slots so far
  k.choice.assign(slots.size() * (capacity + 1), 0);
  for (size_t s = 0; s < slots.size(); ++s) {
    for (size_t c = 0; c <= capacity; ++c) {
      double best = kInfinity;
      uint8_t pick = 0;
      for (size_t t = 0; t < n_types; ++t) {
        const uint64_t u = k.units[s * n_types + t];
        if (u > c || !std::isfinite(slots[s].cost[t])) continue;
        const double cost = prev[c - u] + slots[s].cost[t];
        if (cost < best) best = cost, pick = uint8_t(t);
      }
      next[c] = best;
      k.choice[s * (capacity + 1) + c] = pick;
    }
    std::swap(prev, next);
  }
  k.best = std::move(prev);
  return k;
}

std::vector<KvTypes> backtrack(const Knapsack& k, const std::vector<SlotOptions>& slots, const SensitivityTable& table,
                               size_t c) {
  const size_t n_types = table.types().size(), stride = k.best.size();
  std::vector<KvTypes> layers(size_t(table.n_layer()), table.layer_types(GgmlType::F16, GgmlType::F16));  // [n_layer]
  for (size_t s = slots.size(); s-- > 0;) {
    const uint8_t t = k.choice[s * stride + c];
    GgmlType& out = slots[s].side == KvSide::kKey ? layers[size_t(slots[s].layer)].k : layers[size_t(slots[s].layer)].v;
    out = table.types()[t];
    c -= size_t(k.units[s * n_types + t]);
  }
  return layers;
}

std::vector<GgmlType> choice_types(const SensitivityTable& table) {
  std::vector<GgmlType> out;
  for (int t = 0; t < int(table.types().size()); ++t) {
    if (table.is_choice(t)) out.push_back(table.types()[size_t(t)]);
  }
  return out;
}

uint64_t smallest_bytes(const std::vector<SlotOptions>& slots) {
  uint64_t total = 0;
  for (const SlotOptions& s : slots) {
    uint64_t least = std::numeric_limits<uint64_t>::max();
    for (size_t t = 0; t < s.bytes.size(); ++t) {
      if (std::isfinite(s.cost[t])) least = std::min(least, s.bytes[t]);
    }
    total += least;
  }
  return total;
}

}  // namespace

const char* side_name(KvSide side) { return side == KvSide::kKey ? "k" : "v"; }

SensitivityTable::SensitivityTable(int n_layer, std::vector<GgmlType> types, bool baseline_is_choice, KvKept kept)
    : n_layer_(n_layer),
      types_(std::move(types)),
      slots_(size_t(n_layer) * 2 * types_.size()),
      baseline_is_choice_(baseline_is_choice),
      kept_(kept) {
  KVQ_CHECK(n_layer > 0 && !types_.empty());
  for (int l = 0; l < n_layer; ++l) {
    for (KvSide side : {KvSide::kKey, KvSide::kValue}) at(l, side, 0) = SlotMeasurement{0.0, 0.0, true};
  }
}

int SensitivityTable::type_index(GgmlType type) const {
  const auto it = std::find(types_.begin(), types_.end(), type);
  return it == types_.end() ? -1 : int(it - types_.begin());
}

SlotMeasurement& SensitivityTable::at(int layer, KvSide side, int type_index) {
  KVQ_CHECK(layer >= 0 && layer < n_layer_ && type_index >= 0 && size_t(type_index) < types_.size());
  return slots_[(size_t(layer) * 2 + size_t(side)) * types_.size() + size_t(type_index)];
}

const SlotMeasurement& SensitivityTable::at(int layer, KvSide side, int type_index) const {
  return const_cast<SensitivityTable*>(this)->at(layer, side, type_index);
}

int SensitivityTable::unmeasured() const {
  return int(std::count_if(slots_.begin(), slots_.end(), [](const SlotMeasurement& m) { return !m.measured; }));
}

// Sums one field of the slot measurements over an assignment.
template <typename Field>
double sum_slots(const SensitivityTable& table, const std::vector<KvTypes>& assignment, Field field) {
  KVQ_CHECK(int(assignment.size()) == table.n_layer());
  double sum = 0;
  for (int l = 0; l < table.n_layer(); ++l) {
    for (auto [side, type] :
         {std::pair{KvSide::kKey, assignment[size_t(l)].k}, std::pair{KvSide::kValue, assignment[size_t(l)].v}}) {
      const int t = table.type_index(type);
      KVQ_CHECK(t >= 0 && table.at(l, side, t).measured);
      sum += field(table.at(l, side, t));
    }
  }
  return sum;
}

double predict_kld(const SensitivityTable& table, const std::vector<KvTypes>& assignment) {
  return sum_slots(table, assignment, [](const SlotMeasurement& m) { return m.kld; });
}

double predict_dppl_pct(const SensitivityTable& table, const std::vector<KvTypes>& assignment) {
  const double ln =
      sum_slots(table, assignment, [](const SlotMeasurement& m) { return std::max(m.ln_ppl_ratio, 0.0); });
  return 100.0 * std::expm1(ln);
}

double assignment_bits_per_value(const KvCacheShape& shape, const std::vector<KvTypes>& layers) {
  const uint64_t f16 = KvCache::bytes(shape, std::vector<KvTypes>(layers.size()));
  return 16.0 * double(KvCache::bytes(shape, layers)) / double(f16);
}

TuneChoice describe_choice(const SensitivityTable& table, const KvCacheShape& shape, std::vector<KvTypes> layers) {
  TuneChoice c;
  c.bytes = KvCache::bytes(shape, layers);
  c.predicted_kld = predict_kld(table, layers);
  c.predicted_dppl_pct = predict_dppl_pct(table, layers);
  c.layers = std::move(layers);
  return c;
}

Result<TuneChoice> search_assignment(const SensitivityTable& table, const KvCacheShape& shape,
                                     const TuneTarget& target) {
  KVQ_CHECK(shape.n_layer == table.n_layer());
  const bool by_dppl = target.kind == TuneTarget::Kind::kMaxDppl;
  const std::vector<SlotOptions> slots = slot_options(table, shape, by_dppl);
  const uint64_t least = smallest_bytes(slots);
  uint64_t most = 0;  // every slot in its largest measured type
  for (const SlotOptions& s : slots) {
    uint64_t largest = 0;
    for (size_t t = 0; t < s.bytes.size(); ++t)
      largest = std::isfinite(s.cost[t]) ? std::max(largest, s.bytes[t]) : largest;
    most += largest;
  }
  if (target.kind == TuneTarget::Kind::kBudget) {
    if (target.budget_bytes < least) {
      return make_error(
          "the budget of {} bytes ({:.3f} bits/value) is below the smallest assignment: {} bytes "
          "({:.3f} bits/value, the smallest candidate type on every layer)",
          target.budget_bytes,
          16.0 * double(target.budget_bytes) /
              double(KvCache::bytes(shape, std::vector<KvTypes>(size_t(shape.n_layer)))),
          least, 16.0 * double(least) / double(KvCache::bytes(shape, std::vector<KvTypes>(size_t(shape.n_layer)))));
    }
    const Knapsack k = solve_knapsack(slots, std::min(target.budget_bytes, most));
    size_t c = k.best.size() - 1;
    if (!std::isfinite(k.best[c])) {
      return make_error("no assignment of the candidate types fits {} bytes once rounded to the search's {}-byte unit",
                        target.budget_bytes, k.unit);
    }
    // Among assignments of the lowest cost, the one of fewest bytes (equal costs are common: f16 and
    // q8_0 can both measure 0 on an insensitive slot).
    while (c > 0 && k.best[c - 1] <= k.best[c]) --c;
    return describe_choice(table, shape, backtrack(k, slots, table, c));
  }
  const Knapsack k = solve_knapsack(slots, most);
  const double limit = by_dppl ? std::log1p(target.max_value / 100.0) : target.max_value;
  for (size_t c = 0; c < k.best.size(); ++c) {
    if (k.best[c] <= limit) return describe_choice(table, shape, backtrack(k, slots, table, c));
  }
  const TuneChoice best = describe_choice(table, shape, backtrack(k, slots, table, k.best.size() - 1));
  return by_dppl ? make_error(
                       "no assignment of the candidate types meets ΔPPL <= {}%: the best predicts {:.4f}% "
                       "({})",
                       target.max_value, best.predicted_dppl_pct, kv_layers_string(best.layers))
                 : make_error("no assignment of the candidate types meets KLD <= {}: the best predicts {:.3e} ({})",
                              target.max_value, best.predicted_kld, kv_layers_string(best.layers));
}

std::vector<TuneChoice> uniform_choices(const SensitivityTable& table, const KvCacheShape& shape, uint64_t budget) {
  std::vector<TuneChoice> fitting;
  const std::vector<GgmlType> choices = choice_types(table);
  for (GgmlType k : choices) {
    for (GgmlType v : choices) {
      std::vector<KvTypes> layers(size_t(table.n_layer()), table.layer_types(k, v));
      if (KvCache::bytes(shape, layers) <= budget) fitting.push_back(describe_choice(table, shape, std::move(layers)));
    }
  }
  std::stable_sort(fitting.begin(), fitting.end(),
                   [](const TuneChoice& a, const TuneChoice& b) { return a.predicted_kld < b.predicted_kld; });
  return fitting;
}

Result<TuneChoice> first_last_choice(const SensitivityTable& table, const KvCacheShape& shape, uint64_t budget) {
  const int n = table.n_layer();
  if (n < 3) return make_error("the first/last heuristic needs at least 3 layers; the model has {}", n);
  auto side_cost = [&](GgmlType t) { return KvCache::side_bytes(shape, 0, t, KvSide::kKey, table.kept()); };
  std::optional<TuneChoice> best;
  const std::vector<GgmlType> choices = choice_types(table);
  for (GgmlType hk : choices) {
    for (GgmlType hv : choices) {
      for (GgmlType lk : choices) {
        for (GgmlType lv : choices) {
          // Edges strictly more precise (in bytes) on one side at least, and less on neither.
          if (side_cost(hk) < side_cost(lk) || side_cost(hv) < side_cost(lv)) continue;
          if (side_cost(hk) == side_cost(lk) && side_cost(hv) == side_cost(lv)) continue;
          std::vector<KvTypes> layers(size_t(n), table.layer_types(lk, lv));
          layers.front() = layers.back() = table.layer_types(hk, hv);
          if (KvCache::bytes(shape, layers) > budget) continue;
          TuneChoice c = describe_choice(table, shape, std::move(layers));
          if (!best || c.predicted_kld < best->predicted_kld) best = std::move(c);
        }
      }
    }
  }
  if (!best) return make_error("no first/last-layers-higher assignment fits {} bytes", budget);
  return *best;
}

std::string kv_layers_string(const std::vector<KvTypes>& layers) {
  std::string out;
  for (size_t first = 0; first < layers.size();) {
    size_t last = first;
    while (last + 1 < layers.size() && layers[last + 1] == layers[first]) ++last;
    if (!out.empty()) out += ',';
    out += first == last ? fmt::format("{}:", first) : fmt::format("{}-{}:", first, last);
    out += kv_types_name(layers[first]);
    first = last + 1;
  }
  return out;
}

}  // namespace kvq::eval
