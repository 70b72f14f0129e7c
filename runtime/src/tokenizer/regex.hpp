// Regex for tokenizer.json patterns: PCRE2 in UTF + UCP mode (JIT when available), with the
// Oniguruma classes Hugging Face `tokenizers` runs them with (\s includes U+0085, \w includes
// marks), so \p{L}, \p{N}, lookahead and (?i:...) behave as in HF.
// Immutable after compile; find_matches is thread-safe (per-thread match data).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace aurora::runtime::tok {

struct Span {
  size_t begin;
  size_t end;
  bool is_match;
};

class Regex {
 public:
  // Compiles an Oniguruma-style pattern. Throws ErrorException naming `field` when invalid.
  static Regex compile(std::string_view pattern, const std::string& field);
  // A regex matching `literal` exactly (HF's `{"String": ...}` patterns).
  static Regex literal(std::string_view literal, const std::string& field);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // HF Pattern::find_matches: spans covering all of `text` in order, matches flagged. Empty
  // matches are reported too (they split the text), as the onig iterator does. `text` must be
  // valid UTF-8.
  void find_matches(std::string_view text, std::vector<Span>& out) const;

  const std::string& pattern() const { return source_; }

  struct Code;  // the compiled PCRE2 pattern (regex.cpp)

 private:
  Regex() = default;
  std::unique_ptr<Code> code_;
  std::string source_;
};

// Rewrites Oniguruma escapes whose PCRE2 meaning differs (exposed for tests).
std::string onig_to_pcre2(std::string_view pattern);

}  // namespace aurora::runtime::tok
