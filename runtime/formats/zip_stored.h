// The members of a ZIP archive whose members are stored uncompressed — the container PyTorch's
// torch.save has written since 1.6 (data.pkl plus one member per storage). Only the central
// directory and local headers are read; every size and offset is checked against the file.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "core/file.h"

namespace temper {

class ZipStored {
 public:
  // Reads the directory of `file` (which must outlive this). Throws Error naming the file and
  // the member at fault: no end-of-central-directory record, a multi-disk archive, entries or
  // data outside the file, overlapping or duplicate members, compressed or encrypted members.
  explicit ZipStored(const MappedFile& file);

  struct Member {
    uint64_t offset;  // of the first data byte in the file
    uint64_t size;
  };
  const std::map<std::string, Member>& members() const { return members_; }
  // The member's bytes (a view of the mapping); throws Error if there is no such member.
  std::span<const uint8_t> bytes(const std::string& name) const;

 private:
  const MappedFile& file_;
  std::map<std::string, Member> members_;
};

}  // namespace temper
