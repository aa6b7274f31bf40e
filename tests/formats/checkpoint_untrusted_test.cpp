// Checkpoints from elsewhere (issue 15): the file is written in HDF5's 1.10 format, whose
// metadata is checksummed, so that flipped bytes in it are refused instead of reaching HDF5's
// parsers (which crashed or spun on them in the oldest format); h5py and HDF5's own tools still
// read it; and the reader validates config and shapes for every command.
#include <gtest/gtest.h>

#include <filesystem>

#include "convert.h"
#include "core/error.h"
#include "formats/checkpoint.h"
#include "util/test_util.h"

namespace temper {
namespace {
namespace fs = std::filesystem;
using test::TempDir;

std::string converted_stories(const TempDir& d) {
  const std::string path = d / "m.h5";
  ConvertOptions o;
  o.input = test::fixture("model/stories260K-hf-f32");
  o.output = path;
  convert_hf_to_checkpoint(o);
  return path;
}

// Opens the file and reads every tensor: all the metadata a command can touch.
void read_everything(const std::string& path) {
  CheckpointReader r(path);
  std::vector<uint8_t> scratch;
  for (const TensorInfo& t : r.tensors()) r.read(t, scratch);
}

TEST(CheckpointUntrusted, WrittenInTheChecksummedFormatThatOthersRead) {
  TempDir d;
  const std::string path = converted_stories(d);
  const std::string bytes = test::read_file(path);
  ASSERT_GT(bytes.size(), 9u);
  // Superblock version (byte 8): 0 is the oldest format (no checksums); 3 is HDF5 1.10's.
  EXPECT_EQ(int(uint8_t(bytes[8])), 3);
  EXPECT_NE(bytes.find("OHDR"), std::string::npos) << "version-2 object headers (checksummed) expected";
  // Independent readers: h5py (Debian's, on libhdf5 1.10) and HDF5's own h5dump.
  auto r = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() +
                           "/tests/scripts/h5py_read_checkpoint.py " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model.layers.4.mlp.down_proj.weight"), std::string::npos);
  r = test::run_shell("h5dump -H " + path + " > /dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Flips one byte inside every checksummed metadata block a reader of the checkpoint uses: the
// superblock, object headers and their continuations, the fractal heaps and name-index B-trees
// of dense groups and attributes, chunk indexes. Each must be an Error naming the file, never a
// crash, a hang or silently wrong data. Not targeted: the global heap ("GCOL", the one metadata
// block without a checksum: variable-length strings), free-space managers ("FSHD", "FSSE", read
// only when a file is modified) and creation-order indexes (B-tree type 6), which no temper
// reader consults.
TEST(CheckpointUntrusted, FlippedMetadataByteIsAnError) {
  TempDir d;
  const std::string path = converted_stories(d);
  const std::string bytes = test::read_file(path);
  std::vector<size_t> targets = {12};  // in the superblock: its base address
  for (const char* sig : {"OHDR", "OCHK", "FAHD", "FADB", "EAHD", "EAIB", "EADB", "FRHP", "FHDB", "FHIB"})
    for (size_t at = bytes.find(sig); at != std::string::npos; at = bytes.find(sig, at + 1)) targets.push_back(at + 6);
  for (const char* sig : {"BTHD", "BTIN", "BTLF"})  // v2 B-trees; byte 5 is the tree's type
    for (size_t at = bytes.find(sig); at != std::string::npos; at = bytes.find(sig, at + 1))
      if (at + 6 < bytes.size() && bytes[at + 4] == 0 && (bytes[at + 5] == 5 || bytes[at + 5] == 8))
        targets.push_back(at + 6);
  ASSERT_GT(targets.size(), 40u) << "expected an object header per tensor";
  int refused = 0;
  for (size_t at : targets) {
    std::string bad = bytes;
    bad[at] = char(bad[at] ^ 0x5a);
    const std::string copy = d / "flipped.h5";
    test::write_file(copy, bad);
    try {
      read_everything(copy);
      ADD_FAILURE() << "byte " << at << " flipped, and the file still read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(copy), std::string::npos) << e.what();
      ++refused;
    }
  }
  EXPECT_EQ(refused, int(targets.size()));
}

// The validation every command shares, in the reader itself (quantize used to skip it).
TEST(CheckpointUntrusted, ConfigAndShapesAreValidatedOnOpen) {
  TempDir d;
  const std::string path = converted_stories(d);
  auto mutate = [&](const std::string& python) {
    const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " -c \"import h5py, numpy as np; f = h5py.File('" +
                                   path + "', 'r+'); " + python + "\"");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  mutate("f['config'].attrs['n_vocab'] = np.int32(513)");
  try {
    CheckpointReader r(path);
    ADD_FAILURE() << "n_vocab 513 against a 512-row embedding was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.embed_tokens.weight"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  mutate("f['config'].attrs['n_vocab'] = np.int32(512); f['config/layers/n_head_kv'][2] = 3");
  try {
    CheckpointReader r(path);
    ADD_FAILURE() << "n_head_kv 3 for 8 heads was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_head_kv"), std::string::npos) << e.what();
  }
  mutate("f['config/layers/n_head_kv'][2] = 4");
  EXPECT_NO_THROW(read_everything(path));
}

}  // namespace
}  // namespace temper
