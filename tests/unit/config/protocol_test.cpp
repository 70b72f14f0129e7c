// OpenAI protocol types: request validation (the T4 table of anchors-reliability.md), response and
// chunk JSON, SSE framing and the WebSocket envelope.
#include <limits>
#include <random>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <catch2/catch.hpp>

#include "aurora/config/protocol/api_error.hpp"
#include "aurora/config/protocol/requests.hpp"
#include "aurora/config/protocol/responses.hpp"
#include "aurora/config/protocol/sse.hpp"
#include "aurora/config/protocol/ws_messages.hpp"

using namespace aurora::protocol;
namespace json = boost::json;

namespace {
const RequestLimits kLimits;

// The error of parsing a chat body, as "field|message".
std::string chat_error(const std::string& body) {
  auto r = parse_chat_request(body, kLimits);
  if (r.ok()) return "(ok)";
  return r.error().field + "|" + r.error().message;
}
std::string completion_error(const std::string& body) {
  auto r = parse_completion_request(body, kLimits);
  if (r.ok()) return "(ok)";
  return r.error().field + "|" + r.error().message;
}
std::string chat_with(const std::string& extra) {
  return R"({"model":"m","messages":[{"role":"user","content":"hi"}])" + extra + "}";
}
}  // namespace

TEST_CASE("a full chat request parses with every field") {
  auto r = parse_chat_request(R"({
    "model": "tiny", "messages": [{"role": "system", "content": "be brief"},
                                  {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
    "max_completion_tokens": 32, "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": 40, "seed": 1234,
    "stop": ["\n\n", "END"], "n": 2, "ignore_eos": true, "stream": true,
    "stream_options": {"include_usage": true}, "stop_token_ids": [5, 6],
    "frequency_penalty": 0, "user": "u1", "logprobs": false, "tool_choice": "none"})",
                              kLimits);
  REQUIRE(r.ok());
  CHECK(r->model == "tiny");
  REQUIRE(r->messages.size() == 2);
  CHECK(r->messages[1].content == "ab");
  CHECK(r->sampling.max_tokens == 32);  // max_completion_tokens wins
  CHECK(r->sampling.max_tokens_field == "max_completion_tokens");
  CHECK(r->sampling.temperature == 0.0f);
  CHECK(r->sampling.top_p == 0.5f);
  CHECK(r->sampling.top_k == 40);
  CHECK(r->sampling.seed == 1234u);
  CHECK(r->sampling.stop == std::vector<std::string>{"\n\n", "END"});
  CHECK(r->sampling.n == 2);
  CHECK(r->sampling.ignore_eos);
  CHECK(r->sampling.stream);
  CHECK(r->sampling.include_usage);
  CHECK(r->sampling.stop_token_ids == std::vector<int32_t>{5, 6});
}

TEST_CASE("null fields mean absent and defaults hold") {
  auto r = parse_chat_request(chat_with(R"(,"temperature":null,"stop":null,"max_tokens":null)"), kLimits);
  REQUIRE(r.ok());
  CHECK(r->sampling.temperature == 1.0f);
  CHECK(!r->sampling.max_tokens);
  CHECK(r->sampling.n == 1);
  CHECK(!r->sampling.stream);
}

TEST_CASE("bad JSON and abusive parameters are 400s that name the field") {
  CHECK(chat_error("not json").rfind("|the request body is not valid JSON", 0) == 0);
  CHECK(chat_error(chat_with("") + " trailing").rfind("|the request body is not valid JSON", 0) == 0);
  CHECK(chat_error("[1,2]") == "(root)|(root): must be a JSON object, got [1,2]");
  CHECK(chat_error(std::string(10000, '[') + std::string(10000, ']')) ==
        "|the request body nests deeper than 64 levels");
  CHECK(chat_error(chat_with(R"(,"max_tokens":5,"max_tokens":6)")) == "max_tokens|max_tokens: duplicate key");
  CHECK(chat_error(chat_with(R"(,"max_tokens":0)")) == "max_tokens|max_tokens: must be in [1, 2147483647], got 0");
  CHECK(chat_error(chat_with(R"(,"max_tokens":-1)")) == "max_tokens|max_tokens: must be in [1, 2147483647], got -1");
  CHECK(chat_error(chat_with(R"(,"max_tokens":1e12)")).rfind("max_tokens|max_tokens: must be in", 0) == 0);
  CHECK(chat_error(chat_with(R"(,"max_tokens":2147483648)")).rfind("max_tokens|", 0) == 0);
  CHECK(chat_error(chat_with(R"(,"max_tokens":"16")")) ==
        "max_tokens|max_tokens: must be an integer, got a string \"16\"");
  CHECK(chat_error(chat_with(R"(,"max_tokens":2.5)")) == "max_tokens|max_tokens: must be an integer, got 2.5");
  CHECK(chat_error(chat_with(R"(,"n":1000)")) == "n|n: must be in [1, 4], got 1000");
  CHECK(chat_error(chat_with(R"(,"n":0)")) == "n|n: must be in [1, 4], got 0");
  CHECK(chat_error(chat_with(R"(,"stop":["a","b","c","d","e"])")) == "stop|stop: must hold at most 4 strings, got 5");
  CHECK(chat_error(chat_with(R"(,"stop":")" + std::string(300, 'x') + "\"")) ==
        "stop|stop: must be at most 256 bytes, got 300");
  CHECK(chat_error(chat_with(R"(,"stop":["ok",""])")) == "stop[1]|stop[1]: must not be empty");
  CHECK(chat_error(chat_with(R"(,"temperature":-1)")) == "temperature|temperature: must be in [0, 2], got -1");
  CHECK(chat_error(chat_with(R"(,"temperature":1e9)")) == "temperature|temperature: must be in [0, 2], got 1e+09");
  CHECK(chat_error(chat_with(R"(,"temperature":1e400)")).find("not valid JSON") != std::string::npos);
  CHECK(chat_error(chat_with(R"(,"top_p":0)")) == "top_p|top_p: must be in (0, 1], got 0");
  CHECK(chat_error(chat_with(R"(,"top_p":2)")) == "top_p|top_p: must be in (0, 1], got 2");
  CHECK(chat_error(chat_with(R"(,"top_k":-2)")).rfind("top_k|", 0) == 0);
  CHECK(chat_error(chat_with(R"(,"stream":"yes")")) == "stream|stream: must be a boolean, got \"yes\"");
  CHECK(chat_error(chat_with(R"(,"stream_options":{"include_usage":true})")) ==
        "stream_options|stream_options: is only allowed when `stream` is true");
  CHECK(chat_error(chat_with(R"(,"stream":true,"stream_options":{"include_usage":true,"x":1})")) ==
        "stream_options.x|stream_options.x: unknown parameter");
  CHECK(chat_error(chat_with(R"(,"max_token":5)")) == "max_token|max_token: unknown parameter");
  CHECK(chat_error(chat_with(R"(,"top_logprobs":100)")) == "top_logprobs|top_logprobs: must be in [0, 20], got 100");
  CHECK(chat_error(chat_with(R"(,"presence_penalty":2.5)")) ==
        "presence_penalty|presence_penalty: must be in [-2, 2], got 2.5");
  CHECK(chat_error(chat_with(R"(,"tools":[{"type":"function"}])")).rfind("tools|", 0) == 0);
  CHECK(chat_error(R"({"model":"m"})") == "messages|messages: is required");
  CHECK(chat_error(R"({"messages":[]})") == "messages|messages: must not be empty");
  CHECK(chat_error(R"({"messages":[{"role":"wizard","content":"x"}]})").rfind("messages[0].role|", 0) == 0);
  CHECK(chat_error(R"({"messages":[{"content":"x"}]})") == "messages[0].role|messages[0].role: is required");
  CHECK(chat_error(R"({"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]})")
            .rfind("messages[0].content[0]", 0) == 0);
  CHECK(chat_error(R"({"messages":[{"role":"user","content":"x","tool_calls":[]}]})") ==
        "messages[0].tool_calls|messages[0].tool_calls: unknown parameter");
  CHECK(chat_error("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}").find("not valid JSON") !=
        std::string::npos);
  std::string many = R"({"messages":[)";
  for (int i = 0; i < 1025; ++i) many += std::string(i ? "," : "") + R"({"role":"user","content":""})";
  CHECK(chat_error(many + "]}") == "messages|messages: must hold at most 1024 messages, got 1025");
}

TEST_CASE("messages as the OpenAI SDKs re-send them: null means absent, neutral values pass") {
  auto r = parse_chat_request(R"({"messages":[
    {"role":"system","content":"s","name":"ops"},
    {"role":"developer","content":"d"},
    {"role":"user","content":"a","name":"bob"},
    {"role":"assistant","content":"b","tool_calls":null,"refusal":null,"function_call":null,"audio":null,"name":null},
    {"role":"assistant","content":null,"tool_calls":[]},
    {"role":"user","content":"c"}]})",
                              kLimits);
  REQUIRE(r.ok());
  REQUIRE(r->messages.size() == 6);
  CHECK(r->messages[1].role == "developer");
  CHECK(r->messages[3].role == "assistant");
  CHECK(r->messages[3].content == "b");
  CHECK(r->messages[4].content.empty());

  auto msg = [](const std::string& m) { return R"({"messages":[{"role":"user","content":"a"},)" + m + "]}"; };
  CHECK(
      chat_error(msg(R"({"role":"assistant","content":"b","tool_calls":[{"id":"c1","type":"function"}]})")) ==
      R"(messages[1].tool_calls|messages[1].tool_calls: is not supported by this server (only null or [] is accepted), got [{"id":"c1","type":"function"}])");
  CHECK(
      chat_error(msg(R"({"role":"assistant","content":"b","refusal":"no"})")) ==
      R"(messages[1].refusal|messages[1].refusal: is not supported by this server (only null is accepted), got "no")");
  CHECK(chat_error(msg(R"({"role":"assistant","function_call":{"name":"f"}})"))
            .rfind("messages[1].function_call|messages[1].function_call: is not supported", 0) == 0);
  CHECK(chat_error(msg(R"({"role":"assistant","audio":{"id":"a1"}})"))
            .rfind("messages[1].audio|messages[1].audio: is not supported", 0) == 0);
  CHECK(chat_error(msg(R"({"role":"user","content":"b","name":7})")) ==
        "messages[1].name|messages[1].name: must be a string, got a number 7");
  // Assistant-only fields stay unknown on other roles; typos stay unknown everywhere.
  CHECK(chat_error(msg(R"({"role":"user","content":"b","refusal":"no"})")) ==
        "messages[1].refusal|messages[1].refusal: unknown parameter");
  CHECK(chat_error(msg(R"({"role":"assistant","contnet":"b"})")) ==
        "messages[1].contnet|messages[1].contnet: unknown parameter");
  CHECK(chat_error(msg(R"({"role":"assistant","content":"b","content":"c"})")) ==
        "messages[1].content|messages[1].content: duplicate key");
  CHECK(chat_error(msg(R"({"role":null,"content":"b"})")) == "messages[1].role|messages[1].role: is required");
  CHECK(chat_error(msg(R"({"role":"tool","content":"b"})")).rfind("messages[1].role|", 0) == 0);
}

TEST_CASE("known OpenAI fields: neutral values are accepted, others are named as not supported") {
  auto r = parse_chat_request(chat_with(R"(,"functions":[],"function_call":"none","modalities":["text"],
    "reasoning_effort":"medium","verbosity":"medium","prompt_cache_key":"k1","safety_identifier":"u-hash",
    "store":false,"metadata":{},"service_tier":"auto","parallel_tool_calls":true,"user":"u1",
    "prediction":{"type":"content","content":"x"},"response_format":{"type":"text"},"audio":null)"),
                              kLimits);
  REQUIRE(r.ok());
  CHECK(parse_chat_request(chat_with(R"(,"service_tier":"default","metadata":{"team":"a"})"), kLimits).ok());

  auto not_supported = [](const std::string& extra, const std::string& field, const std::string& tail) {
    const std::string e = chat_error(chat_with(extra));
    INFO(extra << " -> " << e);
    CHECK(e == field + "|" + field + ": is not supported by this server (only " + tail);
  };
  not_supported(R"(,"functions":[{"name":"f"}])", "functions", R"([] is accepted), got [{"name":"f"}])");
  not_supported(R"(,"function_call":"auto")", "function_call", R"("none" is accepted), got "auto")");
  not_supported(R"(,"modalities":["text","audio"])", "modalities", R"(["text"] is accepted), got ["text","audio"])");
  not_supported(R"(,"reasoning_effort":"high")", "reasoning_effort", R"("medium" is accepted), got "high")");
  not_supported(R"(,"verbosity":"low")", "verbosity", R"("medium" is accepted), got "low")");
  not_supported(R"(,"store":true)", "store", "false is accepted), got true");
  not_supported(R"(,"service_tier":"flex")", "service_tier", R"("auto" or "default" is accepted), got "flex")");
  not_supported(R"(,"audio":{"voice":"alloy","format":"wav"})", "audio",
                R"(null is accepted), got {"voice":"alloy","format":"wav"})");
  not_supported(R"(,"web_search_options":{})", "web_search_options", "null is accepted), got {}");

  // Structured outputs: the value of `type` is what is refused, not its companion field.
  CHECK(
      chat_error(chat_with(R"(,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{}}})")) ==
      R"(response_format.type|response_format.type: json_schema response formats are not supported by this server (only {"type": "text"} is accepted), got "json_schema")");
  CHECK(chat_error(chat_with(R"(,"response_format":{"type":"json_object"})"))
            .rfind("response_format.type|response_format.type: json_object response formats are not supported", 0) ==
        0);
  CHECK(chat_error(chat_with(R"(,"response_format":{"type":"xml"})")) ==
        R"(response_format.type|response_format.type: must be one of text, json_object, json_schema; got "xml")");
  CHECK(chat_error(chat_with(R"(,"response_format":{"type":"text","strict":true})")) ==
        "response_format.strict|response_format.strict: unknown field");
  CHECK(chat_error(chat_with(R"(,"metadata":{"n":1})")) == "metadata.n|metadata.n: must be a string, got a number 1");
  CHECK(chat_error(chat_with(R"(,"prediction":{"type":"diff"})")).rfind("prediction.type|", 0) == 0);

  // The table only grew: a typo is still an unknown parameter, and chat-only fields are unknown
  // to completions.
  CHECK(chat_error(chat_with(R"(,"reasoning_efort":"low")")) == "reasoning_efort|reasoning_efort: unknown parameter");
  CHECK(completion_error(R"({"prompt":"x","functions":[]})") == "functions|functions: unknown parameter");
  CHECK(completion_error(R"({"prompt":"x","store":false,"user":"u","prompt_cache_key":"k"})") == "(ok)");
}

TEST_CASE("completions accept a string, token ids and batches") {
  auto r = parse_completion_request(R"({"model":"m","prompt":"The capital of France is","max_tokens":16})", kLimits);
  REQUIRE(r.ok());
  REQUIRE(r->prompts.size() == 1);
  CHECK(!r->prompts[0].is_tokens);
  CHECK(r->prompts[0].text == "The capital of France is");
  auto ids = parse_completion_request(R"({"prompt":[1,2,3]})", kLimits);
  REQUIRE(ids.ok());
  REQUIRE(ids->prompts.size() == 1);
  CHECK(ids->prompts[0].token_ids == std::vector<int32_t>{1, 2, 3});
  auto batch = parse_completion_request(R"({"prompt":["a",[7,8]], "n": 2})", kLimits);
  REQUIRE(batch.ok());
  REQUIRE(batch->prompts.size() == 2);
  CHECK(batch->prompts[1].token_ids == std::vector<int32_t>{7, 8});
  CHECK(completion_error(R"({"prompt":[1,-2]})") == "prompt[1]|prompt[1]: must be in [0, 2147483647], got -2");
  CHECK(completion_error(R"({"prompt":[]})") == "prompt|prompt: must not be empty");
  CHECK(completion_error(R"({"prompt":["a","b","c","d","e"]})") == "prompt|prompt: must hold at most 4 prompts, got 5");
  CHECK(completion_error(R"({"prompt":{"a":1}})").rfind("prompt|", 0) == 0);
  CHECK(completion_error(R"({"max_tokens":3})") == "prompt|prompt: is required");
  CHECK(completion_error(R"({"prompt":"x","echo":true})").rfind("echo|", 0) == 0);
}

TEST_CASE("tokenize and detokenize bodies") {
  auto t = parse_tokenize_request(R"({"prompt":"hello","add_special_tokens":false})", kLimits);
  REQUIRE(t.ok());
  CHECK(!t->is_chat);
  CHECK(!t->add_special_tokens);
  auto c = parse_tokenize_request(R"({"messages":[{"role":"user","content":"x"}]})", kLimits);
  REQUIRE(c.ok());
  CHECK(c->is_chat);
  CHECK(!parse_tokenize_request(R"({})", kLimits).ok());
  CHECK(!parse_tokenize_request(R"({"prompt":"a","messages":[{"role":"user","content":"x"}]})", kLimits).ok());
  auto d = parse_detokenize_request(R"({"tokens":[104,105]})", kLimits);
  REQUIRE(d.ok());
  CHECK(d->tokens == std::vector<int32_t>{104, 105});
  CHECK(!parse_detokenize_request(R"({"tokens":"x"})", kLimits).ok());
}

TEST_CASE("nesting depth scan skips strings") {
  CHECK(!json_nesting_exceeds(R"({"a":"[[[[[[[[[[[[[[[[[[[["})", 3));
  CHECK(!json_nesting_exceeds(R"({"a":"\"[[[[[["})", 2));
  CHECK(json_nesting_exceeds(R"([[[[]]]])", 3));
  CHECK(!json_nesting_exceeds(R"([[[]]])", 3));
}

TEST_CASE("api errors have OpenAI's shape") {
  auto e = ApiError::from(aurora::Error::invalid("messages[1].content", "must be a string"));
  CHECK(e.status == 400);
  auto body = json::parse(error_body(e)).as_object();
  const auto& err = body.at("error").as_object();
  CHECK(err.at("message").as_string() == "messages[1].content: must be a string");
  CHECK(err.at("type").as_string() == "invalid_request_error");
  CHECK(err.at("param").as_string() == "messages[1].content");
  CHECK(err.at("code").is_null());
  auto o = ApiError::overloaded("queue full", 503, 1);
  auto ob = json::parse(error_body(o)).as_object().at("error").as_object();
  CHECK(ob.at("code").as_string() == "server_overloaded");
  CHECK(ob.at("param").is_null());
  CHECK(o.retry_after_seconds == 1);
}

TEST_CASE("every engine error code maps to its HTTP status, type and code") {
  using aurora::ErrorCode;
  struct Want {
    ErrorCode code;
    int status;
    const char* type;
    const char* api_code;
    int retry_after;
  };
  for (const Want& w : {Want{ErrorCode::kNotFound, 404, "not_found_error", "not_found", 0},
                        Want{ErrorCode::kUnsupported, 400, "invalid_request_error", "unsupported", 0},
                        Want{ErrorCode::kResourceExhausted, 503, "service_unavailable_error", "server_overloaded", 1},
                        Want{ErrorCode::kUnavailable, 503, "service_unavailable_error", "service_unavailable", 1},
                        Want{ErrorCode::kCancelled, 499, "cancelled", "cancelled", 0},
                        Want{ErrorCode::kDeadlineExceeded, 504, "server_error", "timeout", 0},
                        Want{ErrorCode::kInternal, 500, "server_error", "internal_error", 0}}) {
    INFO("status " << w.status << " code " << w.api_code);
    const auto e = ApiError::from(aurora::Error::make(w.code, "x"));
    CHECK(e.status == w.status);
    CHECK(e.type == w.type);
    CHECK(e.code == w.api_code);
    CHECK(e.retry_after_seconds == w.retry_after);
    CHECK(e.message == "x");
  }
}

TEST_CASE("JSON string escaping matches Boost.JSON byte for byte") {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 24);
    for (int j = 0; j < len; ++j) {
      const unsigned pick = rng() % 4;
      if (pick == 0)
        s += static_cast<char>(rng() % 0x20);  // control characters
      else if (pick == 1)
        s += "\"\\/"[rng() % 3];
      else if (pick == 2)
        s += (rng() % 2) != 0 ? "é" : "😀";  // multi-byte UTF-8 stays raw
      else
        s += static_cast<char>('a' + rng() % 26);
    }
    std::string mine;
    append_json_string(mine, s);
    CHECK(mine == json::serialize(json::string(s)));
  }
}

TEST_CASE("streamed chunks are valid JSON in OpenAI's shape") {
  ChunkEncoder chat(Endpoint::kChat, "chatcmpl-1", "tiny\"model", 1767225600, /*usage_null_field=*/true);
  auto role = json::parse(chat.role_chunk(0)).as_object();
  CHECK(role.at("object").as_string() == "chat.completion.chunk");
  CHECK(role.at("model").as_string() == "tiny\"model");
  CHECK(role.at("usage").is_null());
  auto delta = role.at("choices").as_array()[0].as_object().at("delta").as_object();
  CHECK(delta.at("role").as_string() == "assistant");
  CHECK(delta.at("content").as_string() == "");

  auto text = json::parse(chat.text_chunk(1, "a\n\"b\"\x01")).as_object();
  auto c1 = text.at("choices").as_array()[0].as_object();
  CHECK(c1.at("index").as_int64() == 1);
  CHECK(c1.at("delta").as_object().at("content").as_string() == "a\n\"b\"\x01");
  CHECK(c1.at("finish_reason").is_null());

  auto fin = json::parse(chat.finish_chunk(0, "stop", std::string("\n\n"))).as_object();
  auto cf = fin.at("choices").as_array()[0].as_object();
  CHECK(cf.at("delta").as_object().empty());
  CHECK(cf.at("finish_reason").as_string() == "stop");
  CHECK(cf.at("stop_reason").as_string() == "\n\n");

  auto usage = json::parse(chat.usage_chunk(TokenUsage{21, 2})).as_object();
  CHECK(usage.at("choices").as_array().empty());
  CHECK(usage.at("usage").as_object().at("total_tokens").as_int64() == 23);

  ChunkEncoder cmpl(Endpoint::kCompletion, "cmpl-1", "m", 1, /*usage_null_field=*/false);
  auto t = json::parse(cmpl.text_chunk(0, " Paris")).as_object();
  CHECK(t.at("object").as_string() == "text_completion");
  CHECK(!t.contains("usage"));
  CHECK(t.at("choices").as_array()[0].as_object().at("text").as_string() == " Paris");
  TokenUsage running{6, 1};
  auto tu = json::parse(cmpl.text_chunk(0, "x", &running)).as_object();
  CHECK(tu.at("usage").as_object().at("completion_tokens").as_int64() == 1);
  auto tf = json::parse(cmpl.finish_chunk(0, "length", {})).as_object();
  CHECK(tf.at("choices").as_array()[0].as_object().at("stop_reason").is_null());
  // A stop_token_ids entry is reported as the integer id (vLLM), not as a string.
  auto tt = json::parse(cmpl.finish_chunk(0, "stop", int32_t{32}, &running)).as_object();
  CHECK(tt.at("choices").as_array()[0].as_object().at("stop_reason").as_int64() == 32);
  CHECK(tt.at("usage").as_object().at("completion_tokens").as_int64() == 1);

  // continuous_usage_stats: every chunk carries usage, the role chunk included (vLLM).
  TokenUsage prompt_only{21, 0};
  auto role_usage = json::parse(chat.role_chunk(0, &prompt_only)).as_object();
  CHECK(role_usage.at("usage").as_object().at("prompt_tokens").as_int64() == 21);
  CHECK(role_usage.at("usage").as_object().at("completion_tokens").as_int64() == 0);
  CHECK(role_usage.at("usage").as_object().at("total_tokens").as_int64() == 21);
}

TEST_CASE("non-streaming bodies") {
  std::vector<ChoiceResult> choices{{0, "Paris", "stop", {}, {}},
                                    {1, "Lyon", "length", {}, {}},
                                    {2, "Nice", "stop", 32, {}},
                                    {3, "Metz", "stop", std::string("\n"), {}}};
  auto chat = json::parse(chat_completion_body("chatcmpl-9", "m", 5, choices, {21, 3})).as_object();
  CHECK(chat.at("object").as_string() == "chat.completion");
  auto msg = chat.at("choices").as_array()[1].as_object().at("message").as_object();
  CHECK(msg.at("role").as_string() == "assistant");
  CHECK(msg.at("content").as_string() == "Lyon");
  CHECK(chat.at("usage").as_object().at("total_tokens").as_int64() == 24);
  auto text = json::parse(text_completion_body("cmpl-9", "m", 5, choices, {1, 1})).as_object();
  const auto& text_choices = text.at("choices").as_array();
  CHECK(text_choices[0].as_object().at("text").as_string() == "Paris");
  CHECK(text_choices[0].as_object().at("stop_reason").is_null());
  CHECK(text_choices[2].as_object().at("stop_reason").as_int64() == 32);
  CHECK(text_choices[3].as_object().at("stop_reason").as_string() == "\n");
  CHECK(chat.at("choices").as_array()[2].as_object().at("stop_reason").as_int64() == 32);
}

TEST_CASE("logprobs requests: chat takes logprobs + top_logprobs, completions an integer") {
  auto chat = parse_chat_request(chat_with(R"(,"logprobs":true,"top_logprobs":3)"), kLimits);
  REQUIRE(chat.ok());
  CHECK(chat->sampling.logprobs == 3);
  auto chat0 = parse_chat_request(chat_with(R"(,"logprobs":true)"), kLimits);
  REQUIRE(chat0.ok());
  CHECK(chat0->sampling.logprobs == 0);  // the sampled tokens' logprobs, no alternatives
  auto none = parse_chat_request(chat_with(R"(,"logprobs":false,"top_logprobs":0)"), kLimits);
  REQUIRE(none.ok());
  CHECK(!none->sampling.logprobs);
  CHECK(!parse_chat_request(chat_with(""), kLimits)->sampling.logprobs);
  CHECK(chat_error(chat_with(R"(,"logprobs":true,"top_logprobs":21)")) ==
        "top_logprobs|top_logprobs: must be in [0, 20], got 21");
  CHECK(chat_error(chat_with(R"(,"logprobs":true,"top_logprobs":-1)")) ==
        "top_logprobs|top_logprobs: must be in [0, 20], got -1");
  CHECK(chat_error(chat_with(R"(,"logprobs":true,"top_logprobs":2.5)")) ==
        "top_logprobs|top_logprobs: must be an integer, got 2.5");
  CHECK(chat_error(chat_with(R"(,"top_logprobs":2)")) ==
        "top_logprobs|top_logprobs: requires `logprobs` to be true, got 2");
  CHECK(chat_error(chat_with(R"(,"logprobs":false,"top_logprobs":2)")) ==
        "top_logprobs|top_logprobs: requires `logprobs` to be true, got 2");
  CHECK(chat_error(chat_with(R"(,"logprobs":1)")) ==
        "logprobs|logprobs: must be a boolean (true returns the tokens' log probabilities), got 1");

  auto cmpl = parse_completion_request(R"({"prompt":"x","logprobs":5})", kLimits);
  REQUIRE(cmpl.ok());
  CHECK(cmpl->sampling.logprobs == 5);
  CHECK(parse_completion_request(R"({"prompt":"x","logprobs":0})", kLimits)->sampling.logprobs == 0);
  CHECK(parse_completion_request(R"({"prompt":"x","logprobs":20})", kLimits)->sampling.logprobs == 20);
  CHECK(!parse_completion_request(R"({"prompt":"x","logprobs":false})", kLimits)->sampling.logprobs);
  CHECK(!parse_completion_request(R"({"prompt":"x","logprobs":null})", kLimits)->sampling.logprobs);
  CHECK(completion_error(R"({"prompt":"x","logprobs":21})") == "logprobs|logprobs: must be in [0, 20], got 21");
  CHECK(completion_error(R"({"prompt":"x","logprobs":-1})") == "logprobs|logprobs: must be in [0, 20], got -1");
  CHECK(completion_error(R"({"prompt":"x","logprobs":1.5})") == "logprobs|logprobs: must be an integer, got 1.5");
  CHECK(completion_error(R"({"prompt":"x","logprobs":true})") ==
        "logprobs|logprobs: must be an integer in [0, 20], got true");
  CHECK(completion_error(R"({"prompt":"x","logprobs":"5"})") ==
        "logprobs|logprobs: must be an integer in [0, 20], got \"5\"");
  // Prompt logprobs (echo, vLLM's prompt_logprobs) are not implemented: named, not ignored.
  CHECK(completion_error(R"({"prompt":"x","logprobs":1,"echo":true})").rfind("echo|echo: is not supported", 0) == 0);
  CHECK(completion_error(R"({"prompt":"x","prompt_logprobs":1})")
            .rfind("prompt_logprobs|prompt_logprobs: is not supported", 0) == 0);
  CHECK(
      completion_error(R"({"prompt":"x","top_logprobs":2})").rfind("top_logprobs|top_logprobs: is not supported", 0) ==
      0);
  // The cap is a limit (OpenAI's completions allow 5).
  RequestLimits openai;
  openai.max_logprobs = 5;
  auto capped = parse_completion_request(R"({"prompt":"x","logprobs":6})", openai);
  REQUIRE(!capped.ok());
  CHECK(capped.error().message == "logprobs: must be in [0, 5], got 6");
}

TEST_CASE("logprobs objects in OpenAI's chat and completions shapes") {
  std::vector<TokenLogprobs> tokens(3);
  tokens[0].sampled = make_logprob_token(" Paris", -0.25);
  tokens[0].top = {make_logprob_token(" Paris", -0.25), make_logprob_token(" Lyon", -2.0)};
  tokens[1].sampled = make_logprob_token("\xe2\x80", -1.0);  // the first two bytes of a character
  tokens[1].top = {make_logprob_token(".", -0.5), make_logprob_token("\xe2\x80", -1.0)};
  tokens[2].sampled = make_logprob_token("<|im_end|>", -std::numeric_limits<double>::infinity());
  CHECK(tokens[1].sampled.token == "bytes:\\xe2\\x80");
  CHECK(tokens[1].sampled.bytes == "\xe2\x80");
  CHECK(make_logprob_token("\xc3\xa9", -1).token == "\xc3\xa9");  // a whole character is text

  const auto chat = json::parse(json::serialize(logprobs_object(Endpoint::kChat, tokens))).as_object();
  REQUIRE(chat.size() == 1);
  const auto& content = chat.at("content").as_array();
  REQUIRE(content.size() == 3);
  const auto& c0 = content[0].as_object();
  CHECK(c0.at("token").as_string() == " Paris");
  CHECK(c0.at("logprob").as_double() == -0.25);
  CHECK(json::serialize(c0.at("bytes")) == "[32,80,97,114,105,115]");
  const auto& top0 = c0.at("top_logprobs").as_array();
  REQUIRE(top0.size() == 2);
  CHECK(top0[1].as_object().at("token").as_string() == " Lyon");
  CHECK(top0[1].as_object().at("logprob").as_double() == -2.0);
  CHECK(top0[1].as_object().size() == 3);  // token, logprob, bytes: no nested top_logprobs
  const auto& c1 = content[1].as_object();
  CHECK(c1.at("token").as_string() == "bytes:\\xe2\\x80");
  CHECK(json::serialize(c1.at("bytes")) == "[226,128]");
  CHECK(content[2].as_object().at("logprob").as_double() == -9999.0);  // -inf has no JSON form
  CHECK(content[2].as_object().at("top_logprobs").as_array().empty());

  const auto cmpl = json::parse(json::serialize(logprobs_object(Endpoint::kCompletion, tokens, 10))).as_object();
  CHECK(json::serialize(cmpl.at("tokens")) == R"([" Paris","bytes:\\xe2\\x80","<|im_end|>"])");
  CHECK(json::serialize(cmpl.at("token_logprobs")) == "[-2.5E-1,-1E0,-9.999E3]");
  const auto& top = cmpl.at("top_logprobs").as_array();
  REQUIRE(top.size() == 3);
  CHECK(top[0].as_object().size() == 2);  // the sampled token is among the top ones
  CHECK(top[0].as_object().at(" Lyon").as_double() == -2.0);
  CHECK(top[1].as_object().size() == 2);
  CHECK(top[1].as_object().at(".").as_double() == -0.5);
  CHECK(top[2].as_object().size() == 1);  // logprobs 0: the sampled token alone
  CHECK(top[2].as_object().at("<|im_end|>").as_double() == -9999.0);
  // Offsets count characters of the token strings from the given start: " Paris" is 6.
  CHECK(json::serialize(cmpl.at("text_offset")) == "[10,16,30]");  // "bytes:\\xe2\\x80" is 14
}

TEST_CASE("logprobs in bodies and chunks; null when not asked for") {
  std::vector<TokenLogprobs> tokens(1);
  tokens[0].sampled = make_logprob_token("Hi", -0.5);
  tokens[0].top = {make_logprob_token("Hi", -0.5), make_logprob_token("Hey", -1.5)};
  std::vector<ChoiceResult> choices{{0, "Hi", "length", {}, tokens}, {1, "Yo", "length", {}, {}}};
  auto chat = json::parse(chat_completion_body("c", "m", 1, choices, {1, 1})).as_object();
  const auto& chat_choices = chat.at("choices").as_array();
  CHECK(chat_choices[0].at("logprobs").at("content").as_array()[0].at("top_logprobs").as_array().size() == 2);
  CHECK(chat_choices[1].at("logprobs").is_null());
  auto text = json::parse(text_completion_body("c", "m", 1, choices, {1, 1})).as_object();
  const auto& lp = text.at("choices").as_array()[0].at("logprobs").as_object();
  CHECK(lp.at("tokens").as_array()[0].as_string() == "Hi");
  CHECK(lp.at("text_offset").as_array()[0].as_int64() == 0);
  CHECK(text.at("choices").as_array()[1].at("logprobs").is_null());

  const std::string chat_lp = json::serialize(logprobs_object(Endpoint::kChat, tokens));
  ChunkEncoder encoder(Endpoint::kChat, "c", "m", 1, /*usage_null_field=*/true);
  auto chunk = json::parse(encoder.text_chunk(0, "Hi", nullptr, chat_lp)).as_object();
  const auto& choice = chunk.at("choices").as_array()[0].as_object();
  CHECK(choice.at("delta").at("content").as_string() == "Hi");
  CHECK(choice.at("logprobs").at("content").as_array()[0].at("token").as_string() == "Hi");
  CHECK(chunk.at("usage").is_null());
  auto fin = json::parse(encoder.finish_chunk(0, "stop", {}, nullptr, chat_lp)).as_object();
  CHECK(fin.at("choices").as_array()[0].at("logprobs").at("content").as_array().size() == 1);
  CHECK(json::parse(encoder.text_chunk(0, "x")).at("choices").as_array()[0].at("logprobs").is_null());
  ChunkEncoder cmpl(Endpoint::kCompletion, "c", "m", 1, false);
  const std::string cmpl_lp = json::serialize(logprobs_object(Endpoint::kCompletion, tokens, 4));
  auto t = json::parse(cmpl.text_chunk(0, "Hi", nullptr, cmpl_lp)).as_object();
  CHECK(t.at("choices").as_array()[0].at("logprobs").at("text_offset").as_array()[0].as_int64() == 4);
  CHECK(t.at("choices").as_array()[0].at("stop_reason").is_null());
}

TEST_CASE("SSE parser handles split input, CRLF, comments and multi-line data") {
  SseParser p;
  std::string stream =
      ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\ndata: x\ndata: y\n\nevent: e\rdata: z\r\rdata: [DONE]\n\n";
  for (char c : stream) p.feed(std::string_view(&c, 1));
  std::vector<SseEvent> events;
  while (auto e = p.next()) events.push_back(*e);
  REQUIRE(events.size() == 4);
  CHECK(events[0].data == "{\"a\":1}");
  CHECK(events[1].data == "x\ny");
  CHECK(events[2].event == "e");
  CHECK(events[2].data == "z");
  CHECK(events[3].data == "[DONE]");
  CHECK(p.comments() == 1);
  std::string out;
  append_sse_event(out, "{}");
  CHECK(out == "data: {}\n\n");
}

TEST_CASE("WebSocket envelope") {
  auto ok = parse_ws_client_message(
      R"({"type":"response.create","id":"r1","request":{"messages":[{"role":"user","content":"x"}],"max_tokens":3}})",
      kLimits);
  REQUIRE(!ok.error);
  CHECK(ok.id_json == "\"r1\"");
  CHECK(ok.message.type == WsMessageType::kCreate);
  CHECK(ok.message.request.sampling.max_tokens == 3);
  auto cancel = parse_ws_client_message(R"({"type":"response.cancel","id":7})", kLimits);
  REQUIRE(!cancel.error);
  CHECK(cancel.id_json == "7");
  CHECK(cancel.message.type == WsMessageType::kCancel);
  auto bad =
      parse_ws_client_message(R"({"type":"response.create","id":"r2","request":{"messages":[],"n":9}})", kLimits);
  REQUIRE(bad.error);
  CHECK(bad.id_json == "\"r2\"");  // the error can still name its request
  CHECK(bad.error->field == "request.messages");
  auto noid = parse_ws_client_message(R"({"type":"response.cancel"})", kLimits);
  REQUIRE(noid.error);
  CHECK(noid.id_json == "null");
  CHECK(parse_ws_client_message("{", kLimits).error);
  CHECK(parse_ws_client_message(R"({"type":"nope","id":1})", kLimits).error->field == "type");

  auto created = json::parse(ws_created_event("\"r1\"")).as_object();
  CHECK(created.at("type").as_string() == "response.created");
  CHECK(created.at("id").as_string() == "r1");
  auto done = json::parse(ws_done_event("\"r1\"", "completed", {3, 4})).as_object();
  CHECK(done.at("type").as_string() == "response.done");
  CHECK(done.at("id").as_string() == "r1");
  CHECK(done.at("usage").as_object().at("total_tokens").as_int64() == 7);
  auto chunk = json::parse(ws_chunk_event("5", "{\"x\":1}")).as_object();
  CHECK(chunk.at("id").as_int64() == 5);
  CHECK(chunk.at("data").as_object().at("x").as_int64() == 1);
  auto err = json::parse(ws_error_event("null", ApiError::invalid_request("bad", "n"))).as_object();
  CHECK(err.at("id").is_null());
  CHECK(err.at("status").as_int64() == 400);
  CHECK(err.at("error").as_object().at("param").as_string() == "n");
}

TEST_CASE("penalties, min_p, min_tokens and logit_bias parse on chat and completions") {
  const std::string fields =
      R"(,"presence_penalty":0.5,"frequency_penalty":-1.25,"repetition_penalty":1.3,"min_p":0.05,)"
      R"("min_tokens":3,"max_tokens":8,"logit_bias":{"42":100,"7":-100,"0":0.5})";
  auto check = [](const SamplingFields& s) {
    CHECK(s.presence_penalty == 0.5f);
    CHECK(s.frequency_penalty == -1.25f);
    CHECK(s.repetition_penalty == 1.3f);
    CHECK(s.min_p == 0.05f);
    CHECK(s.min_tokens == 3);
    CHECK(s.logit_bias == std::vector<std::pair<int32_t, float>>{{42, 100.0f}, {7, -100.0f}, {0, 0.5f}});
  };
  auto chat = parse_chat_request(chat_with(fields), kLimits);
  REQUIRE(chat.ok());
  check(chat->sampling);
  auto completion = parse_completion_request(R"({"prompt":"x")" + fields + "}", kLimits);
  REQUIRE(completion.ok());
  check(completion->sampling);
  // Neutral values and null are the defaults.
  auto neutral = parse_chat_request(
      chat_with(
          R"(,"presence_penalty":0,"frequency_penalty":null,"repetition_penalty":1,"min_p":0,"min_tokens":0,"logit_bias":{})"),
      kLimits);
  REQUIRE(neutral.ok());
  CHECK(neutral->sampling.repetition_penalty == 1.0f);
  CHECK(neutral->sampling.logit_bias.empty());
}

TEST_CASE("penalty fields out of range are 400s naming the field and the value") {
  auto both = [](const std::string& extra, const std::string& want) {
    INFO(extra);
    CHECK(chat_error(chat_with(extra)) == want);
    CHECK(completion_error(R"({"prompt":"x")" + extra + "}") == want);
  };
  both(R"(,"presence_penalty":-2.1)", "presence_penalty|presence_penalty: must be in [-2, 2], got -2.1");
  both(R"(,"frequency_penalty":3)", "frequency_penalty|frequency_penalty: must be in [-2, 2], got 3");
  both(R"(,"frequency_penalty":"a")", "frequency_penalty|frequency_penalty: must be a number, got a string \"a\"");
  both(R"(,"repetition_penalty":0)", "repetition_penalty|repetition_penalty: must be > 0, got 0");
  both(R"(,"repetition_penalty":-1.5)", "repetition_penalty|repetition_penalty: must be > 0, got -1.5");
  both(R"(,"min_p":1.5)", "min_p|min_p: must be in [0, 1], got 1.5");
  both(R"(,"min_p":-0.1)", "min_p|min_p: must be in [0, 1], got -0.1");
  both(R"(,"min_tokens":-1)", "min_tokens|min_tokens: must be in [0, 2147483647], got -1");
  both(R"(,"min_tokens":1.5)", "min_tokens|min_tokens: must be an integer, got 1.5");
  both(R"(,"min_tokens":5,"max_tokens":4)", "min_tokens|min_tokens: must be <= max_tokens (4), got 5");
  both(R"(,"logit_bias":{"12":101})", "logit_bias.12|logit_bias.12: must be in [-100, 100], got 101");
  both(R"(,"logit_bias":{"abc":1})",
       R"(logit_bias.abc|logit_bias.abc: the key must be a token id (a non-negative integer), got "abc")");
  both(R"(,"logit_bias":{"-3":1})",
       R"(logit_bias.-3|logit_bias.-3: the key must be a token id (a non-negative integer), got "-3")");
  both(R"(,"logit_bias":{"5":null})", "logit_bias.5|logit_bias.5: must be a number in [-100, 100], got null");
  both(R"(,"logit_bias":{"5":1,"05":2})", "logit_bias|logit_bias: token id 5 appears more than once");
  both(R"(,"logit_bias":[1])", "logit_bias|logit_bias: must be an object mapping token ids to biases, got [1]");
}
