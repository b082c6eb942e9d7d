// The serving engine: N slots, each with its own KV cache, fed by a bounded queue of requests and driven
// by one thread that runs continuous batching: every step evaluates the next token of every generating
// slot and a chunk of at most one prompt per slot in ONE forward pass (Model::forward_batched), so the
// weights are read once per step for all sequences. A slot keeps the tokens its cache holds, and a new
// request goes to the free slot sharing the longest prefix with it (a follow-up chat turn does not
// re-process the history).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "model/model.h"
#include "sample/sampler.h"
#include "serve/text_stream.h"
#include "tokenizer/tokenizer.h"

namespace kvq::serve {

struct EngineOptions {
  int n_slots = 1;
  int n_ctx = 4096;               // per slot
  std::vector<KvTypes> kv_types;  // [n_layer]
  int queue_limit = 64;           // requests waiting for a slot; beyond that submit() says busy
  int prefill_chunk = 256;        // prompt tokens of one slot per step, so that the others keep decoding
};

struct GenerationParams {
  SamplerParams sampling;
  int max_tokens = -1;  // -1: until end of generation or of the context
  std::vector<std::string> stop;
};

// What the engine tells a request, in order; the last event has done = true.
struct GenerationEvent {
  std::string text;  // text since the previous event (whole UTF-8 characters)
  bool done = false;
  std::string finish_reason;                                        // "stop" or "length" (done only)
  std::string error;                                                // non-empty: the request failed (done only)
  int prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;  // done only
};

// One request's channel between the engine thread and whoever waits for it.
class Job {
 public:
  // Waits up to `timeout` for events and returns them (none on timeout).
  std::vector<GenerationEvent> wait(std::chrono::milliseconds timeout);
  // Stops generation at the next step and frees the slot (a client that went away).
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Engine;
  void push(GenerationEvent event);

  std::vector<int32_t> prompt_;
  GenerationParams params_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<GenerationEvent> events_;
  std::atomic<bool> cancelled_{false};
};

enum class SubmitStatus : uint8_t { kOk, kPromptTooLong, kBusy, kDraining };

struct EngineStats {
  uint64_t requests = 0, rejected = 0, prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double generation_seconds = 0;              // wall time of steps that generated tokens
  uint64_t steps = 0, batched_sequences = 0;  // forward passes, and sequences summed over them
  int queued = 0, active = 0, n_slots = 0;
  uint64_t kv_bytes_allocated = 0, kv_bytes_in_use = 0, kv_tokens_in_use = 0, kv_tokens_capacity = 0;
};

class Engine {
 public:
  // Allocates every slot's cache up front (the caller has checked the memory).
  static Result<std::unique_ptr<Engine>> create(Model& model, const Tokenizer& tokenizer, EngineOptions options);
  ~Engine();

  // Queues a request. status says why it was refused (null job): the prompt does not fit a slot's
  // context, the queue is full, or the engine is draining. message carries the figures.
  std::shared_ptr<Job> submit(std::vector<int32_t> prompt, GenerationParams params, SubmitStatus& status,
                              std::string& message);
  EngineStats stats() const;
  const EngineOptions& options() const { return options_; }
  // Refuses new requests and returns once every queued and running one has finished.
  void drain();

 private:
  struct Slot {
    explicit Slot(KvCache c) : cache(std::move(c)) {}
    KvCache cache;
    std::vector<int32_t> cached;  // tokens whose K/V the cache holds at positions 0 .. size - 1
    std::shared_ptr<Job> job;
    size_t next_prompt = 0;  // index of the first prompt token not yet evaluated
    int32_t pending = -1;    // sampled, not yet evaluated (fed in the next step)
    int n_generated = 0, n_reused = 0;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<TextStream> text;
  };

  Engine(Model& model, const Tokenizer& tokenizer, EngineOptions options, std::vector<KvCache> caches);
  void run();
  void admit_locked();
  int reusable_prefix(const Slot& slot, const std::vector<int32_t>& prompt) const;
  void finish(Slot& slot, const std::string& reason, const std::string& error = "");
  // Samples the slot's next token from logits and streams its text; may finish the slot.
  void take_token(Slot& slot, const float* logits);

  Model& model_;
  const Tokenizer& tokenizer_;
  EngineOptions options_;
  std::vector<Slot> slots_;

  mutable std::mutex mutex_;  // guards queue_, stats_, draining_, stop_, and slot assignment
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<std::shared_ptr<Job>> queue_;
  EngineStats stats_;
  bool draining_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace kvq::serve
