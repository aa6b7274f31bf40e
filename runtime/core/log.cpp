#include "core/log.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace temper {
namespace {
LogLevel g_level = LogLevel::kNormal;
}

void set_log_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

void log_line(const std::string& msg) {
  if (g_level >= LogLevel::kNormal) std::fprintf(stderr, "%s\n", msg.c_str());
}
void log_warning(const std::string& msg) {
  if (g_level >= LogLevel::kNormal) std::fprintf(stderr, "warning: %s\n", msg.c_str());
}
void log_verbose(const std::string& msg) {
  if (g_level >= LogLevel::kVerbose) std::fprintf(stderr, "%s\n", msg.c_str());
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(b) >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string human_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) % 3600 / 60);
  return buf;
}

Progress::Progress(std::string label, uint64_t total, bool bytes)
    : label_(std::move(label)), total_(total), bytes_(bytes),
      visible_(g_level == LogLevel::kNormal && isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {
  draw(true);
}

Progress::~Progress() { finish(); }

void Progress::add(uint64_t d) {
  done_ += d;
  draw(false);
}
void Progress::set(uint64_t d) {
  done_ = d;
  draw(false);
}
void Progress::set_label(std::string label) {
  label_ = std::move(label);
  draw(false);
}

void Progress::draw(bool force) {
  if (!visible_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double frac = total_ ? double(done_) / double(total_) : 1.0;
  const double rate = secs > 0 ? double(done_) / secs : 0;
  const double eta = rate > 0 ? double(total_ - std::min(done_, total_)) / rate : NAN;
  constexpr int kWidth = 28;
  const int filled = int(frac * kWidth);
  std::string bar(size_t(filled), '#');
  bar.resize(kWidth, '.');
  std::string amount = bytes_ ? human_bytes(double(done_)) + "/" + human_bytes(double(total_))
                              : std::to_string(done_) + "/" + std::to_string(total_);
  std::string r = bytes_ ? human_bytes(rate) + "/s" : cat(std::lround(rate), "/s");
  std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %s %s ETA %s", label_.c_str(), bar.c_str(), frac * 100,
               amount.c_str(), r.c_str(), human_duration(eta).c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (finished_) return;
  if (visible_) {
    draw(true);
    std::fprintf(stderr, "\n");
  }
  finished_ = true;
}

}  // namespace temper
