// `temper convert` end to end: every tensor in the .h5 equals the source bit for bit, checked
// by an independent reader (h5py + numpy in tests/scripts/st_tool.py), for the stories260K
// fixtures and tiny random checkpoints of every architecture; bad input fails cleanly.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/json.h"
#include "model/arch.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::run_shell;
using test::run_temper;
using test::TempDir;

std::string py() { return std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/tests/scripts/st_tool.py "; }
std::string plugin_env() { return "HDF5_PLUGIN_PATH=" + test::build_dir() + "/hdf5-plugins "; }

void expect_same_as_source(const std::string& h5, const std::string& hf_dir, bool compressed = false,
                           const std::string& skipped = "") {
  auto r = run_shell((compressed ? plugin_env() : "") + py() + "compare " + h5 + " " + hf_dir + " '" + skipped + "'");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"ok\": true"), std::string::npos) << r.out;
}

class ConvertFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ConvertFixture, BitExactThroughH5py) {
  TempDir d;
  const std::string src = test::fixture("model/" + GetParam());
  auto r = run_temper("convert " + src + " -o " + (d / "m.h5"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_source(d / "m.h5", src);

  r = run_temper("convert " + src + " -o " + (d / "z.h5") + " --compress 5 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json report = Json::parse(r.out);
  EXPECT_EQ(report["arch"], "llama");
  EXPECT_GT(report["parameters"].get<uint64_t>(), 260000u);
  expect_same_as_source(d / "z.h5", src, /*compressed=*/true);
  // Without the plugin h5py cannot decode the compressed data: the filter is really in use.
  auto plain = run_shell(py() + "compare " + (d / "z.h5") + " " + src);
  EXPECT_NE(plain.exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(Stories260K, ConvertFixture,
                         ::testing::Values("stories260K-hf-f32", "stories260K-hf-bf16", "stories260K-hf-f16",
                                           "stories260K-hf-f32-sharded-untied"));

TEST(Convert, InspectReportsTheCheckpoint) {
  TempDir d;
  ASSERT_EQ(run_temper("convert " + test::fixture("model/stories260K-hf-bf16") + " -o " + (d / "m.h5")).exit_code, 0);
  auto r = run_temper("inspect " + (d / "m.h5") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["format"], "temper-checkpoint");
  EXPECT_EQ(j["model"]["n_layer"], 5);
  EXPECT_EQ(j["tokenizer"]["tokens"], 512);
  EXPECT_EQ(j["tensors"].size(), 47u);  // embedding + 5 layers x 9 + final norm; tied: no lm_head
  for (const auto& t : j["tensors"]) EXPECT_EQ(t["dtype"], "bf16") << t["name"];
  r = run_temper("inspect " + test::fixture("model/stories260K-hf-f32-sharded-untied") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["tensors"].size(), 48u);  // + lm_head
}

TEST(Convert, TinyModelsOfEveryArchitectureRoundTrip) {
  TempDir d;
  auto gen = run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/scripts/tiny_models.py " + (d / "tiny"));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  int converted = 0;
  std::set<std::string> archs;
  for (const auto& entry : fs::directory_iterator(d / "tiny")) {
    if (!entry.is_directory()) continue;
    const std::string src = entry.path().string(), out = d / (entry.path().filename().string() + ".h5");
    auto r = run_temper("convert " + src + " -o " + out + " --json");
    ASSERT_EQ(r.exit_code, 0) << src << ": " << r.err;
    const Json report = Json::parse(r.out);
    archs.insert(report["arch"].get<std::string>());
    // Tensors temper skips as unused (e.g. k/v of Gemma 4 KV-shared layers) are reported by
    // name; towers are reported by prefix and skipped by the checker on its own.
    std::string skipped;
    for (const auto& s : report["skipped"]) {
      const std::string line = s;
      if (line.find(": not used by") != std::string::npos) skipped += (skipped.empty() ? "" : ",") + line.substr(0, line.find(':'));
    }
    expect_same_as_source(out, src, false, skipped);
    ++converted;
  }
  EXPECT_GE(converted, 8);
  std::set<std::string> registered;  // every architecture converts (arch_registry_test: each has a tiny model)
  for (const ArchSpec* a : all_archs()) registered.insert(std::string(a->id));
  EXPECT_EQ(archs, registered);
}

// --- bad input: clear one-line error naming the culprit, exit != 0, no output left behind.

void expect_clean_failure(const test::RunResult& r, const std::string& out_dir, const std::string& must_mention) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(must_mention), std::string::npos) << "error does not mention '" << must_mention << "': " << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  for (const auto& e : fs::directory_iterator(out_dir))
    ADD_FAILURE() << "left behind: " << e.path();
}

TEST(ConvertBadInput, OutputExistsNeedsForce) {
  TempDir d, out;
  test::write_file(out / "m.h5", "keep me");
  auto r = run_temper("convert " + test::fixture("model/stories260K-hf-f32") + " -o " + (out / "m.h5"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--force"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(out / "m.h5"), "keep me");
  // --force replaces it; --sync (fsync before the rename) gives the same file.
  r = run_temper("--sync convert " + test::fixture("model/stories260K-hf-f32") + " -o " + (out / "m.h5") + " --force");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_source(out / "m.h5", test::fixture("model/stories260K-hf-f32"));
}

TEST(ConvertBadInput, MissingRequiredTensorIsNamed) {
  TempDir d, out;
  ASSERT_EQ(run_shell(py() + "drop " + test::fixture("model/stories260K-hf-f32") + " " + (d / "m") +
                      " model.layers.3.mlp.up_proj.weight").exit_code, 0);
  expect_clean_failure(run_temper("convert " + (d / "m") + " -o " + (out / "m.h5")), out.path(),
                       "model.layers.3.mlp.up_proj.weight");
}

TEST(ConvertBadInput, ConfigKeyMissingOrMistyped) {
  TempDir d, out;
  const std::string src = test::fixture("model/stories260K-hf-f32");
  ASSERT_EQ(run_shell(py() + "edit-config " + src + " " + (d / "a") + " '{\"num_attention_heads\": null}'").exit_code, 0);
  expect_clean_failure(run_temper("convert " + (d / "a") + " -o " + (out / "m.h5")), out.path(), "num_attention_heads");
  ASSERT_EQ(run_shell(py() + "edit-config " + src + " " + (d / "b") + " '{\"hidden_size\": \"64\"}'").exit_code, 0);
  expect_clean_failure(run_temper("convert " + (d / "b") + " -o " + (out / "m.h5")), out.path(), "hidden_size");
  ASSERT_EQ(run_shell(py() + "edit-config " + src + " " + (d / "c") + " '{\"architectures\": [\"MambaForCausalLM\"]}'").exit_code, 0);
  auto r = run_temper("convert " + (d / "c") + " -o " + (out / "m.h5"));
  expect_clean_failure(r, out.path(), "MambaForCausalLM");
  EXPECT_NE(r.err.find("LlamaForCausalLM"), std::string::npos) << "should list supported archs: " << r.err;
  // A shape that contradicts the config is named too.
  ASSERT_EQ(run_shell(py() + "edit-config " + src + " " + (d / "e") + " '{\"intermediate_size\": 128}'").exit_code, 0);
  expect_clean_failure(run_temper("convert " + (d / "e") + " -o " + (out / "m.h5")), out.path(), "mlp");
}

TEST(ConvertBadInput, OutputDirectoryMissingOrNotWritable) {
  TempDir out;
  auto r = run_temper("convert " + test::fixture("model/stories260K-hf-f32") + " -o " + (out / "no/such/m.h5"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  test::write_file(out / "file", "");
  r = run_temper("convert " + test::fixture("model/stories260K-hf-f32") + " -o " + (out / "file/m.h5"));
  EXPECT_NE(r.exit_code, 0);
}

TEST(ConvertBadInput, DiskFullLeavesNothing) {
  TempDir out;
  // 256 KiB file-size limit, the model is 1 MiB: HDF5's writes fail part way.
  auto r = run_shell("ulimit -f 256; trap '' XFSZ; " + test::build_dir() + "/temper convert " +
                     test::fixture("model/stories260K-hf-f32") + " -o " + (out / "m.h5"));
  expect_clean_failure(r, out.path(), "m.h5");
}

// A real full disk: a 512 KiB tmpfs (the model is 1 MiB), mounted in a private mount namespace
// so that it goes away with the shell. The uncompressed path runs out when it reserves a
// tensor's blocks, the compressed one inside HDF5's writes; both once crashed at exit.
TEST(ConvertBadInput, FullFileSystemLeavesNothing) {
  TempDir d;
  for (const std::string flags : {"", "--compress"}) {
    auto r = run_shell("unshare -m sh -c 'mount -t tmpfs -o size=512k tmpfs \"$1\" 2>/dev/null || exit 77; "
                       "\"$2\" convert \"$3\" -o \"$1/m.h5\" $4; rc=$?; ls -A \"$1\"; exit $rc' sh " +
                       d.path() + " " + test::build_dir() + "/temper " + test::fixture("model/stories260K-hf-f32") +
                       " '" + flags + "'");
    if (r.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
    EXPECT_EQ(r.exit_code, 1) << flags << ": " << r.err;  // an error, not a signal
    EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << flags << ": " << r.err;
    EXPECT_NE(r.err.find("m.h5"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << flags << ": left behind";
  }
}

TEST(ConvertBadInput, NeverOverwritesAnInput) {
  TempDir d;
  fs::copy(test::fixture("model/stories260K-hf-f32"), d / "m");
  const std::string before = test::read_file(d / "m/model.safetensors");
  auto r = run_temper("convert " + (d / "m") + " -o " + (d / "m/model.safetensors") + " --force");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("input"), std::string::npos) << r.err;
  EXPECT_EQ(test::read_file(d / "m/model.safetensors"), before);
}

}  // namespace
}  // namespace temper

namespace temper {
namespace {

// Every bad-input case of the convert issue, at the command line: exit != 0, a one-line error
// that names the file (and the tensor or key where there is one), no output left behind.
struct BadCase {
  const char* kind;
  const char* must_mention;  // besides the file name
};

class ConvertBadSafetensors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConvertBadSafetensors, FailsCleanly) {
  TempDir d, out;
  ASSERT_EQ(run_shell(py() + "corrupt " + test::fixture("model/stories260K-hf-f32") + " " + (d / "m") + " " +
                      GetParam().kind).exit_code, 0);
  auto r = run_temper("convert " + (d / "m") + " -o " + (out / "m.h5"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "want one line: " << r.err;
  EXPECT_NE(r.err.find("safetensors"), std::string::npos) << "should name the file: " << r.err;
  EXPECT_NE(r.err.find(GetParam().must_mention), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  for (const auto& e : fs::directory_iterator(out.path())) ADD_FAILURE() << "left behind: " << e.path();
}

INSTANTIATE_TEST_SUITE_P(
    Catalog, ConvertBadSafetensors,
    ::testing::Values(BadCase{"truncated", "model.safetensors"}, BadCase{"header_too_long", "header"},
                      BadCase{"not_json", "JSON"}, BadCase{"deep_nesting", "nested"},
                      BadCase{"offset_out_of_range", "model.embed_tokens.weight"},
                      BadCase{"overlap", "overlaps"}, BadCase{"size_mismatch", "model.embed_tokens.weight"},
                      BadCase{"shape_overflow", "overflow"}, BadCase{"unknown_dtype", "F12"},
                      BadCase{"unsupported_dtype", "I8"}, BadCase{"duplicate_across_shards", "model-0000"},
                      BadCase{"missing_shard", "model-00002-of-00002.safetensors"}),
    [](const auto& info) { return std::string(info.param.kind); });

}  // namespace
}  // namespace temper
