// aurora_test_server: the real server (aurora_server, the same flags as `aurora serve`) on the
// deterministic FakeEngine, for process-level tests: curl, the openai npm client, raw sockets,
// signals and fault tests. Fake-engine flags (removed before the serve flags are parsed):
//   --fake-step-ms N        time per engine step (one token per running request), default 2
//   --fake-step-us N        the same in microseconds
//   --fake-prefill-ms N     delay before each request's first token, default 0
//   --fake-max-running N    running batch cap, default 64
//   --fake-max-waiting N    waiting queue cap (503 past it), default 256
//   --fake-kv-blocks N      KV blocks in total, default 65536
//   --fake-context N        context length, default 4096
//   --fake-stop-after N     every request ends with EOS after N tokens (unless ignore_eos)
//   --fake-load-ms N        the engine "loads" this long after the server starts (/health 503)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "aurora/server/serve_options.hpp"
#include "aurora/server/server.hpp"
#include "fake_engine.hpp"

int main(int argc, char** argv) {
  using namespace aurora;
  testing::FakeEngineOptions fake;
  int64_t load_ms = 0;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--fake-", 0) != 0) {
      rest.push_back(a);
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    const long long v = std::atoll(argv[++i]);
    if (a == "--fake-step-ms")
      fake.step_interval = std::chrono::milliseconds(v);
    else if (a == "--fake-step-us")
      fake.step_interval = std::chrono::microseconds(v);
    else if (a == "--fake-prefill-ms")
      fake.prefill_delay = std::chrono::milliseconds(v);
    else if (a == "--fake-max-running")
      fake.max_running = static_cast<int32_t>(v);
    else if (a == "--fake-max-waiting")
      fake.max_waiting = static_cast<int32_t>(v);
    else if (a == "--fake-kv-blocks")
      fake.kv_blocks_total = v;
    else if (a == "--fake-context")
      fake.max_context_len = static_cast<int32_t>(v);
    else if (a == "--fake-stop-after")
      fake.stop_after_tokens = static_cast<int32_t>(v);
    else if (a == "--fake-load-ms")
      load_ms = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  auto options = server::parse_serve_args(rest);
  if (!options) {
    std::fprintf(stderr, "aurora_test_server: %s\n", options.error().message.c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(server::serve_usage().c_str(), stdout);
    return 0;
  }
  server::Server server(options->server);
  auto started = server.start();
  if (!started) {
    std::fprintf(stderr, "aurora_test_server: %s\n", started.error().message.c_str());
    return 1;
  }
  std::thread loader([&server, fake, load_ms] {
    if (load_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(load_ms));
    server.set_engine(std::make_shared<testing::FakeEngine>(fake));
  });
  const int code = server.run(/*handle_signals=*/true);
  loader.join();
  return code;
}
