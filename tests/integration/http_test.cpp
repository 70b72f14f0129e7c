// The OpenAI-compatible routes over real loopback connections: shapes, streaming framing, n,
// request ids, validation errors (before any engine work), and the same through curl.
#include <catch2/catch.hpp>

#include "fake_engine.hpp"
#include "support/test_util.hpp"

using namespace aurora::testing;
namespace json = boost::json;

namespace {
ServerProcess& shared_server() {
  static ServerProcess server({"--fake-step-ms", "1"});
  return server;
}
std::string expected(int n, uint64_t seed = 0) { return FakeEngine::expected_text(n, seed); }
}  // namespace

TEST_CASE("health, models, tokenize and detokenize", "[http]") {
  const uint16_t port = shared_server().port();
  auto health = http(port, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(parse_json(health.body).at("status").as_string() == "ok");
  CHECK(health.header("x-request-id").size() == 32);

  auto models = parse_json(http(port, "GET", "/v1/models").body);
  CHECK(models.at("object").as_string() == "list");
  const auto& model = models.at("data").as_array().at(0).as_object();
  CHECK(model.at("object").as_string() == "model");
  CHECK(model.at("max_model_len").as_int64() > 0);

  auto tokens = parse_json(http(port, "POST", "/tokenize", R"({"prompt":"hi","add_special_tokens":false})").body);
  const auto count = tokens.at("count").as_int64();
  CHECK(count == static_cast<int64_t>(tokens.at("tokens").as_array().size()));
  std::string ids = json::serialize(tokens.at("tokens"));
  auto text = parse_json(http(port, "POST", "/detokenize", R"({"tokens":)" + ids + "}").body);
  CHECK(text.at("prompt").as_string() == "hi");
  auto chat_tokens =
      parse_json(http(port, "POST", "/tokenize", R"({"messages":[{"role":"user","content":"hi"}]})").body);
  CHECK(chat_tokens.at("count").as_int64() > count);

  auto bad = http(port, "POST", "/detokenize", R"({"tokens":[99999999]})");
  CHECK(bad.status == 400);
  CHECK(parse_json(bad.body).at("error").at("param").as_string() == "tokens");
}

TEST_CASE("unknown routes, methods and models", "[http]") {
  const uint16_t port = shared_server().port();
  auto missing = http(port, "GET", "/v1/../../outside/secret");
  CHECK(missing.status == 404);
  const auto missing_body = parse_json(missing.body);
  const auto& error = missing_body.at("error").as_object();
  CHECK(error.contains("message"));
  CHECK(error.contains("type"));
  CHECK(error.contains("param"));
  CHECK(error.contains("code"));
  CHECK(http(port, "GET", "/%2e%2e/%2e%2e/etc/passwd").status == 404);
  CHECK(http(port, "GET", "/v1/chat/completions").status == 405);
  CHECK(http(port, "POST", "/health").status == 405);
  auto model = http(port, "POST", "/v1/chat/completions", chat_body("x", R"(,"model":"../../outside/model.gguf")"));
  CHECK(model.status == 404);
  CHECK(parse_json(model.body).at("error").at("code").as_string() == "model_not_found");
}

TEST_CASE("non-streaming chat and completions", "[http][fake]") {
  const uint16_t port = shared_server().port();
  auto r = http(port, "POST", "/v1/chat/completions", chat_body("hello", R"(,"max_tokens":5)"),
                {"X-Request-Id: my-request.1"});
  REQUIRE(r.status == 200);
  CHECK(r.header("x-request-id") == "my-request.1");
  auto body = parse_json(r.body).as_object();
  CHECK(body.at("object").as_string() == "chat.completion");
  CHECK(body.at("id").as_string() == "chatcmpl-my-request.1");
  const auto& choice = body.at("choices").as_array().at(0).as_object();
  CHECK(choice.at("message").at("role").as_string() == "assistant");
  CHECK(choice.at("message").at("content").as_string() == expected(5));
  CHECK(choice.at("finish_reason").as_string() == "length");
  CHECK(body.at("usage").at("completion_tokens").as_int64() == 5);
  CHECK(body.at("usage").at("total_tokens").as_int64() == body.at("usage").at("prompt_tokens").as_int64() + 5);

  // An unsafe request id is replaced, never echoed.
  auto unsafe = http(port, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":1})", {"X-Request-Id: a b<c>"});
  CHECK(unsafe.header("x-request-id").size() == 32);

  // n = 2 and a batch of two prompts: four choices, indexed prompt * n + j, with a seed.
  auto batch = parse_json(
      http(port, "POST", "/v1/completions", R"({"prompt":["a",[104,105]],"n":2,"max_tokens":3,"seed":5})").body);
  const auto& choices = batch.at("choices").as_array();
  REQUIRE(choices.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(choices[i].at("index").as_int64() == static_cast<int64_t>(i));
    CHECK(choices[i].at("text").as_string() == expected(3, 5 + (i % 2)));
  }
  CHECK(batch.at("usage").at("completion_tokens").as_int64() == 12);
}

TEST_CASE("streamed chat follows OpenAI's SSE framing", "[http][fake]") {
  const uint16_t port = shared_server().port();
  auto s = collect_stream(port, "/v1/chat/completions",
                          chat_body("hi", R"(,"max_tokens":6,"stream":true,"stream_options":{"include_usage":true})"));
  REQUIRE(s.head.status == 200);
  CHECK(s.head.header("content-type") == "text/event-stream");
  CHECK(s.head.header("cache-control") == "no-cache");
  REQUIRE(s.done());
  REQUIRE(s.data.size() == 1 + 6 + 1 + 1 + 1);  // role, 6 tokens, finish, usage, [DONE]
  auto first = parse_json(s.data[0]);
  CHECK(first.at("object").as_string() == "chat.completion.chunk");
  CHECK(first.at("choices").at(0).at("delta").at("role").as_string() == "assistant");
  std::string text;
  for (size_t i = 1; i <= 6; ++i) {
    auto chunk = parse_json(s.data[i]);
    CHECK(chunk.at("choices").at(0).at("finish_reason").is_null());
    CHECK(chunk.at("usage").is_null());  // include_usage: null on every non-final chunk
    text += chunk.at("choices").at(0).at("delta").at("content").as_string();
  }
  CHECK(text == expected(6));
  auto last = parse_json(s.data[7]);
  CHECK(last.at("choices").at(0).at("finish_reason").as_string() == "length");
  CHECK(last.at("choices").at(0).at("delta").as_object().empty());
  auto usage = parse_json(s.data[8]);
  CHECK(usage.at("choices").as_array().empty());
  CHECK(usage.at("usage").at("completion_tokens").as_int64() == 6);
}

TEST_CASE("streamed completions with n, stop strings and continuous usage", "[http][fake]") {
  const uint16_t port = shared_server().port();
  auto s = collect_stream(port, "/v1/completions",
                          R"({"prompt":"p","max_tokens":8,"n":2,"stream":true,"stop":[" charlie"]})");
  REQUIRE(s.done());
  std::string text[2];
  std::string finish[2];
  for (const auto& d : s.data) {
    if (d == "[DONE]") continue;
    auto chunk = parse_json(d);
    CHECK(!chunk.as_object().contains("usage"));
    const auto& c = chunk.at("choices").at(0);
    const auto i = c.at("index").as_int64();
    text[i] += c.at("text").as_string();
    if (!c.at("finish_reason").is_null()) {
      finish[i] = c.at("finish_reason").as_string();
      CHECK(c.at("stop_reason").as_string() == " charlie");
    }
  }
  for (int i = 0; i < 2; ++i) {
    CHECK(text[i] == " alpha bravo");
    CHECK(finish[i] == "stop");
  }
  auto cont =
      collect_stream(port, "/v1/completions",
                     R"({"prompt":"p","max_tokens":3,"stream":true,"stream_options":{"continuous_usage_stats":true}})");
  REQUIRE(cont.done());
  auto mid = parse_json(cont.data[1]);
  CHECK(mid.at("usage").at("completion_tokens").as_int64() == 2);
}

TEST_CASE("a stop token id is the integer stop_reason; continuous usage covers every chunk", "[http][fake]") {
  const uint16_t port = shared_server().port();
  const int32_t stop_id = FakeTokenizer::kFirstWord + 2;  // the third generated word
  const std::string stop_ids = R"(,"stop_token_ids":[)" + std::to_string(stop_id) + "]";
  auto r = parse_json(http(port, "POST", "/v1/completions", R"({"prompt":"p","max_tokens":8)" + stop_ids + "}").body);
  const auto& choice = r.at("choices").at(0);
  CHECK(choice.at("text").as_string() == expected(2));  // the stop token adds no text
  CHECK(choice.at("finish_reason").as_string() == "stop");
  CHECK(choice.at("stop_reason").as_int64() == stop_id);
  CHECK(r.at("usage").at("completion_tokens").as_int64() == 3);

  auto s = collect_stream(port, "/v1/chat/completions",
                          chat_body("hi", R"(,"max_tokens":8,"stream":true,)"
                                          R"("stream_options":{"include_usage":true,"continuous_usage_stats":true})" +
                                              stop_ids));
  REQUIRE(s.done());
  REQUIRE(s.data.size() == 1 + 2 + 1 + 1 + 1);  // role, 2 words, finish, usage, [DONE]
  for (size_t i = 0; i + 1 < s.data.size(); ++i) {
    INFO("chunk " << i << ": " << s.data[i]);
    CHECK(parse_json(s.data[i]).at("usage").is_object());  // vLLM: the role chunk too
  }
  auto role = parse_json(s.data[0]);
  CHECK(role.at("choices").at(0).at("delta").at("role").as_string() == "assistant");
  CHECK(role.at("usage").at("completion_tokens").as_int64() == 0);
  CHECK(role.at("usage").at("prompt_tokens").as_int64() > 0);
  auto fin = parse_json(s.data[3]);
  CHECK(fin.at("choices").at(0).at("finish_reason").as_string() == "stop");
  CHECK(fin.at("choices").at(0).at("stop_reason").as_int64() == stop_id);
}

TEST_CASE("logprobs: chat and completions, in JSON bodies and streamed chunks", "[http][fake][logprobs]") {
  const uint16_t port = shared_server().port();
  auto word = [](size_t i) { return FakeTokenizer::word(int32_t(i % FakeTokenizer::kNumWords)); };

  auto chat = parse_json(
      http(port, "POST", "/v1/chat/completions", chat_body("hi", R"(,"max_tokens":3,"logprobs":true,"top_logprobs":2)"))
          .body);
  const auto& content = chat.at("choices").at(0).at("logprobs").at("content").as_array();
  REQUIRE(content.size() == 3);
  for (size_t i = 0; i < content.size(); ++i) {
    const auto& t = content[i];
    CHECK(t.at("token").as_string() == word(i));
    CHECK(t.at("logprob").as_double() == -0.5);
    CHECK(t.at("bytes").as_array().size() == word(i).size());
    CHECK(t.at("bytes").as_array()[0].as_int64() == ' ');
    const auto& top = t.at("top_logprobs").as_array();
    REQUIRE(top.size() == 2);
    CHECK(top[0].at("token").as_string() == word(i));
    CHECK(top[1].at("token").as_string() == word(i + 1));
    CHECK(top[1].at("logprob").as_double() == -1.5);
  }
  auto plain = parse_json(http(port, "POST", "/v1/chat/completions", chat_body("hi", R"(,"max_tokens":2)")).body);
  CHECK(plain.at("choices").at(0).at("logprobs").is_null());

  auto cmpl =
      parse_json(http(port, "POST", "/v1/completions", R"({"prompt":"p","max_tokens":3,"logprobs":1,"n":2})").body);
  for (size_t c = 0; c < 2; ++c) {
    const auto& lp = cmpl.at("choices").at(c).at("logprobs");
    CHECK(json::serialize(lp.at("tokens")) == R"([" alpha"," bravo"," charlie"])");
    CHECK(json::serialize(lp.at("token_logprobs")) == "[-5E-1,-5E-1,-5E-1]");
    CHECK(json::serialize(lp.at("top_logprobs").at(1)) == R"({" bravo":-5E-1})");
    CHECK(json::serialize(lp.at("text_offset")) == "[0,6,12]");
  }

  // Streamed chat: each token's chunk carries that token's logprobs; role and finish chunks none.
  auto s = collect_stream(port, "/v1/chat/completions",
                          chat_body("hi", R"(,"max_tokens":4,"stream":true,"logprobs":true,"top_logprobs":1)"));
  REQUIRE(s.done());
  REQUIRE(s.data.size() == 1 + 4 + 1 + 1);
  CHECK(parse_json(s.data[0]).at("choices").at(0).at("logprobs").is_null());
  for (size_t i = 1; i <= 4; ++i) {
    const auto chunk = parse_json(s.data[i]);
    const auto& entries = chunk.at("choices").at(0).at("logprobs").at("content").as_array();
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].at("token").as_string() == word(i - 1));
    CHECK(entries[0].at("top_logprobs").as_array().size() == 1);
  }
  CHECK(parse_json(s.data[5]).at("choices").at(0).at("logprobs").is_null());

  // Streamed completions ending on a stop string: the matched token's text is never sent, its
  // logprobs ride in the finish chunk; offsets run on across chunks.
  auto stop = collect_stream(port, "/v1/completions",
                             R"({"prompt":"p","max_tokens":8,"stream":true,"stop":[" charlie"],"logprobs":0})");
  REQUIRE(stop.done());
  json::array tokens, offsets;
  std::string text;
  for (const auto& d : stop.data) {
    if (d == "[DONE]") continue;
    const auto chunk = parse_json(d);
    const auto& choice = chunk.at("choices").at(0);
    text += choice.at("text").as_string();
    if (choice.at("logprobs").is_null()) continue;
    for (const auto& t : choice.at("logprobs").at("tokens").as_array()) tokens.push_back(t);
    for (const auto& o : choice.at("logprobs").at("text_offset").as_array()) offsets.push_back(o);
    CHECK(choice.at("logprobs").at("top_logprobs").at(0).as_object().size() == 1);
  }
  CHECK(text == " alpha bravo");
  CHECK(json::serialize(tokens) == R"([" alpha"," bravo"," charlie"])");
  CHECK(json::serialize(offsets) == "[0,6,12]");

  // Bad values are 400s naming the field.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {chat_body("x", R"(,"logprobs":true,"top_logprobs":21)"), "top_logprobs"},
      {chat_body("x", R"(,"top_logprobs":3)"), "top_logprobs"},
      {chat_body("x", R"(,"logprobs":"yes")"), "logprobs"},
  };
  for (const auto& [body, param] : bad) {
    auto r = http(port, "POST", "/v1/chat/completions", body);
    CHECK(r.status == 400);
    CHECK(parse_json(r.body).at("error").at("param").as_string() == param);
  }
  auto r = http(port, "POST", "/v1/completions", R"({"prompt":"x","logprobs":-2})");
  CHECK(r.status == 400);
  CHECK(parse_json(r.body).at("error").at("message").as_string().find("got -2") != std::string::npos);
  CHECK(http(port, "POST", "/v1/completions", R"({"prompt":"x","logprobs":2,"echo":true})").status == 400);
}

TEST_CASE("penalty fields reach the engine; logit_bias ids and min_tokens are checked against the model",
          "[http][fake][penalties]") {
  const uint16_t port = shared_server().port();
  const int32_t charlie = FakeTokenizer::kFirstWord + 2;
  auto chat = parse_json(
      http(port, "POST", "/v1/chat/completions",
           chat_body("hi", R"(,"max_tokens":3,"presence_penalty":0.5,"frequency_penalty":0.5,"repetition_penalty":1.2,)"
                           R"("min_p":0.1,"min_tokens":1,"logit_bias":{")" +
                               std::to_string(charlie) + R"(":100})"))
          .body);
  CHECK(chat.at("choices").at(0).at("message").at("content").as_string() == " charlie charlie charlie");

  auto unknown_id = http(port, "POST", "/v1/completions", R"({"prompt":"x","logit_bias":{"99999":5}})");
  CHECK(unknown_id.status == 400);
  CHECK(parse_json(unknown_id.body).at("error").at("param").as_string() == "logit_bias");
  CHECK(parse_json(unknown_id.body).at("error").at("message").as_string().find("99999") != std::string::npos);
  // Completions default to 16 tokens: min_tokens 20 cannot be met.
  auto min_tokens = http(port, "POST", "/v1/completions", R"({"prompt":"x","min_tokens":20})");
  CHECK(min_tokens.status == 400);
  CHECK(parse_json(min_tokens.body).at("error").at("param").as_string() == "min_tokens");
  auto range = http(port, "POST", "/v1/chat/completions", chat_body("x", R"(,"repetition_penalty":0)"));
  CHECK(range.status == 400);
  CHECK(parse_json(range.body).at("error").at("param").as_string() == "repetition_penalty");
}

TEST_CASE("validation errors are 400s naming the field, and start no engine work", "[http]") {
  const uint16_t port = shared_server().port();
  const double before = metric(port, "aurora:request_success_total");
  struct Case {
    std::string body;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"not json", ""},
      {chat_body("x") + "garbage", ""},
      {std::string(5000, '[') + std::string(5000, ']'), ""},
      {chat_body("x", R"(,"max_tokens":5,"max_tokens":6)"), "max_tokens"},
      {chat_body("x", R"(,"max_tokens":0)"), "max_tokens"},
      {chat_body("x", R"(,"max_tokens":"16")"), "max_tokens"},
      {chat_body("x", R"(,"n":1000)"), "n"},
      {chat_body("x", R"(,"stop":["a","b","c","d","e"])"), "stop"},
      {chat_body("x", R"(,"temperature":-1)"), "temperature"},
      {chat_body("x", R"(,"top_p":2)"), "top_p"},
      {chat_body("x", R"(,"top_logprobs":100)"), "top_logprobs"},
      {chat_body("x", R"(,"stream":"yes")"), "stream"},
      {R"({"messages":[{"role":"user","content":"\u0000ok"},{"role":"robot","content":"x"}]})", "messages[1].role"},
      {chat_body("x", R"(,"max_tokens":100000000)"), "max_tokens"},
  };
  for (const auto& c : cases) {
    INFO(c.body.substr(0, 120));
    auto r = http(port, "POST", "/v1/chat/completions", c.body);
    CHECK(r.status == 400);
    auto e = parse_json(r.body).at("error");
    CHECK(e.at("type").as_string() == "invalid_request_error");
    if (c.param.empty()) {
      CHECK(e.at("param").is_null());
    } else {
      CHECK(e.at("param").as_string() == c.param);
    }
  }
  auto context =
      parse_json(http(port, "POST", "/v1/chat/completions", chat_body("x", R"(,"max_tokens":100000000)")).body);
  CHECK(context.at("error").at("code").as_string() == "context_length_exceeded");
  CHECK(metric(port, "aurora:request_success_total") == before);
}

TEST_CASE("curl streams and fetches", "[http][curl]") {
  const uint16_t port = shared_server().port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  int code = -1;
  const std::string streamed =
      run_command("curl -sS -N --max-time 10 " + url + "/v1/chat/completions -H 'Content-Type: application/json' -d '" +
                      chat_body("hi", R"(,"max_tokens":4,"stream":true)") + "'",
                  &code);
  CHECK(code == 0);
  CHECK(streamed.find("data: [DONE]\n\n") != std::string::npos);
  CHECK(streamed.rfind("data: {", 0) == 0);
  const std::string status =
      run_command("curl -sS -o /dev/null -w '%{http_code}' --max-time 10 " + url +
                      "/v1/completions -H 'Content-Type: application/json' -d '{\"prompt\":\"x\","
                      "\"max_tokens\":2}'",
                  &code);
  CHECK(status == "200");
  const std::string big = run_command(
      "head -c 3000000 /dev/zero | tr '\\0' a | curl -sS -o /dev/null -w '%{http_code}' "
      "--max-time 10 " +
          url +
          "/v1/completions -H 'Content-Type: application/json' "
          "--data-binary @-",
      &code);
  CHECK(big == "413");
  const std::string health = run_command("curl -sS --max-time 5 " + url + "/health", &code);
  CHECK(health == R"({"status":"ok"})");
}
