// Per-tensor types by measured KL within a size (see bpw_mix.h).
#include "quantize/bpw_mix.h"

#include <chrono>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/log.h"

namespace temper {
namespace {

uint64_t n_elems(const GgufTensorPlan& p) {
  uint64_t n = 1;
  for (int64_t d : p.ne) n *= uint64_t(d);
  return n;
}

}  // namespace

std::vector<DType> mix_ladder(int64_t ncols, bool output) {
  using D = DType;
  if (ncols % 256 == 0) {
    if (output) return {D::kQ4_K, D::kQ5_K, D::kQ6_K, D::kQ8_0};
    return {D::kQ2_K, D::kQ3_K, D::kQ4_K, D::kQ5_K, D::kQ6_K, D::kQ8_0};
  }
  if (ncols % 32 == 0) return {D::kQ4_0, D::kIQ4_NL, D::kQ4_1, D::kQ5_0, D::kQ5_1, D::kQ8_0};
  return {};
}

FileType mix_file_type(const std::vector<GgufTensorPlan>& plans, const std::vector<TypeChoice>& choices,
                       FileType fallback) {
  static const std::map<DType, FileType> kNamed = {
      {DType::kQ2_K, FileType::kQ2_K},   {DType::kQ3_K, FileType::kQ3_K_M}, {DType::kQ4_K, FileType::kQ4_K_M},
      {DType::kQ5_K, FileType::kQ5_K_M}, {DType::kQ6_K, FileType::kQ6_K},   {DType::kQ8_0, FileType::kQ8_0},
      {DType::kQ4_0, FileType::kQ4_0},   {DType::kQ4_1, FileType::kQ4_1},   {DType::kQ5_0, FileType::kQ5_0},
      {DType::kQ5_1, FileType::kQ5_1},   {DType::kIQ4_NL, FileType::kIQ4_NL}};
  std::map<DType, uint64_t> weights;
  for (size_t i = 0; i < plans.size(); ++i)
    if (choices[i].quantized) weights[choices[i].type] += n_elems(plans[i]);
  FileType best = fallback;
  uint64_t most = 0;
  for (const auto& [t, n] : weights)
    if (n > most && kNamed.count(t)) {
      most = n;
      best = kNamed.at(t);
    }
  return best;
}

MixReport choose_mix(const MixOptions& opt, const OpenedModel& model, const std::vector<GgufTensorPlan>& plans,
                     std::vector<TypeChoice>& choices, Imatrix& imatrix) {
  const auto start = std::chrono::steady_clock::now();
  TEMPER_CHECK(!(opt.target_bpw > 0 && opt.max_kld > 0), "--target-bpw and --max-kld: give one of them");
  TEMPER_CHECK(std::isfinite(opt.target_bpw) && opt.target_bpw >= 0, "--target-bpw must be a positive number");
  TEMPER_CHECK(std::isfinite(opt.max_kld) && opt.max_kld >= 0, "--max-kld must be a positive number");
  TEMPER_CHECK(!opt.sens.data.empty(), opt.target_bpw > 0 ? "--target-bpw" : "--max-kld",
               " measures each tensor's KL on calibration text: give --bpw-data TEXT (or --calibrate TEXT)");
  MixReport rep;
  rep.used = true;
  rep.target_bpw = opt.target_bpw;
  rep.max_kld = opt.max_kld;
  uint64_t n_params = 0;
  for (const auto& p : plans) n_params += n_elems(p);
  bool has_output = false;
  for (const auto& p : plans) has_output |= p.name == "output.weight";

  KlProbe probe(model, opt.sens, imatrix.entries.empty() ? nullptr : &imatrix);
  rep.ctx = probe.ctx();
  rep.chunks = probe.chunks();
  std::vector<size_t> searched;  // plan indices, in plan order
  for (size_t i = 0; i < plans.size(); ++i) {
    const GgufTensorPlan& p = plans[i];
    const bool output = p.name == "output.weight" || (!has_output && p.name == "token_embd.weight");
    const std::vector<DType> ladder = mix_ladder(p.ne[0], output);
    if (choices[i].quantized && !choices[i].pinned && !ladder.empty() && probe.has_tensor(p.name)) {
      searched.push_back(i);
      MixItem it{p.name, {}};
      for (DType t : ladder) it.options.push_back({t, dtype_bytes(t, n_elems(p)), 0.0});
      rep.items.push_back(std::move(it));
    } else {
      rep.fixed_bytes += dtype_bytes(choices[i].type, n_elems(p));
    }
  }
  TEMPER_CHECK(!rep.items.empty(), "--target-bpw/--max-kld: no tensor of this model has a type to choose "
               "(every quantizable one is pinned or fits no block)");

  // A budget below the smallest mix is known before the (long) measurement.
  const uint64_t lo = rep.fixed_bytes + mix_min_bytes(rep.items), hi = rep.fixed_bytes + mix_max_bytes(rep.items);
  auto bpw = [&](uint64_t bytes) { return double(bytes) * 8.0 / double(n_params); };
  if (opt.target_bpw > 0) {
    const double min_bpw = std::ceil(bpw(lo) * 1000.0) / 1000.0;
    TEMPER_CHECK(opt.target_bpw >= bpw(lo), "--target-bpw ", opt.target_bpw, " is below the smallest file these types "
                 "allow: ", min_bpw, " bits per weight (every searched tensor at its smallest type; ",
                 human_bytes(double(rep.fixed_bytes)), " of tensors outside the search); the largest is ",
                 std::floor(bpw(hi) * 1000.0) / 1000.0);
    rep.budget_bytes = uint64_t(std::floor(opt.target_bpw * double(n_params) / 8.0)) - rep.fixed_bytes;
  }

  uint64_t total = 0;
  for (const auto& it : rep.items) total += probe.cost(it.name, it.options.size());
  {
    Progress progress("sensitivity", total, /*bytes=*/false);
    for (auto& it : rep.items) {
      std::vector<DType> types;
      for (const auto& o : it.options) types.push_back(o.type);
      const std::vector<double> kl = probe.sensitivity(it.name, types, &progress);
      for (size_t k = 0; k < kl.size(); ++k) it.options[k].kl = kl[k];
    }
    progress.finish();
  }
  const MixChoice mc =
      opt.target_bpw > 0 ? choose_mix_for_budget(rep.items, rep.budget_bytes) : choose_mix_for_kl(rep.items, opt.max_kld);
  rep.pick = mc.pick;
  rep.predicted_kl = mc.kl;
  std::map<std::string, DType> chosen;
  for (size_t j = 0; j < searched.size(); ++j) {
    const MixOption& o = rep.items[j].options[size_t(mc.pick[j])];
    TypeChoice& c = choices[searched[j]];
    c.type = o.type;
    c.fallback = false;
    c.note = cat("mix: KL ", o.kl);
    chosen[rep.items[j].name] = o.type;
  }
  rep.measured_kl = probe.mix_kl(chosen);
  if (imatrix.entries.empty()) imatrix = probe.imatrix();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return rep;
}

}  // namespace temper
