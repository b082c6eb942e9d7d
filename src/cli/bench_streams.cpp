#include "cli/bench_streams.h"

#include <chrono>

namespace kvq::cli {
namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Result<nlohmann::json> bench_streams(Model& model, const std::vector<KvTypes>& types, const StreamsTest& t,
                                     std::mt19937& rng) {
  const int n_vocab = model.config().n_vocab;
  std::uniform_int_distribution<int32_t> random_token(0, n_vocab - 1);
  // Positions the decoding streams reach: the timed and warm-up steps, then one per prompt chunk.
  const int chunks = (t.n_prompt + t.prefill_chunk - 1) / t.prefill_chunk;
  const int n_ctx = t.depth + t.n_gen * (t.repetitions + 1) + t.repetitions * chunks + t.n_prompt + 1;
  // One cache filled to the depth, copied into the others: random tokens, only speed matters.
  std::vector<KvCache> caches;
  for (int s = 0; s < t.streams + 1; ++s) {  // the last one is the newcomer's
    auto cache = model.make_cache(n_ctx, types);
    if (!cache) return cache.error();
    caches.push_back(std::move(*cache));
  }
  std::vector<float> logits(size_t(n_vocab) * size_t(t.streams + 1));  // [streams + 1, n_vocab]
  if (t.depth > 0) {
    std::vector<int32_t> fill(static_cast<size_t>(t.depth));
    for (auto& id : fill) id = random_token(rng);
    KVQ_RETURN_IF_ERROR(model.forward(fill, 0, caches[0], logits.data(), false));
    for (int s = 1; s < t.streams; ++s) KVQ_CHECK(caches[size_t(s)].copy_from(caches[0]));
  }
  std::vector<int32_t> next(size_t(t.streams + 1));  // [streams + 1] this step's token per sequence
  int pos = t.depth;
  const auto decode_steps = [&](std::vector<SequenceStep>& steps) {
    steps.clear();
    for (int s = 0; s < t.streams; ++s) {
      next[size_t(s)] = random_token(rng);
      steps.push_back({{&next[size_t(s)], 1}, pos, &caches[size_t(s)], logits.data() + size_t(s) * n_vocab});
    }
  };
  nlohmann::json out = {{"tok_s", nlohmann::json::array()}, {"ttft_ms", nlohmann::json::array()}};
  std::vector<SequenceStep> steps;
  for (int r = -1; r < t.repetitions; ++r) {  // r = -1: untimed warm-up
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < t.n_gen; ++i, ++pos) {
      decode_steps(steps);
      KVQ_RETURN_IF_ERROR(model.forward_batched(steps));
    }
    if (r >= 0)
      out["tok_s"].push_back(double(t.streams) * t.n_gen / seconds_between(start, std::chrono::steady_clock::now()));
  }
  // Time to first token: a new prompt arrives while streams - 1 others decode; it is fed in chunks beside
  // their tokens, as the server's engine does, until its last chunk yields logits.
  if (t.n_prompt > 0) {
    std::vector<int32_t> prompt(static_cast<size_t>(t.n_prompt));
    for (int r = 0; r < t.repetitions; ++r) {
      for (auto& id : prompt) id = random_token(rng);
      KvCache& fresh = caches.back();
      const auto start = std::chrono::steady_clock::now();
      for (int done = 0; done < t.n_prompt; ++pos) {
        decode_steps(steps);
        steps.pop_back();  // the newcomer takes one stream's place
        const int n = std::min(t.prefill_chunk, t.n_prompt - done);
        steps.push_back({{prompt.data() + done, size_t(n)}, done, &fresh, logits.data() + size_t(t.streams) * n_vocab});
        KVQ_RETURN_IF_ERROR(model.forward_batched(steps));
        done += n;
      }
      out["ttft_ms"].push_back(1000.0 * seconds_between(start, std::chrono::steady_clock::now()));
    }
  }
  return out;
}

}  // namespace kvq::cli
