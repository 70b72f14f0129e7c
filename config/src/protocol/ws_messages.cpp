#include "aurora/config/protocol/ws_messages.hpp"

#include <boost/json/serialize.hpp>

#include "aurora/config/json.hpp"

namespace aurora::protocol {

namespace {

constexpr size_t kMaxIdBytes = 256;

std::string id_text(const config::JsonValue& id) {
  if (id.is_string()) {
    std::string s = id.as_string();
    if (s.empty() || s.size() > kMaxIdBytes) id.fail("must be a non-empty string of at most 256 bytes");
    std::string out;
    append_json_string(out, s);
    return out;
  }
  if (id.is_number()) return std::to_string(id.as_int());
  id.fail("must be a string or an integer, got " + id.raw());
}

}  // namespace

WsParsed parse_ws_client_message(std::string_view text, const RequestLimits& limits) {
  WsParsed out;
  if (json_nesting_exceeds(text, limits.max_json_depth + 1)) {
    out.error =
        Error::invalid("", "the message nests deeper than " + std::to_string(limits.max_json_depth) + " levels");
    return out;
  }
  auto doc = config::JsonDocument::parse(text, "message");
  if (!doc) {
    out.error = Error::invalid("", "the message is not valid JSON");
    return out;
  }
  const config::JsonValue root = doc->root();
  if (!root.is_object()) {
    out.error = Error::invalid("", "the message must be a JSON object");
    return out;
  }
  // The id first, so that every later error can carry it.
  auto id = capture_errors([&] {
    auto v = root.find("id");
    if (!v) throw_invalid("id", "is required");
    return id_text(*v);
  });
  if (!id) {
    out.error = id.error();
    return out;
  }
  out.id_json = *id;
  auto parsed = capture_errors([&] {
    WsClientMessage m;
    const std::string type = root["type"].as_string();
    if (type == "response.create") {
      root.reject_unknown_keys({"type", "id", "request"});
      m.type = WsMessageType::kCreate;
      m.request = chat_request_from_json(root["request"], limits);
    } else if (type == "response.cancel") {
      root.reject_unknown_keys({"type", "id"});
      m.type = WsMessageType::kCancel;
    } else {
      root["type"].fail("must be \"response.create\" or \"response.cancel\", got \"" + type + "\"");
    }
    return m;
  });
  if (!parsed) {
    out.error = parsed.error();
  } else {
    out.message = std::move(*parsed);
  }
  return out;
}

std::string ws_chunk_event(std::string_view id_json, std::string_view chunk_json) {
  std::string out;
  out.reserve(chunk_json.size() + id_json.size() + 32);
  out += "{\"type\":\"chunk\",\"id\":";
  out += id_json;
  out += ",\"data\":";
  out += chunk_json;
  out += '}';
  return out;
}

std::string ws_done_event(std::string_view id_json, std::string_view status, const TokenUsage& usage) {
  std::string out = "{\"type\":\"response.done\",\"id\":";
  out += id_json;
  out += ",\"status\":";
  append_json_string(out, status);
  out += ",\"usage\":";
  out += boost::json::serialize(usage_object(usage));
  out += '}';
  return out;
}

std::string ws_created_event(std::string_view id_json) {
  std::string out = "{\"type\":\"response.created\",\"id\":";
  out += id_json;
  out += '}';
  return out;
}

std::string ws_error_event(std::string_view id_json, const ApiError& error) {
  std::string out = "{\"type\":\"error\",\"id\":";
  out += id_json;
  out += ",\"status\":";
  out += std::to_string(error.status);
  out += ",\"error\":";
  out += boost::json::serialize(error_object(error));
  out += '}';
  return out;
}

}  // namespace aurora::protocol
