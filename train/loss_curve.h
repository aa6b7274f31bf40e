// The loss curve written beside the adapter: an HTML page (well-formed XHTML, no script) with
// one SVG chart of the training loss per step and the validation loss where it was measured,
// in the look of compare --html's charts (their tick and text helpers, verify/report_chart.h).
#pragma once
#include <string>

#include "train/checkpoint.h"

namespace temper::train {

// The page's path for an adapter path: "a.h5" -> "a.loss.html".
std::string loss_curve_path(const std::string& adapter_path);

// The page for `curve` (`title` names the run). Empty curves give a page saying so.
std::string loss_curve_html(const LossCurve& curve, const std::string& title);

}  // namespace temper::train
