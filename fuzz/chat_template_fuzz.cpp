// libFuzzer target for the chat-template renderer: any bytes parse or fail with a message, and a
// parsed template renders or fails with an error, never a crash, a hang or unbounded memory. The
// context is a small fixed conversation with a tool, like the one a GGUF template really gets.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "chat/chat_template.h"

namespace {

const nlohmann::ordered_json& fuzz_context() {
  static const nlohmann::ordered_json context = [] {
    nlohmann::ordered_json tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]},
                       "days": {"type": ["integer", "null"], "default": 1}}, "required": ["city"]}}}])");
    auto ctx = kvq::chat::make_chat_context({{"system", "Be brief."},
                                             {"user", "Hi {{ x }} \"quoted\"\n\ttab"},
                                             {"assistant", "<think>hmm</think>Hello!"},
                                             {"user", "Weather in Oslo?"}},
                                            true, {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
    ctx["tools"] = tools;
    return ctx;
  }();
  return context;
}

const kvq::chat::RenderOptions& fuzz_options() {
  static const kvq::chat::RenderOptions options = [] {
    kvq::chat::RenderOptions o;
    // Small limits keep every input fast; the guards are the same at any size.
    o.limits.max_output_bytes = 64 * 1024;
    o.limits.max_items = 4096;
    o.limits.max_steps = 100'000;
    o.limits.max_call_depth = 16;
    std::tm when{};
    when.tm_year = 126;
    when.tm_mon = 11;
    when.tm_mday = 1;
    o.now = when;
    return o;
  }();
  return options;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto tmpl = kvq::chat::ChatTemplate::parse(source);
  if (!tmpl.ok()) {
    if (tmpl.error().message.empty()) __builtin_trap();  // parse errors always say what is wrong
    return 0;
  }
  auto text = tmpl->render(fuzz_context(), fuzz_options());
  if (text.ok() && text->size() > fuzz_options().limits.max_output_bytes) __builtin_trap();
  return 0;
}
