// OpenAI-compatible request bodies: /v1/chat/completions, /v1/completions, /tokenize and
// /detokenize, parsed from JSON text and validated against RequestLimits.
//
// Contract: every parse_* function either returns a fully validated value or an Error whose
// `field` names the offending JSON path (`messages[3].content`, `stop[1]`, `max_tokens`) and whose
// message quotes the value. Nothing throws out of these functions; they are safe on any bytes
// (fuzzed by config/fuzz/fuzz_request_json.cpp). Checks that need the model (context length,
// vocabulary, model name) are the caller's. Pure functions; thread-safe.
//
// Policy (documented in docs/server.md): unknown fields are rejected (a typo such as `max_token`
// must not be silently ignored); known OpenAI fields we do not implement are accepted only with
// their neutral value (`frequency_penalty: 0`, `echo: false`, ...); duplicate keys, nesting
// deeper than max_json_depth and non-integral token counts are rejected; `null` means "absent".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::config {
class JsonValue;
}

namespace aurora::protocol {

// Caps on one request (all configurable through the server config; defaults as documented).
struct RequestLimits {
  int32_t max_n = 4;                // `n`
  int32_t max_stop = 4;             // number of stop strings
  int32_t max_stop_bytes = 256;     // bytes per stop string
  int32_t max_stop_token_ids = 64;  // `stop_token_ids`
  int32_t max_messages = 1024;      // chat messages
  int32_t max_prompts = 4;          // prompts in one completions request (a batch)
  int32_t max_json_depth = 64;      // nesting of the request body
  int32_t max_logprobs = 20;        // chat `top_logprobs`, completions `logprobs` (vLLM's --max-logprobs)
};

struct SamplingFields {
  std::optional<int32_t> max_tokens;  // from max_completion_tokens (preferred) or max_tokens
  std::string max_tokens_field;       // which of the two set it ("" when absent)
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;  // 0 = off (-1 is accepted and means off)
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  int32_t n = 1;
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  bool continuous_usage_stats = false;  // stream_options.continuous_usage_stats (vLLM): usage in every chunk
  // Log probabilities asked for (chat `logprobs: true` with `top_logprobs`, completions `logprobs:
  // N`): the number of most likely alternatives per generated token, 0..max_logprobs; absent = none.
  std::optional<int32_t> logprobs;
  // vLLM's sampling extras (semantics: runtime SamplingParams); neutral values change nothing.
  float presence_penalty = 0.0f;                      // [-2, 2]
  float frequency_penalty = 0.0f;                     // [-2, 2]
  float repetition_penalty = 1.0f;                    // > 0
  float min_p = 0.0f;                                 // [0, 1]
  int32_t min_tokens = 0;                             // >= 0, <= max_tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias in [-100, 100]), ids unique
};

struct ChatMessageField {
  std::string role;  // system, developer, user, assistant
  std::string content;
};

struct ChatRequest {
  std::string model;  // "" = the server's first model
  std::vector<ChatMessageField> messages;
  SamplingFields sampling;
  bool add_generation_prompt = true;
};

// One prompt of a completions request: text, or token ids when `is_tokens`.
struct Prompt {
  bool is_tokens = false;
  std::string text;
  std::vector<int32_t> token_ids;
};

struct CompletionRequest {
  std::string model;
  std::vector<Prompt> prompts;  // >= 1; choices are indexed prompt * n + j
  SamplingFields sampling;
  bool echo = false;
};

// POST /tokenize: {"model"?, "prompt": str, "add_special_tokens"?} or {"model"?, "messages": [...],
// "add_generation_prompt"?}.
struct TokenizeRequest {
  std::string model;
  bool is_chat = false;
  std::string prompt;
  std::vector<ChatMessageField> messages;
  bool add_special_tokens = true;
  bool add_generation_prompt = true;
};

// POST /detokenize: {"model"?, "tokens": [ids]}.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};

Result<ChatRequest> parse_chat_request(std::string_view body, const RequestLimits& limits);
Result<CompletionRequest> parse_completion_request(std::string_view body, const RequestLimits& limits);
Result<TokenizeRequest> parse_tokenize_request(std::string_view body, const RequestLimits& limits);
Result<DetokenizeRequest> parse_detokenize_request(std::string_view body, const RequestLimits& limits);

// The same checks on an already parsed object (the WebSocket envelope embeds a chat request).
// Throws ErrorException; paths are prefixed with the value's own path.
ChatRequest chat_request_from_json(const config::JsonValue& value, const RequestLimits& limits);

// True when `text` nests arrays/objects deeper than max_depth (a linear scan; strings are skipped).
bool json_nesting_exceeds(std::string_view text, int32_t max_depth);

}  // namespace aurora::protocol
