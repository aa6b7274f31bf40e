// Shared by the adapter tests: the PEFT-semantics PyTorch reference (peft_ref.py), temper's
// runtime logits with adapters, llama.cpp's (llama_lora.mjs), and max-abs differences.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/json.h"
#include "forward/forward.h"
#include "util/test_util.h"
#include "verify/eval_model.h"

namespace temper::lora_test {

inline const std::vector<int32_t> kIds = {1, 403, 261, 20, 300, 41, 7, 88, 120, 9, 511, 64, 3, 250, 17, 33};

inline std::string model_dir() { return test::source_dir() + "/sample/stories260K"; }

inline std::string ids_csv() {
  std::string s;
  for (int32_t id : kIds) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

inline std::string py(const std::string& args) {
  return std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/tests/adapters/peft_ref.py " + args;
}

template <typename T>
std::vector<double> read_values(const std::string& path) {
  const std::string bytes = test::read_file(path);
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return {v.begin(), v.end()};
}

// float64 logits of the HF model with PEFT folders "DIR[:MULT] ..." applied.
inline std::vector<double> reference(const std::string& out, const std::string& peft_specs) {
  const auto r = test::run_shell(py("logits " + model_dir() + " " + ids_csv() + " " + out + " " + peft_specs));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return read_values<double>(out);
}

inline std::vector<double> temper_logits(const std::string& model, const std::vector<std::string>& loras) {
  const auto m = verify::load_eval_model(model, true, loras);
  forward::Session s(*m->model, 64);
  const std::vector<float> out = s.eval(kIds);
  return {out.begin(), out.end()};
}

// llama.cpp's logits for the model with GGUF adapters {path, scale}.
inline std::vector<double> llama_logits(const std::string& dir, const std::string& name, const std::string& model,
                                        const std::vector<std::pair<std::string, double>>& loras) {
  Json lora = Json::array();
  for (const auto& [p, s] : loras) lora.push_back({{"path", p}, {"scale", s}});
  const std::string out = dir + "/" + name + ".f32", jobs = dir + "/" + name + ".json";
  test::write_file(jobs, Json::array({{{"model", model}, {"lora", lora}, {"tokens", kIds}, {"out", out}}}).dump());
  const auto r = test::run_shell("TEMPER_LLAMA_REF_DIR=" + std::string(TEMPER_LLAMA_REF_DIR) + " node " +
                                 test::source_dir() + "/tests/adapters/llama_lora.mjs " + jobs);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return read_values<float>(out);
}

inline double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}
inline double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}

// Two PEFT-style adapters for stories260K in `dir`/a1 and `dir`/a2 (peft/, peft_bin/,
// adapter.h5): a1 rank 4, alpha 8 on all seven projections; a2 rank 2, alpha 4, rsLoRA, on
// q, v, down.
inline void make_adapters(const std::string& dir) {
  for (const std::string& args : {"4 8 0 1 all", "2 4 1 2 q,v,down"}) {
    const std::string out = dir + (args[0] == '4' ? "/a1" : "/a2");
    const auto r = test::run_shell(py("make " + model_dir() + " " + out + " " + args));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
}

inline void quantize(const std::string& type, const std::string& out) {
  const auto q = test::run_temper("quantize " + model_dir() + " -t " + type + " -o " + out);
  ASSERT_EQ(q.exit_code, 0) << q.err;
}

}  // namespace temper::lora_test
