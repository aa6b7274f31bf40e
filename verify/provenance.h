// SHA-256 of the files a compare run read, for the report's provenance footer.
#pragma once
#include <string>

namespace temper::verify {

// A file: the SHA-256 of its bytes (what `sha256sum FILE` prints). A folder (a Hugging Face
// model): the SHA-256 of the `sha256sum` listing of its regular files, top level, in byte order
// of their names, i.e. what `cd FOLDER && LC_ALL=C sha256sum * | sha256sum` prints when the
// folder holds only regular files. Throws Error naming the path if it cannot be read.
std::string sha256_of_path(const std::string& path);

}  // namespace temper::verify
