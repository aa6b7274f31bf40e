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
// crash, a hang or silently wrong data. Not targeted: free-space managers ("FSHD", "FSSE", read
// only when a file is modified) and creation-order indexes (B-tree type 6), which no temper
// reader consults. There is no global heap ("GCOL", the one metadata block without a checksum,
// which holds variable-length data): temper writes none (WrittenWithoutGlobalHeap).
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

// Variable-length strings live in HDF5's global heap, whose collections have no checksum; its
// reader (H5HG_read) overflowed the heap under fuzzing. Strings are written fixed-length and
// lists of strings as NUL-terminated uint8, so the file has no global heap at all.
TEST(CheckpointUntrusted, WrittenWithoutGlobalHeap) {
  TempDir d;
  const std::string bytes = test::read_file(converted_stories(d));
  EXPECT_EQ(bytes.find("GCOL"), std::string::npos);
}

// Files in the layouts this build no longer reads are refused before HDF5 parses the parts that
// cannot be checked, each with the remedy: re-run convert.
TEST(CheckpointUntrusted, OlderLayoutsAreRefusedWithTheRemedy) {
  TempDir d;
  auto python = [&](const std::string& code) {
    const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " -c \"import h5py, numpy as np; " + code + "\"");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  };
  auto refused = [&](const std::string& path, const std::string& why) {
    try {
      read_everything(path);
      ADD_FAILURE() << path << " was read";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << msg;
      EXPECT_NE(msg.find(why), std::string::npos) << msg;
      EXPECT_NE(msg.find("re-run temper convert"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  const std::string v0 = d / "v0.h5";  // h5py's default: the oldest format, superblock 0
  python("h5py.File('" + v0 + "', 'w').attrs['format_version'] = np.int32(2)");
  refused(v0, "superblock version 0");

  const std::string vlen = d / "vlen.h5";  // h5py stores a str attribute variable-length
  python("f = h5py.File('" + vlen + "', 'w', libver=('v110', 'v110')); f.attrs['format'] = 'temper-checkpoint'");
  refused(vlen, "variable-length string");

  const std::string path = converted_stories(d);
  const std::string list = d / "list.h5";
  fs::copy_file(path, list);
  python("f = h5py.File('" + list + "', 'r+'); t = f['tokenizer']; n = [s.decode() for s in "
         "t['tokens'][()].tobytes().split(b'\\0')[:-1]]; del t['tokens']; "
         "t.create_dataset('tokens', data=n, dtype=h5py.string_dtype())");
  refused(list, "a list of HDF5 strings");

  const std::string v1 = d / "v1.h5";
  fs::copy_file(path, v1);
  python("h5py.File('" + v1 + "', 'r+').attrs['format_version'] = np.int32(1)");
  refused(v1, "format_version 1");
}

// scripts/h5_upgrade.py rewrites a file in the older layouts (oldest HDF5 format, variable-length
// strings, format_version 1, as h5py writes by default) into one this build reads, same content.
TEST(CheckpointUntrusted, H5UpgradeRewritesAnOlderFile) {
  TempDir d;
  const std::string path = converted_stories(d), old = d / "old.h5", up = d / "up.h5";
  // h5py's defaults: superblock 0, every str a variable-length string.
  const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " -c \"import h5py, numpy as np\n"
      "def conv(s, d):\n"
      "  for k, v in s.attrs.items(): d.attrs[k] = v.decode() if isinstance(v, bytes) else v\n"
      "  for n, o in s.items():\n"
      "    if isinstance(o, h5py.Group): conv(o, d.create_group(n, track_order=True))\n"
      "    else:\n"
      "      v = o[()]\n"
      "      if n in ('tokens', 'merges', 'files', 'tensor_names', 'ffn'): v = [x.decode() for x in v.tobytes().split(b'\\0')[:-1]]\n"
      "      elif isinstance(v, bytes): v = v.decode()\n"
      "      d.create_dataset(n, data=v, dtype=h5py.string_dtype() if isinstance(v, (str, list)) else None)\n"
      "      for k, a in o.attrs.items(): d[n].attrs[k] = a.decode() if isinstance(a, bytes) else a\n"
      "with h5py.File('" + path + "') as s, h5py.File('" + old + "', 'w') as d:\n"
      "  conv(s, d); d.attrs['format_version'] = np.int32(1)\n\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(uint8_t(test::read_file(old)[8]), 0);
  EXPECT_THROW(read_everything(old), Error);
  const auto u = test::run_shell(std::string(TEMPER_PYTHON) + " " + test::source_dir() + "/scripts/h5_upgrade.py " +
                                 old + " " + up);
  ASSERT_EQ(u.exit_code, 0) << u.err;
  CheckpointReader a(path), b(up);
  EXPECT_EQ(b.format_version(), kCheckpointFormatVersion);
  EXPECT_EQ(a.description().tokenizer.tokens, b.description().tokenizer.tokens);
  EXPECT_EQ(a.description().chat_template, b.description().chat_template);
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  std::vector<uint8_t> sa, sb;
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const auto x = a.read(a.tensors()[i], sa);
    const auto y = b.read(a.tensors()[i], sb);
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << a.tensors()[i].name;
  }
}

// A dataset whose shape needs more bytes than the file holds is refused before anything is
// allocated for it (h5py creates such datasets without storage; HDF5 would fill them with zeros).
TEST(CheckpointUntrusted, SizesBeyondTheFileAreRefusedBeforeAllocating) {
  TempDir d;
  const std::string path = converted_stories(d);
  auto refused = [&](const std::string& name, const std::string& code, const std::string& object) {
    const std::string bad = d / name;
    fs::copy_file(path, bad);
    const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " -c \"import h5py; f = h5py.File('" + bad +
                                   "', 'r+'); " + code + "\"");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    try {
      read_everything(bad);
      ADD_FAILURE() << name << " was read";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(object), std::string::npos) << msg;
      EXPECT_NE(msg.find("cannot be stored in a file of"), std::string::npos) << msg;
    }
  };
  // 2^30 f32 scores: 4 GiB, in a file of ~1 MB.
  refused("scores.h5", "t = f['tokenizer']; del t['scores']; t.create_dataset('scores', shape=(1 << 30,), dtype='<f4')",
          "/tokenizer/scores");
  refused("tokens.h5", "t = f['tokenizer']; del t['tokens']; t.create_dataset('tokens', shape=(1 << 33,), dtype='u1')",
          "/tokenizer/tokens");
  // A tensor of 2^34 f32 (64 GiB) with its dtype attribute.
  refused("tensor.h5", "g = f['tensors']; n = 'model.norm.weight'; del g[n]; "
          "g.create_dataset(n, shape=(1 << 34,), dtype='<f4').attrs['dtype'] = __import__('numpy').bytes_('f32')",
          "model.norm.weight");
}

// Tensors may carry only the filters temper writes (shuffle, zstd); every other dataset none.
// HDF5's other decoders (deflate here; n-bit, scale-offset, szip) are never offered the file.
TEST(CheckpointUntrusted, OnlyTheFiltersTemperWritesAreRead) {
  TempDir d;
  const std::string path = converted_stories(d);
  auto refused = [&](const std::string& name, const std::string& code, const std::string& why) {
    const std::string bad = d / name;
    fs::copy_file(path, bad);
    const auto r = test::run_shell(std::string(TEMPER_PYTHON) + " -c \"import h5py, numpy as np; f = h5py.File('" +
                                   bad + "', 'r+'); " + code + "\"");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    try {
      read_everything(bad);
      ADD_FAILURE() << name << " was read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refused("tensor.h5", "g = f['tensors']; n = 'model.norm.weight'; w = g[n][()]; del g[n]; "
          "g.create_dataset(n, data=w, compression='gzip').attrs['dtype'] = np.bytes_('f32')",
          "filter 1 is not one temper writes");
  refused("list.h5", "t = f['tokenizer']; s = t['scores'][()]; del t['scores']; "
          "t.create_dataset('scores', data=s, compression='gzip')",
          "/tokenizer/scores: stored with filters");
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
