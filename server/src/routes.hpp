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

// 200 {"status":"ok"} when the engine is ready; 503 {"status":"loading"|"draining"} otherwise.
HttpResponse health_route(const ServerState& state, const runtime::Engine* engine);
HttpResponse models_route(const ServerState& state, const runtime::Engine& engine);
HttpResponse tokenize_route(const ServerState& state, const runtime::Engine& engine, std::string_view body);
HttpResponse detokenize_route(const ServerState& state, const runtime::Engine& engine, std::string_view body);
HttpResponse metrics_route(const ServerState& state, const runtime::Engine* engine);

}  // namespace aurora::server
