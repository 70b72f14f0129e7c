// The online benchmark's plumbing: child processes (aurora serve, aurora-loadgen) with their output
// in log files, and a blocking HTTP/1.1 client for loopback calls (GET /v1/aurora/plan, POST
// /v1/aurora/replan). Errors come back as values; nothing here throws past its caller.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::bench {

class ChildProcess {
 public:
  // Starts argv[0] with argv; stdout and stderr go to `log_path`.
  static Result<ChildProcess> spawn(const std::vector<std::string>& argv, const std::string& log_path);
  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ~ChildProcess();  // SIGKILL + reap if still running

  bool running();  // reaps when it has exited
  int exit_status() const { return status_; }
  // SIGTERM, then SIGKILL after `grace`; returns the exit status (-signal when killed).
  int stop(std::chrono::milliseconds grace);
  // Waits until it exits or `timeout` passes (then stop()).
  int wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

struct HttpReply {
  int status = 0;
  std::string body;
};
// One request on a fresh connection to 127.0.0.1:port; `timeout` bounds the whole exchange.
Result<HttpReply> http_request(int port, const std::string& method, const std::string& target, const std::string& body,
                               std::chrono::milliseconds timeout);

}  // namespace aurora::bench
