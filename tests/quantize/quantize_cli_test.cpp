// temper quantize's contract with its user: bad input is refused clearly and leaves nothing;
// --dry-run tells the truth about the file it would write; the Modelfile is usable.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using namespace test;

std::string stories() { return fixture("model/stories260K-hf-f32"); }
std::string py() { return std::string(TEMPER_PYTHON) + " " + source_dir() + "/tests/scripts/st_tool.py "; }

void expect_nothing_left(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST(QuantizeCli, UnknownTypeListsValidOnes) {
  TempDir out;
  auto r = run_temper("quantize " + stories() + " -t Q4_K_Z -o " + (out / "m.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Q4_K_Z"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Q4_K_M"), std::string::npos) << "should list valid types: " << r.err;
  expect_nothing_left(out.path());
}

TEST(QuantizeCli, NonFiniteWeightsAreRefusedByTensorAndIndex) {
  TempDir d, out;
  ASSERT_EQ(run_shell(py() + "poke " + stories() + " " + (d / "m") + " model.layers.2.mlp.up_proj.weight 1234 nan").exit_code, 0);
  auto r = run_temper("quantize " + (d / "m") + " -t Q8_0 -o " + (out / "m.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("blk.2.ffn_up.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1234"), std::string::npos) << r.err;
  expect_nothing_left(out.path());
}

TEST(QuantizeCli, RequantizingNeedsTheFlag) {
  TempDir d;
  ASSERT_EQ(run_temper("quantize " + stories() + " -t Q8_0 -o " + (d / "q8.gguf")).exit_code, 0);
  auto r = run_temper("quantize " + (d / "q8.gguf") + " -t Q4_0 -o " + (d / "q4.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--allow-requantize"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(d / "q4.gguf"));
  r = run_temper("quantize " + (d / "q8.gguf") + " -t Q4_0 -o " + (d / "q4.gguf") + " --allow-requantize");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  // An unquantized GGUF is fine without the flag (it is what llama-quantize takes).
  ASSERT_EQ(run_temper("quantize " + stories() + " -t F32 -o " + (d / "f32.gguf")).exit_code, 0);
  EXPECT_EQ(run_temper("quantize " + (d / "f32.gguf") + " -t Q4_K_M -o " + (d / "k.gguf")).exit_code, 0);
}

TEST(QuantizeCli, CorruptGgufInputIsNamed) {
  TempDir d, out;
  ASSERT_EQ(run_temper("quantize " + stories() + " -t F32 -o " + (d / "f32.gguf")).exit_code, 0);
  const std::string bytes = read_file(d / "f32.gguf");
  write_file(d / "cut.gguf", bytes.substr(0, bytes.size() / 2));
  auto r = run_temper("quantize " + (d / "cut.gguf") + " -t Q8_0 -o " + (out / "m.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cut.gguf"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  expect_nothing_left(out.path());
}

TEST(QuantizeCli, OutputExistsNeedsForce) {
  TempDir out;
  write_file(out / "m.gguf", "keep");
  auto r = run_temper("quantize " + stories() + " -t Q8_0 -o " + (out / "m.gguf"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(read_file(out / "m.gguf"), "keep");
}

TEST(QuantizeCli, DryRunPredictsTheWrittenFile) {
  TempDir d;
  Json plan = Json::parse(run_temper("quantize " + stories() + " -t Q4_K_M -o " + (d / "m.gguf") + " --dry-run --json").out);
  EXPECT_FALSE(fs::exists(d / "m.gguf"));
  // stories260K rows are 64 or 172 wide: no 256-block fits, llama.cpp falls back (and says so).
  EXPECT_GT(plan["fallbacks"].get<int>(), 0);
  ASSERT_EQ(run_temper("quantize " + stories() + " -t Q4_K_M -o " + (d / "m.gguf")).exit_code, 0);
  Json written = Json::parse(run_temper("inspect " + (d / "m.gguf") + " --json").out);
  std::map<std::string, Json> types;
  for (const auto& t : written["tensors"]) types[t["name"]] = t;
  ASSERT_EQ(types.size(), plan["tensors"].size());
  uint64_t total = 0;
  for (const auto& t : plan["tensors"]) {
    EXPECT_EQ(types[t["name"]]["dtype"], t["type"]) << t["name"];
    EXPECT_EQ(types[t["name"]]["bytes"], t["bytes"]) << t["name"];
    total += t["bytes"].get<uint64_t>();
  }
  EXPECT_EQ(total, plan["bytes"].get<uint64_t>());
  EXPECT_EQ(written["metadata"]["general.file_type"]["value"], 15);
  EXPECT_EQ(written["file_type"]["name"], "Q4_K_M");
}

// --dry-run writes nothing, so it needs no -o; without --dry-run a missing -o is a usage error.
TEST(QuantizeCli, DryRunNeedsNoOutput) {
  auto r = run_temper("quantize " + stories() + " -t Q4_K_M --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["file_type"], "Q4_K_M");
  r = run_temper("quantize " + stories() + " -t Q4_K_M");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--output"), std::string::npos) << r.err;
}

// llama-quantize's aliases (tools/quantize/quantize.cpp: "alias for Q4_K_M"), any case.
TEST(QuantizeCli, LlamaQuantizeAliases) {
  for (const auto& [alias, name] : std::map<std::string, std::string>{
           {"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"q5_k", "Q5_K_M"}}) {
    auto r = run_temper("quantize " + stories() + " -t " + alias + " --dry-run --json");
    ASSERT_EQ(r.exit_code, 0) << alias << ": " << r.err;
    EXPECT_EQ(Json::parse(r.out)["file_type"], name) << alias;
  }
}

TEST(QuantizeCli, ModelfileForOllama) {
  TempDir d;
  auto r = run_temper("quantize " + stories() + " -t Q4_0 -o " + (d / "m.gguf") + " --modelfile");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("ollama create --quantize"), std::string::npos) << "Q4_0 cannot be redone by Ollama: " << r.err;
  const std::string mf = read_file(d / "m.Modelfile");
  EXPECT_NE(mf.find("FROM ./m.gguf\n"), std::string::npos) << mf;
  EXPECT_NE(mf.find("PARAMETER stop \"</s>\""), std::string::npos) << mf;
  EXPECT_NE(mf.find("TEMPLATE \"\"\"{{ .System }}{{ .Prompt }}\"\"\""), std::string::npos) << mf;
}

}  // namespace
}  // namespace temper

namespace temper {
namespace {
using namespace test;

// Issue 15, finding 1: quantize read a checkpoint without the checks eval makes and died of
// SIGFPE on these mutations (an empty tensor, a tensor cut to 1-D, n_head = 0), leaving its
// OUT.gguf.tmp-* behind. The checkpoint reader now validates config and shapes for everyone.
struct BadCheckpoint {
  const char* name;
  const char* mutation;  // Python on the open h5py File `f`
  const char* key;       // named in the message
};

class QuantizeBadCheckpoint : public ::testing::TestWithParam<BadCheckpoint> {};

TEST_P(QuantizeBadCheckpoint, IsRefusedNotCrashed) {
  TempDir d, out;
  ASSERT_EQ(run_temper("convert " + stories() + " -o " + (d / "m.h5")).exit_code, 0);
  write_file(d / "mutate.py", std::string("import h5py, numpy as np, sys\n"
                                          "f = h5py.File(sys.argv[1], 'r+')\n"
                                          "def replace(name, data):\n"
                                          "    attrs = dict(f['tensors'][name].attrs)\n"
                                          "    del f['tensors'][name]\n"
                                          "    f['tensors'].create_dataset(name, data=data).attrs.update(attrs)\n") +
                                  GetParam().mutation + "\nf.close()\n");
  const auto m = run_shell(std::string(TEMPER_PYTHON) + " " + (d / "mutate.py") + " " + (d / "m.h5"));
  ASSERT_EQ(m.exit_code, 0) << m.err;
  for (const char* cmd : {"quantize", "eval", "inspect"}) {
    const std::string args = std::string(cmd) == "quantize" ? " -t Q4_0 -o " + (out / "m.gguf")
                             : std::string(cmd) == "eval"   ? " --text " + fixture("text/tinystories_sample.txt")
                                                            : "";
    const auto r = run_temper(std::string(cmd) + " " + (d / "m.h5") + args);
    EXPECT_EQ(r.exit_code, 1) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find(d / "m.h5"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find(GetParam().key), std::string::npos) << cmd << ": " << r.err;
    EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  }
  expect_nothing_left(out.path());
}

INSTANTIATE_TEST_SUITE_P(
    Fuzzed, QuantizeBadCheckpoint,
    ::testing::Values(
        BadCheckpoint{"empty_tensor", "replace('model.embed_tokens.weight', np.zeros((0, 64), np.float32))",
                      "model.embed_tokens.weight"},
        BadCheckpoint{"tensor_cut_to_1d",
                      "replace('model.layers.0.self_attn.q_proj.weight', np.zeros(64, np.float32))",
                      "model.layers.0.self_attn.q_proj.weight"},
        BadCheckpoint{"n_head_zero", "f['config/layers/n_head'][0] = 0", "n_head"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace temper
