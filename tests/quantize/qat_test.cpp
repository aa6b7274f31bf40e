// Checkpoints trained for Q4_0: weights on a Q4_0 lattice are detected and written so that
// llama.cpp's own decoder (gguf-py) gives back exactly the checkpoint's values, where ggml's
// default rounding does not; a normal checkpoint is not detected and its file is unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/half.h"
#include "core/json.h"
#include "quant/quant.h"
#include "quantize/qat.h"
#include "util/test_util.h"

namespace temper {
namespace {
using namespace test;

std::string py() { return std::string(TEMPER_PYTHON) + " " + source_dir() + "/tests/scripts/qat_lattice.py "; }

Json run_json(const std::string& cmd) {
  auto r = run_shell(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
  return Json::parse(r.out);
}

// A block d·q stored in bf16 (which rounds it) fits, and ggml's decoder gives back d·q.
TEST(QatLattice, Bf16RoundedBlockFitsAndDecodesToTheLattice) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> qdist(-7, 7);  // no -8: ggml's search would miss the scale
  const float d = f16_to_f32(f32_to_f16(0.0123f));
  float lattice[32], x[32], decoded[32];
  for (int i = 0; i < 32; ++i) {
    lattice[i] = d * float(i == 5 ? 7 : qdist(rng));
    x[i] = bf16_to_f32(f32_to_bf16(lattice[i]));
  }
  uint8_t block[kQ4_0BlockBytes];
  ASSERT_TRUE(fit_q4_0_block(x, DType::kBF16, block));
  quant::dequantize_row(DType::kQ4_0, block, decoded, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(bf16_to_f32(f32_to_bf16(decoded[i])), x[i]) << i;
  // ggml's own rounding of the same block does not reproduce it.
  quant::quantize_rows(DType::kQ4_0, x, block, 1, 32, nullptr);
  quant::dequantize_row(DType::kQ4_0, block, decoded, 32);
  int differ = 0;
  for (int i = 0; i < 32; ++i) differ += bf16_to_f32(f32_to_bf16(decoded[i])) != x[i];
  EXPECT_GT(differ, 0);
}

TEST(QatLattice, GaussianWeightsAreOffTheLattice) {
  std::mt19937 rng(1);
  std::normal_distribution<float> g(0, 0.02f);
  std::vector<float> w(32 * 4096);
  for (float& v : w) v = bf16_to_f32(f32_to_bf16(g(rng)));
  LatticeStats s;
  measure_q4_0_lattice(w.data(), int64_t(w.size()), DType::kBF16, s);
  EXPECT_EQ(s.blocks, 4096);
  EXPECT_EQ(s.on_lattice, 0);
  EXPECT_FALSE(s.detected());
}

class QatCheckpoint : public ::testing::TestWithParam<const char*> {};

TEST_P(QatCheckpoint, Q4_0ReproducesTheLatticeExactlyWhereTheDefaultDoesNot) {
  TempDir d;
  const std::string src = fixture(std::string("model/stories260K-hf-") + GetParam()), snap = d / "qat";
  const Json snapped = run_json(py() + "snap " + src + " " + snap + " --embeddings");
  const size_t n_snapped = snapped["snapped"].size();
  ASSERT_EQ(n_snapped, 31u);  // 5 layers x q, k, v, o, gate, up (ffn_down rows are 172 wide) + embeddings

  auto r = run_temper("quantize " + snap + " -t Q4_0 --json -o " + (d / "qat.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json q = Json::parse(r.out)["qat"];
  EXPECT_EQ(q["tensors_on_lattice"], n_snapped) << q.dump();
  EXPECT_EQ(q["blocks_on_lattice"], q["blocks"]) << q.dump();
  EXPECT_EQ(q["blocks_off_lattice"], 0) << q.dump();
  const Json exact = run_json(py() + "check " + (d / "qat.gguf") + " " + snap);
  EXPECT_EQ(exact["tensors"], n_snapped) << exact.dump();
  EXPECT_EQ(exact["mismatched"], 0) << exact.dump();

  ASSERT_EQ(run_temper("quantize " + snap + " -t Q4_0 --no-qat-detect -o " + (d / "plain.gguf")).exit_code, 0);
  const Json plain = run_json(py() + "check " + (d / "plain.gguf") + " " + snap);
  EXPECT_GT(plain["mismatched"].get<int64_t>(), plain["elements"].get<int64_t>() / 10) << plain.dump();

  // KL against the checkpoint. From f32 the exact file differs only by ffn_down's f16 rounding
  // (2^-11 relative) and arithmetic order: measured ~1e-7. From bf16 it decodes to d·q, which
  // the checkpoint holds rounded to bf16 (up to 2^-8 relative): measured ~5e-5. ggml's rounding
  // of the lattice gives ~5e-2 either way. The bounds sit ~20x above the measured values.
  const double kl_bound = std::string(GetParam()) == "f32" ? 1e-5 : 1e-3;
  r = run_temper("compare " + snap + " " + (d / "qat.gguf") + " " + (d / "plain.gguf") + " --text " +
                 fixture("text/tinystories_sample.txt") + " --ctx 128 --chunks 4 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json c = Json::parse(r.out)["candidates"];
  EXPECT_LT(c[0]["kl"]["mean"].get<double>(), kl_bound) << c[0].dump();
  EXPECT_GT(c[1]["kl"]["mean"].get<double>(), 1e-3) << c[1].dump();
}

INSTANTIATE_TEST_SUITE_P(Storage, QatCheckpoint, ::testing::Values("f32", "bf16"));

TEST(QatCheckpoint, NormalCheckpointIsNotDetectedAndItsFileIsUnchanged) {
  TempDir d;
  const std::string src = fixture("model/stories260K-hf-bf16");
  auto r = run_temper("quantize " + src + " -t Q4_0 --json -o " + (d / "a.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json q = Json::parse(r.out)["qat"];
  EXPECT_EQ(q["tensors_measured"], 31) << q.dump();
  EXPECT_EQ(q["tensors_on_lattice"], 0) << q.dump();
  ASSERT_EQ(run_temper("quantize " + src + " -t Q4_0 --no-qat-detect -o " + (d / "b.gguf")).exit_code, 0);
  EXPECT_EQ(read_file(d / "a.gguf"), read_file(d / "b.gguf"));
}

TEST(QatCheckpoint, PartlyOnTheLatticeIsNamedButNotDetected) {
  TempDir d;
  const std::string snap = d / "half";
  run_json(py() + "snap " + fixture("model/stories260K-hf-bf16") + " " + snap + " --half model.layers.1.mlp.up_proj.weight");
  auto r = run_temper("quantize " + snap + " -t Q4_0 --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["qat"]["tensors_on_lattice"], 0) << j["qat"].dump();
  for (const auto& t : j["tensors"])
    if (t["name"] == "blk.1.ffn_up.weight") EXPECT_EQ(t["note"], "50.0% of blocks on a Q4_0 lattice");
}

TEST(QatCheckpoint, AnotherTypeWarnsAndUntiedEmbeddingsKeepTheOutputType) {
  TempDir d;
  const std::string snap = d / "qat";
  run_json(py() + "snap " + fixture("model/stories260K-hf-f32-sharded-untied") + " " + snap);
  auto r = run_temper("quantize " + snap + " -t Q4_K_M -o " + (d / "k.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("lie on a Q4_0 lattice"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("-t Q4_0"), std::string::npos) << r.err;

  r = run_temper("quantize " + snap + " -t Q4_0 --dry-run --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("lie on a Q4_0 lattice"), std::string::npos) << r.err;
  for (const auto& t : Json::parse(r.out)["tensors"]) {
    const std::string name = t["name"];
    // Embeddings not on the lattice: llama.cpp's output type (Q6_K; Q8_0 for 64-wide rows),
    // not the Q4_0 that plain llama.cpp gives an untied table.
    if (name == "token_embd.weight" || name == "output.weight") EXPECT_EQ(t["type"], "q8_0") << name;
    if (name.find("attn_q") != std::string::npos) EXPECT_EQ(t["type"], "q4_0") << name;
  }
}

}  // namespace
}  // namespace temper
