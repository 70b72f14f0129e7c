// The OpenAI wire format as the load generator sees it: request bodies for /v1/chat/completions,
// /v1/completions and Aurora's /v1/ws, and what one streamed chunk or WebSocket message says.
//
// Kept in this one file so that it can switch to the protocol types the server shares in
// config/include/aurora/config/protocol/ once they land. Bodies are built with Boost.JSON; chunks
// are read with aurora::config::JsonDocument (simdjson). Parsing never throws: a malformed chunk
// is an Error value naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "aurora/config/error.hpp"
#include "aurora/loadgen/workload.hpp"

namespace aurora::loadgen {

enum class ApiKind { kChat, kCompletions };

struct SamplingOptions {
  std::string model;
  bool ignore_eos = false;
  std::optional<double> temperature;
  std::optional<double> top_p;
  std::optional<int64_t> top_k;
  std::optional<int64_t> seed;
  boost::json::object extra_body;  // merged last (--extra-body)
};

std::string build_request_body(ApiKind api, const RequestSpec& spec, const SamplingOptions& options);
std::string build_ws_create(std::string_view id, const RequestSpec& spec, const SamplingOptions& options);
std::string build_ws_cancel(std::string_view id);

// An error reported by the server in a body or an event, in any of the shapes in use
// ({"error":{"message","type","code"}}, {"error":"..."}, {"object":"error","message",...}).
struct ServerError {
  std::string type;  // "InternalServerError", "server_overloaded", ... (may be empty)
  std::string message;
  std::string code;  // as text: "500", "context_length_exceeded" (may be empty)
};

// What one streamed chat.completion.chunk / text_completion chunk tells the load generator.
struct StreamChunk {
  bool has_choices = false;
  size_t content_bytes = 0;  // generated text in this chunk: content, text, reasoning, tool calls
  std::string text;          // the generated text (content or text)
  std::optional<std::string> finish_reason;
  std::optional<int64_t> prompt_tokens;  // from a usage object, when present
  std::optional<int64_t> completion_tokens;
  std::optional<ServerError> error;  // an in-stream error event
};

Result<StreamChunk> parse_stream_chunk(std::string_view json);

// Reads an error body (any of the shapes above); nullopt when the text is not one.
std::optional<ServerError> parse_error_body(std::string_view text);

// One message from Aurora's /v1/ws.
struct WsMessage {
  enum class Type { kCreated, kChunk, kDone, kError, kOther };
  Type type = Type::kOther;
  std::string id;
  StreamChunk chunk;                     // kChunk: the chat.completion.chunk in "data"
  std::string status;                    // kDone: "completed", "cancelled", ... (may be empty)
  std::optional<int64_t> prompt_tokens;  // kDone: usage
  std::optional<int64_t> completion_tokens;
  ServerError error;  // kError
};

Result<WsMessage> parse_ws_message(std::string_view json);

}  // namespace aurora::loadgen
