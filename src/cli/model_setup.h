// Loading a model and its cache for the subcommands that run one, with the up-front checks a user
// should meet before any work starts (types, context length, memory).
#pragma once

#include <memory>
#include <string>

#include "cli/common.h"
#include "model/model.h"

namespace kvq::cli {

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::vector<KvTypes> kv_types;  // [n_layer]
};

// Loads the model and resolves the KV flags; errors name the file or flag.
Result<LoadedModel> load_model(const std::string& path, const KvOptions& kv);

// Allocates a cache of n_ctx tokens, refusing up front (with the figures) when weights + cache exceed
// the memory available, and warning when n_ctx exceeds the trained context.
Result<KvCache> make_checked_cache(const LoadedModel& loaded, int n_ctx);

// "K q8_0 12.0 MiB + V q4_0 6.4 MiB = 18.4 MiB (59.4% saved against f16)"
std::string describe_cache_memory(const KvCache& cache);

}  // namespace kvq::cli
