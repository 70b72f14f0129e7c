// Hardening found by an audit: request ids in error bodies, Host allowlist (DNS rebinding),
// absolute-form targets, HEAD and Allow, /v1/models/{id}, the connection reserve for probes, and
// the open-file limit at start-up.
#include <catch2/catch.hpp>

#include "support/test_util.hpp"

using namespace aurora::testing;

namespace {

ServerProcess& hardening_server() {
  static ServerProcess server({"--fake-step-ms", "1"});
  return server;
}

std::string error_request_id(const HttpResult& r) {
  const auto body = parse_json(r.body);
  const auto* id = body.at("error").as_object().if_contains("request_id");
  return id != nullptr && id->is_string() ? std::string(id->as_string()) : std::string("<none>");
}

}  // namespace

TEST_CASE("every error body names the request's X-Request-Id", "[http][harden]") {
  const uint16_t port = hardening_server().port();
  struct Case {
    const char* what;
    std::string method;
    std::string target;
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"validation", "POST", "/v1/chat/completions", "{}", 400},
      {"unknown route", "GET", "/no/such/route", "", 404},
      {"unknown model", "POST", "/v1/chat/completions", chat_body("x", R"(,"model":"nope")"), 404},
      {"wrong method", "POST", "/health", "", 405},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto r = http(port, c.method, c.target, c.body, {"X-Request-Id: myid1"});
    CHECK(r.status == c.status);
    CHECK(r.header("x-request-id") == "myid1");
    CHECK(error_request_id(r) == "myid1");
  }
  // Without one (or with an unsafe one) the generated id is in the header and the body alike.
  for (const std::vector<std::string>& headers :
       std::vector<std::vector<std::string>>{{}, {"X-Request-Id: bad id<script>"}}) {
    auto r = http(port, "POST", "/v1/completions", "not json", headers);
    CHECK(r.status == 400);
    CHECK(r.header("x-request-id").size() == 32);
    CHECK(error_request_id(r) == r.header("x-request-id"));
  }
  // Refused by the framing checks, before routing: 413 from Content-Length.
  TcpClient big(port);
  big.send(
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: big-1\r\nContent-Length: 3000000\r\n\r\n");
  auto too_large = big.read_response();
  CHECK(too_large.status == 413);
  CHECK(error_request_id(too_large) == "big-1");
  // A request that never finished its header has no id to echo: a generated one names it.
  TcpClient garbage(port);
  garbage.send("G@T / HTTP/1.1\r\n\r\n");
  auto bad = garbage.read_response();
  CHECK(bad.status == 400);
  CHECK(error_request_id(bad) == bad.header("x-request-id"));
  CHECK(bad.header("x-request-id").size() == 32);
}

TEST_CASE("an error after the first byte carries the request id in its event", "[http][harden][fake]") {
  const uint16_t port = hardening_server().port();
  auto s = collect_stream(port, "/v1/chat/completions",
                          chat_body("[fake:fail_after=2]", R"(,"max_tokens":50,"stream":true)"), milliseconds(10000),
                          {"X-Request-Id: stream-err-1"});
  REQUIRE(s.head.status == 200);
  REQUIRE(s.done());
  REQUIRE(s.data.size() >= 2);
  const auto error = parse_json(s.data[s.data.size() - 2]).at("error");
  CHECK(error.at("request_id").as_string() == "stream-err-1");
  auto plain = http(port, "POST", "/v1/chat/completions", chat_body("[fake:fail_after=2]", R"(,"max_tokens":9)"),
                    {"X-Request-Id: json-err-1"});
  CHECK(plain.status == 500);
  CHECK(error_request_id(plain) == "json-err-1");
}

TEST_CASE("405 answers carry Allow", "[http][harden]") {
  const uint16_t port = hardening_server().port();
  struct Case {
    std::string method;
    std::string target;
    std::string allow;
  };
  const std::vector<Case> cases = {
      {"POST", "/health", "GET, HEAD"},
      {"DELETE", "/metrics", "GET, HEAD"},
      {"PUT", "/v1/models", "GET, HEAD"},
      {"DELETE", "/v1/models/fake-moe", "GET, HEAD"},
      {"GET", "/v1/chat/completions", "POST"},
      {"HEAD", "/v1/completions", "POST"},
      {"OPTIONS", "/v1/chat/completions", "POST"},
      {"HEAD", "/v1/ws", "GET"},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.target);
    TcpClient client(port);
    client.send(make_request(c.method, c.target, c.method == "POST" ? "{}" : ""));
    // A HEAD response has no body whatever its Content-Length says.
    auto r = c.method == "HEAD" ? client.read_head() : client.read_response();
    CHECK(r.status == 405);
    CHECK(r.header("allow") == c.allow);
  }
}

TEST_CASE("HEAD answers like GET without a body", "[http][harden]") {
  const uint16_t port = hardening_server().port();
  for (const std::string target : {"/health", "/v1/models", "/v1/models/fake-moe", "/metrics", "/no/such/route"}) {
    INFO(target);
    const auto get = http(port, "GET", target);
    TcpClient c(port);
    // HEAD then GET on one connection: any body bytes after the HEAD answer would corrupt the second.
    c.send(make_request("HEAD", target) + make_request("GET", "/health", "", {"X-Request-Id: after-head"}));
    auto head = c.read_head();
    CHECK(head.status == get.status);
    CHECK(head.header("content-type") == get.header("content-type"));
    // (The metrics text changes between two scrapes; an error message names the method.)
    if (target != "/metrics" && get.status == 200) {
      CHECK(head.header("content-length") == std::to_string(get.body.size()));
    }
    auto next = c.read_response();
    CHECK(next.status == 200);
    CHECK(next.header("x-request-id") == "after-head");
    CHECK(next.body == R"({"status":"ok"})");
  }
}

TEST_CASE("GET /v1/models/{id} returns the model or 404 model_not_found", "[http][harden][fake]") {
  const uint16_t port = hardening_server().port();
  const auto listed = parse_json(http(port, "GET", "/v1/models").body).at("data").at(0);
  for (const std::string target : {"/v1/models/fake-moe", "/v1/models/fake%2Dmoe", "/v1/models/fake%2dmoe"}) {
    INFO(target);
    auto r = http(port, "GET", target);
    REQUIRE(r.status == 200);
    CHECK(parse_json(r.body) == listed);  // the same object as in the list
  }
  for (const std::string target : {"/v1/models/nope", "/v1/models/org%2Fnope", "/v1/models/bad%zz", "/v1/models/a/b"}) {
    INFO(target);
    auto r = http(port, "GET", target);
    CHECK(r.status == 404);
    CHECK(parse_json(r.body).at("error").at("code").as_string() == "model_not_found");
  }
  auto slashed = http(port, "GET", "/v1/models/org%2Fnope");
  CHECK(std::string(parse_json(slashed.body).at("error").at("message").as_string()).find("org/nope") !=
        std::string::npos);
}

namespace {

HttpResult with_host(uint16_t port, const std::string& target, const std::string& host) {
  TcpClient c(port);
  c.send("GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
  return c.read_response();
}

}  // namespace

TEST_CASE("a loopback bind answers only loopback Host names (DNS rebinding)", "[http][harden][hosts]") {
  const uint16_t port = hardening_server().port();
  const std::string p = std::to_string(port);
  for (const std::string& host :
       std::vector<std::string>{"localhost:" + p, "127.0.0.1:" + p, "[::1]:" + p, "LocalHost", "127.0.0.1"}) {
    INFO(host);
    CHECK(with_host(port, "/health", host).status == 200);
  }
  for (const std::string target : {"/health", "/v1/models", "/metrics"}) {
    for (const std::string& host :
         std::vector<std::string>{"evil.example:" + p, "localhost.evil.example", "127.0.0.2:" + p}) {
      INFO(target << " Host " << host);
      auto r = with_host(port, target, host);
      CHECK(r.status == 421);
      const auto error = parse_json(r.body).at("error");
      CHECK(error.at("code").as_string() == "misdirected_request");
      CHECK(std::string(error.at("message").as_string()).find(host) != std::string::npos);
    }
  }
  // The audit's reproduction, through curl: a generation request from a rebound name.
  int code = -1;
  const std::string status = run_command("curl -sS -o /dev/null -w '%{http_code}' --max-time 10 http://127.0.0.1:" + p +
                                             "/v1/chat/completions -H 'Host: evil.example:" + p + "' -d '" +
                                             chat_body("hi", R"(,"max_tokens":2)") + "'",
                                         &code);
  CHECK(status == "421");
}

TEST_CASE("absolute-form targets are served for an allowed host, refused for another", "[http][harden][hosts]") {
  const uint16_t port = hardening_server().port();
  const std::string p = std::to_string(port);
  auto health = with_host(port, "http://127.0.0.1:" + p + "/health", "127.0.0.1:" + p);
  CHECK(health.status == 200);
  CHECK(health.body == R"({"status":"ok"})");
  auto models = with_host(port, "HTTP://localhost:" + p + "/v1/models?x=1", "localhost");
  CHECK(models.status == 200);
  CHECK(parse_json(models.body).at("object").as_string() == "list");
  // The authority names the host, whatever Host says.
  CHECK(with_host(port, "http://evil.example/health", "127.0.0.1:" + p).status == 421);
  CHECK(with_host(port, "http://user@127.0.0.1:" + p + "/health", "127.0.0.1").status == 400);
}

TEST_CASE("--allowed-hosts: '*' turns the check off, a list replaces the default", "[http][harden][hosts]") {
  ServerProcess any({"--allowed-hosts", "*"});
  CHECK(with_host(any.port(), "/health", "evil.example").status == 200);
  ServerProcess listed({"--allowed-hosts", "api.example.com,.corp.example"});
  CHECK(with_host(listed.port(), "/health", "api.example.com:443").status == 200);
  CHECK(with_host(listed.port(), "/health", "gpu7.corp.example").status == 200);
  CHECK(with_host(listed.port(), "/health", "127.0.0.1").status == 200);  // the bind address itself
  CHECK(with_host(listed.port(), "/health", "localhost").status == 421);
  CHECK(with_host(listed.port(), "/health", "evil.example").status == 421);
  // A non-loopback bind keeps answering any Host unless a list is given.
  ServerProcess remote({"--host", "0.0.0.0", "--api-key", "k"});
  CHECK(with_host(remote.port(), "/health", "evil.example").status == 200);
  // (Not waited for by the harness: its readiness probe says Host: 127.0.0.1.)
  ServerProcess remote_listed({"--host", "0.0.0.0", "--api-key", "k", "--allowed-hosts", "api.example.com"}, false);
  CHECK(eventually([&] { return with_host(remote_listed.port(), "/health", "api.example.com").status == 200; }));
  CHECK(with_host(remote_listed.port(), "/health", "evil.example").status == 421);
}

TEST_CASE("a low open-file limit lowers the cap at start-up; /health stays answered past it", "[harden][fds]") {
  ServerProcess server({"--fake-step-ms", "1"}, true, 160);
  const uint16_t port = server.port();
  const std::string log = server.log();
  const size_t at = log.find("max_connections lowered from 1024 to ");
  REQUIRE(at != std::string::npos);
  const int cap = std::atoi(log.c_str() + at + std::string("max_connections lowered from 1024 to ").size());
  INFO(log);
  CHECK(log.find("the open-file limit is 160") != std::string::npos);
  REQUIRE(cap > 8);
  REQUIRE(cap < 160 - 64 - 16);
  // Fill the cap and the reserve with idle sockets, and then some: the excess is refused at once,
  // and the server never runs out of descriptors.
  std::vector<std::unique_ptr<TcpClient>> idle;
  for (int i = 0; i < cap + 16 + 20; ++i) idle.push_back(std::make_unique<TcpClient>(port));
  auto& last = *idle.back();
  last.send(make_request("GET", "/health"));
  const auto start = std::chrono::steady_clock::now();
  CHECK(last.read_response(milliseconds(2000)).status == 503);
  CHECK(std::chrono::steady_clock::now() - start < milliseconds(1000));
  // Probes are answered at once, 503 while silent sockets hold the reserve, 200 once they are
  // dropped (2 s): never a timeout.
  bool ok = false;
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(6000);
  while (!ok && std::chrono::steady_clock::now() < deadline) {
    const auto probe_start = std::chrono::steady_clock::now();
    const int status = http(port, "GET", "/health").status;
    CHECK(std::chrono::steady_clock::now() - probe_start < milliseconds(1000));
    CHECK((status == 200 || status == 503));
    ok = status == 200;
    if (!ok) std::this_thread::sleep_for(milliseconds(100));
  }
  CHECK(ok);
  CHECK(server.open_fds() <= 160);
  CHECK(server.log().find("Too many open files") == std::string::npos);
  idle.clear();
  CHECK(eventually(
      [&] { return http(port, "POST", "/v1/completions", R"({"prompt":"x","max_tokens":1})").status == 200; }));
}

TEST_CASE("an open-file limit too low for one connection refuses to start, naming the numbers", "[harden][fds]") {
  CHECK_THROWS_WITH(ServerProcess({"--fake-step-ms", "1"}, true, 64),
                    Catch::Contains("leaves no descriptor for a connection") && Catch::Contains("ulimit -n"));
}
