// loadgen_overhead_bench: "the generator is not the bottleneck". A stub server (forked into its own
// process, so that its CPU time is not ours) streams fixed chunks at a known pace; the load
// generator drives it in-process and measures its own CPU time with getrusage(RUSAGE_SELF).
// Prints one table row per configuration: achieved streamed tokens/s and the load generator's
// CPU use as a fraction of one core.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "aurora/loadgen/config.hpp"
#include "aurora/loadgen/runner.hpp"
#include "stub_server.hpp"

namespace {

using namespace aurora::loadgen;

struct Case {
  const char* name;
  Backend backend;
  int64_t users;
  int64_t tokens_per_request;
  double interval_ms;  // stub pace per stream; 0 = as fast as it can write
  double duration_s;
};

// Forks a stub server; returns its pid and port.
pid_t start_stub(double interval_ms, uint16_t* port) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    stub::StubServerOptions options;
    options.script = [interval_ms](const stub::StubRequest& r) {
      return stub::uniform_script(r.max_tokens > 0 ? r.max_tokens : 16, interval_ms, interval_ms);
    };
    stub::StubServer server(options);
    const uint16_t p = server.port();
    if (write(fds[1], &p, sizeof p) != static_cast<ssize_t>(sizeof p)) _exit(1);
    close(fds[1]);
    server.run_blocking();
    _exit(0);
  }
  close(fds[1]);
  if (read(fds[0], port, sizeof *port) != static_cast<ssize_t>(sizeof *port)) {
    close(fds[0]);
    return -1;
  }
  close(fds[0]);
  return pid;
}

}  // namespace

int main(int argc, char** argv) {
  const double scale = argc > 1 ? std::atof(argv[1]) : 1.0;  // shorten or lengthen every case
  const std::vector<Case> cases = {
      {"SSE, 32 streams x 62.5 tok/s (paced 2,000 tok/s)", Backend::kOpenAIChat, 32, 128, 16.0, 10},
      {"SSE, 64 streams x 62.5 tok/s (paced 4,000 tok/s)", Backend::kOpenAIChat, 64, 128, 16.0, 10},
      {"WS,  32 streams x 62.5 tok/s (paced 2,000 tok/s)", Backend::kAuroraWs, 32, 128, 16.0, 10},
      {"SSE, 16 streams, unpaced (stub writes at full speed)", Backend::kOpenAIChat, 16, 256, 0.0, 10},
  };
  std::printf("%-54s %10s %10s %9s %9s %10s %12s\n", "case", "tok/s", "req/s", "failed", "cpu s", "% of core",
              "cpu us/tok");
  int status = 0;
  for (const Case& c : cases) {
    uint16_t port = 0;
    const pid_t pid = start_stub(c.interval_ms, &port);
    if (pid <= 0) {
      std::fprintf(stderr, "could not start the stub server\n");
      return 1;
    }
    const std::string backend = c.backend == Backend::kAuroraWs ? "aurora-ws" : "openai-chat";
    const std::string port_s = std::to_string(port);
    const std::string users = std::to_string(c.users);
    const std::string out_len = std::to_string(c.tokens_per_request);
    const std::string duration = std::to_string(c.duration_s * scale);
    std::vector<const char*> args = {"aurora-loadgen",
                                     "--backend",
                                     backend.c_str(),
                                     "--port",
                                     port_s.c_str(),
                                     "--model",
                                     "stub",
                                     "--users",
                                     users.c_str(),
                                     "--duration",
                                     duration.c_str(),
                                     "--random-input-len",
                                     "64",
                                     "--random-output-len",
                                     out_len.c_str(),
                                     "--progress",
                                     "off",
                                     "--scrape-metrics",
                                     "off",
                                     "--drain-timeout",
                                     "10"};
    auto parsed = parse_command_line(static_cast<int>(args.size()), args.data());
    if (!parsed || !parsed->config) {
      std::fprintf(stderr, "bad bench config: %s\n", parsed ? "help" : parsed.error().message.c_str());
      return 1;
    }
    auto run = run_benchmark(*parsed->config);
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    if (!run) {
      std::fprintf(stderr, "%s: %s\n", c.name, run.error().message.c_str());
      status = 1;
      continue;
    }
    const Summary s = summarize(run->records, run->duration_s, {}, {50});
    const double cpu = run->cpu_user_s + run->cpu_system_s;
    std::printf("%-54s %10.0f %10.1f %9lld %9.2f %9.1f%% %12.1f\n", c.name, s.output_throughput, s.request_throughput,
                static_cast<long long>(s.failed), cpu, 100.0 * cpu / run->duration_s,
                s.total_output_tokens > 0 ? 1e6 * cpu / static_cast<double>(s.total_output_tokens) : 0.0);
    std::fflush(stdout);
  }
  return status;
}
