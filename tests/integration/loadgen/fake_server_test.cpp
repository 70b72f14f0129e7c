// The load generator against an in-process fake server (Beast/Asio) that emits chunks at
// scripted times: timings, token counting, connection reuse, WebSocket multiplexing, failure
// reasons, timeouts, timed runs and /metrics scraping.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "aurora/loadgen/config.hpp"
#include "aurora/loadgen/runner.hpp"
#include "run_loadgen.hpp"
#include "stub_server.hpp"

using namespace aurora::loadgen;
using stub::StubRequest;
using stub::StubScript;
using stub::StubServer;
using stub::StubServerOptions;

namespace {

// Late deliveries on a loaded 2-core machine; chunks are never early.
constexpr double kLateS = 0.08;

const std::vector<double> kOffsetsMs = {150, 190, 230, 270, 310};

StubScript scripted() {
  StubScript s;
  s.chunk_offsets_ms = kOffsetsMs;
  return s;
}

RunResult run(const StubServer& server, const std::vector<std::string>& args) {
  return aurora::loadgen::testing::run_loadgen(server, args);
}

void check_scripted_timings(const RequestRecord& r) {
  INFO("request " << r.index << ": " << r.error_reason << " " << r.error_detail);
  REQUIRE(r.success);
  REQUIRE(r.chunk_s.size() == kOffsetsMs.size());
  for (size_t i = 0; i < kOffsetsMs.size(); ++i) {
    const double offset = r.chunk_s[i] - r.start_s;
    CHECK(offset >= kOffsetsMs[i] / 1000.0 - 0.002);  // the server's clock starts a little after ours
    CHECK(offset <= kOffsetsMs[i] / 1000.0 + kLateS);
  }
  CHECK(r.ttft_s() >= 0.148);
  CHECK(r.ttft_s() <= 0.150 + kLateS);
  CHECK(r.e2el_s() >= 0.308);
  CHECK(r.e2el_s() <= 0.310 + kLateS);
}

std::map<std::string, int> reasons(const RunResult& r) { return aurora::loadgen::testing::failure_reasons(r); }

}  // namespace

TEST_CASE("SSE chat: client-side timings match the script, usage is counted, connections are reused") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return scripted(); };
  StubServer server(o);
  server.start();
  const RunResult r =
      run(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "6", "--max-concurrency", "3"});
  REQUIRE(r.records.size() == 6);
  for (const auto& rec : r.records) {
    check_scripted_timings(rec);
    CHECK(rec.output_tokens == 5);
    CHECK(rec.output_source == TokenSource::kUsage);
    CHECK(rec.input_tokens == 7);  // usage.prompt_tokens replaces the estimate
    CHECK(rec.input_from_usage);
    CHECK(rec.finish_reason == "length");
  }
  const Summary s = summarize(r.records, r.duration_s, {}, {50});
  CHECK(s.completed == 6);
  CHECK(s.tpot.mean_ms == Approx(40).margin(kLateS * 1000 / 4));
  CHECK(s.itl.median_ms == Approx(40).margin(20));
  CHECK(s.output_tokens_source == "usage");
  CHECK(s.max_concurrent_requests <= 3);
  // Keep-alive: six requests over at most three connections.
  CHECK(r.connections_opened <= 3);
  CHECK(server.stats().connections <= 3);
  CHECK(server.stats().streams == 6);
}

TEST_CASE("SSE completions endpoint") {
  StubServerOptions o;
  o.script = [](const StubRequest& req) {
    CHECK_FALSE(req.chat);
    CHECK(req.max_tokens == 5);
    CHECK(req.include_usage);
    return scripted();
  };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "openai", "--model", "m", "--num-prompts", "2", "--save-detailed"});
  REQUIRE(r.records.size() == 2);
  for (const auto& rec : r.records) {
    check_scripted_timings(rec);
    CHECK(rec.generated_text == "toktoktoktoktok");
  }
}

TEST_CASE("without a usage chunk, output tokens fall back to chunks or the estimate, and say so") {
  StubServerOptions o;
  o.script = [](const StubRequest&) {
    StubScript s = stub::uniform_script(5, 10, 5);
    s.usage = false;
    s.chunk_text = " hi";
    return s;
  };
  StubServer server(o);
  server.start();
  RunResult r = run(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "2"});
  for (const auto& rec : r.records) {
    REQUIRE(rec.success);
    CHECK(rec.output_tokens == 5);
    CHECK(rec.output_source == TokenSource::kChunks);
    CHECK_FALSE(rec.input_from_usage);
  }
  CHECK(summarize(r.records, r.duration_s, {}, {50}).output_tokens_source == "chunks");
  r = run(server,
          {"--backend", "openai-chat", "--model", "m", "--num-prompts", "2", "--output-token-fallback", "estimate"});
  for (const auto& rec : r.records) {
    REQUIRE(rec.success);
    CHECK(rec.output_tokens == 5);
    CHECK(rec.output_source == TokenSource::kEstimate);
  }
}

TEST_CASE("SSE framing: events split across writes, \\r\\n line ends and keep-alive comments") {
  StubServerOptions o;
  o.script = [](const StubRequest&) {
    StubScript s = scripted();
    s.fragment_bytes = 7;
    s.crlf = true;
    s.ping_offsets_ms = {5, 160};
    return s;
  };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "2"});
  for (const auto& rec : r.records) {
    INFO(rec.error_reason << " " << rec.error_detail);
    REQUIRE(rec.success);
    CHECK(rec.chunk_s.size() == 5);
    CHECK(rec.output_tokens == 5);
    CHECK(rec.ttft_s() >= 0.148);
  }
}

TEST_CASE("failures are counted by reason") {
  std::atomic<int> n{0};
  StubServerOptions o;
  o.script = [&n](const StubRequest&) {
    StubScript s = stub::uniform_script(3, 10, 10);
    switch (n++) {
      case 0: s.status = 503; break;
      case 1: s.error_after_chunks = 1; break;
      case 2: s.close_after_chunks = 2; break;
      case 3: s.chunk_offsets_ms.clear(); break;             // no generated text
      case 4: s = stub::uniform_script(3, 3000, 10); break;  // too slow: times out
      default: break;
    }
    return s;
  };
  StubServer server(o);
  server.start();
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "6",
                                   "--max-concurrency", "6", "--request-timeout", "0.5"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(reasons(r) ==
        std::map<std::string, int>{
            {"http_503", 1}, {"stream_error", 1}, {"connection_closed", 1}, {"no_content", 1}, {"timeout", 1}});
  const Summary s = summarize(r.records, r.duration_s, {}, {50});
  CHECK(s.completed == 1);
  CHECK(s.failed == 5);
  CHECK(wall < 2.5);  // the hard timeout bounds the run
  for (const auto& rec : r.records) {
    if (rec.error_reason == "http_503") CHECK_THAT(rec.error_detail, Catch::Contains("scripted failure"));
    if (rec.error_reason == "stream_error") CHECK_THAT(rec.error_detail, Catch::Contains("InternalServerError"));
  }
}

TEST_CASE("WebSocket: requests multiplexed by id over one socket") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return scripted(); };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "aurora-ws", "--model", "m", "--num-prompts", "8"});
  REQUIRE(r.records.size() == 8);
  for (const auto& rec : r.records) {
    check_scripted_timings(rec);
    CHECK(rec.output_tokens == 5);
    CHECK(rec.output_source == TokenSource::kUsage);
  }
  CHECK(server.stats().ws_connections == 1);
  CHECK(server.stats().ws_requests == 8);
  CHECK(summarize(r.records, r.duration_s, {}, {50}).max_concurrent_requests == 8);
}

TEST_CASE("WebSocket: a timed-out request is cancelled with response.cancel; errors are counted") {
  std::atomic<int> n{0};
  StubServerOptions o;
  o.script = [&n](const StubRequest&) {
    const int i = n++;
    if (i == 0) return stub::uniform_script(3, 3000, 10);
    StubScript s = stub::uniform_script(3, 10, 10);
    if (i == 1) s.status = 503;
    if (i == 2) s.error_after_chunks = 1;
    return s;
  };
  StubServer server(o);
  server.start();
  const RunResult r =
      run(server, {"--backend", "aurora-ws", "--model", "m", "--num-prompts", "4", "--request-timeout", "0.4"});
  CHECK(reasons(r) == std::map<std::string, int>{{"timeout", 1}, {"stream_error", 2}});
  for (int i = 0; i < 50 && server.stats().ws_cancels == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(server.stats().ws_cancels == 1);
}

TEST_CASE("a timed run stops sending at its duration and cuts off what is still streaming") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(100, 10, 50); };  // 5 s each
  StubServer server(o);
  server.start();
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run(server, {"--backend", "openai-chat", "--model", "m", "--duration", "0.3", "--request-rate",
                                   "20", "--max-concurrency", "2", "--drain-timeout", "0.2"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(wall < 2.0);
  REQUIRE(r.records.size() == 2);  // the rest were still waiting for a slot: not sent
  CHECK(r.num_not_sent >= 1);
  CHECK(reasons(r) == std::map<std::string, int>{{"cut_off", 2}});
  for (const auto& rec : r.records) CHECK(rec.arrival_s < 0.3);
}

TEST_CASE("an infinite rate under a concurrency cap runs for its duration without piling up arrivals") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(3, 10, 10); };
  StubServer server(o);
  server.start();
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r =
      run(server, {"--backend", "openai-chat", "--model", "m", "--duration", "0.5", "--max-concurrency", "4"});
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(wall < 1.5);
  CHECK(r.records.size() >= 8);
  CHECK(r.records.size() < 400);  // at most 4 in flight, each ~30 ms: nothing like an unbounded burst
  CHECK(r.num_not_sent <= 1);
  const Summary s = summarize(r.records, r.duration_s, {}, {50});
  CHECK(s.failed == 0);
  CHECK(s.max_concurrent_requests == 4);
}

TEST_CASE("a closed loop of users keeps exactly N requests in flight") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(3, 20, 10); };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "openai-chat", "--model", "m", "--users", "3", "--num-prompts", "9"});
  REQUIRE(r.records.size() == 9);
  const Summary s = summarize(r.records, r.duration_s, {}, {50});
  CHECK(s.completed == 9);
  CHECK(s.max_concurrent_requests == 3);
  CHECK(r.connections_opened == 3);
}

TEST_CASE("requests leave at their scheduled arrival times") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(2, 5, 5); };
  StubServer server(o);
  server.start();
  const RunResult r =
      run(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "20", "--request-rate", "40"});
  REQUIRE(r.records.size() == 20);
  CHECK(r.records.back().arrival_s == Approx(0.5).margin(1e-9));  // vLLM's normalised span: N / rate
  for (const auto& rec : r.records) {
    CHECK(rec.start_s >= rec.arrival_s);
    CHECK(rec.start_s - rec.arrival_s < 0.05);
  }
}

TEST_CASE("Aurora's plan gauges are scraped from /metrics; other servers are left alone") {
  std::atomic<int> scrapes{0};
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(3, 20, 20); };
  o.metrics_text = [&scrapes] {
    const int i = scrapes++;
    return "aurora:plan_version " + std::to_string(i < 2 ? 1 : 2) + "\naurora:expert_load_balance{layer=\"0\"} 1.5\n";
  };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "openai-chat", "--model", "m", "--duration", "0.6", "--users", "1",
                                   "--scrape-metrics", "auto", "--scrape-interval", "0.1"});
  REQUIRE(r.plan_snapshots.size() >= 3);
  CHECK(*r.plan_snapshots.front().plan_version == 1);
  CHECK(*r.plan_snapshots.back().plan_version == 2);
  CHECK(r.plan_snapshots.back().balance_by_layer.at(0) == 1.5);

  StubServerOptions plain;
  plain.script = o.script;
  std::atomic<int> plain_scrapes{0};
  plain.metrics_text = [&plain_scrapes] {
    ++plain_scrapes;
    return std::string("vllm:num_requests_running 1\n");
  };
  StubServer vllm_like(plain);
  vllm_like.start();
  const RunResult v = run(vllm_like, {"--backend", "openai-chat", "--model", "m", "--duration", "0.6", "--users", "1",
                                      "--scrape-metrics", "auto", "--scrape-interval", "0.05"});
  CHECK(v.plan_snapshots.empty());
  CHECK(plain_scrapes == 3);  // "auto" gives up after three scrapes without Aurora's gauges
}

TEST_CASE("synthetic prompts are sized with the server's POST /tokenize") {
  std::vector<size_t> prompt_bytes;
  std::mutex mu;
  StubServerOptions o;
  o.tokenize = [](const std::string& text) { return static_cast<int64_t>(text.size()); };  // one token per byte
  o.script = [&](const StubRequest& req) {
    std::lock_guard<std::mutex> lock(mu);
    prompt_bytes.push_back(req.prompt_text.size());
    StubScript s = stub::uniform_script(2, 5, 5);
    s.usage = false;  // keep the load generator's own (calibrated) input-length estimate
    return s;
  };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "openai", "--model", "m", "--num-prompts", "6", "--random-input-len",
                                   "400", "--calibrate-lengths", "auto", "--traffic-mix", "prose=1@0.05s; code=1"});
  REQUIRE(r.length_calibration.has_value());
  for (double ratio : *r.length_calibration) CHECK(ratio > 2.0);  // several bytes per estimated token
  {
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(prompt_bytes.size() == 6);
    for (size_t bytes : prompt_bytes) {
      CHECK(bytes >= 360);
      CHECK(bytes <= 460);
    }
  }
  for (const auto& rec : r.records) CHECK(rec.input_tokens == Approx(400).margin(40));
  const RunResult off = run(server, {"--backend", "openai", "--model", "m", "--num-prompts", "1", "--random-input-len",
                                     "400", "--calibrate-lengths", "off"});
  CHECK_FALSE(off.length_calibration.has_value());
}

TEST_CASE("the model is discovered from /v1/models; an unreachable server fails every request cleanly") {
  StubServerOptions o;
  o.script = [](const StubRequest& req) {
    CHECK(req.model == "stub-model");
    return stub::uniform_script(2, 5, 5);
  };
  StubServer server(o);
  server.start();
  const RunResult r = run(server, {"--backend", "openai-chat", "--num-prompts", "2"});
  CHECK(r.model == "stub-model");
  CHECK(r.records.size() == 2);

  uint16_t dead_port;
  {
    StubServer gone(StubServerOptions{});
    dead_port = gone.port();
  }
  std::vector<const char*> argv = {
      "aurora-loadgen",   "--port", nullptr, "--model", "m", "--num-prompts", "3", "--progress", "off",
      "--scrape-metrics", "off"};
  const std::string port = std::to_string(dead_port);
  argv[2] = port.c_str();
  auto parsed = parse_command_line(static_cast<int>(argv.size()), argv.data());
  REQUIRE(parsed.ok());
  auto dead = run_benchmark(*parsed->config);
  REQUIRE(dead.ok());
  CHECK(reasons(*dead) == std::map<std::string, int>{{"connect_failed", 3}});
  std::vector<const char*> no_model = {"aurora-loadgen", "--port", port.c_str(), "--num-prompts", "1",
                                       "--progress",     "off"};
  auto parsed2 = parse_command_line(static_cast<int>(no_model.size()), no_model.data());
  REQUIRE(parsed2.ok());
  auto missing = run_benchmark(*parsed2->config);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.error().message, Catch::Contains("/v1/models") && Catch::Contains("--model"));
}
