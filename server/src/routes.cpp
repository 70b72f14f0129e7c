#include "routes.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "aurora/config/protocol/requests.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "generation.hpp"

namespace aurora::server {

namespace json = boost::json;
using protocol::ApiError;

HttpResponse error_response(const ApiError& error) {
  HttpResponse r;
  r.status = error.status;
  r.body = protocol::error_body(error);
  return r;
}

std::string error_body_with_id(const ApiError& error, std::string_view request_id) {
  json::object inner = protocol::error_object(error);
  if (!request_id.empty()) inner["request_id"] = request_id;
  json::object body;
  body["error"] = std::move(inner);
  return json::serialize(body);
}

std::string add_request_id(const std::string& body, std::string_view request_id) {
  if (request_id.empty()) return body;
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) return body;
  auto* error = parsed.as_object().if_contains("error");
  if (error == nullptr || !error->is_object()) return body;
  error->as_object()["request_id"] = request_id;
  return json::serialize(parsed);
}

HttpResponse health_route(const ServerState& state, const runtime::Engine* engine) {
  HttpResponse r;
  if (state.draining.load()) {
    r.status = 503;
    r.body = R"({"status":"draining"})";
  } else if (engine == nullptr || !engine->ready()) {
    r.status = 503;
    r.body = R"({"status":"loading"})";
  } else {
    // Readiness (reliability F14/F15): an engine that has work but finishes no step, or fails every
    // step, should get no new traffic; liveness is the process answering at all.
    const config::ServerConfig& c = state.config;
    const runtime::EngineStats stats = engine->progress();
    if (c.engine_stall_ms > 0 && stats.seconds_without_progress * 1000.0 >= static_cast<double>(c.engine_stall_ms)) {
      json::object body;
      body["status"] = "stalled";
      body["seconds_without_progress"] = stats.seconds_without_progress;
      r.status = 503;
      r.body = json::serialize(body);
    } else if (c.engine_failed_steps > 0 && stats.consecutive_failed_steps >= c.engine_failed_steps) {
      json::object body;
      body["status"] = "failing";
      body["consecutive_failed_steps"] = stats.consecutive_failed_steps;
      r.status = 503;
      r.body = json::serialize(body);
    } else {
      r.body = R"({"status":"ok"})";
    }
  }
  return r;
}

namespace {

json::object model_object(const ServerState& state, const runtime::ModelInfo& m) {
  json::object o;
  o["id"] = m.name;
  o["object"] = "model";
  o["created"] = state.start_time_s;
  o["owned_by"] = "aurora";
  o["root"] = m.name;
  o["parent"] = nullptr;
  o["max_model_len"] = m.max_context_len;
  return o;
}

}  // namespace

HttpResponse models_route(const ServerState& state, const runtime::Engine& engine) {
  json::array data;
  for (const auto& m : engine.models()) data.push_back(model_object(state, m));
  json::object body;
  body["object"] = "list";
  body["data"] = std::move(data);
  HttpResponse r;
  r.body = json::serialize(body);
  return r;
}

HttpResponse model_route(const ServerState& state, const runtime::Engine& engine, const std::string& id) {
  // The same lookup (and 404 model_not_found) as a request's `model` field; "" never gets here.
  auto model = resolve_model(engine, id);
  if (!model.ok()) return error_response(model.error());
  HttpResponse r;
  r.body = json::serialize(model_object(state, model.value()));
  return r;
}

HttpResponse tokenize_route(const ServerState& state, const runtime::Engine& engine, std::string_view body) {
  auto request = protocol::parse_tokenize_request(body, state.config.limits);
  if (!request.ok()) return error_response(ApiError::from(request.error()));
  auto model = resolve_model(engine, request->model);
  if (!model.ok()) return error_response(model.error());
  const runtime::Tokenizer& tokenizer = engine.tokenizer(model.value().name);
  std::vector<int32_t> ids;
  if (request->is_chat) {
    std::vector<runtime::ChatMessage> messages;
    for (const auto& m : request->messages) messages.push_back({m.role, m.content});
    auto rendered = tokenizer.apply_chat_template(messages, request->add_generation_prompt);
    if (!rendered.ok()) {
      ApiError e = ApiError::from(rendered.error());
      if (e.param.empty()) e.param = "messages";
      return error_response(e);
    }
    ids = tokenizer.encode(*rendered, /*add_special=*/false);
  } else {
    ids = tokenizer.encode(request->prompt, request->add_special_tokens);
  }
  json::object out;
  out["count"] = ids.size();
  out["max_model_len"] = model.value().max_context_len;
  json::array tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) tokens.push_back(id);
  out["tokens"] = std::move(tokens);
  HttpResponse r;
  r.body = json::serialize(out);
  return r;
}

HttpResponse detokenize_route(const ServerState& state, const runtime::Engine& engine, std::string_view body) {
  auto request = protocol::parse_detokenize_request(body, state.config.limits);
  if (!request.ok()) return error_response(ApiError::from(request.error()));
  auto model = resolve_model(engine, request->model);
  if (!model.ok()) return error_response(model.error());
  for (size_t i = 0; i < request->tokens.size(); ++i) {
    if (request->tokens[i] >= model.value().vocab_size) {
      return error_response(ApiError::invalid_request(
          "tokens[" + std::to_string(i) + "]: token id " + std::to_string(request->tokens[i]) +
              " is not in the vocabulary (size " + std::to_string(model.value().vocab_size) + ")",
          "tokens"));
    }
  }
  auto text = engine.tokenizer(model.value().name).decode(request->tokens, /*skip_special=*/false);
  if (!text.ok()) {
    ApiError e = ApiError::from(text.error());
    if (e.param.empty()) e.param = "tokens";
    return error_response(e);
  }
  json::object out;
  out["prompt"] = *text;
  HttpResponse r;
  r.body = json::serialize(out);
  return r;
}

HttpResponse metrics_route(const ServerState& state, const runtime::Engine* engine) {
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = state.metrics.render(engine);
  return r;
}

}  // namespace aurora::server
