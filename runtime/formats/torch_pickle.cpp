// torch.save state dicts without running the pickle (see torch_pickle.h). A small interpreter
// of the pickle opcodes a state dict uses (protocol 2, as torch.save writes, plus the protocol
// 4 framing ones). Every object lives in one arena addressed by index, so a hostile file can
// build neither reference cycles nor nesting that recursion would have to unwind, and the arena
// grows by at most one object per opcode read: memory is bounded by data.pkl's size.
#include "formats/torch_pickle.h"

#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "core/escape.h"

namespace temper {

namespace {

enum class Kind { kNone, kBool, kInt, kFloat, kStr, kTuple, kList, kDict, kGlobal, kStorage, kTensor };

struct Object {
  Kind kind = Kind::kNone;
  int64_t i = 0;                 // int, bool; tensor: storage offset in elements
  double f = 0;
  std::string s;                 // str; global "module.name"; storage: its ZIP member
  std::vector<uint32_t> items;   // tuple, list; dict: key, value, key, value, ...
  std::string storage_type;      // storage: torch.FloatStorage, ...
  uint64_t numel = 0;            // storage: elements
  uint32_t storage = 0;          // tensor: its storage object
  std::vector<int64_t> shape, stride;
};

// The functions a state dict's pickle calls, and the storage types it names.
const char* const kCallable[] = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                 "torch._utils._rebuild_parameter"};
struct StorageType {
  const char* name;
  DType dtype;
  bool supported;
  int element_size;
};
const StorageType kStorageTypes[] = {
    {"torch.FloatStorage", DType::kF32, true, 4},    {"torch.HalfStorage", DType::kF16, true, 2},
    {"torch.BFloat16Storage", DType::kBF16, true, 2}, {"torch.DoubleStorage", DType::kF32, false, 8},
    {"torch.LongStorage", DType::kF32, false, 8},     {"torch.IntStorage", DType::kF32, false, 4},
    {"torch.ShortStorage", DType::kF32, false, 2},    {"torch.CharStorage", DType::kF32, false, 1},
    {"torch.ByteStorage", DType::kF32, false, 1},     {"torch.BoolStorage", DType::kF32, false, 1},
};
const StorageType* storage_type(const std::string& name) {
  for (const StorageType& t : kStorageTypes)
    if (name == t.name) return &t;
  return nullptr;
}

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> pkl, const ZipStored& zip, std::string prefix, std::string who)
      : p_(pkl), zip_(zip), prefix_(std::move(prefix)), who_(std::move(who)) {}

  uint32_t run();
  const Object& at(uint32_t id) const { return arena_[id]; }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(who_, ": data.pkl byte ", op_at_, ": ", what);
  }
  std::span<const uint8_t> take(uint64_t n) {
    if (n > p_.size() - pos_) bad(cat("needs ", n, " more bytes, the pickle ends first"));
    const auto s = p_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t uint_le(int n) {
    const auto b = take(n);
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = v << 8 | b[i];
    return v;
  }
  std::string line() {
    const auto rest = p_.subspan(pos_);
    const void* nl = std::memchr(rest.data(), '\n', rest.size());
    if (!nl) bad("unterminated GLOBAL name");
    const size_t n = static_cast<const uint8_t*>(nl) - rest.data();
    std::string s(reinterpret_cast<const char*>(rest.data()), n);
    pos_ += n + 1;
    return s;
  }
  uint32_t add(Object o) {
    arena_.push_back(std::move(o));
    return uint32_t(arena_.size() - 1);
  }
  uint32_t make(Kind kind, int64_t i = 0, std::string s = {}, std::vector<uint32_t> items = {}) {
    Object o;
    o.kind = kind;
    o.i = i;
    o.s = std::move(s);
    o.items = std::move(items);
    return add(std::move(o));
  }
  void push(uint32_t id) { stack_.push_back(id); }
  uint32_t pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("pops an empty stack");
    const uint32_t id = stack_.back();
    stack_.pop_back();
    return id;
  }
  std::vector<uint32_t> pop_to_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    std::vector<uint32_t> items(stack_.begin() + ptrdiff_t(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Object& top(Kind want, const char* op) {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad(cat(op, " on an empty stack"));
    Object& o = arena_[stack_.back()];
    if (o.kind != want) bad(cat(op, " on the wrong kind of object"));
    return o;
  }
  void global(const std::string& module, const std::string& name);
  uint32_t reduce(uint32_t callable, uint32_t args);
  uint32_t persistent_load(uint32_t pid);
  int64_t int_arg(uint32_t id, const char* what) {
    if (arena_[id].kind != Kind::kInt && arena_[id].kind != Kind::kBool) bad(cat(what, " is not an integer"));
    return arena_[id].i;
  }
  std::vector<int64_t> ints(uint32_t id, const char* what) {
    if (arena_[id].kind != Kind::kTuple) bad(cat(what, " is not a tuple"));
    std::vector<int64_t> v;
    for (uint32_t e : arena_[id].items) v.push_back(int_arg(e, what));
    return v;
  }

  std::span<const uint8_t> p_;
  const ZipStored& zip_;
  const std::string prefix_, who_;
  uint64_t pos_ = 0, op_at_ = 0;
  std::vector<Object> arena_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, uint32_t> memo_;
};

void Unpickler::global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  bool known = storage_type(full) != nullptr;
  for (const char* c : kCallable) known = known || full == c;
  if (!known)
    bad(cat("names ", escaped(full), ", which a state dict of tensors does not need; refusing to go on "
            "(unpickling it in Python would call it)"));
  push(make(Kind::kGlobal, 0, full));
}

uint32_t Unpickler::reduce(uint32_t callable, uint32_t args_id) {
  const Object& c = arena_[callable];
  if (c.kind != Kind::kGlobal || storage_type(c.s)) bad("REDUCE of something not callable");
  if (arena_[args_id].kind != Kind::kTuple) bad(cat(c.s, ": arguments are not a tuple"));
  const std::vector<uint32_t> args = arena_[args_id].items;
  if (c.s == "collections.OrderedDict") {
    if (!args.empty()) bad("OrderedDict with arguments");
    return make(Kind::kDict);
  }
  if (c.s == "torch._utils._rebuild_parameter") {
    if (args.size() != 3 || arena_[args[0]].kind != Kind::kTensor) bad("_rebuild_parameter: expected (tensor, requires_grad, hooks)");
    return args[0];
  }
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.size() < 6 || args.size() > 7 || arena_[args[0]].kind != Kind::kStorage)
    bad("_rebuild_tensor_v2: expected (storage, offset, size, stride, requires_grad, hooks)");
  Object t;
  t.kind = Kind::kTensor;
  t.i = int_arg(args[1], "storage offset");
  t.storage = args[0];
  t.shape = ints(args[2], "size");
  t.stride = ints(args[3], "stride");
  if (t.shape.size() != t.stride.size() || t.shape.size() > 8) bad("size and stride disagree or have more than 8 dims");
  // The highest element the view reaches must lie inside the storage.
  const Object& s = arena_[args[0]];
  if (t.i < 0 || uint64_t(t.i) > s.numel) bad(cat("storage offset ", t.i, " outside a storage of ", s.numel));
  bool empty = false;
  uint64_t last = uint64_t(t.i);
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0 || t.stride[d] < 0 || t.shape[d] > (int64_t{1} << 40) || t.stride[d] > (int64_t{1} << 40))
      bad(cat("size ", t.shape[d], " or stride ", t.stride[d], " out of range"));
    empty = empty || t.shape[d] == 0;
    uint64_t reach = 0;
    if (t.shape[d] > 0 && (__builtin_mul_overflow(uint64_t(t.shape[d] - 1), uint64_t(t.stride[d]), &reach) ||
                           __builtin_add_overflow(last, reach, &last)))
      bad("a tensor view reaches past 2^64 elements");
  }
  if (!empty && last >= s.numel) bad(cat("a tensor view reaches element ", last, " of a storage of ", s.numel));
  // Elements in all: each dimension is at most 2^40 and the view lies inside the storage, whose
  // bytes are in the file, so unless a stride is 0 the count is bounded by the file; with zero
  // strides it is bounded here.
  uint64_t numel = 1;
  for (int64_t n : t.shape)
    if (__builtin_mul_overflow(numel, uint64_t(n), &numel) || numel > (uint64_t{1} << 40)) bad("more than 2^40 elements");
  return add(std::move(t));
}

uint32_t Unpickler::persistent_load(uint32_t pid) {
  // ('storage', storage type, key, location, numel)
  const Object& t = arena_[pid];
  if (t.kind != Kind::kTuple || t.items.size() != 5 || arena_[t.items[0]].s != "storage" ||
      arena_[t.items[1]].kind != Kind::kGlobal || arena_[t.items[2]].kind != Kind::kStr)
    bad("persistent id is not ('storage', type, key, location, numel)");
  const StorageType* type = storage_type(arena_[t.items[1]].s);
  if (!type) bad("persistent id names no storage type");
  const std::string member = prefix_ + "data/" + arena_[t.items[2]].s;
  const auto it = zip_.members().find(member);
  if (it == zip_.members().end()) bad(cat("storage ", escaped(member), " is not in the archive"));
  const int64_t numel = int_arg(t.items[4], "storage size");
  if (numel < 0 || uint64_t(numel) > it->second.size / uint64_t(type->element_size))
    bad(cat("storage ", escaped(member), " claims ", numel, " elements of ", type->element_size, " bytes but holds ",
            it->second.size, " bytes"));
  Object o;
  o.kind = Kind::kStorage;
  o.s = member;
  o.storage_type = type->name;
  o.numel = uint64_t(numel);
  return add(std::move(o));
}

uint32_t Unpickler::run() {
  while (true) {
    op_at_ = pos_;
    const uint8_t op = uint8_t(uint_le(1));
    switch (op) {
      case 0x80: if (uint_le(1) > 5) bad("pickle protocol above 5"); break;  // PROTO
      case 0x95: uint_le(8); break;                                          // FRAME
      case '.': {                                                            // STOP
        const uint32_t result = pop();
        if (!stack_.empty() || !marks_.empty()) bad("STOP with objects left on the stack");
        return result;
      }
      case '(': marks_.push_back(stack_.size()); break;
      case '}': push(make(Kind::kDict)); break;
      case ']': push(make(Kind::kList)); break;
      case ')': push(make(Kind::kTuple)); break;
      case 't': push(make(Kind::kTuple, 0, {}, pop_to_mark())); break;
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        std::vector<uint32_t> items(size_t(op - 0x84));
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        push(make(Kind::kTuple, 0, {}, std::move(items)));
        break;
      }
      case 'q': case 'r': case 0x94: {  // BINPUT, LONG_BINPUT, MEMOIZE
        const uint64_t idx = op == 'q' ? uint_le(1) : op == 'r' ? uint_le(4) : memo_.size();
        if (stack_.empty()) bad("memoizes an empty stack");
        memo_[idx] = stack_.back();
        break;
      }
      case 'h': case 'j': {  // BINGET, LONG_BINGET
        const auto it = memo_.find(op == 'h' ? uint_le(1) : uint_le(4));
        if (it == memo_.end()) bad("gets a memo entry never put");
        push(it->second);
        break;
      }
      case 'X': case 0x8c: case 0x8d: {  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
        const auto b = take(uint_le(op == 'X' ? 4 : op == 0x8c ? 1 : 8));
        push(make(Kind::kStr, 0, std::string(b.begin(), b.end())));
        break;
      }
      case 'c': {  // GLOBAL
        const std::string module = line();
        global(module, line());
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const uint32_t name = pop(), module = pop();
        if (arena_[name].kind != Kind::kStr || arena_[module].kind != Kind::kStr) bad("STACK_GLOBAL of non-strings");
        global(arena_[module].s, arena_[name].s);
        break;
      }
      case 'Q': push(persistent_load(pop())); break;  // BINPERSID
      case 'J': push(make(Kind::kInt, int32_t(uint32_t(uint_le(4))))); break;
      case 'K': push(make(Kind::kInt, int64_t(uint_le(1)))); break;
      case 'M': push(make(Kind::kInt, int64_t(uint_le(2)))); break;
      case 0x8a: {  // LONG1: little-endian two's complement of n <= 8 bytes
        const uint64_t n = uint_le(1);
        if (n > 8) bad("integer wider than 64 bits");
        uint64_t v = n ? uint_le(int(n)) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1) & 1)) v |= ~uint64_t{0} << (8 * n);
        push(make(Kind::kInt, int64_t(v)));
        break;
      }
      case 0x88: case 0x89: push(make(Kind::kBool, op == 0x88)); break;
      case 'N': push(make(Kind::kNone)); break;
      case 'G': {  // BINFLOAT, big-endian
        uint64_t bits = 0;
        for (uint8_t b : take(8)) bits = bits << 8 | b;
        double f;
        std::memcpy(&f, &bits, 8);
        Object o;
        o.kind = Kind::kFloat;
        o.f = f;
        push(add(std::move(o)));
        break;
      }
      case 'R': {
        const uint32_t args = pop(), callable = pop();
        push(reduce(callable, args));
        break;
      }
      case 'b': pop(); top(Kind::kDict, "BUILD"); break;  // OrderedDict's attributes (_metadata): not needed
      case 's': {
        const uint32_t value = pop(), key = pop();
        auto& items = top(Kind::kDict, "SETITEM").items;
        items.push_back(key);
        items.push_back(value);
        break;
      }
      case 'u': {
        const std::vector<uint32_t> kv = pop_to_mark();
        if (kv.size() % 2) bad("SETITEMS with an odd number of objects");
        auto& items = top(Kind::kDict, "SETITEMS").items;
        items.insert(items.end(), kv.begin(), kv.end());
        break;
      }
      case 'a': {
        const uint32_t v = pop();
        top(Kind::kList, "APPEND").items.push_back(v);
        break;
      }
      case 'e': {
        const std::vector<uint32_t> v = pop_to_mark();
        auto& items = top(Kind::kList, "APPENDS").items;
        items.insert(items.end(), v.begin(), v.end());
        break;
      }
      default:
        bad(cat("opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15],
                " is not one a torch.save state dict uses"));
    }
  }
}

}  // namespace

TorchStateDict::~TorchStateDict() = default;

TorchStateDict::TorchStateDict(const std::string& path) : file_(path) {}

std::unique_ptr<TorchStateDict> TorchStateDict::open(const std::string& path) {
  std::unique_ptr<TorchStateDict> sd(new TorchStateDict(path));
  const std::string who = escaped(path);
  const MappedFile& f = sd->file_;
  TEMPER_CHECK(f.size() >= 4, who, ": too short for a torch.save file");
  TEMPER_CHECK(!(f.data()[0] == 0x80 && f.data()[1] <= 5), who,
               ": saved by PyTorch before 1.6 (a bare pickle, not a ZIP), which is not read; re-save it "
               "with a current torch.save, or as safetensors");
  sd->zip_ = std::make_unique<ZipStored>(f);
  // torch.save puts everything under one folder named after the file ("archive/" by default).
  std::string prefix;
  for (const auto& [name, m] : sd->zip_->members()) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") {
      prefix = name.substr(0, slash + 1);
      break;
    }
  }
  TEMPER_CHECK(!prefix.empty(), who, ": a ZIP archive without <folder>/data.pkl is not a torch.save file");
  Unpickler u(sd->zip_->bytes(prefix + "data.pkl"), *sd->zip_, prefix, who);
  const Object& top = u.at(u.run());
  TEMPER_CHECK(top.kind == Kind::kDict, who, ": holds no dict of tensors at its top");
  for (size_t k = 0; k < top.items.size(); k += 2) {
    const Object& key = u.at(top.items[k]);
    TEMPER_CHECK(key.kind == Kind::kStr, who, ": dict key ", k / 2, " is not a string");
    const std::string name = cat(who, ": '", escaped(key.s), "'");
    const Object& t = u.at(top.items[k + 1]);
    TEMPER_CHECK(t.kind == Kind::kTensor, name, ": is not a tensor");
    const Object& s = u.at(t.storage);
    const StorageType* type = storage_type(s.storage_type);
    TEMPER_CHECK(type->supported, name, ": a ", s.storage_type, " tensor; only float32, float16 and bfloat16 are read");
    for (const TensorInfo& seen : sd->tensors_)
      TEMPER_CHECK(seen.name != key.s, name, ": appears twice");
    TensorInfo info{.name = key.s, .dtype = type->dtype, .shape = t.shape};
    info.nbytes = info.numel() * uint64_t(type->element_size);
    sd->tensors_.push_back(std::move(info));
    sd->layouts_.push_back({s.s, uint64_t(t.i), t.stride});
  }
  return sd;
}

std::span<const uint8_t> TorchStateDict::read(const TensorInfo& t, std::vector<uint8_t>& scratch) const {
  const size_t i = size_t(&t - tensors_.data());
  TEMPER_CHECK(i < tensors_.size(), escaped(file_.path()), ": no tensor '", escaped(t.name), "' here");
  const Layout& l = layouts_[i];
  const size_t es = size_t(dtype_bytes(t.dtype, 1));
  const uint8_t* base = zip_->bytes(l.member).data() + l.offset * es;
  // Row-major contiguous (dims of size 1 may have any stride): a view of the mapping.
  bool contiguous = true;
  int64_t expect = 1;
  for (size_t d = t.shape.size(); d-- > 0;) {
    if (t.shape[d] != 1 && l.stride[d] != expect) contiguous = false;
    expect *= t.shape[d];
  }
  if (contiguous) return {base, t.nbytes};
  scratch.resize(t.nbytes);
  std::vector<int64_t> index(t.shape.size(), 0);
  for (uint64_t e = 0, n = t.numel(); e < n; ++e) {
    int64_t src = 0;
    for (size_t d = 0; d < index.size(); ++d) src += index[d] * l.stride[d];
    std::memcpy(scratch.data() + e * es, base + uint64_t(src) * es, es);
    for (size_t d = index.size(); d-- > 0;) {
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  return {scratch.data(), t.nbytes};
}

}  // namespace temper
