// Normalizers (HF `tokenizers::normalizers`): NFC/NFD/NFKC/NFKD, Lowercase, Strip, StripAccents,
// Prepend, Replace, ByteLevel and Sequence.
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include "tokenizer/components.hpp"
#include "tokenizer/regex.hpp"
#include "tokenizer/utf8.hpp"

namespace aurora::runtime::tok {

namespace {

using config::JsonValue;

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

class UnicodeNormalizer final : public Normalizer {
 public:
  enum class Form { kNfc, kNfd, kNfkc, kNfkd };
  UnicodeNormalizer(Form form, const std::string& field) {
    UErrorCode status = U_ZERO_ERROR;
    switch (form) {
      case Form::kNfc: impl_ = icu::Normalizer2::getNFCInstance(status); break;
      case Form::kNfd: impl_ = icu::Normalizer2::getNFDInstance(status); break;
      case Form::kNfkc: impl_ = icu::Normalizer2::getNFKCInstance(status); break;
      case Form::kNfkd: impl_ = icu::Normalizer2::getNFKDInstance(status); break;
    }
    if (U_FAILURE(status) || impl_ == nullptr) throw_invalid(field, "ICU normalizer unavailable");
  }
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;  // ASCII is invariant under every normalization form
    UErrorCode status = U_ZERO_ERROR;
    icu::UnicodeString in = icu::UnicodeString::fromUTF8(text);
    if (impl_->isNormalized(in, status) && U_SUCCESS(status)) return;
    status = U_ZERO_ERROR;
    icu::UnicodeString out = impl_->normalize(in, status);
    if (U_FAILURE(status)) return;
    text.clear();
    out.toUTF8String(text);
  }

 private:
  const icu::Normalizer2* impl_ = nullptr;
};

// Per character, without context (NormalizedString::lowercase maps each char on its own).
class Lowercase final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      const auto b = static_cast<unsigned char>(text[i]);
      if (b < 0x80) {
        out += static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b);
        ++i;
        continue;
      }
      char32_t cp = next_code_point(text, i);
      UChar src[2];
      int32_t src_len = 0;
      U16_APPEND_UNSAFE(src, src_len, static_cast<UChar32>(cp));
      UChar dst[8];
      UErrorCode status = U_ZERO_ERROR;
      int32_t n = u_strToLower(dst, 8, src, src_len, "", &status);
      if (U_FAILURE(status) || n > 8) {
        append_utf8(out, cp);
        continue;
      }
      for (int32_t k = 0; k < n;) {
        UChar32 c;
        U16_NEXT(dst, k, n, c);
        append_utf8(out, static_cast<char32_t>(c));
      }
    }
    text = std::move(out);
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t b = 0;
    size_t e = text.size();
    if (left_) {
      while (b < e) {
        size_t i = b;
        if (!is_whitespace(next_code_point(text, i))) break;
        b = i;
      }
    }
    if (right_) {
      while (e > b) {
        size_t start;
        if (!is_whitespace(prev_code_point(text, e, start))) break;
        e = start;
      }
    }
    text = text.substr(b, e - b);
  }

 private:
  bool left_;
  bool right_;
};

class StripAccents final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    if (is_ascii(text)) return;
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
      char32_t cp = next_code_point(text, i);
      if ((U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_M_MASK) == 0) append_utf8(out, cp);
    }
    text = std::move(out);
  }
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class Replace final : public Normalizer {
 public:
  Replace(std::optional<Regex> regex, std::string literal, std::string content)
      : regex_(std::move(regex)), literal_(std::move(literal)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    if (!regex_) {
      size_t at = text.find(literal_);
      if (at == std::string::npos) return;
      std::string out;
      size_t from = 0;
      while (at != std::string::npos) {
        out.append(text, from, at - from);
        out += content_;
        from = at + literal_.size();
        at = text.find(literal_, from);
      }
      out.append(text, from, std::string::npos);
      text = std::move(out);
      return;
    }
    std::vector<Span> spans;
    regex_->find_matches(text, spans);
    std::string out;
    for (const auto& s : spans) {
      if (s.is_match) {
        out += content_;
      } else {
        out.append(text, s.begin, s.end - s.begin);
      }
    }
    text = std::move(out);
  }

 private:
  std::optional<Regex> regex_;  // nullopt: a non-empty literal, replaced with std::string::find
  std::string literal_;
  std::string content_;
};

class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    const auto& table = byte_to_unicode();
    std::string out;
    out.reserve(text.size() * 2);
    for (char c : text) out += table[static_cast<unsigned char>(c)];
    text = std::move(out);
  }
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : steps_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

bool flag(const JsonValue& json, std::string_view key, bool fallback) {
  auto v = json.find(key);
  return v ? v->as_bool() : fallback;
}

}  // namespace

// {"String": "..."} or {"Regex": "..."}: the pattern object of Replace and Split.
std::optional<Regex> parse_pattern(const JsonValue& json, std::string* literal) {
  if (auto s = json.find("String")) {
    std::string text = s->as_string();
    if (literal != nullptr && !text.empty()) {
      *literal = text;
      return std::nullopt;
    }
    return Regex::literal(text, s->path());
  }
  if (auto r = json.find("Regex")) return Regex::compile(r->as_string(), r->path());
  json.fail("must be {\"String\": ...} or {\"Regex\": ...}, got " + json.raw());
}

std::unique_ptr<Normalizer> parse_normalizer(const JsonValue& json) {
  const std::string type = json["type"].as_string();
  using Form = UnicodeNormalizer::Form;
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(Form::kNfc, json.path());
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(Form::kNfd, json.path());
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(Form::kNfkc, json.path());
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(Form::kNfkd, json.path());
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip") return std::make_unique<Strip>(flag(json, "strip_left", true), flag(json, "strip_right", true));
  if (type == "Prepend") return std::make_unique<Prepend>(json["prepend"].as_string());
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  if (type == "Replace") {
    std::string literal;
    auto regex = parse_pattern(json["pattern"], &literal);
    return std::make_unique<Replace>(std::move(regex), std::move(literal), json["content"].as_string());
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& item : json["normalizers"].items()) steps.push_back(parse_normalizer(item));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  throw_invalid(json.path().empty() ? "type" : json.path() + ".type",
                "unsupported normalizer '" + type +
                    "' (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace, "
                    "ByteLevel, Sequence)");
}

}  // namespace aurora::runtime::tok
