// NullTokenizer: stands in for a model directory without tokenizer.json (e.g. test checkpoints
// driven by token ids). Token ids flow through the engine unchanged; text is always empty.
#pragma once

#include <memory>
#include <string>

#include "aurora/runtime/tokenizer.hpp"

namespace aurora::runtime {

std::shared_ptr<const Tokenizer> make_null_tokenizer(std::string model_name, int32_t vocab_size,
                                                     std::optional<int32_t> bos_id, std::vector<int32_t> eos_ids);

}  // namespace aurora::runtime
