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

// One token in a logprobs object. `bytes` are the token's bytes; `token` is the same text when it
// is valid UTF-8, else (part of a character) "bytes:" followed by \xNN escapes of every byte, as
// OpenAI writes such tokens.
struct LogprobToken {
  std::string token;
  std::string bytes;
  double logprob = 0.0;  // written as -9999.0 when not finite (vLLM's stand-in for -inf)
};

// One generated token: its own logprob and the most likely alternatives (decreasing).
struct TokenLogprobs {
  LogprobToken sampled;
  std::vector<LogprobToken> top;
};

// A LogprobToken for `bytes`, with the printable `token` derived as described above.
LogprobToken make_logprob_token(std::string bytes, double logprob);

// The logprobs object of a choice (or of one chunk's tokens):
//   chat:        {"content":[{"token","logprob","bytes":[..],"top_logprobs":[{"token","logprob","bytes"}..]}..]}
//   completions: {"tokens":[..],"token_logprobs":[..],"top_logprobs":[{token: logprob, ..}..],
//                 "text_offset":[..]}; a top_logprobs object holds the sampled token too (OpenAI:
//                 up to N+1 entries; the first of equal token strings wins), and text_offset
//                 counts characters (code points) of the token strings from `text_offset` on, as vLLM.
boost::json::object logprobs_object(Endpoint endpoint, const std::vector<TokenLogprobs>& tokens,
                                    int64_t text_offset = 0);
// The number of characters (code points) `token` adds to the text offsets.
int64_t logprob_text_length(const LogprobToken& token);

// One finished choice of a non-streaming response.
struct ChoiceResult {
  int32_t index = 0;
  std::string text;
  std::string finish_reason;  // "stop" | "length"
  StopReason stop_reason;
  std::optional<std::vector<TokenLogprobs>> logprobs;  // absent: "logprobs":null
};

// {"id","object":"chat.completion","created","model","choices":[{"index","message":{"role","content"},
// "logprobs","finish_reason","stop_reason"}],"usage":{..}}
std::string chat_completion_body(std::string_view id, std::string_view model, int64_t created,
                                 const std::vector<ChoiceResult>& choices, const TokenUsage& usage);
// {"id","object":"text_completion","created","model","choices":[{"index","text","logprobs",
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
  // A chunk carrying text; `usage` (vLLM's continuous_usage_stats) replaces the null usage field;
  // `logprobs_json` (a serialized logprobs_object, "" = null) becomes the choice's logprobs.
  std::string text_chunk(int32_t index, std::string_view text, const TokenUsage* usage = nullptr,
                         std::string_view logprobs_json = {}) const;
  // The last chunk of a choice: empty delta (chat) or empty text (completions), with finish_reason.
  std::string finish_chunk(int32_t index, std::string_view finish_reason, const StopReason& stop_reason,
                           const TokenUsage* usage = nullptr, std::string_view logprobs_json = {}) const;
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
