// Normalizer steps of tokenizer.json (NFC for Qwen 3, Replace " " -> "▁" for Gemma, Prepend "▁"
// for SentencePiece-converted Llama tokenizers). Unicode forms come from ICU.
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>

#include "core/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace temper::tok {

std::string unicode_normalize(NormalizerStep::Kind form, std::string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormalizerStep::kNfc: n = icu::Normalizer2::getNFCInstance(status); break;
    case NormalizerStep::kNfkc: n = icu::Normalizer2::getNFKCInstance(status); break;
    case NormalizerStep::kNfd: n = icu::Normalizer2::getNFDInstance(status); break;
    case NormalizerStep::kNfkd: n = icu::Normalizer2::getNFKDInstance(status); break;
    default: fail("unicode_normalize: not a Unicode normalization form");
  }
  TEMPER_CHECK(U_SUCCESS(status), "ICU normalizer unavailable: ", u_errorName(status));
  const icu::UnicodeString src = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  // Fast path: most text is already normalized.
  if (n->isNormalized(src, status) && U_SUCCESS(status)) return std::string(text);
  status = U_ZERO_ERROR;
  const icu::UnicodeString dst = n->normalize(src, status);
  TEMPER_CHECK(U_SUCCESS(status), "ICU normalization failed: ", u_errorName(status));
  std::string out;
  dst.toUTF8String(out);
  return out;
}

static std::string lowercase(std::string_view text) {
  icu::UnicodeString s = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  s.toLower();
  std::string out;
  s.toUTF8String(out);
  return out;
}

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string normalize(const std::vector<NormalizerStep>& steps, std::string text) {
  for (const NormalizerStep& s : steps) {
    switch (s.kind) {
      case NormalizerStep::kNfc:
      case NormalizerStep::kNfkc:
      case NormalizerStep::kNfd:
      case NormalizerStep::kNfkd: text = unicode_normalize(s.kind, text); break;
      case NormalizerStep::kReplace: replace_all(text, s.from, s.to); break;
      case NormalizerStep::kPrepend:  // HF Prepend leaves an empty string empty
        if (!text.empty()) text = s.to + text;
        break;
      case NormalizerStep::kLowercase: text = lowercase(text); break;
      case NormalizerStep::kStrip: {
        size_t b = 0, e = text.size();
        if (s.strip_left)
          while (b < e && is_space(static_cast<unsigned char>(text[b]))) ++b;
        if (s.strip_right)
          while (e > b && is_space(static_cast<unsigned char>(text[e - 1]))) --e;
        text = text.substr(b, e - b);
        break;
      }
    }
  }
  return text;
}

}  // namespace temper::tok
