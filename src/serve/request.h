// OpenAI-style request bodies (POST /v1/completions, /v1/chat/completions) parsed into what the engine
// needs. Errors are values (fuzzed by fuzz/request_fuzz.cpp) that the server turns into HTTP 400 with an
// OpenAI error object naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sample/sampler.h"
#include "util/result.h"

namespace kvq::serve {

struct ChatMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;
};

enum class Endpoint : uint8_t { kCompletions, kChatCompletions };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;                  // empty when the client sent none
  std::string prompt;                 // completions
  std::vector<ChatMessage> messages;  // chat completions
  int max_tokens = -1;                // -1: until the end of generation or of the context
  SamplerParams sampling;
  bool seeded = false;  // a seed was given: the output is reproducible
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Limits that keep one request from asking for unbounded work.
inline constexpr size_t kMaxStopStrings = 4;  // as OpenAI
inline constexpr size_t kMaxStopLength = 256;

// Parses a JSON body; `defaults` supply the sampling fields the request leaves out.
Result<CompletionRequest> parse_completion_request(std::string_view body, Endpoint endpoint,
                                                   const SamplerParams& defaults);

}  // namespace kvq::serve
