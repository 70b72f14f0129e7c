// Placeholder until the tokenizer lands (issue 3): keeps `aurora` linkable.
#include "aurora/runtime/tokenizer.hpp"

namespace aurora::runtime {

Result<std::shared_ptr<const Tokenizer>> load_tokenizer(const std::string& path, const std::string& /*chat_template*/) {
  return Error::make(ErrorCode::kUnsupported, path + ": tokenizers are not implemented yet");
}

std::shared_ptr<const Tokenizer> make_embedded_tokenizer() { return nullptr; }

}  // namespace aurora::runtime
