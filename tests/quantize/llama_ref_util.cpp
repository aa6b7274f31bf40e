#include "quantize/llama_ref_util.h"

#include <gtest/gtest.h>

#include <fstream>

#include "core/json.h"

namespace temper::test {

std::string llama_ref_dir() { return TEMPER_LLAMA_REF_DIR; }

static std::string ref_env() { return "TEMPER_LLAMA_REF_DIR=" + llama_ref_dir() + " "; }

void reference_convert(const std::string& hf_dir, const std::string& out, const std::string& outtype, bool no_vocab) {
  auto r = run_shell(ref_env() + "bash " + source_dir() + "/tests/llama_ref/convert_reference.sh " + hf_dir + " " + out +
                     " " + outtype + (no_vocab ? " --no-vocab" : ""));
  ASSERT_EQ(r.exit_code, 0) << "llama.cpp converter failed on " << hf_dir << ":\n" << r.err.substr(r.err.size() > 3000 ? r.err.size() - 3000 : 0);
}

int reference_quantize(const std::string& in, const std::string& out, int ftype, const std::string& extra) {
  const std::string lib = llama_ref_dir() + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.5.0.so";
  auto r = run_shell(build_dir() + "/tests/llama_quantize_tool " + lib + " " + in + " " + out + " " +
                     std::to_string(ftype) + " " + extra);
  if (r.exit_code != 0) ADD_FAILURE() << "llama_model_quantize failed:\n" << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0);
  return r.exit_code;
}

bool gguf_same(const std::string& a, const std::string& b, const std::string& args, std::string* report) {
  auto r = run_shell(ref_env() + std::string(TEMPER_PYTHON) + " " + source_dir() + "/tests/llama_ref/gguf_compare.py " + a +
                     " " + b + " " + args);
  if (report) *report = r.out + r.err;
  return r.exit_code == 0;
}

std::vector<float> reference_logits(const std::string& gguf, const std::vector<int>& tokens, int* vocab) {
  TempDir d;
  write_file(d / "t.json", Json(tokens).dump());
  auto r = run_shell(ref_env() + "node " + source_dir() + "/tests/llama_ref/llama_run.mjs logits " + gguf + " " + (d / "t.json") +
                     " " + (d / "l.f32"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  *vocab = Json::parse(r.out)["vocab"].get<int>();
  const std::string bytes = read_file(d / "l.f32");
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

std::vector<int> reference_generate(const std::string& gguf, const std::vector<int>& prompt, int n) {
  TempDir d;
  write_file(d / "t.json", Json(prompt).dump());
  auto r = run_shell(ref_env() + "node " + source_dir() + "/tests/llama_ref/llama_run.mjs generate " + gguf + " " +
                     (d / "t.json") + " " + std::to_string(n));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? Json::parse(r.out).get<std::vector<int>>() : std::vector<int>{};
}

std::string temper_ok(const std::string& args) {
  auto r = run_temper(args);
  EXPECT_EQ(r.exit_code, 0) << "temper " << args << "\n" << r.err;
  return r.out;
}

}  // namespace temper::test
