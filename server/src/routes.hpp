// Private: the routes that answer with one JSON or text body: /health, /v1/models, /tokenize,
// /detokenize and /metrics. Pure functions of their inputs; safe on any thread.
#pragma once

#include <string_view>

#include "aurora/config/protocol/api_error.hpp"
#include "aurora/runtime/engine.hpp"
#include "aurora/server/server.hpp"
#include "server_state.hpp"

namespace aurora::server {

HttpResponse error_response(const protocol::ApiError& error);
// {"error":{"message","type","param","code","request_id"}}: an error body naming the request's
// X-Request-Id (reliability anchors T8: the id is in the log line and in the error body).
std::string error_body_with_id(const protocol::ApiError& error, std::string_view request_id);
// The same for a body already built: adds "request_id" to its "error" object. Bodies of another
// shape (a custom route's) are returned unchanged.
std::string add_request_id(const std::string& body, std::string_view request_id);

// 200 {"status":"ok"} when the engine is ready; 503 {"status":"loading"|"draining"} otherwise.
HttpResponse health_route(const ServerState& state, const runtime::Engine* engine);
HttpResponse models_route(const ServerState& state, const runtime::Engine& engine);
// GET /v1/models/{id}: the model object, or 404 model_not_found.
HttpResponse model_route(const ServerState& state, const runtime::Engine& engine, const std::string& id);
HttpResponse tokenize_route(const ServerState& state, const runtime::Engine& engine, std::string_view body);
HttpResponse detokenize_route(const ServerState& state, const runtime::Engine& engine, std::string_view body);
HttpResponse metrics_route(const ServerState& state, const runtime::Engine* engine);

}  // namespace aurora::server
