// FakeTokenizer: a deterministic byte-level tokenizer for server tests. Ids 0..255 are bytes,
// 256 is BOS, 257 is EOS, and 258.. are the fake engine's generated words (" alpha", " bravo", ...),
// so /tokenize, /detokenize and generated token ids all round-trip. Chat template: "<|role|>\n
// content\n" per message, then "<|assistant|>\n". Immutable; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "aurora/runtime/tokenizer.hpp"

namespace aurora::testing {

class FakeTokenizer final : public runtime::Tokenizer {
 public:
  static constexpr int32_t kBos = 256;
  static constexpr int32_t kEos = 257;
  static constexpr int32_t kFirstWord = 258;
  static constexpr int32_t kNumWords = 16;

  // The text of generated word k (k in [0, kNumWords)).
  static const std::string& word(int32_t k);

  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const override;
  Result<std::string> decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return kFirstWord + kNumWords; }
  std::optional<int32_t> bos_id() const override { return kBos; }
  std::vector<int32_t> eos_ids() const override { return {kEos}; }
  bool is_special(int32_t id) const override { return id == kBos || id == kEos; }
  Result<std::string> apply_chat_template(const std::vector<runtime::ChatMessage>& messages,
                                          bool add_generation_prompt = true) const override;
};

}  // namespace aurora::testing
