#include "aurora/config/protocol/responses.hpp"

#include "aurora/config/utf8.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <cmath>

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
    if (c.logprobs) {
      choice["logprobs"] = logprobs_object(endpoint, *c.logprobs);
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = c.finish_reason;
    choice["stop_reason"] = stop_reason_value(c.stop_reason);
    out.push_back(std::move(choice));
  }
  o["choices"] = std::move(out);
  o["usage"] = usage_object(usage);
  return json::serialize(o);
}

void append_int(std::string& out, int64_t v) { out += std::to_string(v); }

void append_logprobs(std::string& out, std::string_view logprobs_json) {
  out += ",\"logprobs\":";
  out += logprobs_json.empty() ? std::string_view("null") : logprobs_json;
}

json::value logprob_value(double logprob) { return json::value(std::isfinite(logprob) ? logprob : -9999.0); }

json::array bytes_array(const std::string& bytes) {
  json::array a;
  a.reserve(bytes.size());
  for (char c : bytes) a.push_back(static_cast<int64_t>(static_cast<unsigned char>(c)));
  return a;
}

json::object chat_entry(const LogprobToken& t) {
  json::object o;
  o["token"] = t.token;
  o["logprob"] = logprob_value(t.logprob);
  o["bytes"] = bytes_array(t.bytes);
  return o;
}

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

LogprobToken make_logprob_token(std::string bytes, double logprob) {
  LogprobToken t;
  if (config::valid_utf8_prefix(bytes) == bytes.size()) {
    t.token = bytes;
  } else {
    static constexpr char kHex[] = "0123456789abcdef";
    t.token = "bytes:";
    for (char c : bytes) {
      const auto b = static_cast<unsigned char>(c);
      t.token += "\\x";
      t.token += kHex[b >> 4];
      t.token += kHex[b & 0xf];
    }
  }
  t.bytes = std::move(bytes);
  t.logprob = logprob;
  return t;
}

int64_t logprob_text_length(const LogprobToken& token) {
  int64_t n = 0;
  for (char c : token.token) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

boost::json::object logprobs_object(Endpoint endpoint, const std::vector<TokenLogprobs>& tokens, int64_t text_offset) {
  json::object o;
  if (endpoint == Endpoint::kChat) {
    json::array content;
    content.reserve(tokens.size());
    for (const auto& t : tokens) {
      json::object entry = chat_entry(t.sampled);
      json::array top;
      top.reserve(t.top.size());
      for (const auto& alt : t.top) top.push_back(chat_entry(alt));
      entry["top_logprobs"] = std::move(top);
      content.push_back(std::move(entry));
    }
    o["content"] = std::move(content);
    return o;
  }
  json::array token_strings, token_logprobs, top_logprobs, offsets;
  for (const auto& t : tokens) {
    token_strings.push_back(json::value(t.sampled.token));
    token_logprobs.push_back(logprob_value(t.sampled.logprob));
    json::object top;
    for (const auto& alt : t.top) {
      if (!top.contains(alt.token)) top[alt.token] = logprob_value(alt.logprob);
    }
    if (!top.contains(t.sampled.token)) top[t.sampled.token] = logprob_value(t.sampled.logprob);
    top_logprobs.push_back(std::move(top));
    offsets.push_back(text_offset);
    text_offset += logprob_text_length(t.sampled);
  }
  o["tokens"] = std::move(token_strings);
  o["token_logprobs"] = std::move(token_logprobs);
  o["top_logprobs"] = std::move(top_logprobs);
  o["text_offset"] = std::move(offsets);
  return o;
}

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

std::string ChunkEncoder::text_chunk(int32_t index, std::string_view text, const TokenUsage* usage,
                                     std::string_view logprobs_json) const {
  std::string out;
  out.reserve(prefix_.size() + text.size() + logprobs_json.size() + 120);
  out = prefix_;
  out += "{\"index\":";
  append_int(out, index);
  if (endpoint_ == Endpoint::kChat) {
    out += ",\"delta\":{\"content\":";
    append_json_string(out, text);
    out += '}';
    append_logprobs(out, logprobs_json);
    out += ",\"finish_reason\":null}";
  } else {
    out += ",\"text\":";
    append_json_string(out, text);
    append_logprobs(out, logprobs_json);
    out += ",\"finish_reason\":null,\"stop_reason\":null}";
  }
  append_tail(out, usage);
  return out;
}

std::string ChunkEncoder::finish_chunk(int32_t index, std::string_view finish_reason, const StopReason& stop_reason,
                                       const TokenUsage* usage, std::string_view logprobs_json) const {
  std::string out = prefix_;
  out += "{\"index\":";
  append_int(out, index);
  out += endpoint_ == Endpoint::kChat ? ",\"delta\":{}" : ",\"text\":\"\"";
  append_logprobs(out, logprobs_json);
  out += ",\"finish_reason\":";
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
