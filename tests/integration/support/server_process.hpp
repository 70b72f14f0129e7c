// ServerProcess: starts the server under test as a child process on a loopback port and reads its
// port from the "listening on HOST:PORT" log line.
//
// The command is AURORA_SERVER_CMD when set (e.g. "build/release/cli/aurora serve" to run these tests
// against the real engine), else the aurora_test_server built next to the tests (the real server on
// the FakeEngine). With a real command, `--fake-*` arguments are dropped and tests tagged [fake]
// (exact fake-engine text, fault directives) should be excluded: `server_integration_test "~[fake]"`.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace aurora::testing {

class ServerProcess {
 public:
  // Starts the server and, unless wait_ready is false, waits until GET /health answers 200 (a real
  // server listens before its model has loaded). open_file_limit > 0 sets the child's
  // RLIMIT_NOFILE (soft and hard, as `ulimit -n` does) before it starts.
  explicit ServerProcess(std::vector<std::string> args, bool wait_ready = true, long open_file_limit = 0);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  void send_signal(int signal) const;
  // The exit status (128 + signal when killed by one), or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string log() const;

  long rss_kib() const;
  int open_fds() const;

  // True when the tests run against the FakeEngine test server.
  static bool fake();

 private:
  [[noreturn]] void fail_start(const std::string& what);

  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  uint16_t port_ = 0;
  std::optional<int> exit_code_;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::string log_;
};

}  // namespace aurora::testing
