// ServerConfig: defaults, flags, the JSON config file and validation.
#include <catch2/catch.hpp>

#include "aurora/config/json.hpp"
#include "aurora/config/server_config.hpp"

using namespace aurora::config;

TEST_CASE("defaults are the documented limits") {
  ServerConfig c;
  CHECK(c.host == "127.0.0.1");
  CHECK(c.max_header_bytes == 8192);
  CHECK(c.max_body_bytes == 2 * 1024 * 1024);
  CHECK(c.sse_keepalive_ms == 15000);
  CHECK(c.ws_max_message_bytes == 1024 * 1024);
  CHECK(c.limits.max_n == 4);
  CHECK(validate(c).ok());
  const std::string table = server_settings_markdown();
  CHECK(table.find("| `max_body_bytes` | `--max-body-bytes` | 2097152 |") != std::string::npos);
}

TEST_CASE("flags set settings and name the flag in errors") {
  ServerConfig c;
  REQUIRE(set_server_setting(c, "--header-timeout-ms", "250").ok());
  CHECK(c.header_timeout_ms == 250);
  REQUIRE(set_server_setting(c, "max_n", "2").ok());
  CHECK(c.limits.max_n == 2);
  REQUIRE(set_server_setting(c, "--access-log", "true").ok());
  CHECK(c.access_log);
  auto bad = set_server_setting(c, "--max-body-bytes", "-5");
  REQUIRE(!bad.ok());
  CHECK(bad.error().message == "--max-body-bytes: must be in [1, 1073741824], got -5");
  auto nan = set_server_setting(c, "--port", "80x");
  REQUIRE(!nan.ok());
  CHECK(nan.error().message == "--port: must be an integer, got '80x'");
  CHECK(!set_server_setting(c, "--no-such-thing", "1").ok());
}

TEST_CASE("a JSON config file is applied with field paths in errors") {
  auto doc = JsonDocument::parse(R"({"port": 9000, "api_key": "k", "max_stop": 2, "engine": {"x": 1}})");
  REQUIRE(doc.ok());
  ServerConfig c;
  REQUIRE(apply_server_config_json(c, doc->root(), {"engine"}).ok());
  CHECK(c.port == 9000);
  CHECK(c.api_key == "k");
  CHECK(c.limits.max_stop == 2);
  auto bad = JsonDocument::parse(R"({"port": 70000})");
  auto r = apply_server_config_json(c, bad->root());
  REQUIRE(!r.ok());
  CHECK(r.error().message == "port: must be in [0, 65535], got 70000");
  auto unknown = JsonDocument::parse(R"({"prot": 1})");
  CHECK(apply_server_config_json(c, unknown->root()).error().message == "prot: unknown setting");
  ServerConfig v;
  v.overload_status = 500;
  CHECK(!validate(v).ok());
}

TEST_CASE("docs/server.md lists every setting with its default", "[docs]") {
  auto doc = aurora::config::read_text_file("docs/server.md");  // tests run in the source tree
  REQUIRE(doc.ok());
  CHECK(doc->find(server_settings_markdown()) != std::string::npos);
}
