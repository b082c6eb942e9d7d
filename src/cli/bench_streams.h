// kvq bench --streams: aggregate decode speed of N sequences batched in one forward pass per step (what
// kvq serve's continuous batching does), and the time to first token of a new prompt while the others
// decode.
#pragma once

#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "model/model.h"

namespace kvq::cli {

struct StreamsTest {
  std::vector<int> counts;  // sequences decoding together, one test each (all >= 1)
  int depth = 0;            // tokens each already holds
  int n_gen = 64;           // steps timed
  int n_prompt = 512;       // prompt of the newcomer (time to first token); 0 = skip
  int prefill_chunk = 256;
  int repetitions = 3;
};

// Runs the counts' tests in turn within each repetition, so that a machine whose speed drifts (a shared VM)
// slows all of them alike and their ratios hold. Returns per count, in `counts` order,
// {"streams": N, "tok_s": [per repetition], "ttft_ms": [...]}; errors only from the model (context too small).
Result<nlohmann::json> bench_streams(Model& model, const std::vector<KvTypes>& types, const StreamsTest& test,
                                     std::mt19937& rng);

}  // namespace kvq::cli
