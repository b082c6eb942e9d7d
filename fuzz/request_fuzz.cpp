// libFuzzer target for the server's request parser: any body, for either endpoint, must parse or fail
// with an error message; a parsed request must respect the limits the engine relies on.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (auto endpoint : {kvq::serve::Endpoint::kCompletions, kvq::serve::Endpoint::kChatCompletions}) {
    auto r = kvq::serve::parse_completion_request(body, endpoint, kvq::SamplerParams{});
    if (!r.ok()) {
      if (r.error().message.empty()) __builtin_trap();
      continue;
    }
    if (r->stop.size() > kvq::serve::kMaxStopStrings) __builtin_trap();
    for (const auto& s : r->stop) {
      if (s.empty() || s.size() > kvq::serve::kMaxStopLength) __builtin_trap();
    }
    if (r->max_tokens < -1 || !(r->sampling.temperature >= 0.0f && r->sampling.temperature <= 2.0f)) __builtin_trap();
    if (endpoint == kvq::serve::Endpoint::kChatCompletions && r->messages.empty()) __builtin_trap();
  }
  return 0;
}
