// Messages to stderr and the progress bar. The bar is drawn only when stderr is a terminal and
// output is not quiet/--json, so pipes and CI logs stay clean.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace temper {

enum class LogLevel { kQuiet = 0, kNormal = 1, kVerbose = 2 };
void set_log_level(LogLevel level);
LogLevel log_level();

void log_line(const std::string& msg);     // always shown unless quiet
void log_warning(const std::string& msg);  // "warning: ..."; shown unless quiet
void log_verbose(const std::string& msg);  // only with --verbose

template <typename... A> void info(const A&... a) { log_line(cat(a...)); }
template <typename... A> void warn(const A&... a) { log_warning(cat(a...)); }

// "1.5 GiB", "312 KiB".
std::string human_bytes(double bytes);
std::string human_duration(double seconds);

// A progress bar over a known total of units (bytes by default): shows done/total, rate and ETA.
class Progress {
 public:
  Progress(std::string label, uint64_t total, bool bytes = true);
  ~Progress();  // finish()
  void add(uint64_t done_delta);
  void set(uint64_t done);
  void set_label(std::string label);
  void finish();
  bool visible() const { return visible_; }

 private:
  void draw(bool force);
  std::string label_;
  uint64_t total_, done_ = 0;
  bool bytes_, visible_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace temper
