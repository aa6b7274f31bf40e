// Shared by the libFuzzer harnesses: temper's readers take paths, so each harness writes the
// input bytes into a private scratch folder (one per process, removed at exit) and opens that.
// Harnesses catch temper::Error only: a clean refusal is the expected outcome for most inputs;
// any other exception, a sanitizer report, a hang or an allocation over -rss_limit_mb is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace temper::fuzz {

// The process's scratch folder (created on first use under $TMPDIR or /tmp).
const std::string& scratch_dir();

// Writes `data` to scratch_dir()/name (replacing it) and returns the path.
std::string write_input(const std::string& name, const uint8_t* data, size_t size);
std::string write_input(const std::string& name, std::string_view text);

// Reads a file of the source tree (TEMPER_SOURCE_DIR/rel), e.g. "sample/stories260K/config.json".
std::string source_file(const std::string& rel);

}  // namespace temper::fuzz
