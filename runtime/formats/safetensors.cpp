// safetensors: header parsing (8-byte LE length + JSON + data), folder/index resolution, and
// the zero-copy TensorSource. Nothing in a header is trusted: every offset, size and name is
// checked before a byte of tensor data is looked at.
#include "formats/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string_view>
#include <tuple>

#include "core/error.h"
#include "core/json.h"
#include "core/log.h"

namespace temper {
namespace fs = std::filesystem;

namespace {

// The reference implementation (safetensors-rs, MAX_HEADER_SIZE) refuses larger headers too.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests 3 deep (header object -> entry -> shape array); an index 2.
constexpr int kMaxJsonDepth = 8;
constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// dtype strings of the safetensors format that temper knows but does not read.
constexpr std::string_view kUnsupportedDtypes[] = {
    "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64", "F64", "C64",
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "E8M0", "F4", "F6_E2M3", "F6_E3M2"};

DType parse_dtype(const Json& v, const std::string& file, const std::string& tensor) {
  TEMPER_CHECK(v.is_string(), file, ": tensor '", tensor, "': dtype is not a string (", v.type_name(), ")");
  const std::string s = v.get<std::string>();
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  for (auto u : kUnsupportedDtypes)
    TEMPER_CHECK(s != u, file, ": unsupported dtype '", s, "' for tensor '", tensor,
                 "' (temper reads F32, F16, BF16)");
  fail(file, ": unknown dtype '", s, "' for tensor '", tensor, "' (temper reads F32, F16, BF16)");
}

// A JSON value for an error message, cut short: header values can be arbitrarily long.
std::string brief(const Json& v) {
  std::string s = v.dump();
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

// A JSON non-negative integer (nlohmann stores those, and only those, as number_unsigned).
uint64_t parse_count(const Json& v, const std::string& where, const char* what) {
  TEMPER_CHECK(v.is_number_unsigned(), where, ": ", what, " must be a non-negative integer, got ", brief(v));
  return v.get<uint64_t>();
}

struct ShardTensor {
  TensorInfo info;
  uint64_t begin = 0, end = 0;  // relative to the start of the data section
};

struct ParsedShard {
  MappedFile file;
  uint64_t data_start = 0;
  std::vector<ShardTensor> tensors;  // sorted by data offset
  std::map<std::string, std::string> metadata;
};

ShardTensor parse_entry(const std::string& file, const std::string& name, const Json& v, uint64_t data_size) {
  const std::string where = cat(file, ": tensor '", name, "'");
  TEMPER_CHECK(v.is_object(), where, ": entry is not an object (", v.type_name(), ")");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    TEMPER_CHECK(v.contains(key), where, ": entry has no '", key, "'");
  ShardTensor t;
  t.info.name = name;
  t.info.dtype = parse_dtype(v["dtype"], file, name);

  const Json& shape = v["shape"];
  TEMPER_CHECK(shape.is_array(), where, ": shape is not an array (", shape.type_name(), ")");
  for (const Json& d : shape) {
    TEMPER_CHECK(d.is_number_integer(), where, ": shape ", brief(shape), " holds a non-integer");
    TEMPER_CHECK(d.is_number_unsigned(), where, ": negative dimension in shape ", brief(shape));
    TEMPER_CHECK(d.get<uint64_t>() <= uint64_t(INT64_MAX), where, ": dimension out of range in shape ",
                 brief(shape));
    t.info.shape.push_back(int64_t(d.get<uint64_t>()));
  }
  const uint64_t numel = checked_numel(t.info.shape, where);
  try {
    t.info.nbytes = dtype_bytes(t.info.dtype, numel);
  } catch (const Error& e) {
    fail(where, ": ", e.what());
  }

  const Json& offs = v["data_offsets"];
  TEMPER_CHECK(offs.is_array() && offs.size() == 2, where, ": data_offsets must be [begin, end], got ",
               brief(offs));
  t.begin = parse_count(offs[0], where, "data_offsets[0]");
  t.end = parse_count(offs[1], where, "data_offsets[1]");
  TEMPER_CHECK(t.begin <= t.end, where, ": data_offsets [", t.begin, ", ", t.end, "] end before they begin");
  TEMPER_CHECK(t.end <= data_size, where, ": data_offsets [", t.begin, ", ", t.end,
               "] run past the end of the data section (", data_size, " bytes)");
  TEMPER_CHECK(t.end - t.begin == t.info.nbytes, where, ": data_offsets [", t.begin, ", ", t.end, "] hold ",
               t.end - t.begin, " bytes but ", v["dtype"].get<std::string>(), " x ", shape_str(t.info.shape),
               " needs ", t.info.nbytes);
  return t;
}

ParsedShard parse_shard(const std::string& file) {
  ParsedShard s;
  s.file = MappedFile(file);
  const uint64_t size = s.file.size();
  TEMPER_CHECK(size >= 8, file, ": ", size, " bytes is too short for a safetensors file (8-byte header length first)");
  const uint8_t* p = s.file.data();
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | p[i];  // little-endian u64
  TEMPER_CHECK(header_len <= kMaxHeaderBytes, file, ": header length ", header_len, " exceeds the ",
               kMaxHeaderBytes, "-byte limit (not a safetensors file?)");
  TEMPER_CHECK(header_len <= size - 8, file, ": header length ", header_len, " runs past the end of the file (",
               size, " bytes)");
  auto text = s.file.span(8, header_len, "header");
  const Json header = parse_json(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()),
                                 file, kMaxJsonDepth);
  TEMPER_CHECK(header.is_object(), file, ": header is not a JSON object (", header.type_name(), ")");
  s.data_start = 8 + header_len;
  const uint64_t data_size = size - s.data_start;

  for (const auto& [key, value] : header.items()) {
    if (key != "__metadata__") {
      s.tensors.push_back(parse_entry(file, key, value, data_size));
      continue;
    }
    TEMPER_CHECK(value.is_object(), file, ": __metadata__ is not an object (", value.type_name(), ")");
    for (const auto& [mk, mv] : value.items()) {
      TEMPER_CHECK(mv.is_string(), file, ": __metadata__ key '", mk, "' is not a string (", mv.type_name(), ")");
      s.metadata[mk] = mv.get<std::string>();
    }
  }
  // File order; the name breaks ties between empty tensors so the order stays deterministic.
  std::sort(s.tensors.begin(), s.tensors.end(), [](const ShardTensor& a, const ShardTensor& b) {
    return std::tie(a.begin, a.end, a.info.name) < std::tie(b.begin, b.end, b.info.name);
  });
  for (size_t i = 1; i < s.tensors.size(); ++i) {
    const ShardTensor &a = s.tensors[i - 1], &b = s.tensors[i];
    TEMPER_CHECK(a.end <= b.begin, file, ": tensor '", b.info.name, "' (data_offsets [", b.begin, ", ", b.end,
                 "]) overlaps tensor '", a.info.name, "' ([", a.begin, ", ", a.end, "])");
  }
  return s;
}

// What to open: shard names relative to the root, and (sharded case) the index's claims.
struct Plan {
  std::string root;
  std::vector<std::string> shards;
  std::string file_given;                    // a .safetensors path given directly, as given
  std::string index_path;                    // empty without an index
  std::map<std::string, std::string> index;  // tensor -> shard name
};

// Names of the *.safetensors entries of `dir`, sorted.
std::vector<std::string> list_safetensors(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".safetensors") names.push_back(it->path().filename().string());
  TEMPER_CHECK(!ec, dir, ": cannot list the folder: ", ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

std::string join(const std::string& root, const std::string& name) { return root + "/" + name; }

std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "'" : ", '") + n + "'";
  return s;
}

// A shard name from the index must stay inside the folder: not absolute, no "..", and after
// resolving symlinks still under the folder.
void check_shard_name(const Plan& plan, const std::string& shard, const std::string& tensor) {
  const std::string& idx = plan.index_path;
  TEMPER_CHECK(!shard.empty(), idx, ": tensor '", tensor, "' is mapped to an empty shard name");
  const fs::path p(shard);
  TEMPER_CHECK(!p.is_absolute(), idx, ": shard '", shard, "' for tensor '", tensor,
               "' is an absolute path; shards must lie inside the model folder");
  for (const auto& part : p)
    TEMPER_CHECK(part != "..", idx, ": shard '", shard, "' for tensor '", tensor,
                 "' contains '..'; shards must lie inside the model folder");
  const std::string full = join(plan.root, shard);
  TEMPER_CHECK(file_exists(full), idx, ": shard '", shard, "' (named for tensor '", tensor, "') does not exist");
  std::string root_canon = canonical_path(plan.root);
  if (root_canon.back() != '/') root_canon += '/';
  const std::string canon = canonical_path(full);
  TEMPER_CHECK(canon.compare(0, root_canon.size(), root_canon) == 0, idx, ": shard '", shard, "' for tensor '",
               tensor, "' resolves to ", canon, ", outside the model folder");
}

void read_index(Plan& plan) {
  const std::string& idx = plan.index_path;
  const Json j = parse_json(read_text_file(idx), idx, kMaxJsonDepth);
  TEMPER_CHECK(j.is_object(), idx, ": not a JSON object (", j.type_name(), ")");
  TEMPER_CHECK(j.contains("weight_map"), idx, ": no 'weight_map'");
  const Json& map = j["weight_map"];
  TEMPER_CHECK(map.is_object(), idx, ": 'weight_map' is not an object (", map.type_name(), ")");
  TEMPER_CHECK(!map.empty(), idx, ": 'weight_map' lists no tensors");
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : map.items()) {
    TEMPER_CHECK(shard.is_string(), idx, ": weight_map entry for tensor '", tensor, "' is not a string (",
                 shard.type_name(), ")");
    const std::string name = shard.get<std::string>();
    if (shards.insert(name).second) check_shard_name(plan, name, tensor);
    plan.index[tensor] = name;
  }
  plan.shards.assign(shards.begin(), shards.end());  // sorted: model-00001-of-N first

  std::vector<std::string> stray;
  for (const auto& name : list_safetensors(plan.root))
    if (!shards.count(name)) stray.push_back(name);
  if (!stray.empty()) warn(idx, ": ignoring ", join_names(stray), " (not named in the index)");
}

Plan plan_for(const std::string& path) {
  Plan plan;
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (!is_directory(p)) {
    TEMPER_CHECK(file_exists(p), p, ": no such file or folder");
    const fs::path fp(p);
    plan.root = fp.has_parent_path() ? fp.parent_path().string() : ".";
    if (fp.filename() == kIndexName) {
      plan.index_path = p;
      read_index(plan);
    } else {
      plan.shards = {fp.filename().string()};
      plan.file_given = p;
    }
    return plan;
  }
  plan.root = p;
  if (file_exists(join(p, kIndexName))) {
    plan.index_path = join(p, kIndexName);
    read_index(plan);
    return plan;
  }
  if (file_exists(join(p, kSingleName))) {
    plan.shards = {kSingleName};
    return plan;
  }
  const std::vector<std::string> found = list_safetensors(p);
  TEMPER_CHECK(!found.empty(), p, ": no ", kSingleName, ", ", kIndexName, " or other *.safetensors file here");
  TEMPER_CHECK(found.size() > 1, p, ": no ", kSingleName, " or ", kIndexName, "; the only *.safetensors file is ",
               join_names(found), " (pass that file itself to read it)");
  fail(p, ": ", found.size(), " *.safetensors files (", join_names(found), ") but no ", kIndexName,
       "; the index is needed to know which files belong to the model");
}

}  // namespace

class SafetensorsLoader {
 public:
  static std::unique_ptr<SafetensorsModel> load(const Plan& plan) {
    auto m = std::make_unique<SafetensorsModel>();
    m->root_ = plan.root;
    m->shard_names_ = plan.shards;
    std::vector<ParsedShard> parsed;
    for (const auto& name : plan.shards)
      parsed.push_back(parse_shard(plan.file_given.empty() ? join(plan.root, name) : plan.file_given));

    // Duplicates first, so a name in two shards is reported as such even if the index is off.
    std::map<std::string, size_t> shard_of;
    for (size_t s = 0; s < parsed.size(); ++s)
      for (const auto& t : parsed[s].tensors) {
        auto [it, fresh] = shard_of.emplace(t.info.name, s);
        TEMPER_CHECK(fresh, parsed[s].file.path(), ": tensor '", t.info.name, "' is also in ",
                     parsed[it->second].file.path(), " (duplicate name across shards)");
      }
    if (!plan.index_path.empty()) check_against_index(plan, parsed, shard_of);

    for (size_t s = 0; s < parsed.size(); ++s) {
      for (auto& t : parsed[s].tensors) {
        m->by_name_[t.info.name] = m->tensors_.size();
        m->where_.push_back({s, parsed[s].data_start + t.begin});
        m->tensors_.push_back(std::move(t.info));
      }
      for (const auto& [k, v] : parsed[s].metadata) {
        auto [it, fresh] = m->metadata_.emplace(k, v);
        if (!fresh && it->second != v)
          warn(parsed[s].file.path(), ": __metadata__ '", k, "' = '", v, "' differs from '", it->second,
               "' in an earlier shard; keeping the first");
      }
      m->shards_.push_back(std::move(parsed[s].file));
    }
    return m;
  }

 private:
  static void check_against_index(const Plan& plan, const std::vector<ParsedShard>& parsed,
                                  const std::map<std::string, size_t>& shard_of) {
    for (const auto& [name, s] : shard_of) {
      auto it = plan.index.find(name);
      TEMPER_CHECK(it != plan.index.end(), parsed[s].file.path(), ": tensor '", name, "' is not listed in ",
                   plan.index_path, " (index and shards disagree)");
      TEMPER_CHECK(it->second == plan.shards[s], parsed[s].file.path(), ": tensor '", name, "' is here but ",
                   plan.index_path, " maps it to '", it->second, "'");
    }
    for (const auto& [name, shard] : plan.index)
      TEMPER_CHECK(shard_of.count(name), plan.index_path, ": tensor '", name, "' is mapped to shard '", shard,
                   "', which does not contain it");
  }
};

std::unique_ptr<SafetensorsModel> SafetensorsModel::open(const std::string& path) {
  return SafetensorsLoader::load(plan_for(path));
}

size_t SafetensorsModel::index_of(const TensorInfo& t) const {
  // Fast path: `t` is an element of tensors() (std::less gives a total order on pointers).
  const std::less<const TensorInfo*> before;
  if (!tensors_.empty() && !before(&t, tensors_.data()) && before(&t, tensors_.data() + tensors_.size()))
    return size_t(&t - tensors_.data());
  auto it = by_name_.find(t.name);
  TEMPER_CHECK(it != by_name_.end(), root_, ": no tensor '", t.name, "' in this safetensors model");
  const TensorInfo& ours = tensors_[it->second];
  TEMPER_CHECK(ours.dtype == t.dtype && ours.nbytes == t.nbytes, root_, ": tensor '", t.name, "' is ",
               dtype_name(ours.dtype), " ", shape_str(ours.shape), " here, not ", dtype_name(t.dtype), " ",
               shape_str(t.shape));
  return it->second;
}

std::span<const uint8_t> SafetensorsModel::read(const TensorInfo& t, std::vector<uint8_t>&) const {
  const size_t i = index_of(t);
  const MappedFile& f = shards_[where_[i].shard];
  f.advise_willneed(where_[i].offset, tensors_[i].nbytes);
  return f.span(where_[i].offset, tensors_[i].nbytes, cat("tensor '", t.name, "'"));
}

void SafetensorsModel::release(const TensorInfo& t) const {
  const size_t i = index_of(t);
  shards_[where_[i].shard].advise_dontneed(where_[i].offset, tensors_[i].nbytes);
}

void SafetensorsModel::read_range(const TensorInfo& t, uint64_t offset, std::span<uint8_t> dst) const {
  const size_t i = index_of(t);
  TEMPER_CHECK(offset <= tensors_[i].nbytes && dst.size() <= tensors_[i].nbytes - offset, root_, ": tensor '",
               t.name, "': bytes ", offset, "..", offset + dst.size(), " requested of ", tensors_[i].nbytes);
  shards_[where_[i].shard].read_at(where_[i].offset + offset, dst, cat("tensor '", t.name, "'"));
}

SafetensorsModel::FileSpot SafetensorsModel::locate(const TensorInfo& t) const {
  const size_t i = index_of(t);
  return {shards_[where_[i].shard], where_[i].offset};
}

std::vector<std::string> SafetensorsModel::shard_files() const { return shard_names_; }

uint64_t SafetensorsModel::total_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes;
  return n;
}

}  // namespace temper
