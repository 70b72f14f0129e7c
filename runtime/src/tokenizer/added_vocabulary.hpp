// Added tokens of a tokenizer.json (special tokens such as <|im_start|>, <s>, [INST], and extra
// non-special tokens): found in the text before pre-tokenization with leftmost-longest matching,
// honouring the single_word / lstrip / rstrip / normalized flags exactly as HF AddedVocabulary.
// Immutable after construction; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_model.hpp"
#include "tokenizer/components.hpp"

namespace aurora::runtime::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;  // matched in the normalized text (content normalized too)
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  // `normalizer` (may be null) normalizes the content of `normalized` tokens for matching.
  AddedVocabulary(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  struct Segment {
    size_t begin;
    size_t end;
    int32_t id;  // -1: ordinary text
  };
  // HF find_matches: segments covering `text`, added tokens flagged by id. `normalized_set`
  // selects the tokens matched after normalization (normalized=true) instead of before.
  void split(std::string_view text, bool normalized_set, std::vector<Segment>& out) const;

  bool empty() const { return tokens_.empty(); }
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find_id(int32_t id) const;
  std::optional<int32_t> find_content(std::string_view content) const;

 private:
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> edges;  // sorted by byte
      int32_t token = -1;                                    // index into tokens_
    };
    std::vector<Node> nodes{Node{}};
    std::array<bool, 256> first_byte{};
    bool empty = true;
    void insert(std::string_view key, int32_t token);
    // Longest key starting at text[pos]: (token index, end) or token -1.
    std::pair<int32_t, size_t> longest_at(std::string_view text, size_t pos) const;
  };

  std::vector<AddedToken> tokens_;
  TokenMap by_content_;
  std::vector<int32_t> by_id_;  // id -> index into tokens_ (-1: none)
  Trie raw_;
  Trie normalized_;
};

}  // namespace aurora::runtime::tok
