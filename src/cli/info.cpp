// kvq info MODEL: what a model is and what its KV cache costs at each K/V precision.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <ranges>

#include "cli/commands.h"
#include "cli/common.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/identity.h"
#include "model/model.h"
#include "model/weights.h"

namespace kvq::cli {
namespace {

struct InfoArgs {
  std::string model;
  bool json = false;
  std::string mem_budget;  // empty = no context-fit column
  std::string kv_list = "f32,f16,bf16,q8_0,q5_1,q5_0,q4_1,q4_0,iq4_nl";
  KvOptions kv;
};

const int kContexts[] = {2048, 8192, 32768};
constexpr int64_t kMaxContextSearched = int64_t(1) << 26;  // --mem-budget answers at most this

int run_info(const InfoArgs& args) {
  auto file = gguf::File::open(args.model);
  if (!file) return report_error(file.error()), 1;
  auto config = read_model_config(*file);
  if (!config) return report_error(config.error()), 1;
  auto weights = bind_model_weights(*file, *config);
  if (!weights) return report_error(weights.error()), 1;
  const ModelConfig& c = *config;
  auto selected = resolve_kv_types(args.kv, identify_model(*file, c));
  if (!selected) return report_error(selected.error()), 1;

  std::vector<GgmlType> kv_types;
  for (std::string_view part : split_commas(args.kv_list)) {
    auto type = parse_kv_type(part);
    if (!type) return report_error(make_error("--kv-types: {}", type.error().message)), 1;
    kv_types.push_back(*type);
  }
  uint64_t budget = 0;
  if (!args.mem_budget.empty()) {
    auto parsed = parse_size(args.mem_budget);
    if (!parsed) return report_error(make_error("--mem-budget: {}", parsed.error().message)), 1;
    budget = *parsed;
  }

  std::map<std::string, int> type_counts;
  for (const gguf::TensorInfo& t : file->tensors()) type_counts[std::string(type_name(t.type))]++;
  std::string tokenizer_model = "none";
  size_t vocab_size = 0;
  if (const gguf::Value* v = file->find("tokenizer.ggml.model")) tokenizer_model = v->str;
  if (const gguf::Value* v = file->find("tokenizer.ggml.tokens")) vocab_size = v->array.size();

  const KvCacheShape shape{c.n_layer, 0, c.n_head_kv, c.head_dim};
  const KvCacheLayout layout = kv_cache_layout(args.kv);
  auto kept = kv_kept(args.kv);
  if (!kept) return report_error(kept.error()), 1;
  // The cache kvq allocates for ctx tokens: rings of sliding-window layers, centring means, kept rows.
  const auto shape_at = [&](int64_t ctx) { return cache_shape_of(c, int(ctx), layout); };
  const int n_windowed = int(std::ranges::count_if(c.layers, [](const LayerConfig& l) { return l.window > 0; }));
  const uint64_t f16_per_token = KvCache::bytes_per_token(shape, std::vector<KvTypes>(c.n_layer, KvTypes{}));
  std::vector<int> contexts(std::begin(kContexts), std::end(kContexts));
  if (std::find(contexts.begin(), contexts.end(), c.n_ctx_train) == contexts.end()) {
    contexts.push_back(c.n_ctx_train);
  }
  const uint64_t weight_bytes = weights->total_bytes;

  nlohmann::json j;
  j["file"] = args.model;
  j["file_bytes"] = file->file_size();
  j["gguf_version"] = file->version();
  j["architecture"] = c.architecture;
  j["name"] = c.name;
  j["hparams"] = {{"n_layer", c.n_layer},
                  {"n_embd", c.n_embd},
                  {"n_head", c.n_head},
                  {"n_head_kv", c.n_head_kv},
                  {"head_dim", c.head_dim},
                  {"n_ff", c.n_ff},
                  {"n_vocab", c.n_vocab},
                  {"n_ctx_train", c.n_ctx_train},
                  {"n_rot", c.n_rot},
                  {"rope_freq_base", c.rope_freq_base},
                  {"rope_freq_scale", c.rope_freq_scale},
                  {"rms_eps", c.rms_eps}};
  j["n_params"] = weights->n_params;
  j["weight_bytes"] = weight_bytes;
  j["tied_output"] = weights->tied_output;
  j["weight_types"] = type_counts;
  j["tokenizer"] = {{"model", tokenizer_model}, {"n_tokens", vocab_size}};

  auto row_json = [&](const std::vector<KvTypes>& types) {
    const uint64_t per_token = KvCache::bytes_per_token(shape, types);
    nlohmann::json row;
    row["key"] = std::string(type_name(types[0].k));
    row["value"] = std::string(type_name(types[0].v));
    row["bits_per_value"] = 16.0 * double(per_token) / double(f16_per_token);
    row["bytes_per_token"] = per_token;
    row["saved_vs_f16"] = 1.0 - double(per_token) / double(f16_per_token);
    nlohmann::json at = nlohmann::json::object(), naive = nlohmann::json::object();
    for (int ctx : contexts) {
      at[std::to_string(ctx)] = KvCache::bytes(shape_at(ctx), types);
      naive[std::to_string(ctx)] = per_token * uint64_t(ctx);
    }
    row["bytes_at_context"] = at;
    if (n_windowed > 0) row["bytes_at_context_without_windows"] = naive;
    if (budget) {
      // Cache bytes grow with the context (by steps on windowed layers): the largest that fits, by bisection.
      const uint64_t room = budget > weight_bytes ? budget - weight_bytes : 0;
      int64_t lo = 0, hi = kMaxContextSearched;
      while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (KvCache::bytes(shape_at(mid), types) <= room)
          lo = mid;
        else
          hi = mid - 1;
      }
      row["max_context_in_budget"] = lo;
    }
    return row;
  };
  nlohmann::json table = nlohmann::json::array();
  for (GgmlType k : kv_types) {
    for (GgmlType v : kv_types)
      table.push_back(row_json(std::vector<KvTypes>(c.n_layer, {k, v, KvRotation::kNone, *kept})));
  }
  j["kv_table"] = table;
  if (n_windowed > 0) {
    const std::vector<KvTypes> f16(size_t(c.n_layer));
    const KvCacheShape at_32k = shape_at(kContexts[2]);
    int ring_rows = 0;
    for (int l = 0; l < c.n_layer; ++l) ring_rows = c.layers[size_t(l)].window > 0 ? at_32k.rows(l) : ring_rows;
    j["windows"] = {{"sliding_window", c.sliding_window},
                    {"windowed_layers", n_windowed},
                    {"ring_rows_at_32768", ring_rows},
                    {"f16_at_32768",
                     {{"bytes", KvCache::bytes(at_32k, f16)},
                      {"bytes_without_windows", KvCache::bytes_per_token(at_32k, f16) * uint64_t(kContexts[2])}}}};
  }
  // The selected configuration, with K and V reported separately.
  {
    nlohmann::json sel = row_json(*selected);
    sel["description"] = describe_kv_types(*selected);
    // A layer whose K and V share a type stores twice that type's bytes: halve it to split K from V.
    const KvCacheShape one_layer{1, 0, c.n_head_kv, c.head_dim};
    uint64_t k_bytes = 0, v_bytes = 0;
    for (const KvTypes& t : *selected) {
      k_bytes += KvCache::bytes_per_token(one_layer, {{t.k, t.k}}) / 2;
      v_bytes += KvCache::bytes_per_token(one_layer, {{t.v, t.v}}) / 2;
    }
    sel["key_bytes_per_token"] = k_bytes;
    sel["value_bytes_per_token"] = v_bytes;
    j["selected_kv"] = sel;
  }
  if (budget) j["mem_budget_bytes"] = budget;

  if (args.json) {
    print_json(j);
    return 0;
  }
  auto& out = std::cout;
  out << fmt::format("model        {}\n", args.model);
  out << fmt::format("file         {} (GGUF v{})\n", format_bytes(double(file->file_size())), file->version());
  out << fmt::format("architecture {}{}\n", c.architecture, c.name.empty() ? "" : "  (" + c.name + ")");
  out << fmt::format("parameters   {:.2f} M in {} tensors, {} of weights\n", weights->n_params / 1e6,
                     file->tensors().size(), format_bytes(double(weight_bytes)));
  std::string types_line;
  for (const auto& [name, count] : type_counts) types_line += fmt::format("{} x{}  ", name, count);
  out << fmt::format("weight types {}\n", types_line);
  out << fmt::format("layers {}  embd {}  heads {} (kv {}, head_dim {}, GQA {})  ff {}\n", c.n_layer, c.n_embd,
                     c.n_head, c.n_head_kv, c.head_dim, c.n_gqa(), c.n_ff);
  out << fmt::format("context {} (trained)  rope base {} scale {}  rms eps {}  output {}\n", c.n_ctx_train,
                     c.rope_freq_base, c.rope_freq_scale, c.rms_eps, weights->tied_output ? "tied" : "untied");
  out << fmt::format("vocabulary   {} tokens ({})\n\n", vocab_size, tokenizer_model);

  out << "KV cache per K/V pair (bits/value averaged over K and V; saved = against f16/f16)\n";
  std::string header =
      fmt::format("| {:<6} | {:<6} | {:>9} | {:>11} | {:>7} |", "K", "V", "bits/val", "bytes/token", "saved");
  std::string rule = "|--------|--------|-----------|-------------|---------|";
  for (int ctx : contexts) {
    header += fmt::format(" {:>12} |", fmt::format("MiB @ {}", ctx));
    rule += "--------------|";
  }
  if (budget) {
    header += fmt::format(" {:>14} |", "max ctx");
    rule += "----------------|";
  }
  out << header << "\n" << rule << "\n";
  for (const auto& row : table) {
    std::string line = fmt::format("| {:<6} | {:<6} | {:>9.2f} | {:>11} | {:>6.1f}% |", row["key"].get<std::string>(),
                                   row["value"].get<std::string>(), row["bits_per_value"].get<double>(),
                                   row["bytes_per_token"].get<uint64_t>(), 100.0 * row["saved_vs_f16"].get<double>());
    for (int ctx : contexts) {
      line += fmt::format(" {:>12.1f} |", row["bytes_at_context"][std::to_string(ctx)].get<uint64_t>() / 1048576.0);
    }
    if (budget) line += fmt::format(" {:>14} |", row["max_context_in_budget"].get<uint64_t>());
    out << line << "\n";
  }
  if (n_windowed > 0) {
    const std::string ctx = std::to_string(kContexts[2]);
    const nlohmann::json& f16 = j["windows"]["f16_at_32768"];
    const double exact = double(f16["bytes"].get<uint64_t>()),
                 naive = double(f16["bytes_without_windows"].get<uint64_t>());
    out << fmt::format(
        "\nsliding windows: {} of {} layers see the last {} positions and keep a ring of {} rows; at {} tokens the "
        "f16 cache takes {:.1f} MiB, {:.2f}x less than n_ctx x bytes/token ({:.1f} MiB)\n",
        n_windowed, c.n_layer, c.sliding_window, j["windows"]["ring_rows_at_32768"].get<int>(), ctx, exact / 1048576.0,
        naive / exact, naive / 1048576.0);
  }
  const auto& sel = j["selected_kv"];
  out << fmt::format("\nselected K/V {}: {} bytes/token (K {} + V {}), {:.1f}% saved against f16\n",
                     sel["description"].get<std::string>(), sel["bytes_per_token"].get<uint64_t>(),
                     sel["key_bytes_per_token"].get<uint64_t>(), sel["value_bytes_per_token"].get<uint64_t>(),
                     100.0 * sel["saved_vs_f16"].get<double>());
  if (budget) {
    out << fmt::format("memory budget {}: weights take {}; max ctx = the longest context whose cache fits the rest\n",
                       format_bytes(double(budget)), format_bytes(double(weight_bytes)));
    if (budget <= weight_bytes) out << "  the weights alone do not fit this budget\n";
  }
  return 0;
}

}  // namespace

void register_info(CLI::App& app) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "model summary and KV-cache memory table");
  cmd->add_option("model,-m,--model", args->model, "GGUF model file")->required();
  cmd->add_flag("--json", args->json, "print everything as JSON");
  cmd->add_option("--mem-budget", args->mem_budget,
                  "memory budget (e.g. 4GiB): adds the longest context that fits next to the weights");
  cmd->add_option("--kv-types", args->kv_list, "comma-separated cache types for the table")->capture_default_str();
  add_kv_options(cmd, args->kv);
  cmd->callback([args] { set_exit_code(run_info(*args)); });
}

}  // namespace kvq::cli
