// Log probabilities of one logits row, for SamplingParams::logprobs: the sampled token's logprob
// and the N most likely tokens. Host code over a host logits row (the engine brings the row to
// the host for steps that need it); pure function, thread-safe.
#pragma once

#include <cstdint>

#include "aurora/runtime/request.hpp"

namespace aurora::runtime {

// log_softmax(logits)[token] and the `num_top` largest entries of log_softmax(logits) in
// decreasing order, ties broken by the lower id (num_top is clamped to the vocabulary). The
// normaliser is computed in double precision. Non-finite logits: NaN counts as -inf; a row whose
// every entry is -inf gives -inf logprobs.
GeneratedLogprobs compute_token_logprobs(const float* logits, int32_t vocab_size, int32_t token, int32_t num_top);

}  // namespace aurora::runtime
