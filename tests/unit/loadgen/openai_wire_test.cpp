#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

#include "aurora/loadgen/openai_wire.hpp"

using namespace aurora::loadgen;
namespace json = boost::json;

namespace {
RequestSpec spec() {
  RequestSpec s;
  s.messages = {{"system", "Be brief."}, {"user", "Capital of France?"}};
  s.max_tokens = 32;
  return s;
}
}  // namespace

TEST_CASE("chat request bodies stream, ask for usage and carry the options") {
  SamplingOptions o;
  o.model = "m";
  o.ignore_eos = true;
  o.temperature = 0.0;
  o.top_k = 5;
  o.extra_body = json::parse(R"({"min_tokens": 3, "temperature": 0.5})").as_object();
  const json::value body = json::parse(build_request_body(ApiKind::kChat, spec(), o));
  CHECK(body.at("model") == "m");
  CHECK(body.at("stream") == true);
  CHECK(body.at("stream_options").at("include_usage") == true);
  CHECK(body.at("max_completion_tokens") == 32);
  CHECK(body.at("max_tokens") == 32);
  CHECK(body.at("ignore_eos") == true);
  CHECK(body.at("top_k") == 5);
  CHECK(body.at("min_tokens") == 3);
  CHECK(body.at("temperature") == 0.5);  // --extra-body wins
  REQUIRE(body.at("messages").as_array().size() == 2);
  CHECK(body.at("messages").at(1).at("role") == "user");
  CHECK(body.at("messages").at(1).at("content") == "Capital of France?");
  CHECK_FALSE(body.as_object().contains("prompt"));
}

TEST_CASE("completions bodies send a prompt") {
  const json::value body = json::parse(build_request_body(ApiKind::kCompletions, spec(), {}));
  CHECK(body.at("prompt") == "Be brief.\n\nCapital of France?");
  CHECK(body.at("max_tokens") == 32);
  CHECK_FALSE(body.as_object().contains("messages"));
  CHECK_FALSE(body.as_object().contains("model"));
  RequestSpec with_prompt = spec();
  with_prompt.prompt = "raw prompt";
  CHECK(json::parse(build_request_body(ApiKind::kCompletions, with_prompt, {})).at("prompt") == "raw prompt");
}

TEST_CASE("WebSocket messages follow Aurora's /v1/ws shapes") {
  const json::value create = json::parse(build_ws_create("r7", spec(), {}));
  CHECK(create.at("type") == "response.create");
  CHECK(create.at("id") == "r7");
  CHECK(create.at("request").at("stream") == true);
  CHECK(create.at("request").at("messages").as_array().size() == 2);
  const json::value cancel = json::parse(build_ws_cancel("r7"));
  CHECK(cancel.at("type") == "response.cancel");
  CHECK(cancel.at("id") == "r7");
}

TEST_CASE("parse_stream_chunk reads content, role-only, finish and usage chunks") {
  auto content = parse_stream_chunk(
      R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Paris"},"finish_reason":null}]})");
  REQUIRE(content.ok());
  CHECK(content->has_choices);
  CHECK(content->text == "Paris");
  CHECK(content->content_bytes == 5);
  CHECK_FALSE(content->finish_reason.has_value());

  auto role = parse_stream_chunk(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})");
  REQUIRE(role.ok());
  CHECK(role->has_choices);
  CHECK(role->content_bytes == 0);  // not a token: TTFT waits for generated text

  auto finish = parse_stream_chunk(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null})");
  REQUIRE(finish.ok());
  CHECK(finish->content_bytes == 0);
  CHECK(*finish->finish_reason == "stop");
  CHECK_FALSE(finish->completion_tokens.has_value());

  auto usage =
      parse_stream_chunk(R"({"choices":[],"usage":{"prompt_tokens":21,"completion_tokens":2,"total_tokens":23}})");
  REQUIRE(usage.ok());
  CHECK_FALSE(usage->has_choices);
  CHECK(*usage->prompt_tokens == 21);
  CHECK(*usage->completion_tokens == 2);

  auto text = parse_stream_chunk(
      R"({"object":"text_completion","choices":[{"index":0,"text":" Paris","finish_reason":null}]})");
  REQUIRE(text.ok());
  CHECK(text->text == " Paris");

  auto reasoning = parse_stream_chunk(R"({"choices":[{"delta":{"reasoning_content":"hmm"}}]})");
  REQUIRE(reasoning.ok());
  CHECK(reasoning->content_bytes == 3);
}

TEST_CASE("in-stream errors are recognised in every shape servers use") {
  auto nested =
      parse_stream_chunk(R"({"error":{"message":"boom","type":"InternalServerError","param":null,"code":500}})");
  REQUIRE(nested.ok());
  REQUIRE(nested->error.has_value());
  CHECK(nested->error->message == "boom");
  CHECK(nested->error->type == "InternalServerError");
  CHECK(nested->error->code == "500");

  auto flat = parse_stream_chunk(R"({"object":"error","message":"bad","type":"BadRequestError","code":400})");
  REQUIRE(flat.ok());
  REQUIRE(flat->error.has_value());
  CHECK(flat->error->message == "bad");

  auto tgi = parse_error_body(R"({"error":"Model is overloaded","error_type":"overloaded"})");
  REQUIRE(tgi.has_value());
  CHECK(tgi->message == "Model is overloaded");
  CHECK(tgi->type == "overloaded");

  CHECK_FALSE(parse_error_body("<html>502</html>").has_value());
}

TEST_CASE("malformed chunks are errors, not crashes") {
  CHECK_FALSE(parse_stream_chunk("{\"choices\":[").ok());
  CHECK_FALSE(parse_stream_chunk("[1,2]").ok());
  auto odd = parse_stream_chunk(R"({"choices":[{"delta":{"content":5}}]})");
  REQUIRE(odd.ok());
  CHECK(odd->content_bytes == 0);
}

TEST_CASE("parse_ws_message reads chunk, done, error and created messages") {
  auto chunk = parse_ws_message(R"({"type":"chunk","id":"r1","data":{"choices":[{"delta":{"content":"hi"}}]}})");
  REQUIRE(chunk.ok());
  CHECK(chunk->type == WsMessage::Type::kChunk);
  CHECK(chunk->id == "r1");
  CHECK(chunk->chunk.text == "hi");

  auto done = parse_ws_message(
      R"({"type":"response.done","id":"r1","status":"completed","usage":{"prompt_tokens":3,"completion_tokens":9}})");
  REQUIRE(done.ok());
  CHECK(done->type == WsMessage::Type::kDone);
  CHECK(done->status == "completed");
  CHECK(*done->completion_tokens == 9);
  CHECK(*done->prompt_tokens == 3);

  auto error = parse_ws_message(
      R"({"type":"error","id":"r2","error":{"message":"full","type":"server_overloaded","code":503}})");
  REQUIRE(error.ok());
  CHECK(error->type == WsMessage::Type::kError);
  CHECK(error->id == "r2");
  CHECK(error->error.type == "server_overloaded");
  CHECK(error->error.code == "503");

  auto created = parse_ws_message(R"({"type":"response.created","id":"r3"})");
  REQUIRE(created.ok());
  CHECK(created->type == WsMessage::Type::kCreated);

  auto no_type = parse_ws_message(R"({"id":"r3"})");
  REQUIRE_FALSE(no_type.ok());
  CHECK_THAT(no_type.error().message, Catch::Contains("type"));
}
