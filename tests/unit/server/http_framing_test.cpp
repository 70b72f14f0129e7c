// Request framing on Boost 1.81's parser (anchors-reliability.md table 1.3 and T1), the API key
// comparison and request ids.
#include "http_framing.hpp"

#include <catch2/catch.hpp>

using namespace aurora::server;

namespace {
int status(const std::string& bytes) {
  const aurora::config::ServerConfig config;
  auto out = frame_request(bytes, config);
  return out.incomplete ? -1 : out.status;
}
}  // namespace

TEST_CASE("framing decisions", "[framing]") {
  CHECK(status("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n") == 0);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello") == 0);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhel") == -1);
  CHECK(status("GET /health HTTP/1.1\r\nHost: localhost\r\n") == -1);
  // Transfer-Encoding in any form: 411 before any body byte.
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        411);
  // TE then CL: Beast reports the Content-Length as bad; still refused and closed (400).
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n") ==
        400);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 411);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello") ==
        411);
  CHECK(status("POST /x HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n") == 411);
  // A trailer value over 64 KiB throws out of Beast 1.81's parser; we never get that far.
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " +
               std::string(70000, 'a') + "\r\n\r\n") == 411);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n") == 400);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello") == 400);
  CHECK(status("GET /health HTTP/1.1\r\nHost: localhost\r\nX: " + std::string(9000, 'a') + "\r\n\r\n") == 431);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2097153\r\n\r\n") == 413);
  CHECK(status("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n") == 400);
  CHECK(status("GET /health HTTP/1.1\r\n\r\n") == 400);
  CHECK(status("GET /health HTTP/1.1\nHost: a\n\n") == 400);
  std::string fields;
  for (int i = 0; i < 101; ++i) {
    fields += 'X';  // (operator+ on a literal trips g++ 12's -Wrestrict false positive)
    fields += std::to_string(i);
    fields += ": 1\r\n";
  }
  CHECK(status("GET /health HTTP/1.1\r\nHost: localhost\r\n" + fields + "\r\n") == 431);
}

TEST_CASE("the Host allowlist ignores the port", "[framing]") {
  aurora::config::ServerConfig config;
  config.allowed_hosts = "localhost, 127.0.0.1";
  CHECK(frame_request("GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n", config).status == 0);
  CHECK(frame_request("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", config).status == 0);
  CHECK(frame_request("GET / HTTP/1.1\r\nHost: evil.example:8000\r\n\r\n", config).status == 421);
  CHECK(parse_allowed_hosts(" a ,b,,c ") == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("bearer keys compare case-sensitively, request ids are checked", "[auth]") {
  CHECK(bearer_matches("Bearer sk-1", "sk-1"));
  CHECK(bearer_matches("bearer sk-1", "sk-1"));
  CHECK(!bearer_matches("Bearer SK-1", "sk-1"));
  CHECK(!bearer_matches("Bearer sk-", "sk-1"));
  CHECK(!bearer_matches("Bearer sk-12", "sk-1"));
  CHECK(!bearer_matches("Basic sk-1", "sk-1"));
  CHECK(!bearer_matches("", "sk-1"));
  CHECK(constant_time_equals("abc", "abc"));
  CHECK(!constant_time_equals("abc", "abd"));
  CHECK(!constant_time_equals("abc", "ab"));
  CHECK(is_safe_request_id("req-1.2_3"));
  CHECK(!is_safe_request_id("a b"));
  CHECK(!is_safe_request_id("x\r\nSet-Cookie: a"));
  CHECK(!is_safe_request_id(std::string(65, 'a')));
  const auto a = generate_request_id();
  CHECK(a.size() == 32);
  CHECK(a != generate_request_id());
}

TEST_CASE("percent-decoding of path segments", "[framing]") {
  CHECK(percent_decode("org%2Fmodel") == std::optional<std::string>("org/model"));
  CHECK(percent_decode("a%2db%2D") == std::optional<std::string>("a-b-"));
  CHECK(percent_decode("plain+text") == std::optional<std::string>("plain+text"));
  CHECK(percent_decode("") == std::optional<std::string>(""));
  CHECK_FALSE(percent_decode("bad%zz"));
  CHECK_FALSE(percent_decode("cut%2"));
  CHECK_FALSE(percent_decode("cut%"));
}

TEST_CASE("Host policy: loopback binds answer only loopback names by default", "[framing][hosts]") {
  const HostPolicy loopback = make_host_policy("", "127.0.0.1", "127.0.0.1", true);
  CHECK_FALSE(loopback.any);
  for (const char* host : {"localhost", "localhost:8000", "LOCALHOST:1", "localhost.", "127.0.0.1", "127.0.0.1:35529",
                           "[::1]", "[::1]:8000"}) {
    INFO(host);
    CHECK(host_allowed(loopback, host));
  }
  for (const char* host : {"evil.example", "evil.example:35529", "localhost.evil.example", "127.0.0.2", "[::2]", "",
                           "0.0.0.0", "attacker-localhost"}) {
    INFO(host);
    CHECK_FALSE(host_allowed(loopback, host));
  }
  // The bind address itself is always answered, also an IPv6 one and a name given with --host.
  CHECK(host_allowed(make_host_policy("", "127.0.0.2", "127.0.0.2", true), "127.0.0.2:9000"));
  CHECK(host_allowed(make_host_policy("", "::1", "::1", true), "[::1]:9000"));
  CHECK(host_allowed(make_host_policy("", "devbox.local", "127.0.1.1", true), "DevBox.Local:8000"));
  CHECK(host_allowed(make_host_policy("", "devbox.local", "127.0.1.1", true), "127.0.1.1"));
  // The configuration alone: the --host text decides whether the bind is loopback.
  aurora::config::ServerConfig config;
  CHECK_FALSE(host_policy_for(config).any);
  config.host = "localhost";
  CHECK_FALSE(host_policy_for(config).any);
  config.host = "0.0.0.0";
  CHECK(host_policy_for(config).any);
}

TEST_CASE("Host policy: other binds answer any host unless --allowed-hosts says otherwise", "[framing][hosts]") {
  CHECK(make_host_policy("", "0.0.0.0", "0.0.0.0", false).any);
  CHECK(make_host_policy("", "10.1.2.3", "10.1.2.3", false).any);
  CHECK(make_host_policy("*", "127.0.0.1", "127.0.0.1", true).any);
  CHECK(host_allowed(make_host_policy(" * ", "127.0.0.1", "127.0.0.1", true), "evil.example"));
  const HostPolicy listed = make_host_policy("api.example.com, .corp.example", "0.0.0.0", "0.0.0.0", false);
  CHECK_FALSE(listed.any);
  CHECK(host_allowed(listed, "api.example.com:443"));
  CHECK(host_allowed(listed, "API.example.com"));
  CHECK(host_allowed(listed, "gpu7.corp.example:8000"));
  CHECK(host_allowed(listed, "corp.example"));
  CHECK_FALSE(host_allowed(listed, "evilcorp.example"));
  CHECK_FALSE(host_allowed(listed, "example.com"));
  CHECK_FALSE(host_allowed(listed, "0.0.0.0"));  // an unspecified bind names nothing
  CHECK_FALSE(host_allowed(listed, "localhost"));
  // A list on a specific address keeps that address.
  CHECK(host_allowed(make_host_policy("api.example.com", "10.1.2.3", "10.1.2.3", false), "10.1.2.3:8000"));
}

TEST_CASE("absolute-form targets: routed by path, checked by authority", "[framing][hosts]") {
  auto t = split_absolute_target("http://127.0.0.1:8000/health?x=1");
  REQUIRE(t);
  CHECK(t->authority == "127.0.0.1:8000");
  CHECK(t->origin_form == "/health?x=1");
  CHECK(split_absolute_target("HTTP://h")->origin_form == "/");
  CHECK(split_absolute_target("http://h?x")->origin_form == "/?x");
  CHECK(split_absolute_target("https://[::1]:8/p#frag")->origin_form == "/p");
  CHECK(split_absolute_target("https://[::1]:8/p#frag")->authority == "[::1]:8");
  CHECK_FALSE(split_absolute_target("/health"));
  CHECK_FALSE(split_absolute_target("ftp://h/x"));

  const aurora::config::ServerConfig config;  // 127.0.0.1: the loopback policy
  auto frame = [&](const std::string& bytes) { return frame_request(bytes, config); };
  auto ok = frame("GET http://127.0.0.1:8000/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  CHECK(ok.status == 0);
  // The authority decides, whatever Host says (RFC 9112 3.2.2).
  CHECK(frame("GET http://evil.example/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status == 421);
  CHECK(frame("GET http://localhost:1/health HTTP/1.1\r\nHost: evil.example\r\n\r\n").status == 0);
  CHECK(frame("GET http://user@127.0.0.1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status == 400);
  CHECK(frame("GET http:///health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status == 400);
  CHECK(frame("GET /health HTTP/1.1\r\nHost: evil.example:35529\r\n\r\n").status == 421);
}
