// Sweep reports: a Markdown table for the terminal, CSV and JSON for tools, and gnuplot charts
// (ΔPPL against context, KV MiB against context, ΔPPL and KLD against bits per value) as PNG + SVG.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/sweep.h"
#include "util/result.h"

namespace kvq::eval {

struct SweepMeta {
  std::string model;
  std::string text;
  uint64_t text_bytes = 0;
  int64_t n_tokens = 0;
  int max_chunks = 0;
  int threads = 0;
  std::string base_kv;   // "f16/f16"
  std::string cache_options = "none";  // what applies to every row: "centred", "sinks 4, window 16 at f16"
  bool complete = true;  // false while running and after an interruption
  double seconds = 0;
};

// One line per row, run order: | K | V | bits/value | context | KV MiB | saved | PPL | ΔPPL | KLD | top-1 |
std::string sweep_markdown(const std::vector<SweepRow>& rows);

// Header + one line per row; the columns are kCsvColumns.
extern const std::vector<std::string> kCsvColumns;
std::string sweep_csv(const std::vector<SweepRow>& rows);

// {"meta": {...}, "rows": [{column: value, ...}]}; row keys are kCsvColumns.
nlohmann::json sweep_json(const std::vector<SweepRow>& rows, const SweepMeta& meta);

// Writes path + ".tmp" then renames it over path: readers never see half a file.
Status write_file_atomic(const std::string& path, const std::string& content);

// sweep.csv and sweep.json in dir (created if missing), each written atomically.
Status write_sweep_data(const std::string& dir, const std::vector<SweepRow>& rows, const SweepMeta& meta);

// The gnuplot scripts (self-contained: data inline), one per chart; each writes <name>.png and
// <name>.svg when run from dir. Returns the script names.
Result<std::vector<std::string>> write_sweep_chart_scripts(const std::string& dir, const std::vector<SweepRow>& rows);

// Full path of `program` found on PATH, or "" when absent.
std::string find_program(const std::string& program);

// Runs `gnuplot script` in dir for each script; errors name the script that failed.
Status render_charts(const std::string& gnuplot, const std::string& dir, const std::vector<std::string>& scripts);

}  // namespace kvq::eval
