#include "model/identity.h"

namespace kvq {
namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t fnv1a(const void* data, size_t n, uint64_t h) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * kFnvPrime;
  return h;
}

}  // namespace

ModelIdentity identify_model(const gguf::File& file, const ModelConfig& config) {
  uint64_t h = kFnvOffset;
  for (const gguf::TensorInfo& t : file.tensors()) {
    h = fnv1a(t.name.data(), t.name.size(), h);
    const uint8_t separator = 0;  // "ab"+"c" and "a"+"bc" must differ
    h = fnv1a(&separator, 1, h);
    const uint64_t n_dims = t.dims.size();
    h = fnv1a(&n_dims, sizeof(n_dims), h);
    for (int64_t d : t.dims) h = fnv1a(&d, sizeof(d), h);
  }
  return ModelIdentity{config.name, config.n_layer, h};
}

}  // namespace kvq
