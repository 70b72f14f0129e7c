#include "aurora/loadgen/openai_wire.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "aurora/config/json.hpp"

namespace aurora::loadgen {
namespace {

std::string joined_prompt(const RequestSpec& spec) {
  if (!spec.prompt.empty()) return spec.prompt;
  std::string out;
  for (const auto& m : spec.messages) {
    if (!out.empty()) out += "\n\n";
    out += m.content;
  }
  return out;
}

boost::json::object request_object(ApiKind api, const RequestSpec& spec, const SamplingOptions& options) {
  boost::json::object body;
  if (!options.model.empty()) body["model"] = options.model;
  if (api == ApiKind::kChat) {
    boost::json::array messages;
    for (const auto& m : spec.messages) {
      boost::json::object msg;
      msg["role"] = m.role;
      msg["content"] = m.content;
      messages.push_back(std::move(msg));
    }
    body["messages"] = std::move(messages);
    // vLLM's chat benchmark sends the newer name; servers that predate it read max_tokens.
    if (spec.max_tokens > 0) {
      body["max_completion_tokens"] = spec.max_tokens;
      body["max_tokens"] = spec.max_tokens;
    }
  } else {
    body["prompt"] = joined_prompt(spec);
    if (spec.max_tokens > 0) body["max_tokens"] = spec.max_tokens;
  }
  body["stream"] = true;
  body["stream_options"] = boost::json::object{{"include_usage", true}};
  if (options.ignore_eos) body["ignore_eos"] = true;
  if (options.temperature) body["temperature"] = *options.temperature;
  if (options.top_p) body["top_p"] = *options.top_p;
  if (options.top_k) body["top_k"] = *options.top_k;
  if (options.seed) body["seed"] = *options.seed;
  for (const auto& kv : options.extra_body) body[kv.key()] = kv.value();
  return body;
}

ServerError error_from(const config::JsonValue& error_value, const config::JsonValue& parent) {
  ServerError e;
  if (error_value.is_string()) {
    e.message = error_value.as_string();
    if (auto t = parent.find("error_type"); t && t->is_string()) e.type = t->as_string();
    return e;
  }
  if (!error_value.is_object()) {
    e.message = error_value.raw();
    return e;
  }
  if (auto m = error_value.find("message"); m && m->is_string()) e.message = m->as_string();
  if (auto t = error_value.find("type"); t && t->is_string()) e.type = t->as_string();
  if (auto c = error_value.find("code")) e.code = c->is_string() ? c->as_string() : c->raw();
  return e;
}

std::optional<ServerError> error_in(const config::JsonValue& root) {
  if (!root.is_object()) return std::nullopt;
  if (auto error = root.find("error")) return error_from(*error, root);
  if (auto object = root.find("object"); object && object->is_string() && object->as_string() == "error") {
    return error_from(root, root);
  }
  return std::nullopt;
}

void read_usage(const config::JsonValue& usage, std::optional<int64_t>& prompt, std::optional<int64_t>& completion) {
  if (!usage.is_object()) return;
  if (auto p = usage.find("prompt_tokens"); p && p->is_number()) prompt = p->as_int();
  if (auto c = usage.find("completion_tokens"); c && c->is_number()) completion = c->as_int();
}

StreamChunk chunk_from(const config::JsonValue& root) {
  StreamChunk chunk;
  if (!root.is_object()) root.fail("a stream chunk must be a JSON object, got " + root.raw());
  chunk.error = error_in(root);
  if (chunk.error) return chunk;
  if (auto choices = root.find("choices"); choices && choices->is_array() && choices->size() > 0) {
    chunk.has_choices = true;
    for (const auto& choice : choices->items()) {
      if (!choice.is_object()) continue;
      if (auto delta = choice.find("delta"); delta && delta->is_object()) {
        if (auto c = delta->find("content"); c && c->is_string()) chunk.text += c->as_string();
        for (const char* key : {"reasoning_content", "reasoning"}) {
          if (auto r = delta->find(key); r && r->is_string()) chunk.content_bytes += r->as_string().size();
        }
        if (auto tc = delta->find("tool_calls"); tc && tc->is_array()) chunk.content_bytes += tc->raw().size();
      }
      if (auto t = choice.find("text"); t && t->is_string()) chunk.text += t->as_string();
      if (auto f = choice.find("finish_reason"); f && f->is_string()) chunk.finish_reason = f->as_string();
    }
    chunk.content_bytes += chunk.text.size();
  }
  if (auto usage = root.find("usage")) read_usage(*usage, chunk.prompt_tokens, chunk.completion_tokens);
  return chunk;
}

}  // namespace

std::string build_request_body(ApiKind api, const RequestSpec& spec, const SamplingOptions& options) {
  return boost::json::serialize(request_object(api, spec, options));
}

std::string build_ws_create(std::string_view id, const RequestSpec& spec, const SamplingOptions& options) {
  boost::json::object msg;
  msg["type"] = "response.create";
  msg["id"] = id;
  msg["request"] = request_object(ApiKind::kChat, spec, options);
  return boost::json::serialize(msg);
}

std::string build_ws_cancel(std::string_view id) {
  boost::json::object msg;
  msg["type"] = "response.cancel";
  msg["id"] = id;
  return boost::json::serialize(msg);
}

Result<StreamChunk> parse_stream_chunk(std::string_view json) {
  auto doc = config::JsonDocument::parse(json, "stream chunk");
  if (!doc) return doc.error();
  return capture_errors([&] { return chunk_from(doc->root()); });
}

std::optional<ServerError> parse_error_body(std::string_view text) {
  auto doc = config::JsonDocument::parse(text, "error body");
  if (!doc) return std::nullopt;
  auto error = capture_errors([&] { return error_in(doc->root()); });
  if (!error) return std::nullopt;
  return *error;
}

Result<WsMessage> parse_ws_message(std::string_view json) {
  auto doc = config::JsonDocument::parse(json, "websocket message");
  if (!doc) return doc.error();
  return capture_errors([&] {
    const config::JsonValue root = doc->root();
    WsMessage msg;
    const std::string type = root["type"].as_string();
    if (auto id = root.find("id")) msg.id = id->is_string() ? id->as_string() : id->raw();
    if (type == "chunk") {
      msg.type = WsMessage::Type::kChunk;
      msg.chunk = chunk_from(root["data"]);
    } else if (type == "response.done") {
      msg.type = WsMessage::Type::kDone;
      if (auto s = root.find("status"); s && s->is_string()) msg.status = s->as_string();
      if (auto usage = root.find("usage")) read_usage(*usage, msg.prompt_tokens, msg.completion_tokens);
    } else if (type == "error") {
      msg.type = WsMessage::Type::kError;
      auto error = error_in(root);
      msg.error = error ? *error : ServerError{"", root.raw(), ""};
    } else if (type == "response.created") {
      msg.type = WsMessage::Type::kCreated;
    }
    return msg;
  });
}

}  // namespace aurora::loadgen
