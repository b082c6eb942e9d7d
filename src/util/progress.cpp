#include "util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace kvq {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  const long total = std::lround(seconds);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, (total % 3600) / 60);
}

std::string format_progress(double done, double total, double elapsed_seconds, int width, std::string_view status) {
  const double fraction = total > 0 ? std::clamp(done / total, 0.0, 1.0) : 1.0;
  const int filled = int(std::floor(fraction * width));
  std::string line = "[";
  line.append(size_t(filled), '#');
  line.append(size_t(width - filled), '.');
  line += fmt::format("] {:5.1f}%  {} elapsed", 100.0 * fraction, format_duration(elapsed_seconds));
  if (fraction > 0 && fraction < 1) {
    // Linear extrapolation: the work units are chosen so that each costs about the same.
    const double eta = elapsed_seconds * (1.0 - fraction) / fraction;
    line += ", ETA " + format_duration(eta);
  }
  if (!status.empty()) {
    line += "  ";
    line += status;
  }
  return line;
}

ProgressBar::ProgressBar(double total) : ProgressBar(total, isatty(fileno(stderr)) != 0) {}

ProgressBar::ProgressBar(double total, bool enabled, std::FILE* out)
    : total_(total), enabled_(enabled), out_(out), start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(double done, std::string_view status) {
  last_done_ = done;
  last_status_ = std::string(status);
  if (!enabled_) return;
  const double now = elapsed_seconds();
  if (done < total_ && last_draw_ >= 0 && now - last_draw_ < kRedrawSeconds) return;
  last_draw_ = now;
  // \r + clear-to-end-of-line: a shorter status must not leave the tail of a longer one.
  std::fprintf(out_, "\r%s\x1b[K", format_progress(done, total_, now, kBarWidth, status).c_str());
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!enabled_ || !drawn_) return;
  std::fprintf(out_, "\r\x1b[K");
  std::fflush(out_);
  drawn_ = false;
}

void ProgressBar::message(std::string_view text) {
  finish();
  std::fprintf(out_, "%.*s\n", int(text.size()), text.data());
  std::fflush(out_);
  if (enabled_ && last_draw_ >= 0) {
    last_draw_ = -1.0;  // force a redraw on the next update
    update(last_done_, last_status_);
  }
}

}  // namespace kvq
