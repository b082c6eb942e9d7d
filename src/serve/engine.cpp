#include "serve/engine.h"

#include <algorithm>
#include <random>

namespace kvq::serve {

std::vector<GenerationEvent> Job::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  std::vector<GenerationEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

void Job::push(GenerationEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_all();
}

Result<std::unique_ptr<Engine>> Engine::create(Model& model, const Tokenizer& tokenizer, EngineOptions options) {
  if (options.n_slots <= 0 || options.n_ctx <= 1 || options.queue_limit < 0 || options.prefill_chunk <= 0) {
    return make_error("engine: slots {}, context {}, queue {} and prefill chunk {} must be positive", options.n_slots,
                      options.n_ctx, options.queue_limit, options.prefill_chunk);
  }
  options.prefill_chunk = std::min(options.prefill_chunk, Model::kMaxBatch);
  std::vector<KvCache> caches;
  for (int i = 0; i < options.n_slots; ++i) {
    auto cache = model.make_cache(options.n_ctx, options.kv_types);
    if (!cache) return cache.error();
    caches.push_back(std::move(*cache));
  }
  return std::unique_ptr<Engine>(new Engine(model, tokenizer, std::move(options), std::move(caches)));
}

Engine::Engine(Model& model, const Tokenizer& tokenizer, EngineOptions options, std::vector<KvCache> caches)
    : model_(model), tokenizer_(tokenizer), options_(std::move(options)) {
  for (KvCache& cache : caches) {
    stats_.kv_bytes_allocated += cache.bytes();
    slots_.emplace_back(std::move(cache));
  }
  stats_.n_slots = options_.n_slots;
  stats_.kv_tokens_capacity = uint64_t(options_.n_slots) * uint64_t(options_.n_ctx);
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
}

std::shared_ptr<Job> Engine::submit(std::vector<int32_t> prompt, GenerationParams params, SubmitStatus& status,
                                    std::string& message) {
  std::lock_guard lock(mutex_);
  status = SubmitStatus::kOk;
  if (prompt.empty() || int(prompt.size()) >= options_.n_ctx) {
    status = SubmitStatus::kPromptTooLong;
    message = fmt::format("the prompt is {} tokens; a slot's context holds {} (prompt and answer together)",
                          prompt.size(), options_.n_ctx);
  } else if (draining_) {
    status = SubmitStatus::kDraining;
    message = "the server is shutting down";
  } else if (queue_.size() >= size_t(options_.queue_limit)) {
    status = SubmitStatus::kBusy;
    message = fmt::format("all {} slots are busy and {} requests are waiting", options_.n_slots, queue_.size());
  }
  if (status != SubmitStatus::kOk) {
    ++stats_.rejected;
    return nullptr;
  }
  auto job = std::make_shared<Job>();
  job->prompt_ = std::move(prompt);
  job->params_ = std::move(params);
  queue_.push_back(job);
  ++stats_.requests;
  work_.notify_all();
  return job;
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mutex_);
  EngineStats s = stats_;
  s.queued = int(queue_.size());
  return s;
}

void Engine::drain() {
  std::unique_lock lock(mutex_);
  draining_ = true;
  idle_.wait(lock, [&] { return queue_.empty() && stats_.active == 0; });
}

int Engine::reusable_prefix(const Slot& slot, const std::vector<int32_t>& prompt) const {
  const size_t limit = std::min(slot.cached.size(), prompt.size() - 1);  // the last prompt token gives logits
  size_t n = 0;
  while (n < limit && slot.cached[n] == prompt[n]) ++n;
  // Rings (sliding windows, a kept recent window) must still hold what the positions from n on read.
  if (!slot.cache.can_rewind(int(slot.cached.size()), int(n))) return 0;
  return int(n);
}

void Engine::admit_locked() {
  while (!queue_.empty()) {
    std::shared_ptr<Job> job = queue_.front();
    if (job->cancelled()) {
      queue_.pop_front();
      GenerationEvent done;
      done.done = true;
      done.error = "cancelled";
      job->push(std::move(done));
      continue;
    }
    Slot* best = nullptr;
    int best_prefix = -1;
    for (Slot& slot : slots_) {
      if (slot.job) continue;
      const int prefix = reusable_prefix(slot, job->prompt_);
      if (prefix > best_prefix) best = &slot, best_prefix = prefix;
    }
    if (!best) return;
    queue_.pop_front();
    Slot& slot = *best;
    slot.job = job;
    slot.cached.resize(size_t(best_prefix));
    slot.next_prompt = size_t(best_prefix);
    slot.n_reused = best_prefix;
    slot.pending = -1;
    slot.n_generated = 0;
    SamplerParams sampling = job->params_.sampling;
    slot.sampler = std::make_unique<Sampler>(sampling);
    slot.text = std::make_unique<TextStream>(job->params_.stop);
    ++stats_.active;
    stats_.prompt_tokens += job->prompt_.size();
    stats_.cached_tokens += uint64_t(best_prefix);
  }
}

void Engine::finish(Slot& slot, const std::string& reason, const std::string& error) {
  GenerationEvent done;
  done.done = true;
  done.finish_reason = reason;
  done.error = error;
  if (error.empty()) done.text = slot.text->finish();
  done.prompt_tokens = int(slot.job->prompt_.size());
  done.cached_tokens = slot.n_reused;
  done.completion_tokens = slot.n_generated;
  slot.job->push(std::move(done));
  slot.job.reset();
  if (!error.empty()) slot.cached.clear();  // its cache state is unknown
  std::lock_guard lock(mutex_);
  --stats_.active;
  stats_.completion_tokens += uint64_t(slot.n_generated);
}

void Engine::take_token(Slot& slot, const float* logits) {
  const int32_t token = slot.sampler->sample(logits, model_.config().n_vocab);
  if (tokenizer_.is_eog(token)) return finish(slot, "stop");
  ++slot.n_generated;
  GenerationEvent event;
  event.text = slot.text->push(tokenizer_.token_to_piece(token));
  if (!event.text.empty()) slot.job->push(std::move(event));
  const int max_tokens = slot.job->params_.max_tokens;
  if (slot.text->stopped()) return finish(slot, "stop");
  if (max_tokens >= 0 && slot.n_generated >= max_tokens) return finish(slot, "length");
  if (int(slot.cached.size()) + 1 >= options_.n_ctx) return finish(slot, "length");  // no room to feed it
  slot.pending = token;
}

void Engine::run() {
  std::vector<std::vector<float>> logits(slots_.size(), std::vector<float>(size_t(model_.config().n_vocab)));
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      admit_locked();
      const auto busy = [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return bool(s.job); });
      };
      if (!busy()) idle_.notify_all();
      work_.wait(lock, [&] { return stop_ || !queue_.empty() || busy(); });
      if (stop_) return;
      admit_locked();
    }
    // Cancelled requests free their slot before any work is spent on them.
    for (Slot& slot : slots_) {
      if (slot.job && slot.job->cancelled()) finish(slot, "stop", "cancelled");
    }
    // One step: every generating slot's pending token, then prompt chunks within the batch.
    std::vector<SequenceStep> steps;
    std::vector<Slot*> owners;
    std::vector<std::vector<int32_t>> inputs(slots_.size());  // [slot] tokens fed this step
    int budget = Model::kMaxBatch;
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < slots_.size(); ++i) {
        Slot& slot = slots_[i];
        if (!slot.job) continue;
        const std::vector<int32_t>& prompt = slot.job->prompt_;
        const bool decoding = slot.next_prompt >= prompt.size();
        if (decoding != (pass == 0) || budget == 0) continue;
        if (decoding) {
          inputs[i] = {slot.pending};
        } else {
          const size_t n = std::min({prompt.size() - slot.next_prompt, size_t(options_.prefill_chunk), size_t(budget)});
          inputs[i].assign(prompt.begin() + long(slot.next_prompt), prompt.begin() + long(slot.next_prompt + n));
        }
        const bool wants_logits = decoding || slot.next_prompt + inputs[i].size() == prompt.size();
        steps.push_back({inputs[i], int(slot.cached.size()), &slot.cache, wants_logits ? logits[i].data() : nullptr});
        owners.push_back(&slot);
        budget -= int(inputs[i].size());
      }
    }
    if (steps.empty()) continue;
    const auto start = std::chrono::steady_clock::now();
    const Status status = model_.forward_batched(steps);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (size_t s = 0; s < steps.size(); ++s) {
      Slot& slot = *owners[s];
      if (!status) {
        finish(slot, "", status.error().message);
        continue;
      }
      slot.cached.insert(slot.cached.end(), steps[s].tokens.begin(), steps[s].tokens.end());
      if (slot.next_prompt < slot.job->prompt_.size()) slot.next_prompt += steps[s].tokens.size();
      if (steps[s].logits) take_token(slot, steps[s].logits);
    }
    std::lock_guard lock(mutex_);
    ++stats_.steps;
    stats_.batched_sequences += steps.size();
    stats_.generation_seconds += seconds;
    stats_.kv_tokens_in_use = stats_.kv_bytes_in_use = 0;
    for (const Slot& slot : slots_) {
      stats_.kv_tokens_in_use += slot.cached.size();
      stats_.kv_bytes_in_use += slot.cache.bytes_holding(int(slot.cached.size()));
    }
  }
}

}  // namespace kvq::serve
