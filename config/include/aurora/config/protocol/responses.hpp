// OpenAI-compatible response bodies and streaming chunks for /v1/chat/completions and
// /v1/completions (JSON text), in the shapes vLLM and OpenAI emit.
//
// ChunkEncoder builds each streamed chunk from a prefix computed once per request, so the per-token
// path only escapes the token's text. Its output is byte-for-byte valid JSON (checked against
// Boost.JSON in tests/unit/config/protocol_test.cpp). Value types; thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>

namespace aurora::protocol {

enum class Endpoint { kChat, kCompletion };

struct TokenUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// {"prompt_tokens":..,"completion_tokens":..,"total_tokens":..}
boost::json::object usage_object(const TokenUsage& usage);

// vLLM's `stop_reason` extension: the stop string that matched (written as a JSON string), the
// stop_token_ids entry that ended the choice (a JSON integer), or neither (null: EOS, length).
using StopReason = std::variant<std::monostate, std::string, int32_t>;

// One finished choice of a non-streaming response.
struct ChoiceResult {
  int32_t index = 0;
  std::string text;
  std::string finish_reason;  // "stop" | "length"
  StopReason stop_reason;
};

// {"id","object":"chat.completion","created","model","choices":[{"index","message":{"role","content"},
// "logprobs":null,"finish_reason","stop_reason"}],"usage":{..}}
std::string chat_completion_body(std::string_view id, std::string_view model, int64_t created,
                                 const std::vector<ChoiceResult>& choices, const TokenUsage& usage);
// {"id","object":"text_completion","created","model","choices":[{"index","text","logprobs":null,
// "finish_reason","stop_reason"}],"usage":{..}}
std::string text_completion_body(std::string_view id, std::string_view model, int64_t created,
                                 const std::vector<ChoiceResult>& choices, const TokenUsage& usage);

// The JSON text of streamed chunks (`chat.completion.chunk` or `text_completion`).
class ChunkEncoder {
 public:
  // usage_null_field: add "usage":null to every non-final chunk (OpenAI's rule when
  // stream_options.include_usage is set).
  ChunkEncoder(Endpoint endpoint, std::string_view id, std::string_view model, int64_t created, bool usage_null_field);

  // Chat only: the first chunk of a choice, delta {"role":"assistant","content":""}; `usage` as in
  // text_chunk (vLLM's continuous_usage_stats puts usage in every chunk, this one included).
  std::string role_chunk(int32_t index, const TokenUsage* usage = nullptr) const;
  // A chunk carrying text; `usage` (vLLM's continuous_usage_stats) replaces the null usage field.
  std::string text_chunk(int32_t index, std::string_view text, const TokenUsage* usage = nullptr) const;
  // The last chunk of a choice: empty delta (chat) or empty text (completions), with finish_reason.
  std::string finish_chunk(int32_t index, std::string_view finish_reason, const StopReason& stop_reason,
                           const TokenUsage* usage = nullptr) const;
  // The usage chunk after all choices finished: "choices":[] and "usage":{..}.
  std::string usage_chunk(const TokenUsage& usage) const;

  Endpoint endpoint() const { return endpoint_; }

 private:
  void append_tail(std::string& out, const TokenUsage* usage) const;

  Endpoint endpoint_;
  std::string prefix_;  // {"id":..,"object":..,"created":..,"model":..,"choices":[
  bool usage_null_field_;
};

// Appends `text` as a JSON string literal (quotes included), escaped exactly as Boost.JSON does.
void append_json_string(std::string& out, std::string_view text);

}  // namespace aurora::protocol
