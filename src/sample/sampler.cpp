#include "sample/sampler.h"

#include <algorithm>
#include <cmath>

namespace kvq {

int32_t argmax(const float* logits, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

Sampler::Sampler(const SamplerParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::sample(const float* logits, int n_vocab) {
  if (params_.temperature <= 0.0f) return argmax(logits, n_vocab);
  candidates_.resize(size_t(n_vocab));
  for (int i = 0; i < n_vocab; ++i) candidates_[i] = {i, logits[i], 0.0f};
  auto by_logit = [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; };
  size_t n = candidates_.size();
  if (params_.top_k > 0 && size_t(params_.top_k) < n) {
    n = size_t(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + n, candidates_.end(), by_logit);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  // Probabilities at temperature 1 decide the filters; the temperature then shapes the draw.
  auto softmax = [&](float temperature) {
    double sum = 0.0;
    for (size_t i = 0; i < n; ++i) {
      candidates_[i].p = std::exp((candidates_[i].logit - candidates_[0].logit) / temperature);
      sum += candidates_[i].p;
    }
    for (size_t i = 0; i < n; ++i) candidates_[i].p = float(candidates_[i].p / sum);
  };
  softmax(1.0f);
  if (params_.top_p < 1.0f) {
    double cumulative = 0.0;
    for (size_t i = 0; i < n; ++i) {
      cumulative += candidates_[i].p;
      if (cumulative >= params_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p * candidates_[0].p;
    size_t keep = 1;
    while (keep < n && candidates_[keep].p >= threshold) ++keep;
    n = keep;
  }
  softmax(params_.temperature);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  double r = uniform(rng_);
  for (size_t i = 0; i < n; ++i) {
    r -= candidates_[i].p;
    if (r <= 0.0) return candidates_[i].id;
  }
  return candidates_[n - 1].id;
}

}  // namespace kvq
