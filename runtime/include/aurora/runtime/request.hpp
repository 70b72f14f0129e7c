// What a generation request carries into the engine, and what comes back out through its sink.
// Plain value types; no threads, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

using RequestId = uint64_t;
using Clock = std::chrono::steady_clock;

struct SamplingParams {
  float temperature = 1.0f;             // 0 = greedy
  float top_p = 1.0f;                   // (0, 1]
  int32_t top_k = 0;                    // 0 = off
  std::optional<uint64_t> seed;         // per-request RNG seed; absent = engine-chosen
  int32_t max_tokens = 16;              // >= 1
  std::vector<std::string> stop;        // stop strings; the matched text is not emitted
  std::vector<int32_t> stop_token_ids;  // in addition to the model's EOS ids
  bool ignore_eos = false;
  // Log probabilities (OpenAI `logprobs`): absent = none; N = every generated token's logprob plus
  // the N most likely tokens at its position (0 <= N <= vocab size). Raw: log-softmax of the
  // model's logits, before temperature, top-p and top-k (vLLM's default raw_logprobs mode).
  std::optional<int32_t> logprobs;
  // vLLM's sampling extras, applied on the host to the logits before temperature (order and exact
  // rules: engine/logits_processors.hpp); the neutral values below change nothing.
  float presence_penalty = 0.0f;    // [-2, 2]: minus this for every token generated at least once
  float frequency_penalty = 0.0f;   // [-2, 2]: minus this times the token's count in the output
  float repetition_penalty = 1.0f;  // > 0: tokens of the prompt or output: logit > 0 ? l / r : l * r
  float min_p = 0.0f;               // [0, 1]: drop tokens whose probability is < min_p * the largest
  int32_t min_tokens = 0;           // >= 0: EOS and stop_token_ids are ruled out until this many tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias in [-100, 100]) added to the logit
};

struct GenerationRequest {
  std::string model;                // model name; empty = the engine's first model
  std::vector<int32_t> prompt_ids;  // already tokenized (chat template applied by the caller)
  SamplingParams sampling;
  std::string external_id;  // e.g. the HTTP X-Request-Id, for logs only
  // Debugging aid (the CLI's --logits): return the logits at the last prompt position, i.e. the
  // distribution the first token is drawn from, in Completion::prompt_logits (vocab floats).
  bool return_prompt_logits = false;
};

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason reason);  // "stop", "length", "cancelled", "error"

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
};

// One token's log probability under the model's raw distribution.
struct TokenLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;  // <= 0; -inf for a token the logits rule out
};

// A generated token's logprob and the most likely tokens at its position: `top` holds
// SamplingParams::logprobs entries in decreasing logprob order (ties: lower id first).
struct GeneratedLogprobs {
  TokenLogprob sampled;
  std::vector<TokenLogprob> top;
};

// One step's output for one request. `text` holds only complete UTF-8 characters and never a
// prefix of a stop string that may still match; held-back bytes come out in a later delta or in
// the final one. `token_ids` are the tokens generated this step (may be non-empty with empty text).
struct TokenDelta {
  std::string text;
  std::vector<int32_t> token_ids;
  // When SamplingParams::logprobs is set: one entry per token_ids entry, in the same order.
  std::vector<GeneratedLogprobs> logprobs;
};

// Timestamps taken by the engine, for the server's latency histograms.
struct RequestTiming {
  Clock::time_point arrived;          // submit() accepted it
  Clock::time_point first_scheduled;  // left the waiting queue (queue time = this - arrived)
  Clock::time_point first_token;      // first generated token sampled
  Clock::time_point finished;
};

struct Completion {
  FinishReason reason = FinishReason::kStop;
  Usage usage;
  RequestTiming timing;
  std::optional<Error> error;              // set when reason == kError
  std::optional<std::string> stop_string;  // which stop string matched, if any
  std::optional<int32_t> stop_token_id;    // the stop_token_ids entry that ended it (not EOS, as vLLM);
                                           // never set together with stop_string
  std::vector<float> prompt_logits;        // when GenerationRequest::return_prompt_logits (and a token was drawn)
};

}  // namespace aurora::runtime
