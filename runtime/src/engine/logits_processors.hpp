// Host-side logits processors (vLLM's sampling extras): min_tokens, logit_bias, repetition /
// frequency / presence penalties and min_p, applied to one sequence's logits row before sampling.
//
// Order (vLLM V1's sampler): min_tokens masks the stop ids, logit_bias is added, then the
// repetition penalty (prompt and generated tokens), then the frequency and presence penalties
// (generated tokens only); temperature, top-k and top-p stay in the sampling kernel. min_p is
// applied here too, before temperature, through the equivalent threshold on the logits:
// softmax(l / T)[i] < min_p * max ⇔ l[i] < l_max + T * ln(min_p); it is skipped for greedy rows
// (argmax-invariant, as vLLM). Contract: pure functions of their inputs; the caller owns the row.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "aurora/runtime/request.hpp"

namespace aurora::runtime {

// What the penalties need to know of a sequence's tokens, kept incrementally by the engine.
struct TokenHistory {
  std::vector<int32_t> prompt_tokens;                  // sorted, unique (only when repetition_penalty != 1)
  std::unordered_map<int32_t, int32_t> output_counts;  // generated token -> times generated
  int32_t num_generated = 0;

  // Starts the history of a sequence with this prompt, under these parameters.
  void start(const std::vector<int32_t>& prompt_ids, const SamplingParams& params);
  void add_generated(int32_t token);
};

// True when `params` asks for any processor here (the engine then samples this row on the host).
bool needs_logits_processing(const SamplingParams& params);

// Applies the processors to `row` (vocab_size floats) in the order above. While fewer than
// params.min_tokens tokens are generated, the model's `eos_ids` (unless ignore_eos) and
// params.stop_token_ids get -inf.
void apply_logits_processors(float* row, int32_t vocab_size, const SamplingParams& params, const TokenHistory& history,
                             const std::vector<int32_t>& eos_ids);

}  // namespace aurora::runtime
