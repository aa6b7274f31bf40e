// ZIP directory reader (see zip_stored.h). Layout from PKWARE's APPNOTE.TXT: the end of central
// directory record (EOCD) within the last 64 KiB + 22 bytes, the ZIP64 EOCD through its locator
// when a count or offset is saturated, then one central-directory entry per member pointing at
// its local header. Members must not overlap, which also bounds their number by the file size.
#include "formats/zip_stored.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/escape.h"

namespace temper {

namespace {

constexpr uint32_t kEocd = 0x06054b50, kZip64Locator = 0x07064b50, kZip64Eocd = 0x06064b50;
constexpr uint32_t kCentral = 0x02014b50, kLocal = 0x04034b50;

uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

ZipStored::ZipStored(const MappedFile& file) : file_(file) {
  const std::string who = escaped(file.path());
  const uint8_t* d = file.data();
  const uint64_t size = file.size();
  TEMPER_CHECK(size >= 22, who, ": ", size, " bytes is too short for a ZIP archive");
  // The EOCD ends the file except for a comment of at most 65535 bytes.
  uint64_t eocd = UINT64_MAX;
  for (uint64_t p = size - 22;; --p) {
    if (le(d + p, 4) == kEocd && p + 22 + le(d + p + 20, 2) == size) {
      eocd = p;
      break;
    }
    if (p == 0 || size - p >= 22 + 65535) break;
  }
  TEMPER_CHECK(eocd != UINT64_MAX, who, ": not a ZIP archive (no end-of-central-directory record)");
  TEMPER_CHECK(le(d + eocd + 4, 2) == 0 && le(d + eocd + 6, 2) == 0, who, ": multi-disk ZIP archives are not read");
  uint64_t count = le(d + eocd + 10, 2), cd_size = le(d + eocd + 12, 4), cd_off = le(d + eocd + 16, 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
    TEMPER_CHECK(eocd >= 20 && le(d + eocd - 20, 4) == kZip64Locator, who, ": ZIP64 locator missing");
    const uint64_t z = le(d + eocd - 20 + 8, 8);
    TEMPER_CHECK(z <= eocd - 20 && eocd - 20 - z >= 56 && le(d + z, 4) == kZip64Eocd, who,
                 ": ZIP64 end-of-central-directory record not where its locator says");
    count = le(d + z + 32, 8);
    cd_size = le(d + z + 40, 8);
    cd_off = le(d + z + 48, 8);
  }
  TEMPER_CHECK(cd_off <= size && cd_size <= size - cd_off, who, ": central directory (offset ", cd_off,
               ", ", cd_size, " bytes) lies outside the file");
  TEMPER_CHECK(count <= cd_size / 46, who, ": ", count, " members cannot fit a ", cd_size, "-byte directory");

  std::vector<std::pair<uint64_t, uint64_t>> spans;  // [local header, data end) of each member
  uint64_t p = cd_off;
  const uint64_t cd_end = cd_off + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    TEMPER_CHECK(cd_end - p >= 46 && le(d + p, 4) == kCentral, who, ": central-directory entry ", i,
                 " is damaged");
    const uint64_t flags = le(d + p + 8, 2), method = le(d + p + 10, 2);
    uint64_t csize = le(d + p + 20, 4), usize = le(d + p + 24, 4);
    const uint64_t name_len = le(d + p + 28, 2), extra_len = le(d + p + 30, 2), comment_len = le(d + p + 32, 2);
    uint64_t local = le(d + p + 42, 4);
    TEMPER_CHECK(cd_end - p - 46 >= name_len + extra_len + comment_len, who, ": central-directory entry ", i,
                 " runs past the directory");
    const std::string name(reinterpret_cast<const char*>(d + p + 46), name_len);
    const std::string member = cat(who, ": member '", escaped(name), "'");
    // ZIP64 extended information: 64-bit values for the saturated fields, in this order.
    for (uint64_t e = p + 46 + name_len, end = e + extra_len; end - e >= 4;) {
      const uint64_t id = le(d + e, 2), len = le(d + e + 2, 2);
      TEMPER_CHECK(len <= end - e - 4, member, ": extra field runs past its entry");
      if (id == 0x0001) {
        uint64_t q = e + 4;
        for (uint64_t* field : {&usize, &csize, &local}) {
          if (*field != 0xFFFFFFFF) continue;
          TEMPER_CHECK(q + 8 <= e + 4 + len, member, ": ZIP64 extra field too short");
          *field = le(d + q, 8);
          q += 8;
        }
      }
      e += 4 + len;
    }
    TEMPER_CHECK(!(flags & 1), member, ": encrypted members are not read");
    TEMPER_CHECK(method == 0 && csize == usize, member, ": compressed (method ", method,
                 "); only stored members are read, as torch.save writes them");
    TEMPER_CHECK(local <= size && size - local >= 30 && le(d + local, 4) == kLocal, member,
                 ": local header not where the directory says (offset ", local, ")");
    const uint64_t data = local + 30 + le(d + local + 26, 2) + le(d + local + 28, 2);
    TEMPER_CHECK(data <= size && usize <= size - data, member, ": data (offset ", data, ", ", usize,
                 " bytes) lies outside the file");
    TEMPER_CHECK(members_.emplace(name, Member{data, usize}).second, member, ": appears twice");
    spans.emplace_back(local, data + usize);
    p += 46 + name_len + extra_len + comment_len;
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    TEMPER_CHECK(spans[i].first >= spans[i - 1].second, who, ": members overlap at offset ", spans[i].first);
}

std::span<const uint8_t> ZipStored::bytes(const std::string& name) const {
  const auto it = members_.find(name);
  TEMPER_CHECK(it != members_.end(), escaped(file_.path()), ": no member '", escaped(name), "'");
  return {file_.data() + it->second.offset, it->second.size};
}

}  // namespace temper
