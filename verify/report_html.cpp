// compare --html: one self-contained page (inline CSS and SVG, no scripts or external files),
// written as well-formed XHTML so any XML parser reads it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "compare.h"
#include "core/error.h"
#include "core/log.h"

namespace temper::verify {
namespace {

std::string esc(std::string_view s) {
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

std::string num(double v, int prec = 4) {
  char b[48];
  std::snprintf(b, sizeof b, "%.*g", prec, v);
  return b;
}

struct Point {
  std::string label;
  double x, y;
};

// A scatter chart: one labelled circle per point, linear axes with 5 ticks each.
std::string scatter_svg(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<Point>& pts) {
  const double W = 560, H = 340, L = 70, R = 20, T = 30, B = 50;
  double x0 = pts[0].x, x1 = pts[0].x, y0 = 0, y1 = pts[0].y;
  for (const Point& p : pts) {
    x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
    y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
  }
  const double xpad = x1 > x0 ? 0.08 * (x1 - x0) : std::max(1.0, std::fabs(x0) * 0.1);
  x0 -= xpad, x1 += xpad;
  if (y1 <= y0) y1 = y0 + 1;
  y1 += 0.1 * (y1 - y0);
  auto sx = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto sy = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
  std::string s = cat("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", W, "\" height=\"", H, "\" viewBox=\"0 0 ", W,
                      " ", H, "\" role=\"img\">\n<title>", esc(title), "</title>\n");
  s += cat("<text x=\"", W / 2, "\" y=\"18\" text-anchor=\"middle\" class=\"title\">", esc(title), "</text>\n");
  s += cat("<line x1=\"", L, "\" y1=\"", H - B, "\" x2=\"", W - R, "\" y2=\"", H - B, "\" class=\"axis\"/>\n");
  s += cat("<line x1=\"", L, "\" y1=\"", T, "\" x2=\"", L, "\" y2=\"", H - B, "\" class=\"axis\"/>\n");
  for (int i = 0; i <= 4; ++i) {
    const double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    s += cat("<text x=\"", sx(xv), "\" y=\"", H - B + 16, "\" text-anchor=\"middle\" class=\"tick\">", num(xv, 3), "</text>\n");
    s += cat("<line x1=\"", L, "\" y1=\"", sy(yv), "\" x2=\"", W - R, "\" y2=\"", sy(yv), "\" class=\"grid\"/>\n");
    s += cat("<text x=\"", L - 6, "\" y=\"", sy(yv) + 4, "\" text-anchor=\"end\" class=\"tick\">", num(yv, 3), "</text>\n");
  }
  s += cat("<text x=\"", (L + W - R) / 2, "\" y=\"", H - 12, "\" text-anchor=\"middle\">", esc(x_label), "</text>\n");
  s += cat("<text x=\"16\" y=\"", (T + H - B) / 2, "\" text-anchor=\"middle\" transform=\"rotate(-90 16 ", (T + H - B) / 2,
           ")\">", esc(y_label), "</text>\n");
  for (size_t i = 0; i < pts.size(); ++i) {
    const Point& p = pts[i];
    s += cat("<g class=\"point\"><circle cx=\"", sx(p.x), "\" cy=\"", sy(p.y), "\" r=\"5\" class=\"", i == 0 ? "base" : "cand",
             "\"><title>", esc(p.label), ": x ", num(p.x), ", y ", num(p.y), "</title></circle>");
    s += cat("<text x=\"", sx(p.x) + 8, "\" y=\"", sy(p.y) - 8, "\" class=\"label\">", esc(p.label), "</text></g>\n");
  }
  return s + "</svg>\n";
}

std::string short_name(const std::string& path) {
  std::string n = std::filesystem::path(path).filename().string();
  if (n.empty()) n = std::filesystem::path(path).parent_path().filename().string();
  return n.empty() ? path : n;
}

std::string row(std::initializer_list<std::string> cells, const char* tag = "td") {
  std::string s = "<tr>";
  for (const std::string& c : cells) s += cat("<", tag, ">", esc(c), "</", tag, ">");
  return s + "</tr>\n";
}

}  // namespace

std::string compare_html(const CompareReport& r) {
  std::vector<Point> kl{{short_name(r.base.path), r.base.bits_per_weight, 0.0}};
  std::vector<Point> ratio{{short_name(r.base.path), r.base.bits_per_weight, 1.0}};
  for (const CandidateSummary& c : r.candidates) {
    kl.push_back({short_name(c.path), c.bits_per_weight, c.kl.mean});
    ratio.push_back({short_name(c.path), c.bits_per_weight, c.ppl_ratio});
  }
  std::string h =
      "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
      "<title>temper compare</title>\n<style>\n"
      "body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
      "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
      "th{background:#f3f3f3}.axis{stroke:#333}.grid{stroke:#eee}.tick{font-size:11px;fill:#555}"
      ".title{font-weight:bold}circle.base{fill:#2a7}circle.cand{fill:#27c}.label{font-size:12px}"
      "svg{margin-right:1em}\n</style>\n</head>\n<body>\n";
  h += "<h1>temper compare</h1>\n";
  h += cat("<p>Text <code>", esc(r.opts.text), "</code>: ", r.n_text_tokens, " tokens, ", r.n_scored, " scored (ctx ",
           r.opts.ctx, ", stride ", r.stride, "). KL divergence of each candidate from the base <code>", esc(r.base.path),
           "</code>, estimated from the base's top-", r.opts.top_k, " log-probabilities plus one bucket for the rest.</p>\n");
  h += "<div>\n" + scatter_svg("Mean KL divergence vs bits per weight", "bits per weight", "mean KL (nats)", kl);
  h += scatter_svg("PPL ratio vs bits per weight", "bits per weight", "PPL / PPL(base)", ratio) + "</div>\n";
  h += "<h2>Models</h2>\n<table>\n";
  h += row({"model", "file size", "bits/weight", "PPL", "PPL 95% CI", "PPL ratio", "ratio 95% CI", "KL mean", "KL median",
            "KL p90", "KL p99", "KL max", "same top-1", "RMS Δp", "tasks"},
           "th");
  auto tasks = [](const ModelSummary& m) {
    return m.tasks ? cat(m.tasks->correct, "/", m.tasks->items.size(), " (", num(100 * m.tasks->accuracy(), 3), "%)") : "";
  };
  const ModelSummary& b = r.base;
  h += row({b.path, human_bytes(double(b.file_bytes)), num(b.bits_per_weight), num(b.ppl, 6),
            cat(num(b.ppl_lo, 6), " – ", num(b.ppl_hi, 6)), "1", "", "0", "", "", "", "", "", "", tasks(b)});
  for (const CandidateSummary& c : r.candidates)
    h += row({c.path, human_bytes(double(c.file_bytes)), num(c.bits_per_weight), num(c.ppl, 6),
              cat(num(c.ppl_lo, 6), " – ", num(c.ppl_hi, 6)), num(c.ppl_ratio, 6),
              cat(num(c.ppl_ratio_lo, 6), " – ", num(c.ppl_ratio_hi, 6)), num(c.kl.mean), num(c.kl.median),
              num(c.kl.p90), num(c.kl.p99), num(c.kl.max), cat(num(100 * c.same_top1, 4), "%"),
              cat(num(100 * c.rms_dp, 4), "%"), tasks(c)});
  h += "</table>\n";
  if (!r.tasks.empty()) {
    h += cat("<h2>Task flips</h2>\n<p>Questions from <code>", esc(r.opts.tasks),
             "</code> whose correctness differs from the base.</p>\n");
    for (const CandidateSummary& c : r.candidates) {
      h += cat("<h3>", esc(c.path), ": ", c.flips.size(), " flips</h3>\n");
      if (c.flips.empty()) continue;
      h += "<table>\n" + row({"line", "question", "base", "candidate", "base answer", "candidate answer"}, "th");
      for (const Flip& f : c.flips)
        h += row({std::to_string(r.tasks[f.index].line), r.tasks[f.index].question, f.base_correct ? "right" : "wrong",
                  f.base_correct ? "wrong" : "right", f.base_given, f.candidate_given});
      h += "</table>\n";
    }
  }
  return h + "</body>\n</html>\n";
}

}  // namespace temper::verify
