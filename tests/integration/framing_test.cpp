// Malformed and abusive HTTP over raw sockets (anchors-reliability.md T3): each gets the right
// status and a closed connection, and the server keeps serving.
#include <catch2/catch.hpp>

#include "support/test_util.hpp"

using namespace aurora::testing;

namespace {

ServerProcess& framing_server() {
  static ServerProcess server({"--fake-step-ms", "1", "--header-timeout-ms", "400", "--body-timeout-ms", "400",
                               "--idle-timeout-ms", "600", "--allowed-hosts", "127.0.0.1,localhost"});
  return server;
}

// Sends raw bytes on a fresh connection and returns the response status (0 = none).
int status_of(const std::string& bytes, bool* closed = nullptr) {
  TcpClient c(framing_server().port());
  c.send(bytes);
  auto r = c.read_response(milliseconds(3000));
  if (closed != nullptr) *closed = c.wait_closed(milliseconds(2000));
  return r.status;
}

void server_still_serves() {
  auto r = http(framing_server().port(), "GET", "/health");
  REQUIRE(r.status == 200);
}

}  // namespace

TEST_CASE("framing violations get their status and a closed connection", "[framing]") {
  struct Case {
    const char* what;
    std::string bytes;
    int status;
  };
  const std::string big_line = "X-Big: " + std::string(9 * 1024, 'a') + "\r\n";
  std::string many_fields;
  for (int i = 0; i < 101; ++i) {
    many_fields += "X-F";
    many_fields += std::to_string(i);
    many_fields += ": 1\r\n";
  }
  const std::vector<Case> cases = {
      {"chunked body",
       "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411},
      {"TE gzip + CL",
       "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
       411},
      {"HTTP/1.0 chunked",
       "POST /v1/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411},
      {"two Content-Lengths",
       "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
      {"CL +5", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +5\r\n\r\nhello", 400},
      {"CL 5, 6", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5, 6\r\n\r\nhello", 400},
      {"CL over 2^63", "POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
       400},
      {"9 KiB header line", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big_line + "\r\n", 431},
      {"101 header fields", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many_fields + "\r\n", 431},
      {"body over 2 MiB", "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3000000\r\n\r\n", 413},
      {"space before colon", "GET /health HTTP/1.1\r\nHost : 127.0.0.1\r\n\r\n", 400},
      {"NUL in a value", std::string("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\n\r\n", 50), 400},
      {"invalid method", "G@T /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"missing Host", "GET /health HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n", 400},
      {"foreign Host", "GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421},
      {"garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    bool closed = false;
    CHECK(status_of(c.bytes, &closed) == c.status);
    CHECK(closed);
    server_still_serves();
  }
}

TEST_CASE("Expect: 100-continue over the limit is refused before the body", "[framing]") {
  TcpClient c(framing_server().port());
  c.send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: 3000000\r\n\r\n");
  CHECK(c.read_response(milliseconds(2000)).status == 413);
  TcpClient ok(framing_server().port());
  const std::string body = R"({"prompt":"x","max_tokens":1})";
  ok.send(
      "POST /v1/completions HTTP/1.1\r\nHost: localhost:1\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  std::this_thread::sleep_for(milliseconds(50));
  ok.send(body);
  CHECK(ok.read_response().status == 200);
}

TEST_CASE("pipelined requests are answered in order", "[framing]") {
  TcpClient c(framing_server().port());
  std::string many;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(std::string("r") + std::to_string(i));
    many += make_request("GET", "/health", "", {std::string("X-Request-Id: ") + ids.back()});
  }
  c.send(many);
  for (const auto& id : ids) {
    auto r = c.read_response();
    REQUIRE(r.status == 200);
    CHECK(r.header("x-request-id") == id);
  }
}

TEST_CASE("HTTP/1.0 and Connection: close end the connection after the response", "[framing]") {
  TcpClient c10(framing_server().port());
  c10.send("GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  CHECK(c10.read_response().status == 200);
  CHECK(c10.wait_closed(milliseconds(1000)));
  TcpClient c(framing_server().port());
  c.send(make_request("POST", "/v1/chat/completions", chat_body("x", R"(,"max_tokens":3,"stream":true)"),
                      {"Connection: close"}));
  auto head = c.read_head();
  REQUIRE(head.status == 200);
  int events = 0;
  while (auto e = c.next_event(milliseconds(2000))) {
    ++events;
    if (e->data == "[DONE]") break;
  }
  CHECK(events == 6);
  CHECK(c.wait_closed(milliseconds(1000)));
}

TEST_CASE("slow headers, slow bodies and idle connections time out", "[framing]") {
  const auto start = std::chrono::steady_clock::now();
  TcpClient slow_header(framing_server().port());
  slow_header.send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  auto r = slow_header.read_response(milliseconds(3000));
  CHECK(r.status == 408);
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= milliseconds(350));
  CHECK(waited < milliseconds(2000));
  CHECK(slow_header.wait_closed(milliseconds(1000)));

  TcpClient slow_body(framing_server().port());
  slow_body.send("POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"prompt\":");
  CHECK(slow_body.read_response(milliseconds(3000)).status == 408);

  TcpClient idle(framing_server().port());
  idle.send(make_request("GET", "/health"));
  CHECK(idle.read_response().status == 200);
  const auto idle_start = std::chrono::steady_clock::now();
  CHECK(idle.wait_closed(milliseconds(3000)));
  CHECK(std::chrono::steady_clock::now() - idle_start >= milliseconds(500));
  server_still_serves();
}

TEST_CASE("past max_connections a reserve answers probes only; past it, 503; the server recovers", "[framing]") {
  ServerProcess server({"--max-connections", "4", "--reserved-connections", "2"});
  const uint16_t port = server.port();
  std::vector<std::unique_ptr<TcpClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<TcpClient>(port));
    held.back()->send(make_request("GET", "/health"));
    REQUIRE(held.back()->read_response().status == 200);
  }
  // A reserve connection: a probe is answered, then the connection closes to free the slot.
  TcpClient probe(port);
  probe.send(make_request("GET", "/health"));
  CHECK(probe.read_response().status == 200);
  CHECK(probe.wait_closed(milliseconds(1000)));
  CHECK(metric(port, "aurora:http_connections_open") >= 4);  // /metrics through the reserve too
  // Anything else on a reserve connection: 503 too_many_connections.
  TcpClient work(port);
  work.send(make_request("POST", "/v1/chat/completions", chat_body("x", R"(,"max_tokens":1)")));
  auto refused = work.read_response();
  CHECK(refused.status == 503);
  CHECK(refused.header("retry-after") == "1");
  CHECK(parse_json(refused.body).at("error").at("code").as_string() == "too_many_connections");
  // Two silent sockets fill the reserve: the next connection gets 503 at once, even for /health.
  std::vector<std::unique_ptr<TcpClient>> silent;
  for (int i = 0; i < 2; ++i) silent.push_back(std::make_unique<TcpClient>(port));
  std::this_thread::sleep_for(milliseconds(200));  // both accepted
  TcpClient extra(port);
  extra.send(make_request("GET", "/health"));
  auto r = extra.read_response(milliseconds(1000));
  CHECK(r.status == 503);
  CHECK(r.header("retry-after") == "1");
  // Silent sockets do not keep the reserve: they are closed after 2 s, and probes get through again.
  CHECK(silent[0]->wait_closed(milliseconds(4000)));
  CHECK(eventually([&] { return http(port, "GET", "/health").status == 200; }));
  held.pop_back();  // one connection closes: room for a new one
  CHECK(eventually([&] {
    TcpClient c(port);
    c.send(make_request("POST", "/v1/completions", R"({"prompt":"x","max_tokens":1})"));
    return c.read_response().status == 200;
  }));
  CHECK(
      eventually([&] { return metric(port, "aurora:requests_rejected_total{reason=\"too_many_connections\"") >= 2; }));
}
