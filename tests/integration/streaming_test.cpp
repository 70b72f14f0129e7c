// Streams under stress: client disconnects (FIN, RST, while queued), slow readers, keep-alive
// comments, mid-stream engine failures, overload, loading, and SIGTERM drains.
#include <signal.h>

#include <catch2/catch.hpp>

#include "support/test_util.hpp"

using namespace aurora::testing;

namespace {

const std::string kLongStream = chat_body("go", R"(,"max_tokens":4000,"ignore_eos":true,"stream":true)");

// Opens a stream and reads `events` events (the role chunk counts).
std::unique_ptr<TcpClient> open_stream(uint16_t port, const std::string& body, int events) {
  auto c = std::make_unique<TcpClient>(port);
  c->send(make_request("POST", "/v1/chat/completions", body));
  auto head = c->read_head();
  REQUIRE(head.status == 200);
  for (int i = 0; i < events; ++i) REQUIRE(c->next_event());
  return c;
}

}  // namespace

TEST_CASE("a client that closes or resets cancels its request and frees its KV within a step", "[stream][fake]") {
  ServerProcess server({"--fake-step-ms", "5"});
  const uint16_t port = server.port();
  for (const bool rst : {false, true}) {
    INFO((rst ? "RST" : "FIN"));
    const double aborted =
        metric(port, "aurora:request_success_total{model_name=\"fake-moe\",finished_reason=\"abort\"");
    auto c = open_stream(port, kLongStream, 4);
    CHECK(metric(port, "aurora:kv_cache_blocks_used") > 0);
    const auto start = std::chrono::steady_clock::now();
    if (rst) {
      c->reset();
    } else {
      c->close();
    }
    REQUIRE(eventually([&] { return metric(port, "aurora:kv_cache_blocks_used") == 0; }));
    // One engine step is 5 ms; allow scheduling noise on a shared 2-core machine.
    CHECK(std::chrono::steady_clock::now() - start < milliseconds(500));
    CHECK(eventually([&] { return engine_busy(port) == 0; }));
    CHECK(metric(port, "aurora:request_success_total{model_name=\"fake-moe\",finished_reason=\"abort\"") ==
          aborted + 1);
  }
  CHECK(metric(port, "aurora:client_disconnects_total") == 2);
}

TEST_CASE("a request cancelled while queued never runs", "[stream][fake]") {
  ServerProcess server({"--fake-step-ms", "5", "--fake-max-running", "1"});
  const uint16_t port = server.port();
  auto running = open_stream(port, kLongStream, 2);
  TcpClient queued(port);
  queued.send(make_request("POST", "/v1/chat/completions", kLongStream));
  CHECK(queued.read_head().status == 200);
  REQUIRE(eventually([&] { return metric(port, "aurora:num_requests_waiting") == 1; }));
  queued.close();
  CHECK(eventually([&] { return metric(port, "aurora:num_requests_waiting") == 0; }));
  CHECK(metric(port, "aurora:num_requests_running") == 1);
}

TEST_CASE("a reader too slow for its stream is cancelled, not buffered without bound", "[stream][fake]") {
  ServerProcess server({"--fake-step-us", "100", "--fake-context", "1000000", "--stream-max-pending-bytes", "65536",
                        "--write-timeout-ms", "1000"});
  const uint16_t port = server.port();
  TcpClient c(port);
  c.send(make_request("POST", "/v1/chat/completions", chat_body("go", R"(,"max_tokens":900000,"stream":true)")));
  // Never read: the socket buffers fill, then the channel, then the request is cancelled.
  CHECK(eventually(
      [&] {
        return metric(port, "aurora:request_success_total{model_name=\"fake-moe\",finished_reason=\"abort\"") == 1;
      },
      milliseconds(20000)));
  CHECK(eventually([&] { return metric(port, "aurora:kv_cache_blocks_used") == 0; }));
  CHECK(eventually([&] { return metric(port, "aurora:streams_open") == 0; }, milliseconds(5000)));
}

TEST_CASE("an idle stream carries keep-alive comments", "[stream][fake]") {
  ServerProcess server({"--sse-keepalive-ms", "100"});
  auto s = collect_stream(server.port(), "/v1/chat/completions",
                          chat_body("[fake:prefill_ms=550]", R"(,"max_tokens":2,"stream":true)"));
  REQUIRE(s.done());
  CHECK(s.comments >= 3);
  CHECK(s.data.size() == 5);
}

TEST_CASE("an engine failure after streaming began is an error event, then [DONE]", "[stream][fake]") {
  ServerProcess server({"--fake-step-ms", "1"});
  auto s = collect_stream(server.port(), "/v1/chat/completions",
                          chat_body("[fake:fail_after=3]", R"(,"max_tokens":50,"stream":true)"));
  REQUIRE(s.head.status == 200);
  REQUIRE(s.done());
  REQUIRE(s.data.size() == 1 + 3 + 1 + 1);
  auto error = parse_json(s.data[4]).at("error");
  CHECK(error.at("type").as_string() == "server_error");
  CHECK(std::string(error.at("message").as_string()).find("injected failure") != std::string::npos);
  auto plain =
      http(server.port(), "POST", "/v1/chat/completions", chat_body("[fake:fail_after=2]", R"(,"max_tokens":9)"));
  CHECK(plain.status == 500);
  CHECK(parse_json(plain.body).at("error").at("code").as_string() == "internal_error");
  CHECK(metric(server.port(), "aurora:request_success_total{model_name=\"fake-moe\",finished_reason=\"error\"") == 2);
}

TEST_CASE("under overload the excess gets 503 at once while admitted streams keep flowing", "[stream][fake]") {
  ServerProcess server({"--fake-step-ms", "5", "--fake-max-running", "2", "--fake-max-waiting", "2"});
  const uint16_t port = server.port();
  std::vector<std::unique_ptr<TcpClient>> admitted;
  // Two running (a token seen), then two waiting.
  for (int i = 0; i < 4; ++i) admitted.push_back(open_stream(port, kLongStream, i < 2 ? 2 : 1));
  REQUIRE(eventually([&] { return metric(port, "aurora:num_requests_waiting") == 2; }));
  for (int i = 0; i < 10; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto r = http(port, "POST", "/v1/chat/completions", kLongStream);
    CHECK(std::chrono::steady_clock::now() - start < milliseconds(100));
    CHECK(r.status == 503);
    CHECK(r.header("retry-after") == "1");
    CHECK(parse_json(r.body).at("error").at("code").as_string() == "server_overloaded");
  }
  // The two running streams still produce tokens.
  for (int i = 0; i < 2; ++i) {
    for (int k = 0; k < 5; ++k) CHECK(admitted[static_cast<size_t>(i)]->next_event(milliseconds(1000)));
  }
  CHECK(metric(port, "aurora:requests_rejected_total{reason=\"queue_full\"") == 10);
}

TEST_CASE("503 while the model loads", "[stream][fake]") {
  ServerProcess server({"--fake-load-ms", "800"}, /*wait_ready=*/false);
  auto health = http(server.port(), "GET", "/health");
  CHECK(health.status == 503);
  CHECK(parse_json(health.body).at("status").as_string() == "loading");
  auto chat = http(server.port(), "POST", "/v1/chat/completions", chat_body("x"));
  CHECK(chat.status == 503);
  CHECK(parse_json(chat.body).at("error").at("code").as_string() == "model_loading");
  CHECK(eventually([&] { return http(server.port(), "GET", "/health").status == 200; }));
}

TEST_CASE("SIGTERM drains: new requests get 503, in-flight streams finish, exit 0", "[stream][drain]") {
  ServerProcess server({"--fake-step-ms", "5", "--drain-timeout-ms", "5000"});
  const uint16_t port = server.port();
  std::vector<std::unique_ptr<TcpClient>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(open_stream(port, chat_body("x", R"(,"max_tokens":80,"ignore_eos":true,"stream":true)"), 1));
  }
  TcpClient idle(port);  // a keep-alive connection with nothing in flight
  idle.send(make_request("GET", "/health"));
  REQUIRE(idle.read_response().status == 200);
  const auto start = std::chrono::steady_clock::now();
  server.send_signal(SIGTERM);
  std::this_thread::sleep_for(milliseconds(30));
  auto refused = http(port, "POST", "/v1/chat/completions", chat_body("x"));
  CHECK(refused.status == 503);
  CHECK(refused.header("connection") == "close");
  CHECK(http(port, "GET", "/health").status == 503);
  CHECK(idle.wait_closed(milliseconds(1000)));
  for (auto& s : streams) {
    int tokens = 0;
    bool done = false;
    while (auto e = s->next_event(milliseconds(3000))) {
      if (e->data == "[DONE]") {
        done = true;
        break;
      }
      ++tokens;
    }
    CHECK(done);
    // 80 tokens and the finish chunk (the role chunk was read before); a real engine may hold
    // back partial UTF-8 in a delta, which then carries no chunk.
    if (ServerProcess::fake()) CHECK(tokens == 81);
  }
  auto code = server.wait_exit(milliseconds(6000));
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(std::chrono::steady_clock::now() - start < milliseconds(6000));
}

TEST_CASE("streams longer than the drain timeout end with an error event", "[stream][drain]") {
  ServerProcess server({"--fake-step-ms", "5", "--drain-timeout-ms", "300"});
  auto s = open_stream(server.port(), kLongStream, 2);
  const auto start = std::chrono::steady_clock::now();
  server.send_signal(SIGTERM);
  std::vector<std::string> tail;
  while (auto e = s->next_event(milliseconds(3000))) {
    tail.push_back(e->data);
    if (e->data == "[DONE]") break;
  }
  REQUIRE(tail.size() >= 2);
  CHECK(tail.back() == "[DONE]");
  CHECK(parse_json(tail[tail.size() - 2]).at("error").at("code").as_string() == "request_cancelled");
  auto code = server.wait_exit(milliseconds(3000));
  REQUIRE(code);
  CHECK(*code == 0);
  CHECK(std::chrono::steady_clock::now() - start < milliseconds(1300 + 500));
}

TEST_CASE("a second signal exits at once", "[stream][drain]") {
  ServerProcess server({"--fake-step-ms", "5", "--drain-timeout-ms", "30000"});
  auto s = open_stream(server.port(), kLongStream, 1);
  server.send_signal(SIGTERM);
  std::this_thread::sleep_for(milliseconds(100));
  const auto start = std::chrono::steady_clock::now();
  server.send_signal(SIGINT);
  auto code = server.wait_exit(milliseconds(2000));
  REQUIRE(code);
  CHECK(*code == 128 + SIGINT);
  CHECK(std::chrono::steady_clock::now() - start < milliseconds(1000));
}
