// HfTokenizer: the Tokenizer built from the stages of a Hugging Face tokenizer.json (added tokens,
// normalizer, pre-tokenizer, BPE model, post-processor, decoder) plus the model directory's
// special-token settings and chat template. Immutable after construction; thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "aurora/runtime/tokenizer.hpp"
#include "tokenizer/added_vocabulary.hpp"
#include "tokenizer/bpe_model.hpp"
#include "tokenizer/components.hpp"

namespace aurora::runtime::tok {

// What tokenizer.json describes.
struct TokenizerPipeline {
  std::vector<AddedToken> added_tokens;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
};

// What tokenizer_config.json / generation_config.json (or the defaults) add.
struct SpecialTokenSettings {
  std::optional<int32_t> bos_id;
  std::vector<int32_t> eos_ids;
  // tokenizer_config.json's add_bos_token / add_eos_token; when either is set they decide
  // encode(add_special=true) instead of the post-processor.
  std::optional<bool> add_bos;
  std::optional<bool> add_eos;
  ChatTemplate chat;
};

// Parses tokenizer.json text. Errors name `file` and the field path.
Result<TokenizerPipeline> parse_tokenizer_json(std::string_view json_text, const std::string& file);

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(TokenizerPipeline pipeline, SpecialTokenSettings settings);

  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const override;
  Result<std::string> decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> bos_id() const override { return settings_.bos_id; }
  std::vector<int32_t> eos_ids() const override { return settings_.eos_ids; }
  bool is_special(int32_t id) const override;
  Result<std::string> apply_chat_template(const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt = true) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> token_bytes(int32_t id) const override;
  std::string chat_template_name() const override { return chat_format_name(settings_.chat.format); }

  // Sets the chat template (called once while loading, before the tokenizer is shared).
  void set_chat_template(ChatTemplate chat) { settings_.chat = std::move(chat); }
  // Whether encode(text, true) starts with the BOS id.
  bool adds_bos() const;

 private:
  void add_special_tokens(std::vector<int32_t>& ids) const;
  void encode_text(std::string text, bool at_origin, std::vector<int32_t>& ids) const;

  TokenizerPipeline p_;
  AddedVocabulary added_;
  SpecialTokenSettings settings_;
  int32_t vocab_size_ = 0;
};

}  // namespace aurora::runtime::tok
