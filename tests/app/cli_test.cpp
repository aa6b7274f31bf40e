// The temper command line as a user meets it: global options anywhere, exit codes (0 ok, 1
// error in input or run, 2 usage), generate -v, and one bits-per-weight figure in every command.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/file.h"
#include "core/json.h"
#include "util/test_util.h"

namespace temper {
namespace {
using namespace test;

std::string stories() { return fixture("model/stories260K-hf-f32"); }
std::string sample_text() { return fixture("text/tinystories_sample.txt"); }

TEST(Cli, GlobalOptionsAfterTheSubcommand) {
  TempDir d;
  // -q after the subcommand silences it as before it ("wrote m.gguf ..." otherwise).
  const RunResult loud = run_temper("quantize " + stories() + " -t Q8_0 -o " + (d / "a.gguf"));
  ASSERT_EQ(loud.exit_code, 0) << loud.err;
  EXPECT_NE(loud.err, "");
  const RunResult after = run_temper("quantize " + stories() + " -t Q8_0 -o " + (d / "b.gguf") + " -q");
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(after.err, "");
  const RunResult before = run_temper("-q quantize " + stories() + " -t Q8_0 -o " + (d / "c.gguf"));
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(before.err, "");
  // The case: eval ... -q.
  const RunResult eval = run_temper("eval " + stories() + " --text " + sample_text() + " --ctx 128 -q --json");
  EXPECT_EQ(eval.exit_code, 0) << eval.err;
  EXPECT_EQ(Json::parse(eval.out)["n_text_tokens"], 1878);  // the fixture's reference encoding
  // --threads after the subcommand; quantize's own -t stays --type.
  const RunResult q = run_temper("quantize " + stories() + " -t Q8_0 -o " + (d / "m.gguf") + " --threads 1 --json");
  ASSERT_EQ(q.exit_code, 0) << q.err;
  EXPECT_EQ(Json::parse(q.out)["file_type"], "Q8_0");
}

TEST(Cli, ExitCodes) {
  EXPECT_EQ(run_temper("--help").exit_code, 0);
  EXPECT_EQ(run_temper("--version").exit_code, 0);
  EXPECT_EQ(run_temper("eval --help").exit_code, 0);
  EXPECT_EQ(run_temper("").exit_code, 2);                                  // no subcommand
  EXPECT_EQ(run_temper("frobnicate").exit_code, 2);                        // unknown subcommand
  EXPECT_EQ(run_temper("eval " + stories()).exit_code, 2);                 // --text missing
  EXPECT_EQ(run_temper("inspect " + stories() + " --bogus").exit_code, 2);  // unknown option
  EXPECT_EQ(run_temper("eval " + stories() + " --text x --ctx many").exit_code, 2);  // not a number
  EXPECT_EQ(run_temper("generate " + stories() + " -p x --top-p 2").exit_code, 2);   // out of range
  EXPECT_EQ(run_temper("generate " + stories() + " -p x --system s").exit_code, 2);  // needs --chat
  const RunResult missing = run_temper("inspect /nonexistent/model.gguf");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/model.gguf"), std::string::npos) << missing.err;
}

// -v shows what the model is given (the rendered prompt and its ids) and the speeds, on
// stderr; stdout stays the continuation. Prompt ids: the fixture's reference (llama2.c's
// tokenizer through sentencepiece), not temper's.
TEST(Cli, GenerateVerbose) {
  const Json ref = parse_json(read_text_file(fixture("model/reference/greedy_once_upon_a_time.json")), "greedy");
  const RunResult r = run_temper("generate " + stories() + " -p 'Once upon a time' -n 16 -v");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("prompt text: \"Once upon a time\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("prompt ids (5): " + ref["prompt_ids_with_bos"].dump()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("prompt: 5 tokens in "), std::string::npos) << r.err;
  // 16 new tokens need 15 one-token passes (the last one sampled is not fed back).
  EXPECT_NE(r.err.find("decode: 15 tokens in "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" tokens/s"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("prompt"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(0, 20), ref["text"].get<std::string>().substr(0, 20));
  // The chat rendering is what -v shows with --chat, escaped (stories260K has no template: the
  // prompt is used as plain text, with a warning).
  const RunResult plain = run_temper("generate " + stories() + " -p 'Once' -n 1");
  EXPECT_EQ(plain.err.find("prompt ids"), std::string::npos) << "only with -v: " << plain.err;
}

// Bytes per block of each ggml type (ggml-common.h block_q4_K etc.), to recompute a file's
// tensor bytes from its types and shapes alone.
double ggml_bytes(const std::string& type, uint64_t n) {
  static const std::map<std::string, std::pair<int, int>> kBlocks = {
      {"f32", {1, 4}},     {"f16", {1, 2}},      {"bf16", {1, 2}},     {"q4_0", {32, 18}},
      {"q4_1", {32, 20}},  {"q5_0", {32, 22}},   {"q5_1", {32, 24}},   {"q8_0", {32, 34}},
      {"q2_K", {256, 84}}, {"q3_K", {256, 110}}, {"q4_K", {256, 144}}, {"q5_K", {256, 176}},
      {"q6_K", {256, 210}}};
  const auto it = kBlocks.find(type);
  if (it == kBlocks.end()) ADD_FAILURE() << "no block size for " << type;
  return it == kBlocks.end() ? 0 : double(n) / it->second.first * it->second.second;
}

// One definition everywhere: llama.cpp's BPW (tensor bytes x 8 / parameters), the same number
// from quantize --dry-run, quantize, inspect, compare, recomputed here from ggml block sizes.
TEST(Cli, OneBitsPerWeight) {
  TempDir d;
  const std::string gguf = d / "m.gguf";
  const RunResult plan = run_temper("quantize " + stories() + " -t Q4_K_M --dry-run --json");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const RunResult made = run_temper("quantize " + stories() + " -t Q4_K_M -o " + gguf + " --json");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const RunResult inspected = run_temper("inspect " + gguf + " --json");
  ASSERT_EQ(inspected.exit_code, 0) << inspected.err;
  const RunResult compared = run_temper("compare " + stories() + " " + gguf + " --text " + sample_text() + " --ctx 128 --json");
  ASSERT_EQ(compared.exit_code, 0) << compared.err;

  const Json ins = Json::parse(inspected.out);
  double bytes = 0, params = 0;
  for (const Json& t : ins["tensors"]) {
    uint64_t n = 1;
    for (const Json& dim : t["shape"]) n *= dim.get<uint64_t>();
    bytes += ggml_bytes(t["dtype"].get<std::string>(), n);
    params += double(n);
  }
  const double expected = 8 * bytes / params;
  std::printf("Q4_K_M stories260K: %.6f bits per weight (file: %.6f)\n", expected,
              8.0 * double(read_file(gguf).size()) / params);
  EXPECT_NEAR(Json::parse(plan.out)["bits_per_weight"].get<double>(), expected, 1e-12);
  EXPECT_NEAR(Json::parse(made.out)["bits_per_weight"].get<double>(), expected, 1e-12);
  EXPECT_NEAR(ins["bits_per_weight"].get<double>(), expected, 1e-12);
  EXPECT_NEAR(Json::parse(compared.out)["candidates"][0]["bits_per_weight"].get<double>(), expected, 1e-12);
  EXPECT_EQ(Json::parse(compared.out)["base"]["bits_per_weight"].get<double>(), 32.0);  // f32 safetensors
  // The text forms print it too.
  EXPECT_NE(run_temper("inspect " + gguf).out.find("bits per weight"), std::string::npos);
}

}  // namespace
}  // namespace temper
