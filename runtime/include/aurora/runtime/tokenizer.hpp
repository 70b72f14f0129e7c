// Tokenizer and chat template: text <-> token ids for one model. Immutable after load, so every
// const method is safe to call from any thread (the BPE word cache inside is locked).
//
// Implements Hugging Face `tokenizer.json` BPE tokenizers (byte-level as in GPT-2/Qwen2/Llama-3,
// and SentencePiece-style with ▁ and byte fallback as in Mistral/Llama-2); see docs/tokenizer.md.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/runtime/chat_template.hpp"

namespace aurora::runtime {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Special tokens written in `text` (e.g. "<|im_start|>") become their ids, as Hugging Face
  // does. Invalid UTF-8 in `text` is replaced by U+FFFD first.
  // add_special: add the BOS (and any other post-processor tokens) the model's tokenizer config
  // asks for: tokenizer_config.json's add_bos_token/add_eos_token when present, else the
  // tokenizer.json post_processor.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  // Decodes ids to text (special tokens skipped when skip_special), exactly as Hugging Face
  // `tokenizers` decodes. Ids without a token are an error naming the id.
  virtual Result<std::string> decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
  // One past the largest token id (model vocabulary and added tokens).
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  // EOS ids: tokenizer_config.json's eos_token plus generation_config.json's eos_token_id(s).
  virtual std::vector<int32_t> eos_ids() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Renders messages with the model's chat template (chat_template.hpp). The text begins with
  // the BOS token's text whenever the model expects one, so encode it with add_special = false.
  // A role the template does not accept is an error naming messages[i].role.
  virtual Result<std::string> apply_chat_template(const std::vector<ChatMessage>& messages,
                                                  bool add_generation_prompt = true) const = 0;

  // The token string of an id (as stored in tokenizer.json), or nullopt when the id has none.
  virtual std::optional<std::string> id_to_token(int32_t /*id*/) const { return std::nullopt; }
  // The id of a token string (added tokens first, then the model vocabulary).
  virtual std::optional<int32_t> token_to_id(std::string_view /*token*/) const { return std::nullopt; }
  // The bytes token `id` stands for where it follows other text (OpenAI logprobs' `bytes`):
  // special tokens give their text; a byte-level or <0xNN> byte-fallback token that is part of a
  // UTF-8 character gives its raw bytes (not valid UTF-8 on their own); a SentencePiece token
  // keeps its leading space. nullopt when the id has no token. Default: decode({id}, false).
  virtual std::optional<std::string> token_bytes(int32_t id) const {
    auto text = decode({id}, /*skip_special=*/false);
    if (!text.ok()) return std::nullopt;
    return std::move(text).value();
  }
  // The chat template in use: "chatml", "llama" (Llama-2 [INST] with <<SYS>>), "mistral"
  // ([INST] with the system prompt folded into the first user turn), "tulu" (OLMoE) or "plain".
  virtual std::string chat_template_name() const { return "plain"; }
};

// Loads a Hugging Face tokenizer: `path` is a tokenizer.json file or a model directory (then
// tokenizer_config.json supplies special tokens, BOS/EOS and the chat template, and
// generation_config.json may add EOS ids).
// chat_template: "" = detected from tokenizer_config.json's Jinja template (falling back to
// "plain"), or one of "chatml", "llama" (Llama-2 [INST] <<SYS>>), "mistral", "tulu", "plain".
// Errors name the file and the field path, e.g. "x/tokenizer.json: model.merges[3]: ...".
Result<std::shared_ptr<const Tokenizer>> load_tokenizer(const std::string& path, const std::string& chat_template = "");

// The embedded default model's byte-level tokenizer: ids 0..255 are the bytes, then the specials
// <|bos|>=256, <|eos|>=257, <|im_start|>=258, <|im_end|>=259, <|pad|>=260. ChatML template;
// EOS ids are <|eos|> and <|im_end|>; encode(text, true) prepends <|bos|>.
std::shared_ptr<const Tokenizer> make_embedded_tokenizer();

// The same tokenizer for a model with `vocab_size` ids and no tokenizer.json (random weights):
// ids 261..vocab_size-1 decode to the words " t261", " t262", ..., so every id a random model
// samples streams text. Encoding is unchanged (bytes only).
std::shared_ptr<const Tokenizer> make_full_vocab_byte_tokenizer(int32_t vocab_size);

// Incremental detokenizer for one output stream: feed token ids one at a time, get only complete
// UTF-8 text back. Never emits half a character (byte-level pieces and <0xNN> byte-fallback
// tokens split a character across tokens); the concatenation of all returned pieces plus flush()
// equals tokenizer.decode(all ids). Works like HF TGI/vLLM: it re-decodes only a short window
// [prefix_offset, end) per token, so each push costs O(window), independent of the stream length.
// Ids without a token (vocabulary gaps a model may still sample) contribute no text.
// Not thread-safe (one per stream); the tokenizer must outlive it.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  // Returns the new complete text produced by this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is left at the end (incomplete bytes become U+FFFD). The decoder may be reused
  // afterwards for a new stream.
  std::string flush();

 private:
  // Tokens held back before text is emitted anyway (as U+FFFD): a UTF-8 character needs at most
  // 4 bytes, so more pending tokens mean the bytes are invalid, not incomplete.
  static constexpr size_t kMaxPendingTokens = 8;

  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // the window: the last emitted tokens, then the pending ones
  size_t prefix_offset_ = 0;  // window start: tokens whose text was emitted, kept as context
  size_t read_offset_ = 0;    // tokens before this have been emitted
  std::string prefix_text_;   // decode(ids_[prefix_offset_, read_offset_)), cached
};

}  // namespace aurora::runtime
