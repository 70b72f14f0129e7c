#include "engine/null_tokenizer.hpp"

namespace aurora::runtime {
namespace {

class NullTokenizer final : public Tokenizer {
 public:
  NullTokenizer(std::string name, int32_t vocab, std::optional<int32_t> bos, std::vector<int32_t> eos)
      : name_(std::move(name)), vocab_(vocab), bos_(bos), eos_(std::move(eos)) {}

  std::vector<int32_t> encode(std::string_view, bool) const override { return {}; }
  Result<std::string> decode(const std::vector<int32_t>& ids, bool) const override {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= vocab_) {
        return Error::invalid(
            "ids[" + std::to_string(i) + "]",
            "token id " + std::to_string(ids[i]) + " is out of range [0, " + std::to_string(vocab_) + ")");
      }
    }
    return std::string();
  }
  int32_t vocab_size() const override { return vocab_; }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::vector<int32_t> eos_ids() const override { return eos_; }
  bool is_special(int32_t) const override { return false; }
  Result<std::string> apply_chat_template(const std::vector<ChatMessage>&, bool) const override {
    return Error::make(ErrorCode::kUnsupported, "model " + name_ + " has no tokenizer.json: send token ids");
  }

 private:
  std::string name_;
  int32_t vocab_;
  std::optional<int32_t> bos_;
  std::vector<int32_t> eos_;
};

}  // namespace

std::shared_ptr<const Tokenizer> make_null_tokenizer(std::string model_name, int32_t vocab_size,
                                                     std::optional<int32_t> bos_id, std::vector<int32_t> eos_ids) {
  return std::make_shared<NullTokenizer>(std::move(model_name), vocab_size, bos_id, std::move(eos_ids));
}

}  // namespace aurora::runtime
