// convert on files from strangers (issue 15): sizes that would make it pad a vocabulary for
// minutes, a tokenizer.json it could never load, text that would garble the terminal, and the
// files a killed run leaves. Each case was found by mutation fuzzing and failed before the fix.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::run_shell;
using test::run_temper;
using test::TempDir;

std::string stories() { return test::fixture("model/stories260K-hf-f32"); }

// A copy of stories260K in `dst`, with the Python statement `patch` applied to the JSON `file`
// (loaded as `j`), and without the files in `drop`.
void patched_copy(const std::string& dst, const std::string& file, const std::string& patch,
                  std::initializer_list<std::string> drop = {}) {
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(stories())) fs::copy(e.path(), dst + "/" + e.path().filename().string());
  for (const std::string& f : drop) fs::remove(dst + "/" + f);
  const std::string script = dst + "/../patch.py";
  test::write_file(script, "import json, sys\np = sys.argv[1]\nj = json.load(open(p))\n" + patch +
                               "\njson.dump(j, open(p, 'w'), ensure_ascii=False)\n");
  const auto r = run_shell(std::string(TEMPER_PYTHON) + " " + script + " " + dst + "/" + file);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// Exit 1 (an Error, not a crash or an internal error), one line naming every needle, nothing
// written.
void expect_refused(const test::RunResult& r, const std::string& out_dir, std::initializer_list<std::string> needles) {
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "want one line: " << r.err;
  for (const std::string& n : needles) EXPECT_NE(r.err.find(n), std::string::npos) << "'" << n << "' not in: " << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  for (const auto& e : fs::directory_iterator(out_dir)) ADD_FAILURE() << "left behind: " << e.path();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// vocab_size 30,000,000 took 116 s and 3.4 GB before the error: the vocabulary was padded to it
// before the size was checked against the embedding (512 rows). Now the check comes first.
TEST(ConvertUntrusted, HugeVocabSizeIsRefusedAtOnce) {
  TempDir d, out;
  patched_copy(d / "m", "config.json", "j['vocab_size'] = 30000000");
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_temper("convert " + (d / "m") + " -o " + (out / "m.h5"));
  expect_refused(r, out.path(), {d / "m", "model.embed_tokens.weight", "30000000"});
  EXPECT_LT(seconds_since(t0), 10.0) << "the size must be refused before any padding";
}

// One added token id near 3e8 in a tokenizer.json (no tokenizer.model) made convert pad the
// vocabulary to 3e8 entries: now refused against the model's 512 rows before padding.
TEST(ConvertUntrusted, HugeTokenIdIsRefusedAtOnce) {
  TempDir d, out;
  patched_copy(d / "m", "tokenizer.json",
               "j['added_tokens'].append({'id': 300000000, 'content': '<x>', 'special': True})", {"tokenizer.model"});
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = run_temper("convert " + (d / "m") + " -o " + (out / "m.h5"));
  expect_refused(r, out.path(), {"tokenizer.json", "300000000", "512"});
  EXPECT_LT(seconds_since(t0), 10.0) << "the id must be refused before any padding";
}

// A tokenizer.json that convert used to accept and that every later eval/generate refused with
// "internal error: [json.exception.type_error.304] cannot use at() with number": convert now
// builds the tokenizer, and each malformed value is named by its key.
struct BrokenTokenizer {
  const char* name;
  const char* patch;
  const char* key;  // must appear in the message
};

class ConvertBrokenTokenizer : public ::testing::TestWithParam<BrokenTokenizer> {};

TEST_P(ConvertBrokenTokenizer, IsRefusedNamingTheKey) {
  TempDir d, out;
  patched_copy(d / "m", "tokenizer.json", GetParam().patch);
  const auto r = run_temper("convert " + (d / "m") + " -o " + (out / "m.h5"));
  expect_refused(r, out.path(), {d / "m", "tokenizer.json", GetParam().key});
}

INSTANTIATE_TEST_SUITE_P(
    Fuzzed, ConvertBrokenTokenizer,
    ::testing::Values(
        BrokenTokenizer{"merge_is_a_number", "j['model']['merges'][54] = 1e300", "model.merges[54]"},
        BrokenTokenizer{"merge_is_an_empty_list", "j['model']['merges'][3] = []", "model.merges[3]"},
        BrokenTokenizer{"fuse_unk_is_an_object", "j['model']['fuse_unk'] = {}", "model.fuse_unk"},
        BrokenTokenizer{"pattern_missing", "del j['normalizer']['normalizers'][1]['pattern']",
                        "normalizer.normalizers[1]"},
        BrokenTokenizer{"special_ids_missing", "del j['post_processor']['special_tokens']['<s>']['ids']",
                        "post_processor"},
        BrokenTokenizer{"decoder_content_is_a_number", "j['decoder']['decoders'][3]['content'] = 7",
                        "decoder.decoders[3]"},
        BrokenTokenizer{"vocab_id_is_a_string", "j['model']['vocab']['<s>'] = 'one'", "model.vocab['<s>']"},
        BrokenTokenizer{"added_token_flag_is_a_string", "j['added_tokens'][2]['special'] = 'yes'", "added_tokens[2]"}),
    [](const auto& info) { return std::string(info.param.name); });

// Text from a file is shown escaped: a newline and a terminal escape in architectures[0] used to
// reach the terminal raw, splitting the error over lines and colouring it.
TEST(ConvertUntrusted, FileTextInMessagesIsEscaped) {
  TempDir d, out;
  patched_copy(d / "m", "config.json", "j['architectures'] = ['Evil\\n\\x1b[31mRed\\x9b\\u0085']");
  const auto r = run_temper("convert " + (d / "m") + " -o " + (out / "m.h5"));
  expect_refused(r, out.path(), {"Evil\\n\\x1b[31mRed"});
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("\xc2\x9b"), std::string::npos) << "C1 CSI must be escaped: " << r.err;
}

// A run killed with SIGKILL leaves OUT.tmp-XXXXXXXX (nothing can remove it); the next run that
// writes OUT says what it is.
TEST(ConvertUntrusted, StaleTemporaryFileIsPointedOut) {
  TempDir out;
  test::write_file(out / "m.h5.tmp-0badc0de", "half a checkpoint");
  test::write_file(out / "other.h5.tmp-0badc0de", "not ours to mention");
  const auto r = run_temper("convert " + stories() + " -o " + (out / "m.h5"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(out / "m.h5.tmp-0badc0de"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("killed"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("other.h5"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(out / "m.h5.tmp-0badc0de")) << "it may belong to a run going on now: never removed";
}

}  // namespace
}  // namespace temper
