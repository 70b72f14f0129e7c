#include "server_process.hpp"

#include "http_client.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace aurora::testing {

namespace {

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

std::vector<std::string> command() {
  const char* cmd = std::getenv("AURORA_SERVER_CMD");
  if (cmd != nullptr && *cmd != '\0') return split_words(cmd);
  return {AURORA_TEST_SERVER_PATH};
}

}  // namespace

bool ServerProcess::fake() {
  const char* cmd = std::getenv("AURORA_SERVER_CMD");
  return cmd == nullptr || *cmd == '\0';
}

ServerProcess::ServerProcess(std::vector<std::string> args, bool wait_ready, long open_file_limit) {
  std::vector<std::string> argv = command();
  for (size_t i = 0; i < args.size(); ++i) {
    if (!fake() && args[i].rfind("--fake-", 0) == 0) {
      ++i;  // a real server has no fake engine: drop the flag and its value
      continue;
    }
    argv.push_back(args[i]);
  }
  argv.push_back("--port");
  argv.push_back("0");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(pipe_fds[1], STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDIN_FILENO);
    if (open_file_limit > 0) {
      const rlimit limit{static_cast<rlim_t>(open_file_limit), static_cast<rlim_t>(open_file_limit)};
      ::setrlimit(RLIMIT_NOFILE, &limit);
    }
    std::vector<char*> cargs;
    for (auto& a : argv) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    ::execvp(cargs[0], cargs.data());
    std::fprintf(stderr, "exec %s failed: %s\n", cargs[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  stderr_fd_ = pipe_fds[0];
  // Keep draining stderr for the whole run, so that a chatty server never blocks on a full pipe.
  reader_ = std::thread([this] {
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(stderr_fd_, buf, sizeof(buf));
      if (n <= 0) break;
      std::lock_guard lock(mutex_);
      log_.append(buf, static_cast<size_t>(n));
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mutex_);
      const size_t at = log_.find("listening on ");
      if (at != std::string::npos) {
        const size_t end = log_.find(' ', at + 13);
        const size_t colon = log_.rfind(':', end);
        if (end != std::string::npos && colon != std::string::npos) {
          port_ = static_cast<uint16_t>(std::atoi(log_.c_str() + colon + 1));
        }
      }
    }
    if (port_ != 0) {
      if (!wait_ready) return;
      while (std::chrono::steady_clock::now() < deadline) {
        try {
          if (http(port_, "GET", "/health").status == 200) return;
        } catch (const std::exception&) {
          break;  // refused: the server died; reported below
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (std::chrono::steady_clock::now() >= deadline) fail_start("the server did not become ready: ");
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      fail_start("the server exited at start: ");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  fail_start("the server did not report its port: ");
}

void ServerProcess::fail_start(const std::string& what) {
  if (!exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_code_ = 128 + SIGKILL;
  }
  if (reader_.joinable()) reader_.join();
  ::close(stderr_fd_);
  stderr_fd_ = -1;
  throw std::runtime_error(what + log());
}

ServerProcess::~ServerProcess() {
  if (!exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) reader_.join();
  if (stderr_fd_ >= 0) ::close(stderr_fd_);
}

void ServerProcess::send_signal(int signal) const { ::kill(pid_, signal); }

std::optional<int> ServerProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::nullopt;
}

std::string ServerProcess::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

long ServerProcess::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

int ServerProcess::open_fds() const {
  const std::string path = "/proc/" + std::to_string(pid_) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

}  // namespace aurora::testing
