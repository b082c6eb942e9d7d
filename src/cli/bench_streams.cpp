#include "cli/bench_streams.h"

#include <chrono>

namespace kvq::cli {
namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// One count's sequences: a cache each, plus the newcomer's, and the position they have all reached.
struct StreamSet {
  int streams = 0;
  std::vector<KvCache> caches;  // [streams + 1], the last one the newcomer's
  int pos = 0;
};

}  // namespace

Result<nlohmann::json> bench_streams(Model& model, const std::vector<KvTypes>& types, const StreamsTest& t,
                                     std::mt19937& rng) {
  const int n_vocab = model.config().n_vocab;
  std::uniform_int_distribution<int32_t> random_token(0, n_vocab - 1);
  // Positions a set reaches: the timed and warm-up steps, then one per prompt chunk.
  const int chunks = (t.n_prompt + t.prefill_chunk - 1) / t.prefill_chunk;
  const int n_ctx = t.depth + t.n_gen * (t.repetitions + 1) + t.repetitions * chunks + t.n_prompt + 1;
  int max_streams = 1;
  for (int n : t.counts) max_streams = std::max(max_streams, n);
  // One cache filled to the depth, copied into every other: random tokens, only speed matters.
  std::vector<StreamSet> sets;
  std::vector<int32_t> fill(static_cast<size_t>(t.depth));
  for (auto& id : fill) id = random_token(rng);
  std::vector<float> logits(size_t(n_vocab) * size_t(max_streams + 1));  // [max_streams + 1, n_vocab]
  for (int n : t.counts) {
    StreamSet set{n, {}, t.depth};
    for (int s = 0; s < n + 1; ++s) {
      auto cache = model.make_cache(n_ctx, types);
      if (!cache) return cache.error();
      set.caches.push_back(std::move(*cache));
    }
    if (t.depth > 0) {
      if (sets.empty()) {
        KVQ_RETURN_IF_ERROR(model.forward(fill, 0, set.caches[0], logits.data(), false));
      } else {
        KVQ_CHECK(set.caches[0].copy_from(sets.front().caches[0]));
      }
      for (int s = 1; s < n; ++s) KVQ_CHECK(set.caches[size_t(s)].copy_from(set.caches[0]));
    }
    sets.push_back(std::move(set));
  }

  std::vector<int32_t> next(size_t(max_streams + 1));  // [max_streams + 1] this step's token per sequence
  std::vector<SequenceStep> steps;
  const auto decode_steps = [&](StreamSet& set) {
    steps.clear();
    for (int s = 0; s < set.streams; ++s) {
      next[size_t(s)] = random_token(rng);
      steps.push_back({{&next[size_t(s)], 1}, set.pos, &set.caches[size_t(s)], logits.data() + size_t(s) * n_vocab});
    }
  };
  const auto timed_decode = [&](StreamSet& set) -> Result<double> {  // aggregate tok/s of n_gen steps
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < t.n_gen; ++i, ++set.pos) {
      decode_steps(set);
      KVQ_RETURN_IF_ERROR(model.forward_batched(steps));
    }
    return double(set.streams) * t.n_gen / seconds_between(start, std::chrono::steady_clock::now());
  };
  // Time to first token: a new prompt arrives while streams - 1 others decode; it is fed in chunks beside
  // their tokens, as the server's engine does, until its last chunk yields logits.
  std::vector<int32_t> prompt(static_cast<size_t>(t.n_prompt));
  const auto time_to_first_token = [&](StreamSet& set) -> Result<double> {
    for (auto& id : prompt) id = random_token(rng);
    KvCache& fresh = set.caches.back();
    const auto start = std::chrono::steady_clock::now();
    for (int done = 0; done < t.n_prompt; ++set.pos) {
      decode_steps(set);
      steps.pop_back();  // the newcomer takes one stream's place
      const int n = std::min(t.prefill_chunk, t.n_prompt - done);
      steps.push_back(
          {{prompt.data() + done, size_t(n)}, done, &fresh, logits.data() + size_t(set.streams) * n_vocab});
      KVQ_RETURN_IF_ERROR(model.forward_batched(steps));
      done += n;
    }
    return 1000.0 * seconds_between(start, std::chrono::steady_clock::now());
  };

  nlohmann::json out = nlohmann::json::array();
  for (const StreamSet& set : sets) {
    out.push_back({{"streams", set.streams}, {"tok_s", nlohmann::json::array()}, {"ttft_ms", nlohmann::json::array()}});
  }
  for (StreamSet& set : sets) {  // untimed warm-up
    auto warm = timed_decode(set);
    if (!warm) return warm.error();
  }
  for (int r = 0; r < t.repetitions; ++r) {
    for (size_t i = 0; i < sets.size(); ++i) {
      auto tok_s = timed_decode(sets[i]);
      if (!tok_s) return tok_s.error();
      out[i]["tok_s"].push_back(*tok_s);
      if (t.n_prompt > 0) {
        auto ttft = time_to_first_token(sets[i]);
        if (!ttft) return ttft.error();
        out[i]["ttft_ms"].push_back(*ttft);
      }
    }
  }
  return out;
}

}  // namespace kvq::cli
