#include "eval/report.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace kvq::eval {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string type_str(GgmlType t) { return std::string(type_name(t)); }

// Unique values in first-seen order.
std::vector<KvTypes> pairs_in(const std::vector<SweepRow>& rows) {
  std::vector<KvTypes> pairs;
  for (const SweepRow& r : rows) {
    if (std::find(pairs.begin(), pairs.end(), r.kv) == pairs.end()) pairs.push_back(r.kv);
  }
  return pairs;
}
std::vector<int> contexts_in(const std::vector<SweepRow>& rows) {
  std::set<int> unique;
  for (const SweepRow& r : rows) unique.insert(r.n_ctx);
  return {unique.begin(), unique.end()};
}

// Both output formats from one script: the PNG first, then the same plot again as SVG.
std::string chart_script(const std::string& name, const std::string& title, const std::string& setup,
                         const std::string& data, const std::string& plot) {
  std::string s = fmt::format("# kvq sweep chart: {} (run `gnuplot {}.gp` in this folder)\n", title, name);
  s += "set encoding utf8\n" + data;
  s += "set terminal pngcairo noenhanced size 1000,650 font 'Sans,10'\n";
  s += fmt::format("set output '{}.png'\n", name);
  s += fmt::format("set title '{}'\nset grid\nset key outside right top\n", title);
  s += setup + plot + "\n";
  s += "set terminal svg noenhanced size 1000,650 dynamic font 'Sans,10' background rgb 'white'\n";
  s += fmt::format("set output '{}.svg'\nreplot\nunset output\n", name);
  return s;
}

// Series styles: colour by key type, dash and point shape by value type, so the pairs that share
// a key type read as one family of lines.
constexpr const char* kColours[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e",
                                    "#e6ab02", "#a6761d", "#666666", "#000000"};
constexpr int kPointTypes[] = {7, 5, 9, 11, 13, 4, 6, 8, 10};

size_t index_of(std::vector<GgmlType>& seen, GgmlType t) {
  auto it = std::find(seen.begin(), seen.end(), t);
  if (it != seen.end()) return size_t(it - seen.begin());
  seen.push_back(t);
  return seen.size() - 1;
}

std::string x_range_for_contexts(const std::vector<int>& contexts) {
  if (contexts.empty()) return "";
  std::string tics;
  for (int c : contexts) tics += fmt::format("{}{}", tics.empty() ? "" : ", ", c);
  // Padding on a log axis so the first and last contexts are not on the border.
  return fmt::format("set logscale x 2\nset xrange [{}:{}]\nset xtics ({})\n", contexts.front() / 1.2,
                     contexts.back() * 1.2, tics);
}

// A datablock per K/V pair: "context value" lines.
std::string per_pair_chart(const std::vector<SweepRow>& rows, const std::string& name, const std::string& title,
                           const std::string& ylabel, double (*value)(const SweepRow&)) {
  const std::vector<KvTypes> pairs = pairs_in(rows);
  std::vector<GgmlType> keys, vals;
  std::string data, plot = "plot ";
  for (size_t i = 0; i < pairs.size(); ++i) {
    data += fmt::format("$pair{} << EOD\n", i);
    for (const SweepRow& r : rows) {
      if (r.kv == pairs[i]) data += fmt::format("{} {:.6g}\n", r.n_ctx, value(r));
    }
    data += "EOD\n";
    const size_t k = index_of(keys, pairs[i].k) % std::size(kColours);
    const size_t v = index_of(vals, pairs[i].v) % std::size(kPointTypes);
    plot += fmt::format(
        "{}$pair{} using 1:2 with linespoints lw 2 lc rgb '{}' dt {} pt {} ps 1.2 "
        "title 'K/V {}'",
        i ? ", \\\n     " : "", i, kColours[k], v + 1, kPointTypes[v], kv_types_name(pairs[i]));
  }
  const std::string setup =
      x_range_for_contexts(contexts_in(rows)) + fmt::format("set xlabel 'context (tokens)'\nset ylabel '{}'\n", ylabel);
  return chart_script(name, title, setup, data, plot);
}

// A datablock per context: "bits value label" lines; the largest context's points are labelled.
std::string per_context_chart(const std::vector<SweepRow>& rows, const std::string& name, const std::string& title,
                              const std::string& ylabel, bool log_y, double (*value)(const SweepRow&)) {
  const std::vector<int> contexts = contexts_in(rows);
  std::string data, plot = "plot ";
  for (size_t i = 0; i < contexts.size(); ++i) {
    data += fmt::format("$ctx{} << EOD\n", i);
    for (const SweepRow& r : rows) {
      // A log axis cannot show 0; the baseline's KLD against itself is only the storage floor.
      if (r.n_ctx != contexts[i] || (log_y && !(value(r) > 0 && !r.baseline))) continue;
      data += fmt::format("{:.4g} {:.6g} \"{}\"\n", r.bits_per_value, value(r), kv_types_name(r.kv));
    }
    data += "EOD\n";
    plot += fmt::format(
        "{}$ctx{} using 1:2 with points pt {} ps 1.4 lw 2 lc rgb '{}' "
        "title 'context {}'",
        i ? ", \\\n     " : "", i, kPointTypes[5 + i % 4], kColours[i % 8], contexts[i]);
  }
  if (!contexts.empty()) {
    plot +=
        fmt::format(", \\\n     $ctx{} using 1:2:3 with labels offset 1,0.6 font ',8' notitle", contexts.size() - 1);
  }
  const std::string setup = fmt::format("set xlabel 'bits per value (mean of K and V)'\nset ylabel '{}'\n{}", ylabel,
                                        log_y ? "set logscale y 10\nset format y '%.0e'\n" : "");
  return chart_script(name, title, setup, data, plot);
}

}  // namespace

const std::vector<std::string> kCsvColumns = {
    "type_k",          "type_v",    "rotation",         "bits_per_value", "n_ctx",         "n_chunks",
    "n_scored",        "kv_bytes",  "kv_mib",           "kv_saved_pct",   "ppl",           "ppl_stderr",
    "base_ppl",        "dppl_pct",  "kld_mean",         "kld_stderr",     "kld_median",    "kld_p99",
    "kld_max",         "ppl_ratio", "ppl_ratio_stderr", "rms_dp",         "rms_dp_stderr", "top1_pct",
    "top1_pct_stderr", "seconds",   "tokens_per_second"};

static nlohmann::json row_json(const SweepRow& r) {
  return nlohmann::json{{"type_k", type_str(r.kv.k)},
                        {"type_v", type_str(r.kv.v)},
                        {"rotation", std::string(kv_rotation_name(r.kv.rotation))},
                        {"bits_per_value", r.bits_per_value},
                        {"n_ctx", r.n_ctx},
                        {"n_chunks", r.n_chunks},
                        {"n_scored", r.n_scored},
                        {"kv_bytes", r.kv_bytes},
                        {"kv_mib", double(r.kv_bytes) / kMiB},
                        {"kv_saved_pct", r.saved_pct},
                        {"ppl", r.ppl},
                        {"ppl_stderr", r.ppl_stderr},
                        {"base_ppl", r.base_ppl},
                        {"dppl_pct", r.dppl_pct},
                        {"kld_mean", r.kld.kld_mean},
                        {"kld_stderr", r.kld.kld_stderr},
                        {"kld_median", r.kld.kld_median},
                        {"kld_p99", r.kld.kld_p99},
                        {"kld_max", r.kld.kld_max},
                        {"ppl_ratio", r.kld.ppl_ratio},
                        {"ppl_ratio_stderr", r.kld.ppl_ratio_stderr},
                        {"rms_dp", r.kld.rms_dp},
                        {"rms_dp_stderr", r.kld.rms_dp_stderr},
                        {"top1_pct", r.kld.top1_pct},
                        {"top1_pct_stderr", r.kld.top1_pct_stderr},
                        {"seconds", r.seconds},
                        {"tokens_per_second", r.tokens_per_second}};
}

std::string sweep_markdown(const std::vector<SweepRow>& rows) {
  std::string s =
      "| K | V | rotation | bits/value | context | KV MiB | saved | PPL | ΔPPL | mean KLD | top-1 |\n"
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const SweepRow& r : rows) {
    s += fmt::format(
        "| {} | {} | {} | {:.2f} | {} | {:.3f} | {:.1f}% | {:.4f} ± {:.4f} | {:+.2f}% | "
        "{:.2e} | {:.2f}% |\n",
        type_str(r.kv.k), type_str(r.kv.v), kv_rotation_name(r.kv.rotation), r.bits_per_value, r.n_ctx,
        double(r.kv_bytes) / kMiB, r.saved_pct, r.ppl, r.ppl_stderr, r.dppl_pct, r.kld.kld_mean, r.kld.top1_pct);
  }
  return s;
}

std::string sweep_csv(const std::vector<SweepRow>& rows) {
  std::string s;
  for (size_t i = 0; i < kCsvColumns.size(); ++i) s += (i ? "," : "") + kCsvColumns[i];
  s += "\n";
  for (const SweepRow& r : rows) {
    const nlohmann::json j = row_json(r);
    for (size_t i = 0; i < kCsvColumns.size(); ++i) {
      const nlohmann::json& v = j.at(kCsvColumns[i]);
      if (i) s += ",";
      if (v.is_string())
        s += v.get<std::string>();
      else if (v.is_number_float())
        s += fmt::format("{:.8g}", v.get<double>());
      else
        s += v.dump();
    }
    s += "\n";
  }
  return s;
}

nlohmann::json sweep_json(const std::vector<SweepRow>& rows, const SweepMeta& meta) {
  nlohmann::json j;
  j["meta"] = {{"model", meta.model},           {"text", meta.text},
               {"text_bytes", meta.text_bytes}, {"n_tokens", meta.n_tokens},
               {"max_chunks", meta.max_chunks}, {"threads", meta.threads},
               {"base_kv", meta.base_kv},       {"cache_options", meta.cache_options},
               {"complete", meta.complete},     {"seconds", meta.seconds}};
  j["rows"] = nlohmann::json::array();
  for (const SweepRow& r : rows) j["rows"].push_back(row_json(r));
  return j;
}

Status write_file_atomic(const std::string& path, const std::string& content) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error("{}: cannot create the file", temp);
    out << content;
    out.flush();
    if (!out) {
      std::remove(temp.c_str());
      return make_error("{}: write error (disk full?)", temp);
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return make_error("{}: cannot rename {} into place", path, temp);
  }
  return Status::Ok();
}

Status write_sweep_data(const std::string& dir, const std::vector<SweepRow>& rows, const SweepMeta& meta) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error("{}: cannot create the output folder: {}", dir, ec.message());
  KVQ_RETURN_IF_ERROR(write_file_atomic(dir + "/sweep.csv", sweep_csv(rows)));
  return write_file_atomic(dir + "/sweep.json", sweep_json(rows, meta).dump(2) + "\n");
}

Result<std::vector<std::string>> write_sweep_chart_scripts(const std::string& dir, const std::vector<SweepRow>& rows) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error("{}: cannot create the output folder: {}", dir, ec.message());
  const std::vector<std::pair<std::string, std::string>> charts = {
      {"dppl_vs_context", per_pair_chart(rows, "dppl_vs_context", "Perplexity change against the f16 cache", "ΔPPL (%)",
                                         [](const SweepRow& r) { return r.dppl_pct; })},
      {"kv_mib_vs_context", per_pair_chart(rows, "kv_mib_vs_context", "KV cache size", "KV cache (MiB)",
                                           [](const SweepRow& r) { return double(r.kv_bytes) / kMiB; })},
      {"dppl_vs_bits", per_context_chart(rows, "dppl_vs_bits", "Perplexity change against bits per value", "ΔPPL (%)",
                                         false, [](const SweepRow& r) { return r.dppl_pct; })},
      {"kld_vs_bits", per_context_chart(rows, "kld_vs_bits", "KL-divergence from the f16 cache", "mean KLD (nats)",
                                        true, [](const SweepRow& r) { return r.kld.kld_mean; })},
  };
  std::vector<std::string> scripts;
  for (const auto& [name, text] : charts) {
    KVQ_RETURN_IF_ERROR(write_file_atomic(dir + "/" + name + ".gp", text));
    scripts.push_back(name + ".gp");
  }
  return scripts;
}

std::string find_program(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (!path) return "";
  std::string dirs = path;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(start, end - start);
    const std::string full = (dir.empty() ? "." : dir) + "/" + program;
    if (access(full.c_str(), X_OK) == 0) return full;
    start = end + 1;
  }
  return "";
}

Status render_charts(const std::string& gnuplot, const std::string& dir, const std::vector<std::string>& scripts) {
  for (const std::string& script : scripts) {
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) return make_error("cannot start {}", gnuplot);
    if (pid == 0) {
      // Child: the scripts name their outputs relative to their folder.
      if (chdir(dir.c_str()) != 0) _exit(126);
      execl(gnuplot.c_str(), gnuplot.c_str(), script.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      return make_error("{} {}/{} failed (exit status {})", gnuplot, dir, script,
                        WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
  }
  return Status::Ok();
}

}  // namespace kvq::eval
