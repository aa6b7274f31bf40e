// escaped(): text read from a file, made safe to show in a one-line message on a terminal.
// Model files are downloaded from strangers: a tensor name, a JSON key or a chat template may
// hold newlines (multi-line errors), terminal escape sequences (ESC, CSI) or invalid UTF-8.
#pragma once
#include <string>
#include <string_view>

namespace temper {

// Valid UTF-8 other than control characters passes unchanged. Backslash becomes "\\"; \n, \r
// and \t become "\n", "\r", "\t"; other C0 controls, DEL, C1 controls (U+0080..U+009F, which
// some terminals obey as escapes) and every byte of an invalid UTF-8 sequence become "\xNN".
// Strings longer than `max_bytes` are cut there (at a character boundary) with "..." added.
std::string escaped(std::string_view text, size_t max_bytes = 200);

}  // namespace temper
