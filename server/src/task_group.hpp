// Private: TaskGroup tracks every session coroutine the server spawns, so that shutdown is a
// protocol (Beast's task_group, Seastar's gate): ask politely, wait with a deadline, stop firmly,
// wait again.
//
// Contract: spawn() may be called from any thread. Each task gets a stop hook that request_stop()
// posts to the task's own executor (its strand), so hooks never race with the task. A task's
// exception is caught and logged by the group: it never reaches io_context::run(). wait_empty()
// blocks and must not be called from an io thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "asio.hpp"

namespace aurora::server {

enum class StopMode {
  kDrain,  // finish the current exchange, take no new one
  kForce,  // close now
};

class TaskGroup {
 public:
  using StopHook = std::function<void(StopMode)>;

  void spawn(net::any_io_executor executor, awaitable<void> task, StopHook on_stop, const char* what);
  void request_stop(StopMode mode);
  // Blocks until no task is left or the timeout passes; true when empty.
  bool wait_empty(std::chrono::milliseconds timeout);
  size_t size() const;

 private:
  struct Entry {
    net::any_io_executor executor;
    StopHook on_stop;
  };
  void finished(uint64_t id, std::exception_ptr error, const char* what);

  mutable std::mutex mutex_;
  std::condition_variable empty_;
  std::unordered_map<uint64_t, Entry> tasks_;
  uint64_t next_id_ = 0;
};

}  // namespace aurora::server
