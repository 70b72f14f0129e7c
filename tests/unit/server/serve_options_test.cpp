// `aurora serve` flags: engine flags, server settings, the config file, and their precedence.
#include "aurora/server/serve_options.hpp"

#include <cstdio>
#include <fstream>

#include <catch2/catch.hpp>

using aurora::server::parse_serve_args;

TEST_CASE("flags reach the engine and the server", "[serve]") {
  auto o = parse_serve_args({"--model", "/m/a", "--model=/m/b", "--port", "9001", "--ranks", "2", "--device", "cpu",
                             "--max-waiting", "8", "--max-waiting-tokens", "4096", "--drain-timeout-ms", "100",
                             "--access-log", "--api-key", "k"});
  REQUIRE(o.ok());
  CHECK(o->engine.model_dirs == std::vector<std::string>{"/m/a", "/m/b"});
  CHECK(o->engine.num_ranks == 2);
  CHECK(o->engine.device == "cpu");
  CHECK(o->engine.max_waiting == 8);
  CHECK(o->engine.max_waiting_tokens == 4096);
  CHECK(o->server.port == 9001);
  CHECK(o->server.drain_timeout_ms == 100);
  CHECK(o->server.access_log);
  CHECK(o->server.api_key == "k");
  CHECK(o->server.host == "127.0.0.1");
}

TEST_CASE("bad flags name the flag and the value", "[serve]") {
  CHECK(parse_serve_args({"--port", "http"}).error().message == "--port: must be an integer, got 'http'");
  CHECK(parse_serve_args({"--ranks", "0"}).error().message == "--ranks: must be in [1, 1024], got 0");
  CHECK(parse_serve_args({"--max-waiting-tokens", "-1"}).error().message.rfind("--max-waiting-tokens: must be in", 0) ==
        0);
  CHECK(parse_serve_args({"--bogus", "1"}).error().message.rfind("--bogus: unknown flag", 0) == 0);
  CHECK(parse_serve_args({"--port"}).error().message == "--port: needs a value");
  CHECK(parse_serve_args({"--overload-status", "500"}).error().message.rfind("overload_status", 0) == 0);
  CHECK(parse_serve_args({"--help"})->help);
}

TEST_CASE("the config file sits between the defaults and the flags", "[serve]") {
  const std::string path = "/tmp/aurora_serve_options_test.json";
  {
    std::ofstream out(path);
    out << R"({"port": 7000, "max_n": 2, "sse_keepalive_ms": 500, "engine": {"max_num_seqs": 8, "model": ["/x"]}})";
  }
  auto o = parse_serve_args({"--config", path, "--port", "7001"});
  REQUIRE(o.ok());
  CHECK(o->server.port == 7001);  // the flag wins
  CHECK(o->server.limits.max_n == 2);
  CHECK(o->server.sse_keepalive_ms == 500);
  CHECK(o->engine.max_num_seqs == 8);
  CHECK(o->engine.model_dirs == std::vector<std::string>{"/x"});
  {
    std::ofstream out(path);
    out << R"({"engine": {"max_num_seqs": -3}})";
  }
  auto bad = parse_serve_args({"--config", path});
  REQUIRE(!bad.ok());
  CHECK(bad.error().message.find("engine.max_num_seqs") != std::string::npos);
  std::remove(path.c_str());
}

TEST_CASE("--help lists every flag with its default", "[serve]") {
  const std::string usage = aurora::server::serve_usage();
  CHECK(usage.find("--max-requests-per-connection") != std::string::npos);
  CHECK(usage.find("--drain-timeout-ms") != std::string::npos);
  CHECK(usage.find("(default 30000)") != std::string::npos);
  CHECK(usage.find("--max-num-seqs") != std::string::npos);
}
