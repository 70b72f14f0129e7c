// aurora_bench_server: what the HTTP/SSE front end costs per token, and how many streams it holds.
//
//   aurora_bench_server overhead [--seconds S]   CPU per token: engine alone vs. through the server
//   aurora_bench_server capacity [--streams N,N,...] [--step-ms M] [--seconds S]
//
// The server runs in a child process (the real Server on the FakeEngine, one io thread), the
// clients in this process on one epoll thread, so the server's CPU time is measured on its own
// (getrusage in the child). "Engine alone" runs the same FakeEngine with a sink that only counts.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "aurora/server/server.hpp"
#include "fake_engine.hpp"

namespace {

using namespace aurora;
using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// ---------------------------------------------------------------------------------------------
// The server child: commands over a pipe. 'b' = take a baseline, 'r' = report CPU seconds and
// tokens since the baseline, 'q' = quit.
struct Child {
  pid_t pid = -1;
  int to_child = -1;
  int from_child = -1;
  uint16_t port = 0;
};

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

std::string read_line(int fd) {
  std::string out;
  char c = 0;
  while (::read(fd, &c, 1) == 1 && c != '\n') out += c;
  return out;
}

Child start_server(testing::FakeEngineOptions fake, int io_threads) {
  int down[2];
  int up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) std::abort();
  Child child;
  child.pid = ::fork();
  if (child.pid == 0) {
    ::close(down[1]);
    ::close(up[0]);
    config::ServerConfig config;
    config.port = 0;
    config.io_threads = io_threads;
    config.max_connections = 1'000'000;
    server::Server srv(config);
    auto engine = std::make_shared<testing::FakeEngine>(fake);
    srv.set_engine(engine);
    if (!srv.start()) std::_Exit(3);
    write_all(up[1], std::to_string(srv.port()) + "\n");
    double base_cpu = 0;
    int64_t base_tokens = 0;
    for (;;) {
      char cmd = 0;
      if (::read(down[0], &cmd, 1) != 1 || cmd == 'q') break;
      if (cmd == 'b') {
        base_cpu = cpu_seconds();
        base_tokens = engine->tokens_generated();
        write_all(up[1], "ok\n");
      } else if (cmd == 'r') {
        char line[128];
        std::snprintf(line, sizeof(line), "%.6f %lld\n", cpu_seconds() - base_cpu,
                      static_cast<long long>(engine->tokens_generated() - base_tokens));
        write_all(up[1], line);
      }
    }
    std::_Exit(0);  // the measurement is done; skip the orderly teardown of thousands of sockets
  }
  ::close(down[0]);
  ::close(up[1]);
  child.to_child = down[1];
  child.from_child = up[0];
  child.port = static_cast<uint16_t>(std::atoi(read_line(child.from_child).c_str()));
  return child;
}

std::pair<double, int64_t> ask(const Child& c, char cmd) {
  write_all(c.to_child, std::string(1, cmd));
  const std::string line = read_line(c.from_child);
  double cpu = 0;
  long long tokens = 0;
  std::sscanf(line.c_str(), "%lf %lld", &cpu, &tokens);
  return {cpu, tokens};
}

void stop_server(Child& c) {
  write_all(c.to_child, "q");
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  ::close(c.to_child);
  ::close(c.from_child);
}

// ---------------------------------------------------------------------------------------------
// Streaming clients on one epoll thread.
struct Stream {
  int fd = -1;
  std::string tail;  // the last bytes seen, to find "[DONE]" across reads
  Clock::time_point last_data;
  bool done = false;
  int64_t reads_with_data = 0;
};

struct ClientStats {
  int64_t bytes = 0;
  int64_t completed = 0;
  int64_t failed = 0;
  std::vector<double> gaps_ms;  // between two reads that carried data, per stream
};

int connect_stream(uint16_t port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  return fd;
}

std::string chat_request(int max_tokens) {
  const std::string body = R"({"messages":[{"role":"user","content":"bench"}],"max_tokens":)" +
                           std::to_string(max_tokens) + R"(,"stream":true,"ignore_eos":true})";
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Runs `count` streams until all end or `deadline`; gaps are recorded after `measure_from`.
ClientStats run_streams(uint16_t port, int count, int max_tokens, Clock::time_point deadline,
                        Clock::time_point measure_from, bool record_gaps) {
  ClientStats stats;
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Stream> streams(static_cast<size_t>(count));
  const std::string request = chat_request(max_tokens);
  for (int i = 0; i < count; ++i) {
    auto& s = streams[static_cast<size_t>(i)];
    s.fd = connect_stream(port, request);
    if (s.fd < 0) {
      ++stats.failed;
      s.done = true;
      continue;
    }
    s.last_data = Clock::now();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
  }
  int open = count - static_cast<int>(stats.failed);
  std::vector<epoll_event> events(1024);
  std::vector<char> buf(1 << 16);
  while (open > 0 && Clock::now() < deadline) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    const auto now = Clock::now();
    for (int e = 0; e < n; ++e) {
      auto& s = streams[events[static_cast<size_t>(e)].data.u32];
      for (;;) {
        const ssize_t got = ::recv(s.fd, buf.data(), buf.size(), 0);
        if (got > 0) {
          stats.bytes += got;
          if (record_gaps && now >= measure_from && s.reads_with_data > 0) {
            stats.gaps_ms.push_back(std::chrono::duration<double, std::milli>(now - s.last_data).count());
          }
          ++s.reads_with_data;
          s.last_data = now;
          s.tail.append(buf.data(), static_cast<size_t>(got));
          if (s.tail.find("data: [DONE]") != std::string::npos) {
            s.done = true;
            ++stats.completed;
          }
          if (s.tail.size() > 32) s.tail.erase(0, s.tail.size() - 32);
          if (s.done) break;
          continue;
        }
        if (got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
          if (!s.done) ++stats.failed;
          s.done = true;
        }
        break;
      }
      if (s.done && s.fd >= 0) {
        ::close(s.fd);
        s.fd = -1;
        --open;
      }
    }
  }
  for (auto& s : streams) {
    if (s.fd >= 0) ::close(s.fd);
  }
  ::close(ep);
  return stats;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())))];
}

// ---------------------------------------------------------------------------------------------
// Engine alone: the same FakeEngine, a sink that only counts.
class CountingSink final : public runtime::TokenSink {
 public:
  explicit CountingSink(std::atomic<int64_t>& done) : done_(done) {}
  bool on_delta(const runtime::TokenDelta& delta) override {
    bytes_ += delta.text.size();
    return true;
  }
  void on_finish(const runtime::Completion&) override { done_.fetch_add(1); }

 private:
  std::atomic<int64_t>& done_;
  size_t bytes_ = 0;
};

std::pair<double, int64_t> engine_alone(const testing::FakeEngineOptions& fake, int streams, int max_tokens) {
  testing::FakeEngine engine(fake);
  auto prompt = engine.tokenizer().encode("<|user|>\nbench\n<|assistant|>\n", false);
  std::atomic<int64_t> done{0};
  const double cpu0 = cpu_seconds();
  const int64_t tokens0 = engine.tokens_generated();
  for (int i = 0; i < streams; ++i) {
    runtime::GenerationRequest r;
    r.prompt_ids = prompt;
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    (void)engine.submit(std::move(r), std::make_shared<CountingSink>(done));
  }
  while (done.load() < streams) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return {cpu_seconds() - cpu0, engine.tokens_generated() - tokens0};
}

int overhead(double seconds) {
  std::printf("## Server overhead per token: SSE path vs engine alone (FakeEngine, 1 io thread)\n\n");
  std::printf("| streams | engine step | tokens/s | server CPU us/token | engine alone CPU us/token | "
              "SSE path us/token | wire bytes/token |\n|---|---|---|---|---|---|---|\n");
  struct Case {
    int streams;
    int step_us;
  };
  for (const Case c : {Case{1, 200}, Case{16, 1000}, Case{256, 5000}, Case{64, 0}}) {
    testing::FakeEngineOptions fake;
    fake.step_interval = std::chrono::microseconds(c.step_us);
    fake.max_running = 4096;
    fake.max_waiting = 4096;
    fake.max_context_len = 1 << 20;
    fake.kv_blocks_total = 1 << 30;
    // Enough tokens per stream for `seconds` at this pace (the unpaced case: a fixed amount).
    const int max_tokens =
        c.step_us > 0 ? static_cast<int>(seconds * 1e6 / c.step_us) : static_cast<int>(20000 * seconds / 4);
    Child child = start_server(fake, 1);
    ask(child, 'b');
    const auto start = Clock::now();
    ClientStats stats = run_streams(child.port, c.streams, max_tokens, start + std::chrono::seconds(600), start, false);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    auto [server_cpu, tokens] = ask(child, 'r');
    stop_server(child);
    auto [engine_cpu, engine_tokens] = engine_alone(fake, c.streams, max_tokens);
    const double server_us = server_cpu / static_cast<double>(tokens) * 1e6;
    const double engine_us = engine_cpu / static_cast<double>(engine_tokens) * 1e6;
    std::printf("| %d | %s | %.0f | %.2f | %.2f | %.2f | %.0f |\n", c.streams,
                c.step_us > 0 ? (std::to_string(c.step_us) + " us").c_str() : "unpaced",
                static_cast<double>(tokens) / wall, server_us, engine_us, server_us - engine_us,
                static_cast<double>(stats.bytes) / static_cast<double>(tokens));
    if (stats.failed > 0 || stats.completed != c.streams) {
      std::printf("  (warning: %lld of %d streams completed, %lld failed)\n", static_cast<long long>(stats.completed),
                  c.streams, static_cast<long long>(stats.failed));
    }
    std::fflush(stdout);
  }
  return 0;
}

int capacity(const std::vector<int>& counts, int step_ms, double seconds) {
  std::printf("## Concurrent streams held by one server process (FakeEngine, step %d ms = %.0f tokens/s per "
              "stream, 1 io thread)\n\n",
              step_ms, 1000.0 / step_ms);
  std::printf("| streams | completed | failed | tokens/s | server CPU | RSS MiB | KiB/stream | gap p50 ms | "
              "gap p99 ms | gap max ms |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (int count : counts) {
    testing::FakeEngineOptions fake;
    fake.step_interval = std::chrono::milliseconds(step_ms);
    fake.max_running = count;
    fake.max_waiting = count;
    fake.max_context_len = 1 << 20;
    fake.kv_blocks_total = 1 << 30;
    Child child = start_server(fake, 1);
    const long rss0 = rss_kib(child.pid);
    const int max_tokens = static_cast<int>(seconds * 1000 / step_ms);
    const auto start = Clock::now();
    // Connecting takes a while at these counts: measure gaps once every stream is running.
    const auto measure_from = start + std::chrono::milliseconds(1500 + count / 4);
    long rss_peak = rss0;
    std::atomic<bool> sampling{true};
    std::thread sampler([&] {
      while (sampling.load()) {
        rss_peak = std::max(rss_peak, rss_kib(child.pid));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    ask(child, 'b');
    ClientStats stats = run_streams(child.port, count, max_tokens + static_cast<int>(2000 / step_ms),
                                    start + std::chrono::seconds(static_cast<int>(seconds) + 60), measure_from, true);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    auto [cpu, tokens] = ask(child, 'r');
    sampling.store(false);
    sampler.join();
    stop_server(child);
    std::printf("| %d | %lld | %lld | %.0f | %.0f%% | %.1f | %.1f | %.1f | %.1f | %.1f |\n", count,
                static_cast<long long>(stats.completed), static_cast<long long>(stats.failed),
                static_cast<double>(tokens) / wall, 100.0 * cpu / wall, static_cast<double>(rss_peak) / 1024.0,
                static_cast<double>(rss_peak - rss0) / count, percentile(stats.gaps_ms, 50),
                percentile(stats.gaps_ms, 99), percentile(stats.gaps_ms, 100));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "overhead";
  double seconds = 4;
  int step_ms = 200;
  std::vector<int> counts = {1000, 2000, 4000, 8000};
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds") seconds = std::atof(argv[i + 1]);
    else if (flag == "--step-ms") step_ms = std::atoi(argv[i + 1]);
    else if (flag == "--streams") {
      counts.clear();
      for (const char* p = argv[i + 1]; *p != '\0';) {
        counts.push_back(std::atoi(p));
        while (*p != '\0' && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  rlimit fds{};
  getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = fds.rlim_max;
  setrlimit(RLIMIT_NOFILE, &fds);
  if (mode == "overhead") return overhead(seconds);
  if (mode == "capacity") return capacity(counts, step_ms, seconds);
  std::fprintf(stderr, "usage: aurora_bench_server overhead|capacity [--seconds S] [--streams N,...] [--step-ms M]\n");
  return 2;
}
