#include "cli/model_setup.h"

#include <cstdio>

#include "model/identity.h"
#include "util/system.h"

namespace kvq::cli {

Result<LoadedModel> load_model(const std::string& path, const KvOptions& kv) {
  auto model = Model::load(path);
  if (!model) return model.error();
  auto types = resolve_kv_types(kv, identify_model((*model)->file(), (*model)->config()));
  if (!types) return types.error();
  (*model)->set_kv_layout(kv_cache_layout(kv));
  return LoadedModel{std::move(*model), std::move(*types)};
}

Result<KvCache> make_checked_cache(const LoadedModel& loaded, int n_ctx) {
  const ModelConfig& c = loaded.model->config();
  if (n_ctx <= 0) return make_error("context length {} must be positive", n_ctx);
  if (n_ctx > c.n_ctx_train) {
    std::fprintf(stderr, "kvq: warning: context %d exceeds the model's trained context %d\n", n_ctx, c.n_ctx_train);
  }
  const uint64_t kv_bytes = KvCache::bytes(loaded.model->cache_shape(n_ctx), loaded.kv_types);
  const uint64_t weight_bytes = loaded.model->weights().total_bytes;
  const uint64_t available = available_memory_bytes();
  if (available && kv_bytes + weight_bytes > available) {
    return make_error(
        "context {} does not fit: KV cache {} ({}) + weights {} = {} > {} available; "
        "use a smaller -c or a smaller K/V type (kvq info --mem-budget shows what fits)",
        n_ctx, format_bytes(double(kv_bytes)), describe_kv_types(loaded.kv_types), format_bytes(double(weight_bytes)),
        format_bytes(double(kv_bytes + weight_bytes)), format_bytes(double(available)));
  }
  return loaded.model->make_cache(n_ctx, loaded.kv_types);
}

std::string describe_cache_memory(const KvCache& cache) {
  const KvCacheShape& s = cache.shape();
  const uint64_t f16 = KvCache::bytes(s, std::vector<KvTypes>(size_t(s.n_layer)));
  const uint64_t total = cache.bytes();  // rows and centring means
  return fmt::format("{}: K {} + V {} = {} for {} tokens ({:.1f}% saved against f16)", describe_kv_types(cache.types()),
                     format_bytes(double(cache.k_bytes())), format_bytes(double(cache.v_bytes())),
                     format_bytes(double(total)), s.n_ctx, 100.0 * (1.0 - double(total) / double(f16)));
}

}  // namespace kvq::cli
