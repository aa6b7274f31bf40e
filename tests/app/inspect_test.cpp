// `temper inspect` on GGUFs: values in full and of their own JSON type, the file type by name
// (checked against libllama's own llama_ftype_name), and files with invalid UTF-8 in keys,
// tensor names and strings (issue 15 finding 6: `internal error: [json.exception.type_error.316]`).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include "core/file.h"
#include "core/json.h"
#include "formats/gguf_bytes.h"
#include "util/test_util.h"

namespace temper {
namespace {
using namespace test;

std::string stories() { return fixture("model/stories260K-hf-f32"); }

Json inspect_json(const std::string& path) {
  const RunResult r = run_temper("inspect " + path + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? Json::parse(r.out) : Json();
}

TEST(Inspect, GgufValuesInFullWithTheirTypes) {
  TempDir d;
  ASSERT_EQ(run_temper("quantize " + stories() + " -t Q4_K_M -o " + (d / "m.gguf")).exit_code, 0);
  const Json j = inspect_json(d / "m.gguf");
  const Json& md = j["metadata"];
  // The vocabulary against the fixture's tokenizer.json (independent of the GGUF writer).
  const Json vocab = parse_json(read_text_file(stories() + "/tokenizer.json"), "tokenizer.json")["model"]["vocab"];
  const Json& tokens = md["tokenizer.ggml.tokens"]["value"];
  ASSERT_EQ(tokens.size(), 512u);
  for (const auto& [piece, id] : vocab.items()) EXPECT_EQ(tokens[id.get<size_t>()], piece);
  EXPECT_EQ(md["tokenizer.ggml.tokens"]["type"], "array[string]");
  EXPECT_EQ(md["tokenizer.ggml.scores"]["value"].size(), 512u);
  EXPECT_TRUE(md["tokenizer.ggml.scores"]["value"][3].is_number_float());
  EXPECT_TRUE(md["tokenizer.ggml.token_type"]["value"][0].is_number_integer());
  EXPECT_EQ(md["llama.block_count"]["value"], 5);
  // config.json's rms_norm_eps 1e-5, stored as f32: shown in its shortest form, same f32.
  EXPECT_EQ(md["llama.attention.layer_norm_rms_epsilon"]["value"].get<double>(), 1e-5);
  EXPECT_EQ(md["general.file_type"]["value"], 15);
  EXPECT_EQ(j["file_type"]["name"], "Q4_K_M");
  EXPECT_EQ(j["file_type"]["llama_cpp"], "Q4_K - Medium");
  const RunResult text = run_temper("inspect " + (d / "m.gguf"));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("file type: Q4_K_M (llama.cpp: Q4_K - Medium)"), std::string::npos) << text.out;
}

// Every general.file_type id: inspect's names against llama.cpp's llama_ftype_name, called in
// the libllama the tests use as reference. Ids that library does not know are skipped.
TEST(Inspect, FileTypeNamesAreLlamaCpps) {
  const std::string lib = std::string(TEMPER_LLAMA_REF_DIR) +
                          "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libllama.v0.5.0.so";
  void* h = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr) << dlerror();
  using FtypeName = const char* (*)(int);
  auto ftype_name = reinterpret_cast<FtypeName>(dlsym(h, "llama_ftype_name"));
  ASSERT_NE(ftype_name, nullptr);
  TempDir d;
  int checked = 0;
  for (int id = 0; id <= 41; ++id) {
    const std::string want = ftype_name(id);
    if (want.find("unknown") != std::string::npos) continue;
    Bytes f;
    f.header(0, 1).kv_u32("general.file_type", uint32_t(id)).pad();
    write_file(d / "t.gguf", f.b);
    const Json j = inspect_json(d / "t.gguf");
    EXPECT_EQ(j["file_type"]["llama_cpp"], want) << "id " << id;
    EXPECT_NE(j["file_type"]["name"], "unknown") << "id " << id;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

// Keys, tensor names and string values that are not UTF-8: JSON with U+FFFD in their place,
// the text listing with the bytes escaped; never an internal error.
TEST(Inspect, InvalidUtf8DoesNotCrash) {
  TempDir d;
  Bytes f;
  f.header(1, 3);
  f.str("general.architecture").u32(8).str("llama");
  f.str("bad.\xff\xfekey").u32(8).str("value \xc3( \x1b[2J");
  f.str("bad.list").u32(9).u32(8).u64(2).str("ok").str("\x80\x81");
  f.tensor("tensor.\xff", {4}, 0, 0);
  f.pad().zeros(16).pad();
  write_file(d / "bad.gguf", f.b);
  const RunResult r = run_temper("inspect " + (d / "bad.gguf") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  const Json j = Json::parse(r.out);
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_TRUE(j["metadata"].contains("bad." + fffd + fffd + "key")) << r.out;
  EXPECT_EQ(j["metadata"]["bad." + fffd + fffd + "key"]["value"], "value " + fffd + "( \x1b[2J");
  EXPECT_EQ(j["metadata"]["bad.list"]["value"][1], fffd + fffd);
  EXPECT_EQ(j["tensors"][0]["name"], "tensor." + fffd);

  const RunResult text = run_temper("inspect " + (d / "bad.gguf"));
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("bad.\\xff\\xfekey"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("tensor.\\xff"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("\\x1b[2J"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find('\x1b'), std::string::npos) << "raw escape sequence reached the terminal";
}

}  // namespace
}  // namespace temper
