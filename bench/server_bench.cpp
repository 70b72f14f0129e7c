// aurora_bench_server: what the HTTP/SSE front end costs per token, and how many streams it holds.
//
//   aurora_bench_server overhead [--engine fake|embedded] [--seconds S]
//       CPU per token: the engine alone vs. the same engine behind the server's SSE path
//   aurora_bench_server capacity [--engine fake|embedded] [--streams N,N,...] [--step-ms M] [--seconds S]
//       [--tokens T]   concurrent streams held by one server process
//
// The server runs in a child process (the real Server, one io thread, on the FakeEngine or on the
// real engine with the embedded model), the clients in this process on one epoll thread, so the
// server's CPU time is measured on its own (getrusage in the child). "Engine alone" runs the same
// engine in this process with a sink that only counts.
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

// Which engine the server (or the engine-alone run) uses.
struct EngineChoice {
  bool fake = true;
  testing::FakeEngineOptions fake_options;
  runtime::EngineOptions real_options;  // the embedded model when model_dirs is empty
};

std::shared_ptr<runtime::Engine> make_engine(const EngineChoice& choice) {
  if (choice.fake) return std::make_shared<testing::FakeEngine>(choice.fake_options);
  auto engine = runtime::create_engine(choice.real_options);
  if (!engine) {
    std::fprintf(stderr, "create_engine: %s\n", engine.error().message.c_str());
    std::_Exit(4);
  }
  return std::shared_ptr<runtime::Engine>(std::move(*engine));
}

Child start_server(const EngineChoice& choice, int io_threads) {
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
    auto engine = make_engine(choice);
    while (!engine->ready()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
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
        base_tokens = engine->stats().generation_tokens_total;
        write_all(up[1], "ok\n");
      } else if (cmd == 'r') {
        char line[128];
        std::snprintf(line, sizeof(line), "%.6f %lld\n", cpu_seconds() - base_cpu,
                      static_cast<long long>(engine->stats().generation_tokens_total - base_tokens));
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

// The server's own aurora:streams_open gauge (-1 when /metrics cannot be read).
double scrape_streams_open(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string body;
  char buf[65536];
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) body.append(buf, static_cast<size_t>(n));
  ::close(fd);
  const std::string key = "\naurora:streams_open ";
  const size_t at = body.find(key);
  return at == std::string::npos ? -1 : std::atof(body.c_str() + at + key.size());
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

std::pair<double, int64_t> engine_alone(const EngineChoice& choice, int streams, int max_tokens) {
  auto engine = make_engine(choice);
  while (!engine->ready()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const auto& tokenizer = engine->tokenizer();
  auto rendered = tokenizer.apply_chat_template({{"user", "bench"}}, true);
  const auto prompt = tokenizer.encode(rendered.ok() ? *rendered : std::string("bench"), false);
  std::atomic<int64_t> done{0};
  const double cpu0 = cpu_seconds();
  const int64_t tokens0 = engine->stats().generation_tokens_total;
  for (int i = 0; i < streams; ++i) {
    runtime::GenerationRequest r;
    r.prompt_ids = prompt;
    r.sampling.max_tokens = max_tokens;
    r.sampling.ignore_eos = true;
    (void)engine->submit(std::move(r), std::make_shared<CountingSink>(done));
  }
  while (done.load() < streams) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double cpu = cpu_seconds() - cpu0;
  const int64_t tokens = engine->stats().generation_tokens_total - tokens0;
  engine->shutdown(std::chrono::milliseconds(0));
  return {cpu, tokens};
}

int overhead(bool fake, double seconds, int reps) {
  std::printf("## Server overhead per token: SSE path vs engine alone (%s, 1 io thread)\n\n",
              fake ? "FakeEngine" : "real engine, embedded model");
  std::printf("Medians of %d runs per row.\n\n", reps);
  std::printf(
      "| streams | engine step | tokens/s | server CPU us/token | engine alone CPU us/token | "
      "SSE path us/token | wire bytes/token |\n|---|---|---|---|---|---|---|\n");
  struct Case {
    int streams;
    int step_us;  // fake engine only
  };
  const std::vector<Case> cases = fake ? std::vector<Case>{{1, 200}, {16, 1000}, {256, 5000}, {64, 0}}
                                       : std::vector<Case>{{1, 0}, {16, 0}, {64, 0}};
  for (const Case c : cases) {
    EngineChoice choice;
    choice.fake = fake;
    choice.fake_options.step_interval = std::chrono::microseconds(c.step_us);
    choice.fake_options.max_running = 4096;
    choice.fake_options.max_waiting = 4096;
    choice.fake_options.max_context_len = 1 << 20;
    choice.fake_options.kv_blocks_total = 1 << 30;
    choice.real_options.max_num_seqs = std::max(64, c.streams);
    choice.real_options.max_waiting = std::max(256, c.streams);
    // Enough tokens per stream for about `seconds` at this pace.
    int max_tokens = 0;
    if (fake) {
      max_tokens = c.step_us > 0 ? static_cast<int>(seconds * 1e6 / c.step_us) : static_cast<int>(20000 * seconds / 4);
    } else {
      max_tokens = std::max(32, static_cast<int>(seconds * 1500 / c.streams));
      max_tokens = std::min(max_tokens, 2048);
    }
    // Medians of `reps` runs: the machine is shared, single runs are noisy.
    std::vector<double> server_us;
    std::vector<double> engine_us;
    std::vector<double> rate;
    ClientStats stats;
    for (int rep = 0; rep < reps; ++rep) {
      Child child = start_server(choice, 1);
      ask(child, 'b');
      const auto start = Clock::now();
      stats = run_streams(child.port, c.streams, max_tokens, start + std::chrono::seconds(600), start, false);
      const double wall = std::chrono::duration<double>(Clock::now() - start).count();
      auto [server_cpu, tokens] = ask(child, 'r');
      stop_server(child);
      auto [engine_cpu, engine_tokens] = engine_alone(choice, c.streams, max_tokens);
      server_us.push_back(server_cpu / static_cast<double>(tokens) * 1e6);
      engine_us.push_back(engine_cpu / static_cast<double>(engine_tokens) * 1e6);
      rate.push_back(static_cast<double>(tokens) / wall);
      stats.bytes = stats.bytes * 1000 / std::max<int64_t>(1, tokens);  // milli-bytes per token
    }
    const double server_median = percentile(server_us, 50);
    const double engine_median = percentile(engine_us, 50);
    const std::string step = !fake ? "engine" : c.step_us > 0 ? std::to_string(c.step_us) + " us" : "unpaced";
    std::printf("| %d | %s | %.0f | %.2f | %.2f | %.2f | %.0f |\n", c.streams, step.c_str(), percentile(rate, 50),
                server_median, engine_median, server_median - engine_median, static_cast<double>(stats.bytes) / 1000.0);
    if (stats.failed > 0 || stats.completed != c.streams) {
      std::printf("  (warning: %lld of %d streams completed, %lld failed)\n", static_cast<long long>(stats.completed),
                  c.streams, static_cast<long long>(stats.failed));
    }
    std::fflush(stdout);
  }
  return 0;
}

int capacity(bool fake, const std::vector<int>& counts, int step_ms, double seconds, int tokens_per_stream) {
  if (fake) {
    std::printf(
        "## Concurrent streams held by one server process (FakeEngine, step %d ms = %.0f tokens/s per "
        "stream, 1 io thread)\n\n",
        step_ms, 1000.0 / step_ms);
  } else {
    std::printf(
        "## Concurrent streams held by one server process (real engine, embedded model, all streams in one "
        "running batch, %d tokens each, 1 io thread)\n\n",
        tokens_per_stream);
  }
  std::printf(
      "| streams | peak open | completed | failed | tokens/s | server CPU | RSS MiB | KiB/stream | gap p50 ms | "
      "gap p99 ms | gap max ms |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int count : counts) {
    EngineChoice choice;
    choice.fake = fake;
    choice.fake_options.step_interval = std::chrono::milliseconds(step_ms);
    choice.fake_options.max_running = count;
    choice.fake_options.max_waiting = count;
    choice.fake_options.max_context_len = 1 << 20;
    choice.fake_options.kv_blocks_total = 1 << 30;
    choice.real_options.max_num_seqs = count;
    choice.real_options.max_num_batched_tokens = std::max(512, count);  // the engine requires >= max_num_seqs
    choice.real_options.max_waiting = count;
    choice.real_options.kv_cache_tokens = static_cast<int64_t>(count) * (64 + tokens_per_stream + 32);
    Child child = start_server(choice, 1);
    const long rss0 = rss_kib(child.pid);
    const int max_tokens = fake ? static_cast<int>(seconds * 1000 / step_ms) : tokens_per_stream;
    const auto start = Clock::now();
    // Connecting takes a while at these counts: measure gaps once every stream is running.
    const auto measure_from = start + std::chrono::milliseconds(1500 + count / 4);
    long rss_peak = rss0;
    double open_peak = 0;
    std::atomic<bool> sampling{true};
    std::thread sampler([&] {
      while (sampling.load()) {
        rss_peak = std::max(rss_peak, rss_kib(child.pid));
        open_peak = std::max(open_peak, scrape_streams_open(child.port));
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    });
    ask(child, 'b');
    const int stream_tokens = fake ? max_tokens + static_cast<int>(2000 / step_ms) : max_tokens;
    ClientStats stats =
        run_streams(child.port, count, stream_tokens, start + std::chrono::seconds(static_cast<int>(seconds) + 600),
                    fake ? measure_from : start, true);
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    auto [cpu, tokens] = ask(child, 'r');
    sampling.store(false);
    sampler.join();
    stop_server(child);
    std::printf("| %d | %.0f | %lld | %lld | %.0f | %.0f%% | %.1f | %.1f | %.1f | %.1f | %.1f |\n", count, open_peak,
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
  bool fake = true;
  int tokens = 16;
  int reps = 3;
  double seconds = 4;
  int step_ms = 200;
  std::vector<int> counts = {1000, 2000, 4000, 8000};
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--seconds")
      seconds = std::atof(argv[i + 1]);
    else if (flag == "--engine")
      fake = std::string(argv[i + 1]) != "embedded";
    else if (flag == "--tokens")
      tokens = std::atoi(argv[i + 1]);
    else if (flag == "--reps")
      reps = std::max(1, std::atoi(argv[i + 1]));
    else if (flag == "--step-ms")
      step_ms = std::atoi(argv[i + 1]);
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
  if (mode == "overhead") return overhead(fake, seconds, reps);
  if (mode == "capacity") return capacity(fake, counts, step_ms, seconds, tokens);
  std::fprintf(stderr,
               "usage: aurora_bench_server overhead|capacity [--engine fake|embedded] [--seconds S] [--streams N,...] "
               "[--step-ms M] [--tokens T] [--reps R]\n");
  return 2;
}
