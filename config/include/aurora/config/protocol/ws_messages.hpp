// The messages of Aurora's WebSocket endpoint /v1/ws (text frames, one JSON object each).
//
//   client -> server  {"type":"response.create","id":ID,"request":{...chat completion request...}}
//                     {"type":"response.cancel","id":ID}
//   server -> client  {"type":"chunk","id":ID,"data":{...chat.completion.chunk...}}
//                     {"type":"response.done","id":ID,"status":"completed"|"cancelled","usage":{..}}
//                     {"type":"error","id":ID|null,"status":HTTP_STATUS,"error":{"message","type","param","code"}}
//
// ID is a string (at most 256 bytes) or an integer chosen by the client; the server echoes it
// verbatim. Every accepted request ends with exactly one `response.done` or one `error`. Pure
// functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "aurora/config/error.hpp"
#include "aurora/config/protocol/api_error.hpp"
#include "aurora/config/protocol/requests.hpp"
#include "aurora/config/protocol/responses.hpp"

namespace aurora::protocol {

enum class WsMessageType { kCreate, kCancel };

struct WsClientMessage {
  WsMessageType type = WsMessageType::kCreate;
  ChatRequest request;  // kCreate only
};

// The outcome of parsing one client message. `id_json` is the id as compact JSON text ("null" when
// it is missing or invalid), so that even an error about the request can be tagged with its id.
struct WsParsed {
  std::string id_json = "null";
  std::optional<Error> error;
  WsClientMessage message;
};

WsParsed parse_ws_client_message(std::string_view text, const RequestLimits& limits);

// {"type":"response.created","id":...}: the request passed validation and goes to the engine
// (sent before its first chunk; an engine refusal, e.g. a full queue, follows as an error event).
std::string ws_created_event(std::string_view id_json);
std::string ws_chunk_event(std::string_view id_json, std::string_view chunk_json);
std::string ws_done_event(std::string_view id_json, std::string_view status, const TokenUsage& usage);
std::string ws_error_event(std::string_view id_json, const ApiError& error);

}  // namespace aurora::protocol
