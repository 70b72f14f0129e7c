// Fault tests: many streams aborted at random points (FIN and RST, before and after the first
// byte) must leave memory, file descriptors and KV usage at their baseline; under 2x overload the
// excess is refused quickly while every admitted stream completes.
#include <algorithm>
#include <atomic>
#include <random>

#include <catch2/catch.hpp>

#include "support/test_util.hpp"

using namespace aurora::testing;

namespace {

// Waits until the server holds no request and no connection but the probe's own.
bool settled(uint16_t port) {
  return eventually(
      [&] {
        return engine_busy(port) == 0 && metric(port, "aurora:streams_open") == 0 &&
               metric(port, "aurora:http_connections_open") <= 1;
      },
      milliseconds(10000));
}

void abort_streams(uint16_t port, int count, uint32_t seed) {
  const std::string request =
      make_request("POST", "/v1/chat/completions", chat_body("abort me", R"(,"max_tokens":4000,"stream":true)"));
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (uint32_t w = 0; w < 24; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(seed * 100 + w);
      while (next.fetch_add(1) < count) {
        TcpClient c(port);
        c.send(request);
        const int events = static_cast<int>(rng() % 21);  // 0: before the response headers
        if (events > 0 && c.read_head().status == 200) {
          for (int i = 0; i < events && c.next_event(milliseconds(2000)); ++i) {
          }
        }
        if (rng() % 2 == 0) {
          c.reset();
        } else {
          c.close();
        }
      }
    });
  }
  for (auto& t : workers) t.join();
}

}  // namespace

TEST_CASE("1000 streams aborted at random points leave RSS, fds and KV at their baseline", "[fault][fake]") {
  ServerProcess server({"--fake-step-ms", "1"});
  const uint16_t port = server.port();
  abort_streams(port, 200, 1);  // warm-up: allocator pools, thread caches
  REQUIRE(settled(port));
  const long rss_before = server.rss_kib();
  const int fds_before = server.open_fds();
  const double aborted_before =
      metric(port, "aurora:request_success_total{model_name=\"fake-moe\",finished_reason=\"abort\"");

  abort_streams(port, 1000, 2);
  REQUIRE(settled(port));
  CHECK(metric(port, "aurora:kv_cache_blocks_used") == 0);
  // (The baseline may still count a closing probe socket: a leak shows as more, never fewer.)
  CHECK(eventually([&] { return server.open_fds() <= fds_before; }));
  const long rss_after = server.rss_kib();
  INFO("RSS " << rss_before << " KiB -> " << rss_after << " KiB; fds " << fds_before << " -> " << server.open_fds());
#if defined(__SANITIZE_ADDRESS__)
  // ASan's quarantine keeps freed memory (up to 256 MiB) on purpose: RSS says nothing there; the
  // release build checks it, and LSan checks leaks at the drain tests' clean exits.
  WARN("ASan build: RSS bound not checked (" << rss_before << " -> " << rss_after << " KiB)");
#else
  CHECK(rss_after <= rss_before + std::max<long>(16 * 1024, rss_before / 20));
#endif
  // Every request the server read was submitted and ended as an abort (an RST can destroy the
  // request bytes before the server reads them, so a few never reach the engine).
  const double aborted =
      metric(port, "aurora:request_success_total{model_name=\"fake-moe\",finished_reason=\"abort\"") - aborted_before;
  CHECK(aborted >= 900);
  CHECK(aborted <= 1000);
  CHECK(http(port, "GET", "/health").status == 200);
}

TEST_CASE("2x overload: the excess gets 503 fast, admitted streams complete", "[fault][fake]") {
  // Capacity 16 running + 16 waiting; 64 clients arrive at once. A stream holds its slot for 40
  // steps of 25 ms, so all 64 arrive while the first 32 still hold theirs, even when the clients
  // start slowly (a loaded machine, ThreadSanitizer).
  ServerProcess server({"--fake-step-ms", "25", "--fake-max-running", "16", "--fake-max-waiting", "16"});
  const uint16_t port = server.port();
  const std::string request =
      make_request("POST", "/v1/chat/completions", chat_body("load", R"(,"max_tokens":40,"stream":true)"));
  std::atomic<int> completed{0};
  std::atomic<int> rejected{0};
  std::atomic<int> other{0};
  std::vector<double> reject_ms(64, 0.0);
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&, i] {
      TcpClient c(port);
      const auto start = std::chrono::steady_clock::now();
      c.send(request);
      auto head = c.read_head(milliseconds(10000));
      if (head.status == 503) {
        reject_ms[static_cast<size_t>(i)] =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        if (head.header("retry-after") == "1") ++rejected;
        return;
      }
      if (head.status != 200) {
        ++other;
        return;
      }
      int tokens = 0;
      while (auto e = c.next_event(milliseconds(10000))) {
        if (e->data == "[DONE]") {
          if (tokens == 42) ++completed;  // the role chunk, 40 tokens, the finish chunk
          return;
        }
        ++tokens;
      }
      ++other;
    });
  }
  for (auto& t : clients) t.join();
  CHECK(other == 0);
  CHECK(completed + rejected == 64);
  // Admission moves waiting requests to running once per step, so how many of the 64 got in
  // depends on how their arrivals fall between steps; but the queue fills before anyone is
  // refused, and nobody is admitted past running + waiting while all hold their slots.
  CHECK(completed >= 16);
  CHECK(completed <= 32);
  CHECK(rejected >= 32);
  std::vector<double> times;
  for (double t : reject_ms) {
    if (t > 0) times.push_back(t);
  }
  std::sort(times.begin(), times.end());
  INFO("rejections: " << times.size() << ", slowest " << (times.empty() ? 0 : times.back()) << " ms");
  CHECK((times.empty() || times.back() < 250.0));
  CHECK(settled(port));
}

TEST_CASE("a request that gets no token ends with a no_progress error; /health says stalled meanwhile",
          "[fault][fake]") {
  // "[fake:hang]" requests get no token until cancelled, as under a wedged engine. Readiness turns
  // 503 after engine_stall_ms; each request ends after no_progress_timeout_ms with an error (SSE:
  // event and [DONE]; JSON: 503) and is cancelled, after which the engine is idle and ready again.
  ServerProcess server({"--no-progress-timeout-ms", "1500", "--engine-stall-ms", "300"});
  const uint16_t port = server.port();
  CHECK(http(port, "GET", "/health").status == 200);

  TcpClient streamed(port);
  const auto start = std::chrono::steady_clock::now();
  streamed.send(
      make_request("POST", "/v1/chat/completions", chat_body("[fake:hang]", R"(,"max_tokens":5,"stream":true)")));
  REQUIRE(streamed.read_head().status == 200);
  CHECK(eventually([&] { return http(port, "GET", "/health").status == 503; }, milliseconds(1200)));
  const auto health = http(port, "GET", "/health");
  if (health.status == 503) CHECK(parse_json(health.body).at("status").as_string() == "stalled");
  CHECK(metric(port, "aurora:engine_seconds_without_progress") > 0.2);

  std::optional<aurora::protocol::SseEvent> error;
  bool done = false;
  while (auto e = streamed.next_event(milliseconds(5000))) {
    if (e->data == "[DONE]") {
      done = true;
      break;
    }
    if (e->data.find("\"error\"") != std::string::npos) error = e;
  }
  const double elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(error.has_value());
  CHECK(parse_json(error->data).at("error").at("code").as_string() == "no_progress");
  CHECK(done);
  CHECK(elapsed_s >= 1.4);
  CHECK(elapsed_s < 4.5);
  // Cancelled in the engine: idle, so ready again.
  CHECK(eventually([&] { return engine_busy(port) == 0; }, milliseconds(3000)));
  CHECK(http(port, "GET", "/health").status == 200);

  // Not streamed: a 503 with the same code.
  auto r = http(port, "POST", "/v1/completions", R"({"prompt":"[fake:hang]","max_tokens":3})");
  CHECK(r.status == 503);
  CHECK(parse_json(r.body).at("error").at("code").as_string() == "no_progress");
  CHECK(metric(port, "aurora:no_progress_cancels_total") == 2);
  // A request that does get tokens is untouched by the timer.
  auto ok = http(port, "POST", "/v1/completions", R"({"prompt":"fine","max_tokens":3})");
  CHECK(ok.status == 200);
}
