// libFuzzer target for the KV-type flag parsers (--kvq-key/--kvq-val/--kvq-rot values and --kvq-layers specs):
// any string parses or fails with a message; a parsed spec has exactly n_layer cache types.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kv/kv_types.h"
#include "quant/quant.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto type = kvq::parse_kv_type(text);
  if (type.ok() && !kvq::is_kv_cache_type(*type)) __builtin_trap();
  if (!type.ok() && type.error().message.empty()) __builtin_trap();
  auto rotation = kvq::parse_kv_rotation(text);
  if (!rotation.ok() && rotation.error().message.empty()) __builtin_trap();
  for (int n_layer : {1, 22, 80}) {
    auto layers = kvq::parse_kv_layers(text, n_layer, kvq::KvTypes{});
    if (layers.ok() && layers->size() != size_t(n_layer)) __builtin_trap();
    if (!layers.ok() && layers.error().message.empty()) __builtin_trap();
  }
  return 0;
}
