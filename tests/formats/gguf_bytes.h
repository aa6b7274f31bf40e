// Hand-assembled GGUF bytes for tests: a little-endian builder and a small valid file.
// Independent of GgufWriter, so reader tests do not check our writer against itself.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace temper::test {

// Little-endian byte builder for hand-made GGUF files.
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    b += s;
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    b += "GGUF";
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Bytes& tensor(std::string_view name, std::vector<int64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (int64_t n : ne) put(n);
    return u32(type).u64(offset);
  }
  Bytes& pad(size_t a = 32) {
    b.resize((b.size() + a - 1) / a * a, '\0');
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.append(n, '\0');
    return *this;
  }
};

// A small valid file: three KVs (string, i32 array, f32) and two tensors needing padding.
inline Bytes valid_file(uint32_t version = 3) {
  Bytes f;
  f.header(2, 3, version);
  f.str("general.architecture").u32(8).str("llama");
  f.str("tokenizer.ggml.token_type").u32(9).u32(5).u64(3).u32(1).u32(2).u32(3);
  f.str("x.eps").u32(6).put(1e-5f);
  f.tensor("a", {3, 2}, 0, 0);    // f32, 24 bytes, padded to 32
  f.tensor("b", {32}, 8, 32);     // q8_0, 34 bytes
  f.pad().zeros(32 + 34).pad();  // ggml pads after the last tensor too
  return f;
}

}  // namespace temper::test
