// Which model a file holds, for refusing a per-layer KV spec tuned on another one (kv/kv_spec_file.h).
#pragma once

#include "gguf/gguf.h"
#include "kv/kv_spec_file.h"
#include "model/config.h"

namespace kvq {

// general.name, the layer count, and FNV-1a over every tensor's name and dimensions in file order.
// Weight types are left out on purpose: a requantized copy of a model keeps its per-layer KV
// sensitivities (they come from the trained weights, not from how they are stored) and its spec.
ModelIdentity identify_model(const gguf::File& file, const ModelConfig& config);

}  // namespace kvq
