// Tokenizer and chat template: text <-> token ids for one model. Immutable after load, so every
// const method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special: prepend the BOS token where the model's tokenizer config asks for it.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  // Decodes ids to text (special tokens skipped when skip_special). Invalid ids are an error.
  virtual Result<std::string> decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::vector<int32_t> eos_ids() const = 0;
  virtual bool is_special(int32_t id) const = 0;
  // Renders messages with the model's chat template and tokenizes the result.
  virtual Result<std::string> apply_chat_template(const std::vector<ChatMessage>& messages,
                                                  bool add_generation_prompt = true) const = 0;
};

// Loads a Hugging Face tokenizer: `path` is a tokenizer.json file or a model directory (then
// tokenizer_config.json supplies special tokens, BOS/EOS and the chat template).
// chat_template: "" = from tokenizer_config.json (falling back to "plain"), or one of
// "chatml", "llama" (Mistral/Llama-2 [INST]), "plain". Errors name the file and the field.
Result<std::shared_ptr<const Tokenizer>> load_tokenizer(const std::string& path, const std::string& chat_template = "");

// The embedded default model's byte-level tokenizer (256 byte tokens plus a few specials).
std::shared_ptr<const Tokenizer> make_embedded_tokenizer();

// Incremental detokenizer: feed token ids one at a time, get only complete UTF-8 text back.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  // Returns the new complete text produced by this token (possibly empty).
  std::string push(int32_t id);
  // Whatever is left at the end (incomplete bytes become U+FFFD).
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // ids before this are fully emitted
  size_t read_offset_ = 0;
  std::string emitted_;
};

}  // namespace aurora::runtime
