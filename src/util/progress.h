// A one-line progress bar with elapsed time and ETA on stderr, drawn only when stderr is a terminal
// (piped or redirected output stays clean for logs and scripts).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace kvq {

// "1m05s", "12.3s", "2h03m": short human durations for progress lines.
std::string format_duration(double seconds);

// "[#########...........]  45.0%  12.3s elapsed, ETA 15.0s  <status>" for `width` bar cells.
// done is clamped to [0, total]; ETA is omitted until some work is done.
std::string format_progress(double done, double total, double elapsed_seconds, int width, std::string_view status);

class ProgressBar {
 public:
  // total: units of work (e.g. tokens to evaluate). enabled defaults to isatty(stderr).
  explicit ProgressBar(double total);
  ProgressBar(double total, bool enabled, std::FILE* out = stderr);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Redraws at most every kRedrawSeconds (and always at completion).
  void update(double done, std::string_view status = {});
  // Clears the line so regular messages can follow; also called by the destructor.
  void finish();
  // Writes a message line above the bar (the bar is redrawn on the next update).
  void message(std::string_view text);

  bool enabled() const { return enabled_; }
  double elapsed_seconds() const;

 private:
  static constexpr double kRedrawSeconds = 0.1;
  static constexpr int kBarWidth = 28;

  double total_;
  bool enabled_;
  std::FILE* out_;
  bool drawn_ = false;
  double last_draw_ = -1.0;
  double last_done_ = 0.0;
  std::string last_status_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kvq
