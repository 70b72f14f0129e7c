// Private: the engine's per-token log probabilities (token ids) as the OpenAI protocol shows them
// (token strings and bytes from the model's tokenizer). Pure functions of their inputs.
#pragma once

#include <vector>

#include "aurora/config/protocol/responses.hpp"
#include "aurora/runtime/request.hpp"
#include "aurora/runtime/tokenizer.hpp"

namespace aurora::server {

// Each token's text is Tokenizer::token_bytes (special tokens by their text; a part of a UTF-8
// character becomes "bytes:\xNN.."; an id without a token is ""), in the engine's order.
std::vector<protocol::TokenLogprobs> render_logprobs(const std::vector<runtime::GeneratedLogprobs>& logprobs,
                                                     const runtime::Tokenizer& tokenizer);

}  // namespace aurora::server
