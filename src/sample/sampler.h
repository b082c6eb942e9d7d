// Token sampling from logits: greedy, or temperature with top-k / top-p / min-p filtering
// (applied in llama.cpp's default order: top-k, top-p, min-p, then temperature).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace kvq {

struct SamplerParams {
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: off
  float top_p = 0.95f;       // >= 1: off
  float min_p = 0.05f;       // <= 0: off
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  // logits: [n_vocab]. Returns the chosen token id.
  int32_t sample(const float* logits, int n_vocab);

 private:
  struct Candidate {
    int32_t id;
    float logit;
    float p;
  };
  SamplerParams params_;
  std::mt19937_64 rng_;
  std::vector<Candidate> candidates_;  // [n_vocab] scratch
};

// Index of the largest logit (lowest index on ties).
int32_t argmax(const float* logits, int n);

}  // namespace kvq
