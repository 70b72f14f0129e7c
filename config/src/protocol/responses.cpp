#include "aurora/config/protocol/responses.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

namespace aurora::protocol {

namespace json = boost::json;

boost::json::object usage_object(const TokenUsage& usage) {
  json::object o;
  o["prompt_tokens"] = usage.prompt_tokens;
  o["completion_tokens"] = usage.completion_tokens;
  o["total_tokens"] = usage.prompt_tokens + usage.completion_tokens;
  return o;
}

namespace {

json::value stop_reason_value(const StopReason& reason) {
  if (const auto* text = std::get_if<std::string>(&reason)) return json::value(*text);
  if (const auto* token = std::get_if<int32_t>(&reason)) return json::value(*token);
  return json::value(nullptr);
}

std::string completion_body(Endpoint endpoint, std::string_view id, std::string_view model, int64_t created,
                            const std::vector<ChoiceResult>& choices, const TokenUsage& usage) {
  json::object o;
  o["id"] = id;
  o["object"] = endpoint == Endpoint::kChat ? "chat.completion" : "text_completion";
  o["created"] = created;
  o["model"] = model;
  json::array out;
  out.reserve(choices.size());
  for (const auto& c : choices) {
    json::object choice;
    choice["index"] = c.index;
    if (endpoint == Endpoint::kChat) {
      json::object message;
      message["role"] = "assistant";
      message["content"] = c.text;
      choice["message"] = std::move(message);
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = c.finish_reason;
    choice["stop_reason"] = stop_reason_value(c.stop_reason);
    out.push_back(std::move(choice));
  }
  o["choices"] = std::move(out);
  o["usage"] = usage_object(usage);
  return json::serialize(o);
}

void append_int(std::string& out, int64_t v) { out += std::to_string(v); }

void append_usage(std::string& out, const TokenUsage& usage) {
  out += "{\"prompt_tokens\":";
  append_int(out, usage.prompt_tokens);
  out += ",\"completion_tokens\":";
  append_int(out, usage.completion_tokens);
  out += ",\"total_tokens\":";
  append_int(out, usage.prompt_tokens + usage.completion_tokens);
  out += '}';
}

}  // namespace

std::string chat_completion_body(std::string_view id, std::string_view model, int64_t created,
                                 const std::vector<ChoiceResult>& choices, const TokenUsage& usage) {
  return completion_body(Endpoint::kChat, id, model, created, choices, usage);
}

std::string text_completion_body(std::string_view id, std::string_view model, int64_t created,
                                 const std::vector<ChoiceResult>& choices, const TokenUsage& usage) {
  return completion_body(Endpoint::kCompletion, id, model, created, choices, usage);
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
}

ChunkEncoder::ChunkEncoder(Endpoint endpoint, std::string_view id, std::string_view model, int64_t created,
                           bool usage_null_field)
    : endpoint_(endpoint), usage_null_field_(usage_null_field) {
  prefix_ = "{\"id\":";
  append_json_string(prefix_, id);
  prefix_ += endpoint == Endpoint::kChat ? ",\"object\":\"chat.completion.chunk\"" : ",\"object\":\"text_completion\"";
  prefix_ += ",\"created\":";
  append_int(prefix_, created);
  prefix_ += ",\"model\":";
  append_json_string(prefix_, model);
  prefix_ += ",\"choices\":[";
}

void ChunkEncoder::append_tail(std::string& out, const TokenUsage* usage) const {
  out += ']';
  if (usage != nullptr) {
    out += ",\"usage\":";
    append_usage(out, *usage);
  } else if (usage_null_field_) {
    out += ",\"usage\":null";
  }
  out += '}';
}

std::string ChunkEncoder::role_chunk(int32_t index, const TokenUsage* usage) const {
  std::string out = prefix_;
  out += "{\"index\":";
  append_int(out, index);
  out += ",\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}";
  append_tail(out, usage);
  return out;
}

std::string ChunkEncoder::text_chunk(int32_t index, std::string_view text, const TokenUsage* usage) const {
  std::string out;
  out.reserve(prefix_.size() + text.size() + 120);
  out = prefix_;
  out += "{\"index\":";
  append_int(out, index);
  if (endpoint_ == Endpoint::kChat) {
    out += ",\"delta\":{\"content\":";
    append_json_string(out, text);
    out += "},\"logprobs\":null,\"finish_reason\":null}";
  } else {
    out += ",\"text\":";
    append_json_string(out, text);
    out += ",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null}";
  }
  append_tail(out, usage);
  return out;
}

std::string ChunkEncoder::finish_chunk(int32_t index, std::string_view finish_reason, const StopReason& stop_reason,
                                       const TokenUsage* usage) const {
  std::string out = prefix_;
  out += "{\"index\":";
  append_int(out, index);
  out += endpoint_ == Endpoint::kChat ? ",\"delta\":{}" : ",\"text\":\"\"";
  out += ",\"logprobs\":null,\"finish_reason\":";
  append_json_string(out, finish_reason);
  out += ",\"stop_reason\":";
  if (const auto* text = std::get_if<std::string>(&stop_reason)) {
    append_json_string(out, *text);
  } else if (const auto* token = std::get_if<int32_t>(&stop_reason)) {
    append_int(out, *token);
  } else {
    out += "null";
  }
  out += '}';
  append_tail(out, usage);
  return out;
}

std::string ChunkEncoder::usage_chunk(const TokenUsage& usage) const {
  std::string out = prefix_;
  append_tail(out, &usage);
  return out;
}

}  // namespace aurora::protocol
