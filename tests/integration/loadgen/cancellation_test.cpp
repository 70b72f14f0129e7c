// The load generator's own request cancellation (--request-cancellation-rate/-delay, AIPerf's
// flags) against the in-process fake server: SSE closes the connection and the server sees the
// disconnect; WebSocket sends response.cancel; cancelled requests are counted apart; the seed
// picks a reproducible subset without changing the prompts; a request that ends first succeeds.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include <boost/json/value.hpp>

#include "aurora/loadgen/report.hpp"
#include "run_loadgen.hpp"
#include "stub_server.hpp"

using namespace aurora::loadgen;
using aurora::loadgen::testing::failure_reasons;
using aurora::loadgen::testing::run_loadgen;
using stub::StubRequest;
using stub::StubScript;
using stub::StubServer;
using stub::StubServerOptions;

namespace {

constexpr double kLateS = 0.15;  // timers and deliveries run late on a loaded 2-core machine

// A first content chunk after 20 ms, then nothing for 2 s: a cancel at 0.3 s lands mid-stream,
// after exactly one token.
StubScript one_token_then_stall() {
  StubScript s;
  s.chunk_offsets_ms = {20, 2000, 2040, 2080};
  return s;
}

// Waits (up to 2 s) for a server-side counter to reach `want`; returns its last value.
int64_t wait_for(const std::function<int64_t()>& counter, int64_t want) {
  for (int i = 0; i < 100 && counter() < want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return counter();
}

std::set<int64_t> cancelled_indices(const RunResult& r) {
  std::set<int64_t> out;
  for (const auto& rec : r.records) {
    if (rec.cancelled) out.insert(rec.index);
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void check_cancelled_after_one_token(const RunResult& r, double delay_s) {
  for (const auto& rec : r.records) {
    INFO("request " << rec.index << ": " << rec.error_reason << " " << rec.error_detail);
    CHECK(rec.cancel_planned);
    CHECK(rec.cancelled);
    CHECK_FALSE(rec.success);
    CHECK(rec.error_reason.empty());
    CHECK(rec.chunk_s.size() == 1);
    CHECK(rec.output_tokens == 1);  // received before the cancel, counted from chunks
    CHECK(rec.e2el_s() >= delay_s - 0.002);
    CHECK(rec.e2el_s() <= delay_s + kLateS);
  }
  const Summary s = summarize(r.records, r.duration_s, {}, {50});
  CHECK(s.completed == 0);
  CHECK(s.failed == 0);
  CHECK(s.failures_by_reason.empty());
  CHECK(s.cancelled == static_cast<int64_t>(r.records.size()));
  CHECK(s.cancel_planned == s.cancelled);
  CHECK(s.cancelled_output_tokens == s.cancelled);
  // Kept out of the latency and throughput statistics, reported on their own.
  CHECK(s.ttft.count == 0);
  CHECK(s.e2el.count == 0);
  CHECK(s.total_output_tokens == 0);
  CHECK(s.request_throughput == 0);
  CHECK(s.cancelled_ttft.count == static_cast<size_t>(s.cancelled));
  CHECK(s.cancelled_ttft.mean_ms >= 19.8);
  CHECK(s.cancelled_ttft.mean_ms <= 20 + kLateS * 1000);
  int64_t in_series = 0;
  for (const auto& b : per_second_series(r.records, r.duration_s)) {
    in_series += b.cancelled;
    CHECK(b.failed == 0);
  }
  CHECK(in_series == s.cancelled);
  const boost::json::object j = make_result_json(r, s, per_second_series(r.records, r.duration_s));
  CHECK(j.at("cancelled").as_int64() == s.cancelled);
  CHECK(j.at("failed").as_int64() == 0);
  CHECK(j.at("cancelled_with_first_token").as_int64() == s.cancelled);
  CHECK_THAT(format_summary_table(r, s), Catch::Contains("Cancelled requests:"));
}

// Four prompts over two slots on `backend`, each cancelled 0.3 s into a stream that stalls after
// one token; the run must take two waves of 0.3 s, not of the 2 s streams, and cancel after a token.
RunResult run_cancelling(StubServer& server, const char* backend) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r =
      run_loadgen(server, {"--backend", backend, "--model", "m", "--num-prompts", "4", "--max-concurrency", "2",
                           "--request-cancellation-rate", "100", "--request-cancellation-delay", "0.3"});
  CHECK(seconds_since(t0) < 1.5);  // nobody waits for the stalled streams (or a server's "cancelled")
  REQUIRE(r.records.size() == 4);
  check_cancelled_after_one_token(r, 0.3);
  return r;
}

}  // namespace

TEST_CASE("cancellation over SSE closes each connection after the delay, and the server sees it") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return one_token_then_stall(); };
  StubServer server(o);
  server.start();
  const RunResult r = run_cancelling(server, "openai-chat");
  // A cancelled connection is never reused: four requests over two slots took four connections.
  CHECK(r.connections_opened == 4);
  CHECK(wait_for([&] { return server.stats().sse_disconnects; }, 4) == 4);
  CHECK(server.stats().streams == 4);
  CHECK(server.stats().connections == 4);
}

TEST_CASE("cancellation over WebSocket sends response.cancel for the id and keeps the socket") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return one_token_then_stall(); };
  StubServer server(o);
  server.start();
  run_cancelling(server, "aurora-ws");
  CHECK(wait_for([&] { return server.stats().ws_cancels; }, 4) == 4);
  CHECK(server.stats().ws_requests == 4);
  CHECK(server.stats().ws_connections == 1);
  CHECK(server.stats().sse_disconnects == 0);
}

TEST_CASE("a request that ends before its cancellation delay is a normal success") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(3, 10, 10); };
  StubServer server(o);
  server.start();
  for (const char* backend : {"openai-chat", "aurora-ws"}) {
    INFO(backend);
    const auto t0 = std::chrono::steady_clock::now();
    const RunResult r =
        run_loadgen(server, {"--backend", backend, "--model", "m", "--num-prompts", "3", "--max-concurrency", "1",
                             "--request-cancellation-rate", "100", "--request-cancellation-delay", "1"});
    CHECK(seconds_since(t0) < 0.9);  // a pending cancellation timer holds nothing up
    REQUIRE(r.records.size() == 3);
    const Summary s = summarize(r.records, r.duration_s, {}, {50});
    CHECK(s.completed == 3);
    CHECK(s.failed == 0);
    CHECK(s.cancelled == 0);
    CHECK(s.cancel_planned == 3);
    CHECK(s.total_output_tokens == 9);
    CHECK(r.connections_opened == 1);  // SSE: the kept-alive connection is reused
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  CHECK(server.stats().sse_disconnects == 0);
  CHECK(server.stats().ws_cancels == 0);
}

TEST_CASE("rate 0 (the default) cancels nothing") {
  StubServerOptions o;
  o.script = [](const StubRequest&) { return stub::uniform_script(3, 10, 10); };
  StubServer server(o);
  server.start();
  const RunResult r = run_loadgen(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "6",
                                           "--request-cancellation-rate", "0", "--request-cancellation-delay", "0"});
  REQUIRE(r.records.size() == 6);
  const Summary s = summarize(r.records, r.duration_s, {}, {50});
  CHECK(s.completed == 6);
  CHECK(s.cancel_planned == 0);
  CHECK(s.cancelled == 0);
  CHECK(server.stats().sse_disconnects == 0);
}

TEST_CASE("rate 50: the seed picks the same subset every time, and the prompts stay the same") {
  std::mutex mu;
  std::multiset<std::string> prompts;
  StubServerOptions o;
  o.script = [&](const StubRequest& req) {
    std::lock_guard<std::mutex> lock(mu);
    prompts.insert(req.prompt_text);
    return stub::uniform_script(3, 150, 10);
  };
  StubServer server(o);
  server.start();
  auto run_with = [&](const char* seed, const char* rate) {
    {
      std::lock_guard<std::mutex> lock(mu);
      prompts.clear();
    }
    const int64_t disconnects_before = server.stats().sse_disconnects;
    RunResult r =
        run_loadgen(server, {"--backend", "openai-chat", "--model", "m", "--num-prompts", "16", "--seed", seed,
                             "--request-cancellation-rate", rate, "--request-cancellation-delay", "0.05"});
    REQUIRE(r.records.size() == 16);
    CHECK(failure_reasons(r).empty());
    const auto cancelled = static_cast<int64_t>(cancelled_indices(r).size());
    CHECK(wait_for([&] { return server.stats().sse_disconnects - disconnects_before; }, cancelled) == cancelled);
    std::lock_guard<std::mutex> lock(mu);
    return std::make_pair(std::move(r), prompts);
  };
  const auto [a, prompts_a] = run_with("7", "50");
  const auto [b, prompts_b] = run_with("7", "50");
  const auto [c, prompts_c] = run_with("7", "0");
  const auto [d, prompts_d] = run_with("8", "50");
  const std::set<int64_t> picked = cancelled_indices(a);
  CHECK_FALSE(picked.empty());
  CHECK(picked.size() < 16);
  for (const auto& rec : a.records) {
    CHECK(rec.cancel_planned == rec.cancelled);  // a 0.05 s delay beats a 150 ms first token
    CHECK(rec.success == !rec.cancelled);
  }
  CHECK(cancelled_indices(b) == picked);
  CHECK(cancelled_indices(c).empty());
  CHECK(cancelled_indices(d) != picked);
  // Its own random stream: cancelling changes no prompt.
  CHECK(prompts_a == prompts_c);
  CHECK(prompts_a == prompts_b);
  CHECK(prompts_d != prompts_a);  // (a different seed does change them)
}
