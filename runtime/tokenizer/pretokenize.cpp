// Pre-tokenizers: tokenizer.json's Split (regex via PCRE2 with Unicode properties, or a literal),
// ByteLevel and Metaspace, with HF's split behaviours; and llama.cpp's regex sets by GGUF pre name.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper::tok {

namespace {
pcre2_code* code_of(void* p) { return static_cast<pcre2_code*>(p); }

// The GPT-2 pattern ByteLevel uses when use_regex is true.
const char* kGpt2Pattern = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct Piece {
  size_t begin, end;
  bool is_match;
};

// Matches and the gaps between them, covering [0, n) in order (HF find_matches).
std::vector<Piece> pieces_of(const std::vector<std::pair<size_t, size_t>>& matches, size_t n, bool invert) {
  std::vector<Piece> out;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) out.push_back({prev, b, invert});
    out.push_back({b, e, !invert});
    prev = e;
  }
  if (prev < n) out.push_back({prev, n, invert});
  return out;
}

// HF SplitDelimiterBehavior applied to the pieces; empty results are dropped.
std::vector<std::pair<size_t, size_t>> apply_behavior(const std::vector<Piece>& in, PreTokStep::Behavior b) {
  std::vector<std::pair<size_t, size_t>> acc;
  bool prev_match = false;
  switch (b) {
    case PreTokStep::kRemoved:
      for (const Piece& p : in)
        if (!p.is_match) acc.push_back({p.begin, p.end});
      break;
    case PreTokStep::kIsolated:
      for (const Piece& p : in) acc.push_back({p.begin, p.end});
      break;
    case PreTokStep::kMergedWithPrevious:
      for (const Piece& p : in) {
        if (p.is_match && !prev_match && !acc.empty()) acc.back().second = p.end;
        else acc.push_back({p.begin, p.end});
        prev_match = p.is_match;
      }
      break;
    case PreTokStep::kMergedWithNext:
      for (auto it = in.rbegin(); it != in.rend(); ++it) {
        if (it->is_match && !prev_match && !acc.empty()) acc.back().first = it->begin;
        else acc.push_back({it->begin, it->end});
        prev_match = it->is_match;
      }
      std::reverse(acc.begin(), acc.end());
      break;
    case PreTokStep::kContiguous:
      for (size_t i = 0; i < in.size(); ++i) {
        if (i > 0 && in[i].is_match == prev_match) acc.back().second = in[i].end;
        else acc.push_back({in[i].begin, in[i].end});
        prev_match = in[i].is_match;
      }
      break;
  }
  std::erase_if(acc, [](auto& r) { return r.first == r.second; });
  return acc;
}

std::vector<std::pair<size_t, size_t>> literal_matches(std::string_view text, const std::string& lit) {
  std::vector<std::pair<size_t, size_t>> out;
  if (lit.empty()) return out;
  for (size_t pos = 0, hit; (hit = text.find(lit, pos)) != std::string_view::npos; pos = hit + lit.size())
    out.push_back({hit, hit + lit.size()});
  return out;
}

void split_all(std::vector<std::string>& parts, const PreTokStep& s) {
  std::vector<std::string> out;
  for (const std::string& part : parts) {
    const auto matches = s.regex ? s.regex->find_all(part) : literal_matches(part, s.literal);
    for (auto [b, e] : apply_behavior(pieces_of(matches, part.size(), s.invert), s.behavior))
      out.push_back(part.substr(b, e - b));
  }
  parts.swap(out);
}

}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
  if (!c) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("pre-tokenizer regex /", pattern, "/ does not compile at offset ", off, ": ", reinterpret_cast<char*>(msg));
  }
  pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
  code_ = c;
}

Regex::~Regex() { pcre2_code_free(code_of(code_)); }

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_of(code_), nullptr);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    // UTF-8 validity is checked once, on the first call: PCRE2 checks the whole subject each
    // time otherwise, which is quadratic over long texts.
    const int rc = pcre2_match(code_of(code_), subject, text.size(), pos, pos == 0 ? 0 : PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("regex /", pattern_, "/ failed on the input at byte ", pos, ": ", reinterpret_cast<char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.push_back({b, e});
      pos = e;
    } else {  // an empty match: step over one character
      pos = b + (b < text.size() ? utf8_char_len(static_cast<unsigned char>(text[b])) : 1);
    }
  }
  pcre2_match_data_free(md);
  return out;
}

std::vector<std::string> pre_tokenize(const std::vector<PreTokStep>& steps, std::string text, bool first) {
  std::vector<std::string> parts;
  if (text.empty()) return parts;
  parts.push_back(std::move(text));
  for (const PreTokStep& s : steps) {
    switch (s.kind) {
      case PreTokStep::kSplit: split_all(parts, s); break;
      case PreTokStep::kByteLevel: {
        if (s.add_prefix_space)
          for (std::string& p : parts)
            if (p.empty() || p[0] != ' ') p = " " + p;
        if (s.use_regex) {
          static const PreTokStep gpt2 = [] {
            PreTokStep g{PreTokStep::kSplit};
            g.regex = std::make_shared<const Regex>(kGpt2Pattern);
            return g;
          }();
          split_all(parts, gpt2);
        }
        const auto& map = byte_to_unicode();
        for (std::string& p : parts) {
          std::string mapped;
          mapped.reserve(p.size() * 2);
          for (unsigned char c : p) mapped += map[c];
          p.swap(mapped);
        }
        break;
      }
      case PreTokStep::kMetaspace: {
        std::vector<std::string> out;
        for (std::string& p : parts) {
          replace_all(p, " ", s.replacement);
          const bool prepend = s.prepend == PreTokStep::kAlways || (s.prepend == PreTokStep::kFirst && first);
          if (prepend && p.compare(0, s.replacement.size(), s.replacement) != 0) p = s.replacement + p;
          if (!s.split) {
            out.push_back(p);
            continue;
          }
          for (auto [b, e] : apply_behavior(pieces_of(literal_matches(p, s.replacement), p.size(), false),
                                            PreTokStep::kMergedWithNext))
            out.push_back(p.substr(b, e - b));
        }
        parts.swap(out);
        break;
      }
    }
    first = false;
  }
  return parts;
}

std::vector<std::string> llama_cpp_pre_regexes(const std::string& pre) {
  // Copied from llama.cpp src/llama-vocab.cpp (llm_tokenizer_bpe), adapted patterns included.
  const std::string llama3 =
      "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "pixtral")
    return {llama3};
  if (pre == "qwen2" || pre == "stablelm2")
    return {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
            "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
  if (pre == "deepseek-coder")
    return {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"};
  if (pre == "default")
    return {"[\\p{P}\\$\\+<=>\\^~\\|]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
            "\\p{N}+", "[0-9][0-9][0-9]"};
  if (pre == "gemma4") return {"[^\\n]+|[\\n]+"};
  fail("GGUF tokenizer.ggml.pre '", pre, "' has no regex set here (known: llama-bpe/llama3, qwen2, "
       "deepseek-coder, default, gemma4)");
}

}  // namespace temper::tok
