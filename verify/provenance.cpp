#include "provenance.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/file.h"
#include "core/log.h"
#include "core/sha256.h"

namespace temper::verify {
namespace {

std::string file_sha256(const std::string& path) {
  const MappedFile f(path);
  Sha256 h;
  std::vector<uint8_t> chunk(std::min<uint64_t>(f.size(), 4 << 20));
  Progress bar("hash " + path, f.size());  // a large model takes a while to read
  for (uint64_t off = 0; off < f.size(); off += chunk.size()) {
    const std::span<uint8_t> part(chunk.data(), std::min<uint64_t>(chunk.size(), f.size() - off));
    f.read_at(off, part, "bytes to hash");  // pread: one pass without touching the mapping
    h.update(part.data(), part.size());
    bar.add(part.size());
  }
  return h.hex_digest();
}

}  // namespace

std::string sha256_of_path(const std::string& path) {
  if (!is_directory(path)) return file_sha256(path);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(path))
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  std::string listing;
  for (const std::string& n : names) listing += file_sha256((std::filesystem::path(path) / n).string()) + "  " + n + "\n";
  return sha256_hex(listing);
}

}  // namespace temper::verify
