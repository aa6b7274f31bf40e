// The SVG scatter charts of compare --html: nice axes (1-2-5 steps, log decades, bit-width ticks),
// 95% CI whiskers, a horizontal reference line for the base, and point labels placed so that
// they overlap neither each other nor any marker (leader lines when a label has to move away).
#pragma once
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace temper::verify {

struct ChartPoint {
  std::string label;    // short name shown next to the marker
  std::string tooltip;  // full text in the marker's <title>
  double x = 0, y = 0;
  double lo = NAN, hi = NAN;  // 95% CI of y (NaN: no whisker)
};

struct ChartSpec {
  std::string title, x_label, y_label;
  bool log_y = false;             // values <= 0 get a band marked "0" under the axis, open markers
  std::optional<double> ref_y;    // horizontal reference line (the base)
  std::string ref_label;
  std::vector<ChartPoint> points;
};

std::string chart_svg(const ChartSpec& c);

// Width of `s` in px at `font_px` in DejaVu Sans (the page's chart font; its advance widths
// measured in Chromium). The SVG also states it as textLength, so other fonts are fitted to it.
double text_width(std::string_view s, double font_px);

struct Tick {
  double v;
  std::string text;
};
// Linear ticks on a 1-2-5 step inside [lo, hi]: about max_ticks of them, at least 3.
std::vector<Tick> linear_ticks(double lo, double hi, int max_ticks);
// The powers of ten inside [lo, hi], with 2 and 5 times them when there are fewer than three.
std::vector<Tick> log_ticks(double lo, double hi);

// XML text escape (also used by the page).
std::string xml_escape(std::string_view s);

}  // namespace temper::verify
