// GGUF KV values: type names, construction, checked access and display for `temper inspect`.
#include <cinttypes>
#include <cstdio>

#include "formats/gguf.h"

namespace temper {
namespace {

struct TypeRow {
  std::string_view name;
  size_t size;  // 0: variable size
};
// Indexed by the gguf_type id; sizes from ggml src/gguf.cpp GGUF_TYPE_SIZE.
constexpr TypeRow kTypes[kGgufTypeCount] = {
    {"u8", 1},  {"i8", 1},  {"u16", 2},    {"i16", 2},   {"u32", 4},  {"i32", 4}, {"f32", 4},
    {"bool", 1}, {"string", 0}, {"array", 0}, {"u64", 8}, {"i64", 8}, {"f64", 8},
};

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// One numeric element as text; floats with enough digits to round-trip.
std::string element_str(GgufType t, const uint8_t* p) {
  char buf[64];
  switch (t) {
    case GgufType::kU8: return std::to_string(load<uint8_t>(p));
    case GgufType::kI8: return std::to_string(load<int8_t>(p));
    case GgufType::kU16: return std::to_string(load<uint16_t>(p));
    case GgufType::kI16: return std::to_string(load<int16_t>(p));
    case GgufType::kU32: return std::to_string(load<uint32_t>(p));
    case GgufType::kI32: return std::to_string(load<int32_t>(p));
    case GgufType::kU64: return std::to_string(load<uint64_t>(p));
    case GgufType::kI64: return std::to_string(load<int64_t>(p));
    case GgufType::kBool: return load<uint8_t>(p) ? "true" : "false";
    case GgufType::kF32: std::snprintf(buf, sizeof buf, "%.9g", double(load<float>(p))); return buf;
    case GgufType::kF64: std::snprintf(buf, sizeof buf, "%.17g", load<double>(p)); return buf;
    default: return "?";
  }
}

// A string for display: quoted, control characters escaped, long strings shortened.
std::string quoted(std::string_view s) {
  constexpr size_t kMaxChars = 120;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMaxChars; ++i) {
    const unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  if (s.size() > kMaxChars) out += cat("...\" (", s.size(), " bytes)");
  else out += '"';
  return out;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  return uint32_t(t) < kGgufTypeCount ? kTypes[uint32_t(t)].name : "invalid";
}

size_t gguf_type_size(GgufType t) { return uint32_t(t) < kGgufTypeCount ? kTypes[uint32_t(t)].size : 0; }

GgufValue GgufValue::raw(GgufType elem, bool is_array, uint64_t count, std::span<const uint8_t> bytes) {
  const size_t size = gguf_type_size(elem);
  TEMPER_CHECK(size != 0, "GGUF value: element type ", gguf_type_name(elem), " is not a fixed-size type");
  TEMPER_CHECK(is_array || count == 1, "GGUF value: a scalar has exactly one element");
  TEMPER_CHECK(count <= bytes.size() / size && bytes.size() == count * size, "GGUF value: ", bytes.size(),
               " bytes do not hold ", count, " ", gguf_type_name(elem), " elements");
  GgufValue v;
  v.elem_ = elem;
  v.is_array_ = is_array;
  v.count_ = count;
  v.bytes_.assign(bytes.begin(), bytes.end());
  return v;
}

GgufValue GgufValue::array(const std::vector<bool>& b) {
  std::vector<uint8_t> bytes(b.begin(), b.end());
  return raw(GgufType::kBool, true, bytes.size(), bytes);
}

GgufValue GgufValue::string(std::string s) {
  GgufValue v;
  v.elem_ = GgufType::kString;
  v.bytes_.clear();
  v.str_ = std::move(s);
  return v;
}

GgufValue GgufValue::string_array(std::vector<std::string> strs) {
  GgufValue v;
  v.elem_ = GgufType::kString;
  v.is_array_ = true;
  v.count_ = strs.size();
  v.bytes_.clear();
  v.strs_ = std::move(strs);
  return v;
}

std::string GgufValue::type_str() const {
  return is_array_ ? cat("array[", gguf_type_name(elem_), "]") : std::string(gguf_type_name(elem_));
}

void GgufValue::check_kind(GgufType elem, bool array) const {
  if (elem_ == elem && is_array_ == array) return;
  const std::string want = array ? cat("array[", gguf_type_name(elem), "]") : std::string(gguf_type_name(elem));
  fail("GGUF value is ", type_str(), ", expected ", want);
}

const std::string& GgufValue::as_string() const {
  check_kind(GgufType::kString, false);
  return str_;
}

const std::vector<std::string>& GgufValue::as_string_array() const {
  check_kind(GgufType::kString, true);
  return strs_;
}

std::string GgufValue::to_display(size_t max_elems) const {
  if (!is_array_) return elem_ == GgufType::kString ? quoted(str_) : element_str(elem_, bytes_.data());
  std::string out = "[";
  const uint64_t shown = std::min<uint64_t>(count_, max_elems);
  const size_t size = gguf_type_size(elem_);
  for (uint64_t i = 0; i < shown; ++i) {
    if (i) out += ", ";
    out += elem_ == GgufType::kString ? quoted(strs_[i]) : element_str(elem_, bytes_.data() + i * size);
  }
  if (count_ > shown) out += cat(", ... (", count_, " elements)");
  return out + "]";
}

}  // namespace temper
