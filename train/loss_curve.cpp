// Loss curve page (see loss_curve.h): axes, grid and text as compare --html draws them, with
// two polylines instead of labelled points.
#include "train/loss_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "verify/report_chart.h"

namespace temper::train {

namespace {

using verify::linear_ticks;
using verify::xml_escape;

// Geometry in viewBox units, as report_chart.cpp's charts.
constexpr double kW = 640, kH = 420, kLeft = 78, kRight = 18, kTop = 34, kBottom = 50;

std::string px(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

std::string text_el(double x, double y, const char* anchor, const char* cls, const std::string& t) {
  return cat("<text x=\"", px(x), "\" y=\"", px(y), "\" text-anchor=\"", anchor, "\" class=\"", cls,
             "\">", xml_escape(t), "</text>");
}

std::string line_el(double x0, double y0, double x1, double y1, const char* cls) {
  return cat("<line x1=\"", px(x0), "\" y1=\"", px(y0), "\" x2=\"", px(x1), "\" y2=\"", px(y1),
             "\" class=\"", cls, "\"/>");
}

constexpr const char* kStyle =
    "body{font-family:'DejaVu Sans',Verdana,system-ui,sans-serif;margin:0;padding:16px 24px;"
    "color:#222;font-size:14px;line-height:1.4}h1{font-size:22px;margin:0 0 8px}"
    "figure{margin:0;max-width:640px}figcaption{font-size:12px;color:#555;margin-top:4px}"
    "svg.chart{display:block;width:100%;height:auto}"
    "svg.chart text{font-family:'DejaVu Sans',Verdana,sans-serif}"
    ".title{font-size:14px;font-weight:bold}.tick{font-size:11px;fill:#555}"
    ".axis-title{font-size:12px;fill:#333}.grid{stroke:#e4e4e4}.frame{fill:none;stroke:#888}"
    ".train{fill:none;stroke:#27c;stroke-width:1.5}.val{fill:none;stroke:#2a7;stroke-width:1.5}"
    "circle.val{fill:#2a7;stroke:#fff;stroke-width:1}.legend{font-size:12px;fill:#333}";

std::string chart(const LossCurve& c) {
  double x_lo = 0, x_hi = 1, y_lo = INFINITY, y_hi = -INFINITY;
  for (int64_t s : c.step) x_hi = std::max(x_hi, double(s));
  for (int64_t s : c.val_step) x_hi = std::max(x_hi, double(s));
  for (double v : c.loss) y_lo = std::min(y_lo, v), y_hi = std::max(y_hi, v);
  for (double v : c.val_loss) y_lo = std::min(y_lo, v), y_hi = std::max(y_hi, v);
  const double pad = 0.05 * std::max(y_hi - y_lo, 1e-3);
  y_lo = std::max(0.0, y_lo - pad), y_hi += pad;
  const auto xt = linear_ticks(x_lo, x_hi, 8), yt = linear_ticks(y_lo, y_hi, 7);
  x_lo = std::min(x_lo, xt.front().v), x_hi = std::max(x_hi, xt.back().v);
  y_lo = std::min(y_lo, yt.front().v), y_hi = std::max(y_hi, yt.back().v);
  const double x0 = kLeft, x1 = kW - kRight, y0 = kTop, y1 = kH - kBottom;
  const auto X = [&](double v) { return x0 + (v - x_lo) / (x_hi - x_lo) * (x1 - x0); };
  const auto Y = [&](double v) { return y1 - (v - y_lo) / (y_hi - y_lo) * (y1 - y0); };
  std::string s = cat("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"", kW,
                      "\" height=\"", kH, "\" viewBox=\"0 0 ", kW, " ", kH,
                      "\" role=\"img\">\n<title>Loss per step</title>\n");
  s += text_el(kW / 2, 20, "middle", "title", "Loss per step") + "\n";
  for (const auto& t : yt)
    s += line_el(x0, Y(t.v), x1, Y(t.v), "grid") +
         text_el(x0 - 6, Y(t.v) + 0.35 * 11, "end", "tick", t.text) + "\n";
  for (const auto& t : xt)
    s += line_el(X(t.v), y0, X(t.v), y1, "grid") + text_el(X(t.v), y1 + 16, "middle", "tick", t.text) + "\n";
  s += cat("<rect x=\"", px(x0), "\" y=\"", px(y0), "\" width=\"", px(x1 - x0), "\" height=\"",
           px(y1 - y0), "\" class=\"frame\"/>\n");
  s += text_el((x0 + x1) / 2, kH - 10, "middle", "axis-title", "optimiser step") + "\n";
  const double ymid = (y0 + y1) / 2;
  s += cat("<text x=\"18\" y=\"", px(ymid), "\" text-anchor=\"middle\" class=\"axis-title\" "
           "transform=\"rotate(-90 18 ", px(ymid), ")\">loss (mean NLL per trained token)</text>\n");
  const auto polyline = [&](const std::vector<int64_t>& xs, const std::vector<double>& ys,
                            const char* cls, const char* name) {
    std::string pts;
    for (size_t i = 0; i < xs.size(); ++i) pts += px(X(double(xs[i]))) + "," + px(Y(ys[i])) + " ";
    std::string out = cat("<g><title>", name, "</title><polyline points=\"", pts, "\" class=\"", cls, "\"/>");
    if (std::string(cls) == "val")
      for (size_t i = 0; i < xs.size(); ++i)
        out += cat("<circle cx=\"", px(X(double(xs[i]))), "\" cy=\"", px(Y(ys[i])),
                   "\" r=\"3.5\" class=\"val\"><title>step ", xs[i], ": validation loss ", ys[i],
                   "</title></circle>");
    return out + "</g>\n";
  };
  if (!c.step.empty()) s += polyline(c.step, c.loss, "train", "training loss");
  if (!c.val_step.empty()) s += polyline(c.val_step, c.val_loss, "val", "validation loss");
  // Legend, top right inside the frame.
  double ly = y0 + 16;
  const auto legend = [&](const char* cls, const std::string& text) {
    const double w = verify::text_width(text, 12);
    s += line_el(x1 - 12 - w - 26, ly - 4, x1 - 12 - w - 6, ly - 4, cls) +
         text_el(x1 - 8, ly, "end", "legend", text) + "\n";
    ly += 16;
  };
  if (!c.step.empty()) legend("train", "training loss");
  if (!c.val_step.empty()) legend("val", "validation loss");
  return s + "</svg>\n";
}

}  // namespace

std::string loss_curve_path(const std::string& adapter_path) {
  const std::string& p = adapter_path;
  const bool h5 = p.size() > 3 && p.compare(p.size() - 3, 3, ".h5") == 0;
  return (h5 ? p.substr(0, p.size() - 3) : p) + ".loss.html";
}

std::string loss_curve_html(const LossCurve& curve, const std::string& title) {
  std::string h = cat("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
                      "<head>\n<meta charset=\"utf-8\"/>\n<title>temper train: ", xml_escape(title),
                      "</title>\n<style>\n", kStyle, "</style>\n</head>\n<body>\n<h1>",
                      xml_escape(title), "</h1>\n");
  if (curve.step.empty() && curve.val_step.empty()) return h + "<p>No step was trained.</p>\n</body>\n</html>\n";
  std::string caption = cat(curve.step.size(), " steps; last training loss ",
                            curve.loss.empty() ? NAN : curve.loss.back());
  if (!curve.val_loss.empty())
    caption += cat("; validation loss ", curve.val_loss.front(), " at step ", curve.val_step.front(),
                   ", ", curve.val_loss.back(), " at step ", curve.val_step.back());
  return h + "<figure>" + chart(curve) + "<figcaption>" + xml_escape(caption) +
         "</figcaption></figure>\n</body>\n</html>\n";
}

}  // namespace temper::train
