// compare --html charts: see report_chart.h. Everything is laid out here, in viewBox units, so the
// page needs no script; the browser only scales the finished picture.
#include "report_chart.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>

#include "core/error.h"

namespace temper::verify {
namespace {

// DejaVu Sans advance widths in 1/1000 em for ' ' .. '~', measured in Chromium.
constexpr std::array<uint16_t, 95> kAdvance = {
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,  // ' ' .. '/'
    636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,  // '0' .. '?'
    1000, 709, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,  // '@' .. 'O'
    603, 787, 695, 635, 595, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,  // 'P' .. '_'
    500, 613, 635, 550, 635, 615, 344, 635, 634, 278, 278, 579, 278, 974, 634, 612,  // '`' .. 'o'
    635, 635, 395, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838};      // 'p' .. '~'

// Geometry of the chart in viewBox units.
constexpr double kW = 640, kH = 420, kLeft = 78, kRight = 18, kTop = 34, kBottom = 50;
constexpr double kLabelPx = 12, kTickPx = 11, kMarkerR = 4.5, kCapHalf = 3, kZeroBand = 30;
// DejaVu Sans ascent/descent: the box a browser reports for a line of text.
constexpr double kAscent = 0.93, kDescent = 0.24;

struct Rect {
  double x0, y0, x1, y1;
  bool hits(const Rect& o, double margin) const {
    return x0 < o.x1 + margin && o.x0 < x1 + margin && y0 < o.y1 + margin && o.y0 < y1 + margin;
  }
  bool within(const Rect& o) const { return x0 >= o.x0 && x1 <= o.x1 && y0 >= o.y0 && y1 <= o.y1; }
};

struct Segment {
  double ax, ay, bx, by;
};

// Whether the segment meets the rectangle (Liang-Barsky clipping).
bool crosses(const Segment& s, const Rect& r) {
  double t0 = 0, t1 = 1;
  const double dx = s.bx - s.ax, dy = s.by - s.ay;
  const double p[4] = {-dx, dx, -dy, dy}, q[4] = {s.ax - r.x0, r.x1 - s.ax, s.ay - r.y0, r.y1 - s.ay};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0) {
      if (q[i] < 0) return false;
    } else {
      const double t = q[i] / p[i];
      if (p[i] < 0) t0 = std::max(t0, t);
      else t1 = std::min(t1, t);
      if (t0 > t1) return false;
    }
  }
  return true;
}

std::string fixed(double v, int decimals) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  std::string s = b;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // no "-0.0"
  return s;
}

std::string superscript(int n) {
  static const char* kDigits[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
  std::string s = n < 0 ? "⁻" : "";
  for (char c : std::to_string(std::abs(n))) s += kDigits[c - '0'];
  return s;
}

// An SVG coordinate: two decimals are finer than any screen needs.
std::string px(double v) { return fixed(v, 2); }

struct Axis {
  double lo = 0, hi = 1, p0 = 0, p1 = 1;
  bool log = false;
  std::vector<Tick> ticks;
  double operator()(double v) const {
    const double t = log ? (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) : (v - lo) / (hi - lo);
    return p0 + t * (p1 - p0);
  }
};

// Bits per weight: a log axis once the files span more than a factor 2.5 (F32 next to Q2_K), with
// ticks at powers of two first, then at 3 and 5 times them where there is room.
Axis x_axis(const std::vector<ChartPoint>& pts) {
  Axis a;
  a.p0 = kLeft, a.p1 = kW - kRight;
  double x0 = pts[0].x, x1 = pts[0].x;
  for (const ChartPoint& p : pts) x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
  a.log = x0 > 0 && x1 / x0 >= 2.5;
  if (!a.log) {
    const double span = x1 > x0 ? x1 - x0 : std::max(0.5, 0.1 * std::fabs(x0));
    a.lo = x0 - 0.08 * span, a.hi = x1 + 0.08 * span;
    a.ticks = linear_ticks(a.lo, a.hi, 7);
    return a;
  }
  const double pad = 0.06 * (std::log(x1) - std::log(x0));
  a.lo = std::exp(std::log(x0) - pad), a.hi = std::exp(std::log(x1) + pad);
  std::vector<double> chosen;
  for (double m : {1.0, 3.0, 5.0})
    for (double v = m * 0.5; v <= 512; v *= 2) {
      if (v < a.lo || v > a.hi) continue;
      const bool room = std::all_of(chosen.begin(), chosen.end(), [&](double c) { return std::fabs(a(c) - a(v)) >= 40; });
      if (room) chosen.push_back(v);
    }
  std::sort(chosen.begin(), chosen.end());
  for (double v : chosen) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    a.ticks.push_back({v, b});
  }
  return a;
}

// Zeros on a log axis get a band of their own under it, marked "0".
bool has_zero_band(const ChartSpec& c) {
  return c.log_y && std::any_of(c.points.begin(), c.points.end(), [](const ChartPoint& p) { return !(p.y > 0); });
}

Axis y_axis(const ChartSpec& c) {
  Axis a;
  a.p0 = kH - kBottom - (has_zero_band(c) ? kZeroBand : 0), a.p1 = kTop, a.log = c.log_y;
  std::vector<double> v;
  for (const ChartPoint& p : c.points)
    for (double y : {p.y, p.lo, p.hi})
      if (std::isfinite(y) && (!c.log_y || y > 0)) v.push_back(y);
  if (c.ref_y && (!c.log_y || *c.ref_y > 0)) v.push_back(*c.ref_y);
  if (v.empty()) v = c.log_y ? std::vector<double>{1e-6, 1} : std::vector<double>{0, 1};
  a.lo = *std::min_element(v.begin(), v.end()), a.hi = *std::max_element(v.begin(), v.end());
  if (c.log_y) {
    a.lo = std::max(a.lo, a.hi * 1e-9);  // nine decades at most: anything smaller reads as zero
    // Padded in log units like the linear axis; at least one decade, so it holds a 1-2-5 tick.
    double l0 = std::log10(a.lo), l1 = std::log10(a.hi);
    const double pad = std::max(0.08 * (l1 - l0), 0.5 * std::max(0.0, 1 - (l1 - l0)));
    l0 -= pad, l1 += pad;
    a.lo = std::pow(10, l0), a.hi = std::pow(10, l1);
    a.ticks = log_ticks(a.lo, a.hi);
  } else {
    const double pad = 0.08 * (a.hi - a.lo);  // room for a label under the lowest point
    a.lo -= pad, a.hi += pad;
    a.ticks = linear_ticks(a.lo, a.hi, 6);
  }
  return a;
}

// Ticks and titles: in the margins, where nothing else is, so their width is left to the font.
std::string text_el(double x, double y, const char* anchor, const char* cls, const std::string& s) {
  return cat("<text x=\"", px(x), "\" y=\"", px(y), "\" text-anchor=\"", anchor, "\" class=\"", cls, "\">", xml_escape(s),
             "</text>");
}

std::string line_el(double x1, double y1, double x2, double y2, const char* cls) {
  return cat("<line x1=\"", px(x1), "\" y1=\"", px(y1), "\" x2=\"", px(x2), "\" y2=\"", px(y2), "\" class=\"", cls, "\"/>");
}

// A label's box with its text start and baseline.
struct LabelBox {
  Rect box;
  double text_x, baseline;
};
LabelBox label_box(double cx, double cy, double w) {
  const double h = (kAscent + kDescent) * kLabelPx;
  const Rect r{cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
  return {r, r.x0, r.y0 + kAscent * kLabelPx};
}

// Candidate label centres around a marker: the eight adjacent spots first, then rings further
// out (reached by a leader line), each ring tried in 16 directions, horizontal ones first.
std::vector<std::pair<double, double>> label_spots(double x, double y, double w) {
  const double h = (kAscent + kDescent) * kLabelPx, g = kMarkerR + 3;
  std::vector<std::pair<double, double>> s = {
      {x + g + w / 2, y}, {x - g - w / 2, y}, {x, y - g - h / 2}, {x, y + g + h / 2},
      {x + g + w / 2, y - g - h / 2 + 4}, {x + g + w / 2, y + g + h / 2 - 4},
      {x - g - w / 2, y - g - h / 2 + 4}, {x - g - w / 2, y + g + h / 2 - 4}};
  const int order[16] = {0, 8, 14, 2, 10, 6, 12, 4, 15, 1, 9, 7, 13, 3, 11, 5};  // by 22.5 degrees
  for (double d : {14.0, 24.0, 36.0, 52.0, 72.0, 96.0, 128.0, 170.0})
    for (int k : order) {
      const double th = k * M_PI / 8;
      s.push_back({x + std::cos(th) * (g + d + w / 2), y + std::sin(th) * (g + d + h / 2)});
    }
  return s;
}

struct Placement {
  LabelBox at;
  std::optional<Segment> leader;
  int conflicts = 0;  // overlaps it could not avoid
};

// Places the labels one by one in `order`, each at its first spot (label_spots) that stays in
// the plot and meets nothing placed so far: no obstacle (markers, whiskers), no label, no
// leader; its own leader may cross no label and no other marker.
std::vector<Placement> place_labels(const std::vector<std::pair<double, double>>& marks, const std::vector<double>& widths,
                                    const std::vector<Rect>& obstacles, std::vector<Rect> taken,
                                    const std::vector<size_t>& order, const Rect& plot) {
  std::vector<Placement> out(marks.size());
  std::vector<Segment> leaders;
  for (size_t i : order) {
    const auto [x, y] = marks[i];
    double best_cost = INFINITY;
    for (const auto& [cx, cy] : label_spots(x, y, widths[i])) {
      const LabelBox b = label_box(cx, cy, widths[i]);
      if (!b.box.within(plot)) continue;
      // The leader runs from the marker's edge to the nearest point of the box.
      const double nx = std::clamp(x, b.box.x0, b.box.x1), ny = std::clamp(y, b.box.y0, b.box.y1);
      const double gap = std::hypot(nx - x, ny - y);
      std::optional<Segment> l;
      if (gap > kMarkerR + 6) l = Segment{x + (nx - x) / gap * (kMarkerR + 1), y + (ny - y) / gap * (kMarkerR + 1), nx, ny};
      int cost = 0;
      for (const Rect& o : obstacles) cost += o.hits(b.box, 1.5);
      for (const Rect& o : taken) cost += o.hits(b.box, 2);
      for (const Segment& o : leaders) cost += crosses(o, b.box);
      if (l) {
        for (const Rect& o : taken) cost += crosses(*l, o);
        for (size_t j = 0; j < marks.size(); ++j) {
          const auto [mx, my] = marks[j];
          if (j != i) cost += crosses(*l, {mx - kMarkerR, my - kMarkerR, mx + kMarkerR, my + kMarkerR});
        }
      }
      if (cost < best_cost) best_cost = cost, out[i] = {b, l, cost};
      if (cost == 0) break;
    }
    if (!std::isfinite(best_cost)) out[i] = {label_box(x, y - 12, widths[i]), std::nullopt, 1};  // plot too small
    taken.push_back(out[i].at.box);
    if (out[i].leader) leaders.push_back(*out[i].leader);
  }
  return out;
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') o += ' ';
        else o += c;
    }
  }
  return o;
}

double text_width(std::string_view s, double font_px) {
  double em = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = s[i];
    if (c >= 32 && c < 127) em += kAdvance[c - 32] / 1000.0;
    else if ((c & 0xC0) != 0x80) em += 0.75;  // one non-ASCII code point: a wide guess
  }
  return em * font_px;
}

std::vector<Tick> linear_ticks(double lo, double hi, int max_ticks) {
  if (!(hi > lo)) {
    const double d = std::max(std::fabs(lo) * 0.01, 1e-6);
    lo -= d, hi += d;
  }
  const double raw = (hi - lo) / max_ticks, p = std::pow(10, std::floor(std::log10(raw))), f = raw / p;
  double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  auto count = [&] { return std::floor(hi / step + 1e-9) - std::ceil(lo / step - 1e-9) + 1; };
  while (count() < 3) {  // one 1-2-5 step finer
    const double mantissa = step / std::pow(10, std::floor(std::log10(step) + 1e-9));
    step /= mantissa > 4 ? 2.5 : 2;
  }
  const int decimals = std::max(0, -int(std::floor(std::log10(step) + 1e-9)));
  std::vector<Tick> t;
  for (double k = std::ceil(lo / step - 1e-9); k <= std::floor(hi / step + 1e-9); ++k)
    t.push_back({k * step, fixed(k * step, decimals)});
  return t;
}

std::vector<Tick> log_ticks(double lo, double hi) {
  const int e0 = int(std::ceil(std::log10(lo) - 1e-9)), e1 = int(std::floor(std::log10(hi) + 1e-9));
  const bool few = e1 - e0 < 2;  // then 2 and 5 times the powers of ten too
  const bool decimal = std::log10(lo) >= -3.5 && std::log10(hi) <= 4;  // 0.001 .. 10000 read fine as they are
  const int every = (e1 - e0 + 7) / 7;  // at most ~7 labelled decades
  std::vector<Tick> t;
  for (int e = e0 - 1; e <= e1; ++e)
    for (int m : {1, 2, 5}) {
      const double v = m * std::pow(10, e);
      if ((m > 1 && !few) || v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
      std::string s;
      if (m == 1 && ((e % every) + every) % every != 0) s = "";  // a grid line without a number
      else if (decimal) s = fixed(v, std::max(0, -e));
      else s = (m > 1 ? cat(m, "×") : std::string()) + "10" + superscript(e);
      t.push_back({v, s});
    }
  return t;
}

std::string chart_svg(const ChartSpec& c) {
  const Axis xa = x_axis(c.points), ya = y_axis(c);
  const Rect plot{kLeft, kTop, kW - kRight, kH - kBottom};
  std::string s = cat("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"", kW, "\" height=\"", kH,
                      "\" viewBox=\"0 0 ", kW, " ", kH, "\" role=\"img\">\n<title>", xml_escape(c.title), "</title>\n");
  s += text_el(kW / 2, 20, "middle", "title", c.title) + "\n";
  for (const Tick& t : ya.ticks) {
    s += line_el(plot.x0, ya(t.v), plot.x1, ya(t.v), "grid");
    if (!t.text.empty()) s += text_el(plot.x0 - 6, ya(t.v) + 0.35 * kTickPx, "end", "tick", t.text);
    s += "\n";
  }
  for (const Tick& t : xa.ticks)
    s += line_el(xa(t.v), plot.y0, xa(t.v), plot.y1, "grid") +
         text_el(xa(t.v), plot.y1 + 16, "middle", "tick", t.text) + "\n";
  s += cat("<rect x=\"", px(plot.x0), "\" y=\"", px(plot.y0), "\" width=\"", px(plot.x1 - plot.x0), "\" height=\"",
           px(plot.y1 - plot.y0), "\" class=\"frame\"/>\n");
  s += text_el((plot.x0 + plot.x1) / 2, kH - 10, "middle", "axis-title", c.x_label + (xa.log ? " (log scale)" : "")) + "\n";
  const double ymid = (plot.y0 + plot.y1) / 2, y_zero = plot.y1 - 11;
  if (has_zero_band(c))
    s += line_el(plot.x0, ya.p0 + 10, plot.x1, ya.p0 + 10, "break") + line_el(plot.x0, y_zero, plot.x1, y_zero, "grid") +
         text_el(plot.x0 - 6, y_zero + 0.35 * kTickPx, "end", "tick", "0") + "\n";
  s += cat("<text x=\"18\" y=\"", px(ymid), "\" text-anchor=\"middle\" class=\"axis-title\" transform=\"rotate(-90 18 ",
           px(ymid), ")\">", xml_escape(c.y_label + (ya.log ? " (log scale)" : "")), "</text>\n");

  // Where everything sits, in px: markers, whiskers, then the labels placed around them.
  struct Mark {
    double x, y;
    bool clamped;
    std::optional<Segment> ci;
  };
  std::vector<Mark> marks;
  std::vector<Rect> obstacles;  // markers and whiskers
  for (const ChartPoint& p : c.points) {
    Mark m{xa(p.x), 0, c.log_y && !(p.y > 0), std::nullopt};
    m.y = m.clamped ? y_zero : ya(std::max(p.y, ya.lo));
    if (std::isfinite(p.lo) && std::isfinite(p.hi)) {
      const double lo = c.log_y && !(p.lo > 0) ? ya.p0 : ya(std::max(p.lo, ya.lo)), hi = ya(std::max(p.hi, ya.lo));
      if (lo - hi > 2 * kMarkerR) {
        m.ci = Segment{m.x, lo, m.x, hi};
        obstacles.push_back({m.x - kCapHalf, hi, m.x + kCapHalf, lo});
      }
    }
    obstacles.push_back({m.x - kMarkerR, m.y - kMarkerR, m.x + kMarkerR, m.y + kMarkerR});
    marks.push_back(m);
  }
  std::vector<Rect> taken;  // label boxes
  if (c.ref_y) {
    const double y = ya(*c.ref_y);
    s += line_el(plot.x0, y, plot.x1, y, "ref") + "\n";
    const std::string& label = c.ref_label;
    const double w = std::min(text_width(label, kLabelPx), 0.7 * (plot.x1 - plot.x0));
    const double h = (kAscent + kDescent) * kLabelPx;
    // Above the line, from its right end leftwards, wherever no marker is; else below it.
    const LabelBox best = [&] {
      for (double cy : {y - 2 - h / 2, y + 2 + h / 2})
        for (double cx = plot.x1 - 4 - w / 2; cx >= plot.x0 + 4 + w / 2; cx -= 8) {
          const LabelBox b = label_box(cx, cy, w);
          if (b.box.within(plot) &&
              std::none_of(obstacles.begin(), obstacles.end(), [&](const Rect& o) { return o.hits(b.box, 2); }))
            return b;
        }
      return label_box(plot.x1 - 4 - w / 2, y - 2 - h / 2, w);
    }();
    s += cat("<text x=\"", px(best.text_x), "\" y=\"", px(best.baseline), "\" class=\"ref-label\" textLength=\"", px(w),
             "\" lengthAdjust=\"spacingAndGlyphs\">", xml_escape(label), "</text>\n");
    taken.push_back(best.box);
    obstacles.push_back({plot.x0, y - 1, plot.x1, y + 1});  // point labels keep off the line
  }

  // Most crowded first, as those have the fewest free spots; a label that still meets something
  // moves to the front and the greedy pass runs again (a few rounds settle even 12 points).
  std::vector<std::pair<double, double>> centres;
  std::vector<double> widths;
  std::vector<size_t> order(c.points.size());
  std::vector<int> crowd(c.points.size(), 0);
  for (size_t i = 0; i < marks.size(); ++i) {
    centres.push_back({marks[i].x, marks[i].y});
    widths.push_back(text_width(c.points[i].label, kLabelPx));
    order[i] = i;
    for (const Mark& o : marks) crowd[i] += std::hypot(o.x - marks[i].x, o.y - marks[i].y) < 60;
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return crowd[a] != crowd[b] ? crowd[a] > crowd[b] : marks[a].x < marks[b].x;
  });
  std::vector<Placement> placed;
  int least = std::numeric_limits<int>::max();
  for (int round = 0; round < 20 && least > 0; ++round) {
    std::vector<Placement> p = place_labels(centres, widths, obstacles, taken, order, plot);
    int conflicts = 0;
    std::vector<size_t> first;
    for (size_t i : order)
      if (p[i].conflicts) conflicts += p[i].conflicts, first.push_back(i);
    if (conflicts < least) least = conflicts, placed = std::move(p);
    for (size_t i : order)
      if (std::find(first.begin(), first.end(), i) == first.end()) first.push_back(i);
    order = first;
  }
  std::vector<std::string> label_svg(c.points.size());
  for (size_t i = 0; i < c.points.size(); ++i) {
    const Placement& p = placed[i];
    if (p.leader) label_svg[i] = line_el(p.leader->ax, p.leader->ay, p.leader->bx, p.leader->by, "leader");
    label_svg[i] += cat("<text x=\"", px(p.at.text_x), "\" y=\"", px(p.at.baseline), "\" class=\"label\" textLength=\"",
                        px(widths[i]), "\" lengthAdjust=\"spacingAndGlyphs\">", xml_escape(c.points[i].label), "</text>");
  }
  for (size_t i = 0; i < c.points.size(); ++i) {
    const Mark& m = marks[i];
    s += "<g class=\"point\"><title>" + xml_escape(c.points[i].tooltip) + "</title>";
    if (m.ci)
      s += line_el(m.x, m.ci->ay, m.x, m.ci->by, "ci") + line_el(m.x - kCapHalf, m.ci->by, m.x + kCapHalf, m.ci->by, "ci") +
           (m.ci->ay < ya.p0 ? line_el(m.x - kCapHalf, m.ci->ay, m.x + kCapHalf, m.ci->ay, "ci") : "");
    s += cat("<circle cx=\"", px(m.x), "\" cy=\"", px(m.y), "\" r=\"", kMarkerR, "\" class=\"", m.clamped ? "clamped" : "cand",
             "\"/>", label_svg[i], "</g>\n");
  }
  return s + "</svg>\n";
}

}  // namespace temper::verify
