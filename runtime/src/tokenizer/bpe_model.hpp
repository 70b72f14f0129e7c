// The BPE model of a Hugging Face tokenizer.json: vocabulary, ranked merges, unk/byte fallback,
// continuing-subword prefix and end-of-word suffix, ignore_merges. Tokenizes one pre-tokenized
// word exactly as `tokenizers::models::bpe::BPE` does (lowest merge rank first, leftmost first
// among equal ranks), with merge ranks in a hash map, a priority-queue merge loop over a linked
// list of symbols, and a bounded per-word cache.
// Immutable after construction; tokenize() is thread-safe (the cache is sharded and locked).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "aurora/config/json.hpp"

namespace aurora::runtime::tok {

// Token ids index dense tables, so a file may not name ids beyond this (real vocabularies stay
// below 300k).
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class BpeModel {
 public:
  // From tokenizer.json's "model" object (type BPE). Throws ErrorException naming the field
  // (model.vocab, model.merges[i], ...).
  static std::unique_ptr<BpeModel> parse(const config::JsonValue& model);
  // From a vocabulary and merges given in rank order; merges must name tokens of the vocabulary.
  static std::unique_ptr<BpeModel> build(std::vector<std::pair<std::string, int32_t>> vocab,
                                         const std::vector<std::pair<std::string, std::string>>& merges,
                                         BpeOptions options);

  // Appends the ids of one word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  // The token string of id, or nullptr when the vocabulary has no such id.
  const std::string* id_to_token(int32_t id) const;
  // One past the largest id in the vocabulary.
  int32_t id_limit() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  class WordCache {
   public:
    bool lookup(std::string_view word, std::vector<int32_t>& out) const;
    void insert(std::string_view word, const std::vector<int32_t>& ids) const;

   private:
    static constexpr size_t kShards = 16;
    static constexpr size_t kEntriesPerShard = 8192;  // full shards stop caching, as HF does
    struct Shard {
      mutable std::mutex mutex;
      std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> map;
    };
    mutable std::array<Shard, kShards> shards_;
  };

  BpeModel() = default;
  void add_merge(int32_t rank, const std::string& a, const std::string& b, const std::string& field);
  void finish();
  std::optional<int32_t> lookup_piece(std::string_view piece) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  TokenMap vocab_;
  std::vector<const std::string*> id_to_token_;  // points into vocab_'s keys (stable)
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  std::array<int32_t, 256> byte_ids_{};  // <0xNN> token ids for byte fallback, -1 when absent
  bool all_bytes_present_ = false;
  std::vector<int32_t> char_ids_;  // single code points below U+10000 -> id (-1: none)
  WordCache cache_;
};

}  // namespace aurora::runtime::tok
