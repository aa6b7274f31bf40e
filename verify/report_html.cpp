// compare --html: one self-contained page (inline CSS and SVG, no scripts or external files),
// written as well-formed XHTML so any XML parser reads it. Charts in report_chart.cpp.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>

#include "compare.h"
#include "core/error.h"
#include "core/log.h"
#include "report_chart.h"

namespace temper::verify {
namespace {

const auto& esc = xml_escape;

std::string file_name(const std::string& path) {
  const std::filesystem::path p(path);
  std::string n = p.filename().string();
  if (n.empty()) n = p.parent_path().filename().string();
  return n.empty() ? path : n;
}

bool all_distinct(const std::vector<std::string>& v) {
  return std::set<std::string>(v.begin(), v.end()).size() == v.size() &&
         std::none_of(v.begin(), v.end(), [](const std::string& s) { return s.empty(); });
}

// Short chart labels for the candidates: the quantization type in each file name when every name
// has one (Q4_K_M, F16, ...), else what remains after the prefix and suffix all names share
// (cut at a separator), else the file name.
std::vector<std::string> short_labels(const std::vector<std::string>& paths) {
  std::vector<std::string> names;
  for (const std::string& p : paths) names.push_back(file_name(p));
  static const std::regex kType("(^|[-_. ])(I?Q[1-8](_[A-Z0-9]+)*|TQ[12]_0|MXFP4|BF16|F16|F32|F64)(?=[-. ]|$)",
                                std::regex::icase);
  std::vector<std::string> types;
  for (const std::string& n : names) {
    std::smatch m;
    if (!std::regex_search(n, m, kType)) break;
    std::string t = m[2];
    std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::toupper(c); });
    types.push_back(t);
  }
  if (types.size() == names.size() && all_distinct(types)) return types;
  if (names.size() >= 2) {
    auto is_sep = [](char c) { return c == '-' || c == '_' || c == '.' || c == ' '; };
    size_t pre = 0, suf = 0;
    const size_t shortest = std::min_element(names.begin(), names.end(), [](auto& a, auto& b) { return a.size() < b.size(); })->size();
    while (pre < shortest && std::all_of(names.begin(), names.end(), [&](auto& n) { return n[pre] == names[0][pre]; })) ++pre;
    while (pre > 0 && !is_sep(names[0][pre - 1])) --pre;
    while (suf < shortest - pre &&
           std::all_of(names.begin(), names.end(), [&](auto& n) { return n[n.size() - 1 - suf] == names[0][names[0].size() - 1 - suf]; }))
      ++suf;
    while (suf > 0 && !is_sep(names[0][names[0].size() - suf])) --suf;
    std::vector<std::string> cut;
    for (const std::string& n : names) cut.push_back(n.substr(pre, n.size() - pre - suf));
    if (all_distinct(cut) && std::all_of(cut.begin(), cut.end(), [](auto& s) { return s.size() >= 3; })) return cut;
  }
  return all_distinct(names) ? names : paths;
}

// One format per table column, so that a column reads as one kind of number: fixed decimals
// giving the smallest non-zero value `sig` significant digits, or, when that would need more
// than `max_decimals`, scientific notation (m.mm×10ⁿ) for the whole column, or (no_sci) the
// most decimals, with "<0.01" for what would round to 0.
struct NumFormat {
  int decimals = 2;
  bool sci = false;
};

NumFormat sig_format(const std::vector<double>& v, int sig, int max_decimals, bool no_sci = false) {
  double smallest = INFINITY;
  for (double x : v)
    if (x != 0 && std::isfinite(x)) smallest = std::min(smallest, std::fabs(x));
  if (!std::isfinite(smallest)) return {0, false};
  const int d = sig - 1 - int(std::floor(std::log10(smallest)));
  if (d > max_decimals) return no_sci ? NumFormat{max_decimals, false} : NumFormat{sig - 1, true};
  return {std::clamp(d, 0, max_decimals), false};
}

// For a value with a 95% interval: enough decimals to resolve the narrowest interval's half
// width to two digits (more would be noise), within [min_decimals, max_decimals].
NumFormat ci_format(const std::vector<std::pair<double, double>>& cis, int min_decimals, int max_decimals) {
  int d = min_decimals;
  for (const auto& [lo, hi] : cis)
    if (hi > lo) d = std::max(d, int(std::ceil(-std::log10((hi - lo) / 2))) + 1);
  return {std::min(d, max_decimals), false};
}

std::string fmt(double v, NumFormat f) {
  char b[64];
  if (!std::isfinite(v)) return "—";
  if (v == 0) return "0";
  if (f.sci && v != 0) {
    int e = int(std::floor(std::log10(std::fabs(v))));
    double m = v / std::pow(10, e);
    std::snprintf(b, sizeof b, "%.*f", f.decimals, m);
    if (std::fabs(std::strtod(b, nullptr)) >= 10) std::snprintf(b, sizeof b, "%.*f", f.decimals, m / 10), ++e;
    static const char* kSup[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    std::string s = cat(b, "×10", e < 0 ? "⁻" : "");
    for (char c : std::to_string(std::abs(e))) s += kSup[c - '0'];
    return s;
  }
  if (std::fabs(v) < 0.5 * std::pow(10, -f.decimals)) {
    std::snprintf(b, sizeof b, "<%.*f", f.decimals, std::pow(10, -f.decimals));
    return b;
  }
  std::snprintf(b, sizeof b, "%.*f", f.decimals, v);
  return b;
}

// A table cell: the value, and under it (smaller) its 95% interval.
std::string num_cell(const std::string& value, const std::string& ci = "") {
  std::string s = "<td class=\"num\">" + esc(value);
  if (!ci.empty()) s += "<span class=\"ci\">" + esc(ci) + "</span>";
  return s + "</td>";
}

std::string interval(double lo, double hi, NumFormat f) { return fmt(lo, f) + " – " + fmt(hi, f); }

std::string tasks_text(const ModelSummary& m) {
  if (!m.tasks) return "";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100 * m.tasks->accuracy());
  return cat(m.tasks->correct, "/", m.tasks->items.size(), " (", b, ")");
}

// 1235814400 -> "1,235,814,400"
std::string grouped(uint64_t n) {
  std::string d = std::to_string(n), s;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i && (d.size() - i) % 3 == 0) s += ',';
    s += d[i];
  }
  return s;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M UTC", &tm);
  return b;
}

constexpr const char* kStyle =
    "body{font-family:'DejaVu Sans',Verdana,system-ui,sans-serif;margin:0;padding:16px 24px;color:#222;"
    "font-size:14px;line-height:1.4}"
    "h1{font-size:22px;margin:0 0 8px}h2{font-size:17px;margin:24px 0 8px}h3{font-size:15px;margin:16px 0 6px}"
    "p{max-width:70em}code,.hash{font-family:'DejaVu Sans Mono',monospace;font-size:12px;overflow-wrap:anywhere}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px 24px}"
    "figure{margin:0;flex:1 1 480px;max-width:640px;min-width:0}figcaption{font-size:12px;color:#555;margin-top:4px}"
    "svg.chart{display:block;width:100%;height:auto}"
    "svg.chart text{font-family:'DejaVu Sans',Verdana,sans-serif}"
    ".title{font-size:14px;font-weight:bold}.tick{font-size:11px;fill:#555}.axis-title{font-size:12px;fill:#333}"
    ".grid{stroke:#e4e4e4}.break{stroke:#aaa;stroke-dasharray:2 3}.frame{fill:none;stroke:#888}.label{font-size:12px;fill:#123}"
    ".ref{stroke:#2a7;stroke-width:1.5;stroke-dasharray:6 4}.ref-label{font-size:12px;fill:#175}"
    ".ci{stroke:#27c;stroke-width:1.2}.leader{stroke:#999;stroke-width:0.8}"
    "circle.cand{fill:#27c;stroke:#fff;stroke-width:1}circle.clamped{fill:#fff;stroke:#27c;stroke-width:1.5}"
    ".scroll{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;margin:8px 0;font-size:13px}"
    "td,th{border:1px solid #d0d0d0;padding:3px 7px;vertical-align:top}"
    "th{background:#f3f3f3;font-weight:600;text-align:center}"
    "td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"
    "td.name{min-width:7em;max-width:16em}td.name b{display:block}"
    "td.name span,.ci{display:block;font-size:11px;color:#666}td.name span{overflow-wrap:anywhere}"
    "td.text{min-width:12em;max-width:32em;overflow-wrap:anywhere}"
    "tr.base td{background:#f4faf6}"
    // Scrolled sideways on a narrow screen, the model column stays in view.
    "table.models td.name,table.models th:first-child{position:sticky;left:0;z-index:1}"
    "table.models td.name{background:#fff}table.models tr.base td.name{background:#f4faf6}"
    "footer{margin-top:24px;border-top:1px solid #ccc;color:#444}footer td{font-size:12px}"
    "dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 12px;margin:8px 0}"
    "dt{font-weight:600}dd{margin:0;min-width:0}\n";

std::string models_table(const CompareReport& r, const std::vector<std::string>& labels) {
  const auto& cs = r.candidates;
  std::vector<std::pair<double, double>> ppl_ci{{r.base.ppl_lo, r.base.ppl_hi}}, ratio_ci;
  std::vector<double> kl_mean, kl_med, kl_p90, kl_p99, kl_max, dp;
  for (const CandidateSummary& c : cs) {
    ppl_ci.push_back({c.ppl_lo, c.ppl_hi});
    ratio_ci.push_back({c.ppl_ratio_lo, c.ppl_ratio_hi});
    kl_mean.push_back(c.kl.mean), kl_med.push_back(c.kl.median), kl_p90.push_back(c.kl.p90);
    kl_p99.push_back(c.kl.p99), kl_max.push_back(c.kl.max), dp.push_back(100 * c.rms_dp);
  }
  const NumFormat f_ppl = ci_format(ppl_ci, 1, 4), f_ratio = ci_format(ratio_ci, 2, 4), f_mean = sig_format(kl_mean, 3, 5),
                  f_med = sig_format(kl_med, 3, 5), f_p90 = sig_format(kl_p90, 3, 5), f_p99 = sig_format(kl_p99, 3, 5),
                  f_max = sig_format(kl_max, 3, 5), f_dp = sig_format(dp, 2, 2, true), f_bpw{2, false}, f_top1{2, false};
  const bool tasks = r.base.tasks.has_value();
  std::string h = "<div class=\"scroll\"><table class=\"models\">\n<thead><tr><th rowspan=\"2\">model</th>"
                  "<th rowspan=\"2\">file size</th><th rowspan=\"2\">bits per weight</th>"
                  "<th rowspan=\"2\">PPL<span class=\"ci\">95% CI</span></th>"
                  "<th rowspan=\"2\">PPL ratio<span class=\"ci\">95% CI</span></th>"
                  "<th colspan=\"5\">KL divergence from the base (nats)</th>"
                  "<th rowspan=\"2\">same top-1</th><th rowspan=\"2\">RMS Δp</th>";
  if (tasks) h += "<th rowspan=\"2\">tasks</th>";
  h += "</tr>\n<tr><th>mean<span class=\"ci\">95% CI</span></th><th>median</th><th>p90</th><th>p99</th><th>max</th></tr></thead>\n";
  const ModelSummary& b = r.base;
  h += cat("<tbody><tr class=\"base\"><td class=\"name\"><b>base</b><span>", esc(file_name(b.path)), "</span></td>",
           num_cell(human_bytes(double(b.file_bytes))), num_cell(fmt(b.bits_per_weight, f_bpw)),
           num_cell(fmt(b.ppl, f_ppl), interval(b.ppl_lo, b.ppl_hi, f_ppl)), num_cell("1 (ref.)"));
  for (int i = 0; i < 7; ++i) h += num_cell("—");
  if (tasks) h += num_cell(tasks_text(b));
  h += "</tr>\n";
  for (size_t i = 0; i < cs.size(); ++i) {
    const CandidateSummary& c = cs[i];
    h += cat("<tr><td class=\"name\"><b>", esc(labels[i]), "</b><span>", esc(file_name(c.path)), "</span></td>",
             num_cell(human_bytes(double(c.file_bytes))), num_cell(fmt(c.bits_per_weight, f_bpw)),
             num_cell(fmt(c.ppl, f_ppl), interval(c.ppl_lo, c.ppl_hi, f_ppl)),
             num_cell(fmt(c.ppl_ratio, f_ratio), interval(c.ppl_ratio_lo, c.ppl_ratio_hi, f_ratio)),
             num_cell(fmt(c.kl.mean, f_mean), interval(c.kl_ci.lo, c.kl_ci.hi, f_mean)), num_cell(fmt(c.kl.median, f_med)),
             num_cell(fmt(c.kl.p90, f_p90)), num_cell(fmt(c.kl.p99, f_p99)), num_cell(fmt(c.kl.max, f_max)),
             num_cell(fmt(100 * c.same_top1, f_top1) + "%"), num_cell(fmt(100 * c.rms_dp, f_dp) + "%"));
    if (tasks) h += num_cell(tasks_text(c));
    h += "</tr>\n";
  }
  return h + "</tbody></table></div>\n";
}

std::string flips_section(const CompareReport& r, const std::vector<std::string>& labels) {
  std::string h = cat("<h2>Task flips</h2>\n<p>Questions from <code>", esc(r.opts.tasks),
                      "</code> whose correctness differs from the base.</p>\n");
  std::string none;
  for (size_t i = 0; i < r.candidates.size(); ++i)
    if (r.candidates[i].flips.empty()) none += (none.empty() ? "" : ", ") + labels[i];
  if (!none.empty()) h += cat("<p>No flips: ", esc(none), ".</p>\n");
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const CandidateSummary& c = r.candidates[i];
    if (c.flips.empty()) continue;
    h += cat("<h3>", esc(labels[i]), ": ", c.flips.size(), c.flips.size() == 1 ? " flip" : " flips", "</h3>\n");
    h += "<div class=\"scroll\"><table>\n<tr><th>line</th><th>question</th><th>base</th><th>candidate</th>"
         "<th>base answer</th><th>candidate answer</th></tr>\n";
    for (const Flip& f : c.flips)
      h += cat("<tr>", num_cell(std::to_string(r.tasks[f.index].line)), "<td class=\"text\">", esc(r.tasks[f.index].question),
               "</td><td>", f.base_correct ? "right" : "wrong", "</td><td>", f.base_correct ? "wrong" : "right",
               "</td><td class=\"text\">", esc(f.base_given), "</td><td class=\"text\">", esc(f.candidate_given), "</td></tr>\n");
    h += "</table></div>\n";
  }
  return h;
}

std::string provenance(const CompareReport& r, const std::vector<std::string>& labels) {
  std::string h = "<footer>\n<h2>Provenance</h2>\n<dl>\n";
  h += cat("<dt>tool</dt><dd>temper ", TEMPER_VERSION, "</dd>\n<dt>written</dt><dd>", utc_now(), ", after a run of ",
           human_duration(r.seconds), "</dd>\n");
  h += cat("<dt>text</dt><dd><code>", esc(r.opts.text), "</code><br/>SHA-256 <span class=\"hash\">", esc(r.text_sha256),
           "</span></dd>\n");
  h += cat("<dt>tokens</dt><dd>", r.n_text_tokens, " in the text, ", r.n_scored, " scored</dd>\n");
  h += cat("<dt>windows</dt><dd>ctx ", r.opts.ctx, ", stride ", r.stride, "</dd>\n");
  h += cat("<dt>KL reference</dt><dd>the base's top-", r.opts.top_k, " log-probabilities per token plus one bucket for the rest (",
           human_bytes(double(r.reference_bytes)), ")</dd>\n");
  if (!r.tasks.empty())
    h += cat("<dt>tasks</dt><dd><code>", esc(r.opts.tasks), "</code>, ", r.tasks.size(), " questions, up to ", r.opts.task_tokens,
             " generated tokens each<br/>SHA-256 <span class=\"hash\">", esc(r.tasks_sha256), "</span></dd>\n");
  h += "</dl>\n<div class=\"scroll\"><table class=\"files\">\n<tr><th>model</th><th>path</th><th>size</th><th>parameters</th>"
       "<th>SHA-256</th></tr>\n";
  auto file_row = [&](const std::string& label, const ModelSummary& m) {
    return cat("<tr><td>", esc(label), "</td><td class=\"text\"><code>", esc(m.path), "</code></td>",
               num_cell(human_bytes(double(m.file_bytes))), num_cell(grouped(m.n_params)),
               "<td class=\"text hash\">", esc(m.sha256), "</td></tr>\n");
  };
  h += file_row("base", r.base);
  for (size_t i = 0; i < r.candidates.size(); ++i) h += file_row(labels[i], r.candidates[i]);
  return h + "</table></div>\n<p>A folder's SHA-256 is that of its <code>sha256sum</code> listing "
             "(<code>cd FOLDER &amp;&amp; LC_ALL=C sha256sum * | sha256sum</code>).</p>\n</footer>\n";
}

}  // namespace

std::string compare_html(const CompareReport& r) {
  std::vector<std::string> paths;
  for (const CandidateSummary& c : r.candidates) paths.push_back(c.path);
  const std::vector<std::string> labels = short_labels(paths);
  const std::string base_name = file_name(r.base.path);

  ChartSpec kl{"Mean KL divergence from the base", "bits per weight", "mean KL, nats", true, {}, "", {}};
  ChartSpec ratio{"Perplexity ratio to the base", "bits per weight", "PPL / PPL(base)", false, 1.0, "", {}};
  char bpw[32];
  std::snprintf(bpw, sizeof bpw, "%.1f", r.base.bits_per_weight);
  ratio.ref_label = cat("base (", bpw, " bits per weight)");
  bool any_zero_kl = false;
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const CandidateSummary& c = r.candidates[i];
    any_zero_kl |= !(c.kl.mean > 0);
    const std::string head = cat(labels[i], ": ", c.path, "\n", fmt(c.bits_per_weight, {2, false}), " bits per weight\n");
    kl.points.push_back({labels[i], cat(head, "mean KL ", c.kl.mean, " [", c.kl_ci.lo, ", ", c.kl_ci.hi, "]"),
                         c.bits_per_weight, c.kl.mean, c.kl_ci.lo, c.kl_ci.hi});
    ratio.points.push_back({labels[i], cat(head, "PPL ratio ", c.ppl_ratio, " [", c.ppl_ratio_lo, ", ", c.ppl_ratio_hi, "]"),
                            c.bits_per_weight, c.ppl_ratio, c.ppl_ratio_lo, c.ppl_ratio_hi});
  }
  std::string h = cat("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n<title>temper compare: ",
                      esc(base_name), "</title>\n<style>\n", kStyle, "</style>\n</head>\n<body>\n");
  h += cat("<h1>temper compare</h1>\n<p>", r.candidates.size(), r.candidates.size() == 1 ? " candidate" : " candidates",
           " against the base <code>", esc(r.base.path), "</code> on <code>", esc(r.opts.text), "</code> (", r.n_scored,
           " scored tokens; details at the end).</p>\n");
  h += "<div class=\"charts\">\n<figure>" + chart_svg(kl) +
       cat("<figcaption>Mean over tokens of KL(base ‖ candidate), log scale, with its 95% interval. The base (",
           esc(base_name), ", ", bpw, " bits per weight) is 0 by definition", any_zero_kl ? "; an open circle in the band marked 0 is a candidate whose KL is exactly 0" : "",
           ".</figcaption></figure>\n");
  h += "<figure>" + chart_svg(ratio) +
       cat("<figcaption>PPL(candidate) / PPL(base) on the same tokens, with the 95% interval of the per-token NLL "
           "difference. Dashed line: the base (", esc(base_name), ", PPL ", fmt(r.base.ppl, ci_format({{r.base.ppl_lo, r.base.ppl_hi}}, 1, 4)),
           ").</figcaption></figure>\n</div>\n");
  h += "<h2>Models</h2>\n" + models_table(r, labels);
  h += "<p>Same top-1: share of tokens where the candidate's most likely token is the base's. RMS Δp: root mean square "
       "of the change in the true token's probability (as <code>llama-perplexity --kl-divergence</code> reports).</p>\n";
  if (!r.tasks.empty()) h += flips_section(r, labels);
  return h + provenance(r, labels) + "</body>\n</html>\n";
}

}  // namespace temper::verify
