#include "aurora/config/protocol/requests.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "aurora/config/json.hpp"

namespace aurora::protocol {

using config::JsonDocument;
using config::JsonValue;

bool json_nesting_exceeds(std::string_view text, int32_t max_depth) {
  int32_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

std::string child_path(const JsonValue& parent, std::string_view key) {
  return parent.path().empty() ? std::string(key) : parent.path() + "." + std::string(key);
}

// Keys seen so far in one object: simdjson keeps duplicates, we refuse them (the two values could
// be read differently by a proxy and by us).
class KeyTracker {
 public:
  void add(const std::string& key, const JsonValue& value) {
    for (const auto& k : seen_) {
      if (k == key) value.fail("duplicate key");
    }
    seen_.push_back(key);
  }

 private:
  std::vector<std::string> seen_;
};

[[noreturn]] void reject_unknown(const JsonValue& value) { value.fail("unknown parameter"); }

// Visits the members of the JSON object `v` (duplicate keys rejected, null values skipped: null
// means "default" in the OpenAI API); `take(key, value)` returns false for a key it does not know,
// which is rejected as an unknown parameter.
template <class Take>
void read_members(const JsonValue& v, Take take) {
  if (!v.is_object()) v.fail("must be a JSON object, got " + v.raw());
  KeyTracker keys;
  for (const auto& [key, value] : v.members()) {
    keys.add(key, value);
    if (value.is_null()) continue;
    if (!take(key, value)) reject_unknown(value);
  }
}

// The error for a known field whose value asks for a feature this server does not implement.
[[noreturn]] void fail_not_supported(const JsonValue& v, const char* neutral) {
  v.fail(std::string("is not supported by this server (only ") + neutral + " is accepted), got " + v.raw());
}

// Fields of OpenAI (and vLLM) requests that we do not implement: accepted only with the value that
// makes them a no-op, so that a client asking for the feature gets a clear 400 instead of a silent
// difference.
bool take_neutral(const std::string& key, const JsonValue& v) {
  auto require = [&](bool ok, const char* neutral) {
    if (!ok) fail_not_supported(v, neutral);
    return true;
  };
  if (key == "best_of") return require(v.as_int() == 1, "1");
  if (key == "prompt_logprobs") fail_not_supported(v, "null");  // vLLM's: logprobs of the prompt tokens
  if (key == "echo" || key == "include_stop_str_in_output") return require(!v.as_bool(), "false");
  if (key == "skip_special_tokens" || key == "spaces_between_special_tokens") return require(v.as_bool(), "true");
  if (key == "tools") return require(v.is_array() && v.size() == 0, "[]");
  if (key == "tool_choice") return require(v.is_string() && v.as_string() == "none", "\"none\"");
  if (key == "response_format") {
    // The type decides which other keys belong, so it is read first: {"type": "json_schema",
    // "json_schema": {...}} is a structured-output request, not an unknown field.
    if (!v.is_object()) v.fail("must be an object, got " + v.raw());
    const JsonValue type = v["type"];
    const std::string name = type.as_string();
    if (name == "json_schema" || name == "json_object") {
      type.fail(name +
                " response formats are not supported by this server (only {\"type\": \"text\"} is accepted), got \"" +
                name + "\"");
    }
    if (name != "text") type.fail("must be one of text, json_object, json_schema; got " + type.raw());
    v.reject_unknown_keys({"type"});
    return true;
  }
  if (key == "suffix") return require(v.as_string().empty(), "\"\"");
  if (key == "store") return require(!v.as_bool(), "false");  // nothing is kept for later retrieval
  if (key == "service_tier") {  // one tier: "auto" and "default" name it, "flex" or "priority" ask for another
    const std::string tier = v.as_string();
    return require(tier == "auto" || tier == "default", "\"auto\" or \"default\"");
  }
  if (key == "parallel_tool_calls") {  // no tools are accepted, so it never changes anything
    (void)v.as_bool();
    return true;
  }
  // Purely informational: they name the end user, tag the request or key a provider's cache, and
  // never change the output.
  if (key == "user" || key == "prompt_cache_key" || key == "safety_identifier") {
    (void)v.as_string();
    return true;
  }
  if (key == "metadata") {
    if (!v.is_object()) v.fail("must be an object, got " + v.raw());
    for (const auto& [name, value] : v.members()) (void)value.as_string();
    return true;
  }
  return false;
}

// Fields only chat requests have (OpenAI's chat API); the same neutral-value rule.
bool take_chat_neutral(const std::string& key, const JsonValue& v) {
  auto require = [&](bool ok, const char* neutral) {
    if (!ok) fail_not_supported(v, neutral);
    return true;
  };
  auto is_string = [&](std::string_view want) { return v.as_string() == want; };
  if (key == "functions") return require(v.is_array() && v.size() == 0, "[]");  // the old name of `tools`
  if (key == "function_call") return require(v.is_string() && v.as_string() == "none", "\"none\"");
  if (key == "modalities") {
    if (!v.is_array()) v.fail("must be an array of strings, got " + v.raw());
    bool text_only = v.size() > 0;
    for (const auto& item : v.items()) text_only = text_only && item.as_string() == "text";
    return require(text_only, "[\"text\"]");
  }
  // OpenAI's defaults: the served models are not steered by either, so only the default asks for
  // nothing that would be silently missing.
  if (key == "reasoning_effort") return require(is_string("medium"), "\"medium\"");
  if (key == "verbosity") return require(is_string("medium"), "\"medium\"");
  if (key == "prediction") {  // predicted outputs only speed decoding up: the text is the same without
    if (!v.is_object()) v.fail("must be an object, got " + v.raw());
    if (v["type"].as_string() != "content") v["type"].fail("must be \"content\", got " + v["type"].raw());
    return true;
  }
  // Known, with no neutral value other than null (null is skipped before this table).
  if (key == "audio" || key == "web_search_options") fail_not_supported(v, "null");
  return false;
}

std::string stop_string(const JsonValue& v, const RequestLimits& limits) {
  std::string s = v.as_string();
  if (s.empty()) v.fail("must not be empty");
  if (static_cast<int64_t>(s.size()) > limits.max_stop_bytes) {
    v.fail("must be at most " + std::to_string(limits.max_stop_bytes) + " bytes, got " + std::to_string(s.size()));
  }
  return s;
}

std::vector<int32_t> token_ids(const JsonValue& v, int64_t max_count, const char* what) {
  if (!v.is_array()) v.fail(std::string("must be an array of ") + what + ", got " + v.raw());
  if (static_cast<int64_t>(v.size()) > max_count) {
    v.fail("must hold at most " + std::to_string(max_count) + " " + what + ", got " + std::to_string(v.size()));
  }
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const auto& item : v.items()) ids.push_back(static_cast<int32_t>(item.int_in(0, kInt32Max)));
  return ids;
}

// The sampling and streaming fields shared by chat and completions.
class SamplingReader {
 public:
  explicit SamplingReader(const RequestLimits& limits) : limits_(limits) {}

  bool take(const std::string& key, const JsonValue& v) {
    if (key == "max_tokens") {
      max_tokens_ = static_cast<int32_t>(v.int_in(1, kInt32Max));
    } else if (key == "max_completion_tokens") {
      max_completion_tokens_ = static_cast<int32_t>(v.int_in(1, kInt32Max));
    } else if (key == "temperature") {
      out_.temperature = static_cast<float>(v.double_in(0.0, 2.0));
    } else if (key == "top_p") {
      double p = v.as_double();
      if (!(p > 0.0 && p <= 1.0)) v.fail("must be in (0, 1], got " + v.raw());
      out_.top_p = static_cast<float>(p);
    } else if (key == "top_k") {
      int64_t k = v.int_in(-1, 1 << 30);
      out_.top_k = k < 0 ? 0 : static_cast<int32_t>(k);
    } else if (key == "seed") {
      out_.seed = static_cast<uint64_t>(v.as_int());
    } else if (key == "stop") {
      take_stop(v);
    } else if (key == "stop_token_ids") {
      out_.stop_token_ids = token_ids(v, limits_.max_stop_token_ids, "token ids");
    } else if (key == "ignore_eos") {
      out_.ignore_eos = v.as_bool();
    } else if (key == "presence_penalty") {
      out_.presence_penalty = static_cast<float>(v.double_in(-2.0, 2.0));
    } else if (key == "frequency_penalty") {
      out_.frequency_penalty = static_cast<float>(v.double_in(-2.0, 2.0));
    } else if (key == "repetition_penalty") {
      const double r = v.as_double();
      // vLLM's rule; the float must stay a positive finite number too.
      if (!(r > 0.0 && r <= std::numeric_limits<float>::max())) v.fail("must be > 0, got " + v.raw());
      out_.repetition_penalty = static_cast<float>(r);
    } else if (key == "min_p") {
      out_.min_p = static_cast<float>(v.double_in(0.0, 1.0));
    } else if (key == "min_tokens") {
      min_tokens_ = v;
      out_.min_tokens = static_cast<int32_t>(v.int_in(0, kInt32Max));
    } else if (key == "logit_bias") {
      take_logit_bias(v);
    } else if (key == "n") {
      out_.n = static_cast<int32_t>(v.int_in(1, limits_.max_n));
    } else if (key == "stream") {
      out_.stream = v.as_bool();
    } else if (key == "stream_options") {
      take_stream_options(v);
    } else {
      return false;
    }
    return true;
  }

  SamplingFields finish() {
    if (max_completion_tokens_) {
      out_.max_tokens = max_completion_tokens_;
      out_.max_tokens_field = "max_completion_tokens";
    } else if (max_tokens_) {
      out_.max_tokens = max_tokens_;
      out_.max_tokens_field = "max_tokens";
    }
    if (min_tokens_ && out_.max_tokens && out_.min_tokens > *out_.max_tokens) {
      min_tokens_->fail("must be <= " + out_.max_tokens_field + " (" + std::to_string(*out_.max_tokens) + "), got " +
                        min_tokens_->raw());
    }
    if (stream_options_ && !out_.stream) {
      stream_options_->fail("is only allowed when `stream` is true");
    }
    return out_;
  }

 private:
  void take_stop(const JsonValue& v) {
    if (v.is_string()) {
      out_.stop = {stop_string(v, limits_)};
      return;
    }
    if (!v.is_array()) v.fail("must be a string or an array of strings, got " + v.raw());
    if (static_cast<int64_t>(v.size()) > limits_.max_stop) {
      v.fail("must hold at most " + std::to_string(limits_.max_stop) + " strings, got " + std::to_string(v.size()));
    }
    out_.stop.clear();
    for (const auto& item : v.items()) out_.stop.push_back(stop_string(item, limits_));
  }

  // {"<token id>": bias, ...} (OpenAI's form: ids as decimal strings), bias in [-100, 100]. Whether
  // the ids are in the model's vocabulary is checked once the model is known.
  void take_logit_bias(const JsonValue& v) {
    if (!v.is_object()) v.fail("must be an object mapping token ids to biases, got " + v.raw());
    out_.logit_bias.clear();
    std::vector<int32_t> ids;
    for (const auto& [key, value] : v.members()) {
      const bool digits = !key.empty() && key.size() <= 10 &&
                          std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
      const int64_t id = digits ? std::stoll(key) : -1;
      if (id < 0 || id > kInt32Max)
        value.fail("the key must be a token id (a non-negative integer), got \"" + key + "\"");
      if (value.is_null()) value.fail("must be a number in [-100, 100], got null");
      const auto bias = static_cast<float>(value.double_in(-100.0, 100.0));
      out_.logit_bias.emplace_back(static_cast<int32_t>(id), bias);
      ids.push_back(static_cast<int32_t>(id));
    }
    std::sort(ids.begin(), ids.end());
    const auto dup = std::adjacent_find(ids.begin(), ids.end());
    if (dup != ids.end()) v.fail("token id " + std::to_string(*dup) + " appears more than once");
  }

  void take_stream_options(const JsonValue& v) {
    read_members(v, [&](const std::string& key, const JsonValue& value) {
      if (key == "include_usage") {
        out_.include_usage = value.as_bool();
      } else if (key == "continuous_usage_stats") {
        out_.continuous_usage_stats = value.as_bool();
      } else {
        return false;
      }
      return true;
    });
    stream_options_ = v;
  }

  const RequestLimits& limits_;
  SamplingFields out_;
  std::optional<int32_t> max_tokens_;
  std::optional<int32_t> max_completion_tokens_;
  std::optional<JsonValue> stream_options_;
  std::optional<JsonValue> min_tokens_;
};

std::string message_content(const JsonValue& v) {
  if (v.is_string()) return v.as_string();
  if (!v.is_array()) v.fail("must be a string or an array of content parts, got " + v.raw());
  std::string text;
  for (const auto& part : v.items()) {
    if (!part.is_object()) part.fail("must be an object, got " + part.raw());
    part.reject_unknown_keys({"type", "text"});
    const std::string type = part["type"].as_string();
    if (type != "text") part["type"].fail("only \"text\" content parts are supported, got \"" + type + "\"");
    text += part["text"].as_string();
  }
  return text;
}

// Fields an assistant turn may carry when a client re-sends the conversation (the OpenAI SDKs
// write `"tool_calls": null, "refusal": null, ...`): accepted when they say "none".
bool take_assistant_neutral(const std::string& key, const JsonValue& v) {
  if (key == "tool_calls") {
    if (!(v.is_array() && v.size() == 0)) fail_not_supported(v, "null or []");
    return true;
  }
  if (key == "function_call" || key == "refusal" || key == "audio") fail_not_supported(v, "null");
  return false;
}

ChatMessageField parse_message(const JsonValue& item) {
  if (!item.is_object()) item.fail("must be a message object, got " + item.raw());
  ChatMessageField m;
  const auto role = item.find("role");  // first: which other fields belong depends on it
  if (!role) throw_invalid(child_path(item, "role"), "is required");
  m.role = role->as_string();
  if (m.role != "system" && m.role != "developer" && m.role != "user" && m.role != "assistant") {
    role->fail("must be one of system, developer, user, assistant; got \"" + m.role + "\"");
  }
  read_members(item, [&](const std::string& key, const JsonValue& value) {
    if (key == "role") return true;
    if (key == "content") {
      m.content = message_content(value);
    } else if (key == "name") {
      // A participant name: valid OpenAI on every role; none of the chat template families
      // renders names (nor do the models' own Jinja templates), so it is checked and ignored.
      (void)value.as_string();
    } else {
      return m.role == "assistant" && take_assistant_neutral(key, value);
    }
    return true;
  });
  return m;
}

std::vector<ChatMessageField> parse_messages(const JsonValue& v, const RequestLimits& limits) {
  if (!v.is_array()) v.fail("must be an array of messages, got " + v.raw());
  if (v.size() == 0) v.fail("must not be empty");
  if (static_cast<int64_t>(v.size()) > limits.max_messages) {
    v.fail("must hold at most " + std::to_string(limits.max_messages) + " messages, got " + std::to_string(v.size()));
  }
  std::vector<ChatMessageField> out;
  out.reserve(v.size());
  for (const auto& item : v.items()) out.push_back(parse_message(item));
  return out;
}

std::vector<Prompt> parse_prompts(const JsonValue& v, const RequestLimits& limits) {
  if (v.is_string()) return {Prompt{false, v.as_string(), {}}};
  if (!v.is_array()) v.fail("must be a string, an array of token ids, or an array of those, got " + v.raw());
  if (v.size() == 0) v.fail("must not be empty");
  const JsonValue first = v[size_t{0}];
  if (first.is_number()) return {Prompt{true, {}, token_ids(v, kInt32Max, "token ids")}};
  if (static_cast<int64_t>(v.size()) > limits.max_prompts) {
    v.fail("must hold at most " + std::to_string(limits.max_prompts) + " prompts, got " + std::to_string(v.size()));
  }
  std::vector<Prompt> out;
  for (const auto& item : v.items()) {
    if (item.is_string()) {
      out.push_back(Prompt{false, item.as_string(), {}});
    } else if (item.is_array()) {
      if (item.size() == 0) item.fail("must not be empty");
      out.push_back(Prompt{true, {}, token_ids(item, kInt32Max, "token ids")});
    } else {
      item.fail("must be a string or an array of token ids, got " + item.raw());
    }
  }
  return out;
}

CompletionRequest completion_from_json(const JsonValue& root, const RequestLimits& limits) {
  CompletionRequest req;
  SamplingReader sampling(limits);
  bool have_prompt = false;
  std::optional<int32_t> logprobs;
  read_members(root, [&](const std::string& key, const JsonValue& v) {
    if (key == "model") {
      req.model = v.as_string();
    } else if (key == "prompt") {
      req.prompts = parse_prompts(v, limits);
      have_prompt = true;
    } else if (key == "logprobs") {
      // An integer: the number of most likely tokens per position. `false` (sent by some clients
      // for "none") is accepted as absent.
      if (v.is_bool() && !v.as_bool()) return true;
      if (!v.is_number()) {
        v.fail("must be an integer in [0, " + std::to_string(limits.max_logprobs) + "], got " + v.raw());
      }
      logprobs = static_cast<int32_t>(v.int_in(0, limits.max_logprobs));
    } else if (key == "top_logprobs") {  // a chat field: completions take the count in `logprobs`
      if (v.as_int() != 0) fail_not_supported(v, "0; completions take the count in `logprobs`");
    } else {
      return sampling.take(key, v) || take_neutral(key, v);
    }
    return true;
  });
  if (!have_prompt) throw_invalid(child_path(root, "prompt"), "is required");
  req.sampling = sampling.finish();
  req.sampling.logprobs = logprobs;
  return req;
}

TokenizeRequest tokenize_from_json(const JsonValue& root, const RequestLimits& limits) {
  TokenizeRequest req;
  bool have_prompt = false;
  read_members(root, [&](const std::string& key, const JsonValue& v) {
    if (key == "model") {
      req.model = v.as_string();
    } else if (key == "prompt") {
      req.prompt = v.as_string();
      have_prompt = true;
    } else if (key == "messages") {
      req.messages = parse_messages(v, limits);
      req.is_chat = true;
    } else if (key == "add_special_tokens") {
      req.add_special_tokens = v.as_bool();
    } else if (key == "add_generation_prompt") {
      req.add_generation_prompt = v.as_bool();
    } else {
      return false;
    }
    return true;
  });
  if (have_prompt == req.is_chat)
    throw_invalid(child_path(root, "prompt"), "exactly one of `prompt` and `messages` is required");
  return req;
}

DetokenizeRequest detokenize_from_json(const JsonValue& root, const RequestLimits& /*limits*/) {
  DetokenizeRequest req;
  bool have_tokens = false;
  read_members(root, [&](const std::string& key, const JsonValue& v) {
    if (key == "model") {
      req.model = v.as_string();
    } else if (key == "tokens") {
      req.tokens = token_ids(v, kInt32Max, "token ids");
      have_tokens = true;
    } else {
      return false;
    }
    return true;
  });
  if (!have_tokens) throw_invalid(child_path(root, "tokens"), "is required");
  return req;
}

// Parses the body and runs `fn` on its root; every failure becomes an Error value.
template <class T, class Fn>
Result<T> parse_body(std::string_view body, const RequestLimits& limits, Fn fn) {
  if (json_nesting_exceeds(body, limits.max_json_depth)) {
    return Error::invalid("",
                          "the request body nests deeper than " + std::to_string(limits.max_json_depth) + " levels");
  }
  auto doc = JsonDocument::parse(body, "body");
  if (!doc) {
    // JsonDocument names the "field" after its `what`; a syntax error has no field.
    const std::string& message = doc.error().message;
    const std::string marker = "invalid JSON: ";
    const size_t at = message.find(marker);
    return Error::invalid("", "the request body is not valid JSON: " +
                                  (at == std::string::npos ? message : message.substr(at + marker.size())));
  }
  const JsonValue root = doc->root();
  return capture_errors([&]() -> T { return fn(root, limits); });
}

}  // namespace

ChatRequest chat_request_from_json(const JsonValue& root, const RequestLimits& limits) {
  ChatRequest req;
  SamplingReader sampling(limits);
  bool have_messages = false;
  bool logprobs = false;
  std::optional<int32_t> top_logprobs;
  std::optional<JsonValue> top_logprobs_value;
  read_members(root, [&](const std::string& key, const JsonValue& v) {
    if (key == "model") {
      req.model = v.as_string();
    } else if (key == "messages") {
      req.messages = parse_messages(v, limits);
      have_messages = true;
    } else if (key == "add_generation_prompt") {
      req.add_generation_prompt = v.as_bool();
    } else if (key == "logprobs") {
      if (!v.is_bool()) v.fail("must be a boolean (true returns the tokens' log probabilities), got " + v.raw());
      logprobs = v.as_bool();
    } else if (key == "top_logprobs") {
      top_logprobs = static_cast<int32_t>(v.int_in(0, limits.max_logprobs));
      top_logprobs_value = v;
    } else {
      return sampling.take(key, v) || take_neutral(key, v) || take_chat_neutral(key, v);
    }
    return true;
  });
  if (!have_messages) throw_invalid(child_path(root, "messages"), "is required");
  // As OpenAI and vLLM: alternatives need `logprobs: true` (0 asks for none, so it is harmless).
  if (top_logprobs_value && *top_logprobs > 0 && !logprobs) {
    top_logprobs_value->fail("requires `logprobs` to be true, got " + top_logprobs_value->raw());
  }
  req.sampling = sampling.finish();
  if (logprobs) req.sampling.logprobs = top_logprobs.value_or(0);
  return req;
}

Result<ChatRequest> parse_chat_request(std::string_view body, const RequestLimits& limits) {
  return parse_body<ChatRequest>(body, limits, chat_request_from_json);
}

Result<CompletionRequest> parse_completion_request(std::string_view body, const RequestLimits& limits) {
  return parse_body<CompletionRequest>(body, limits, completion_from_json);
}

Result<TokenizeRequest> parse_tokenize_request(std::string_view body, const RequestLimits& limits) {
  return parse_body<TokenizeRequest>(body, limits, tokenize_from_json);
}

Result<DetokenizeRequest> parse_detokenize_request(std::string_view body, const RequestLimits& limits) {
  return parse_body<DetokenizeRequest>(body, limits, detokenize_from_json);
}

}  // namespace aurora::protocol
