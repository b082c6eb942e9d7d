// libFuzzer target for the GGUF parser and the model binder: any byte string must parse or fail cleanly,
// everything a successful parse returns must be safe to walk (ASan catches a tensor pointer outside the
// buffer), and reading a model's config and binding its weights must succeed or fail with an error that
// names the input (seeds: the tiny models of tests/arch_errors_test.cpp).
#include <cstddef>
#include <cstdint>
#include <span>

#include "gguf/gguf.h"
#include "model/config.h"
#include "model/weights.h"

namespace {

// Touches every value so that a bad array/string built by the parser would be caught.
uint64_t walk(const kvq::gguf::Value& v) {
  uint64_t h = uint64_t(v.type) + uint64_t(v.as_int()) + uint64_t(v.as_float() != 0);
  for (char c : v.str) h = h * 31 + uint8_t(c);
  for (const kvq::gguf::Value& e : v.array) h += walk(e);
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = kvq::gguf::File::parse(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.ok()) {
    // Every error names the input.
    if (file.error().message.rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();
    return 0;
  }
  volatile uint64_t sink = 0;
  for (const auto& [key, value] : file->metadata()) {
    sink = sink + walk(value) + key.size();
    if (file->find(key) != &value) __builtin_trap();
    // The getters must cope with any type; results are irrelevant.
    (void)file->get_int(key);
    (void)file->get_float(key);
    (void)file->get_string_array(key);
    (void)file->get_float_array(key);
    (void)file->get_int_array(key);
  }
  for (const kvq::gguf::TensorInfo& t : file->tensors()) {
    if (file->find_tensor(t.name) != &t) __builtin_trap();
    if (t.dims.empty() || t.dims.size() > size_t(kvq::gguf::kMaxDims)) __builtin_trap();
    if (file->data_offset() + t.offset + t.bytes > size) __builtin_trap();
    sink = sink + uint64_t(t.n_elements()) + uint64_t(t.n_rows());
    if (t.bytes > 0) sink = sink + t.data[0] + t.data[t.bytes - 1];
  }
  auto config = kvq::read_model_config(*file);
  if (!config.ok()) {
    if (config.error().message.rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();
    return 0;
  }
  auto weights = kvq::bind_model_weights(*file, *config);
  if (!weights.ok() && weights.error().message.rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();
  return 0;
}
