#include "fake_tokenizer.hpp"

#include <array>

namespace aurora::testing {

const std::string& FakeTokenizer::word(int32_t k) {
  static const std::array<std::string, kNumWords> kWords = {
      " alpha", " bravo",   " charlie", " delta", " echo", " foxtrot",  " golf",  " hotel",
      " india", " juliett", " kilo",    " lima",  " mike", " november", " oscar", " papa"};
  return kWords[static_cast<size_t>(k) % kWords.size()];
}

std::vector<int32_t> FakeTokenizer::encode(std::string_view text, bool add_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (add_special) ids.push_back(kBos);
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

Result<std::string> FakeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id >= 0 && id < 256) {
      out += static_cast<char>(id);
    } else if (id == kBos || id == kEos) {
      if (!skip_special) out += id == kBos ? "<s>" : "</s>";
    } else if (id >= kFirstWord && id < kFirstWord + kNumWords) {
      out += word(id - kFirstWord);
    } else {
      return Error::invalid("tokens[" + std::to_string(i) + "]", "unknown token id " + std::to_string(id));
    }
  }
  return out;
}

Result<std::string> FakeTokenizer::apply_chat_template(const std::vector<runtime::ChatMessage>& messages,
                                                       bool add_generation_prompt) const {
  std::string out;
  for (const auto& m : messages) out += "<|" + m.role + "|>\n" + m.content + "\n";
  if (add_generation_prompt) out += "<|assistant|>\n";
  return out;
}

}  // namespace aurora::testing
