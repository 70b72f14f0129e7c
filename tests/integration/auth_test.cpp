// Access: the bearer key on every route but /health, compared case-sensitively; loopback by default.
#include <catch2/catch.hpp>

#include "support/test_util.hpp"

using namespace aurora::testing;

TEST_CASE("the API key guards every route but /health", "[auth]") {
  ServerProcess server({"--api-key", "sk-local-123"});
  const uint16_t port = server.port();
  CHECK(http(port, "GET", "/health").status == 200);
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{{"GET", "/v1/models"},
                                                                                     {"GET", "/metrics"},
                                                                                     {"POST", "/tokenize"},
                                                                                     {"POST", "/v1/chat/completions"},
                                                                                     {"POST", "/v1/completions"},
                                                                                     {"GET", "/no/such/route"},
                                                                                     {"GET", "/v1/ws"}}) {
    INFO(method << " " << path);
    auto none = http(port, method, path, method == "POST" ? chat_body("x") : "");
    CHECK(none.status == 401);
    CHECK(none.header("www-authenticate") == "Bearer");
    CHECK(parse_json(none.body).at("error").at("type").as_string() == "authentication_error");
    CHECK(http(port, method, path, "", {"Authorization: Bearer SK-LOCAL-123"}).status == 401);
    CHECK(http(port, method, path, "", {"Authorization: Bearer sk-local-12"}).status == 401);
    CHECK(http(port, method, path, "", {"Authorization: Bearer sk-local-1234"}).status == 401);
  }
  CHECK(http(port, "GET", "/v1/models", "", {"Authorization: Bearer sk-local-123"}).status == 200);
  CHECK(http(port, "GET", "/v1/models", "", {"Authorization: bearer sk-local-123"}).status == 200);
  CHECK(server.log().find("sk-local-123") == std::string::npos);
}

TEST_CASE("a non-loopback bind without a key refuses to start", "[auth]") {
  CHECK_THROWS_WITH(ServerProcess({"--host", "0.0.0.0"}), Catch::Contains("--api-key"));
  ServerProcess with_key({"--host", "0.0.0.0", "--api-key", "k"});
  CHECK(http(with_key.port(), "GET", "/health").status == 200);
}
