#include "task_group.hpp"

#include <exception>

#include "log.hpp"

namespace aurora::server {

void TaskGroup::spawn(net::any_io_executor executor, awaitable<void> task, StopHook on_stop, const char* what) {
  uint64_t id = 0;
  {
    std::lock_guard lock(mutex_);
    id = next_id_++;
    tasks_.emplace(id, Entry{executor, std::move(on_stop)});
  }
  net::co_spawn(executor, std::move(task), [this, id, what](std::exception_ptr error) { finished(id, error, what); });
}

void TaskGroup::finished(uint64_t id, std::exception_ptr error, const char* what) {
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      log_error(std::string(what) + " ended with an exception: " + e.what());
    } catch (...) {
      log_error(std::string(what) + " ended with an unknown exception");
    }
  }
  std::lock_guard lock(mutex_);
  tasks_.erase(id);
  if (tasks_.empty()) empty_.notify_all();
}

void TaskGroup::request_stop(StopMode mode) {
  std::lock_guard lock(mutex_);
  for (auto& [id, entry] : tasks_) {
    if (!entry.on_stop) continue;
    net::post(entry.executor, [hook = entry.on_stop, mode] { hook(mode); });
  }
}

bool TaskGroup::wait_empty(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return empty_.wait_for(lock, timeout, [&] { return tasks_.empty(); });
}

size_t TaskGroup::size() const {
  std::lock_guard lock(mutex_);
  return tasks_.size();
}

}  // namespace aurora::server
