// Private: ServerState, what every session shares: the configuration, the engine handle, the
// metrics, the routes, the drain flag and the task group of live sessions.
//
// Thread safety: engine() and draining() are safe from any thread; config, hosts and routes are
// immutable once the server has started.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "aurora/config/server_config.hpp"
#include "aurora/runtime/engine.hpp"
#include "aurora/server/server.hpp"
#include "http_framing.hpp"
#include "metrics.hpp"
#include "task_group.hpp"

namespace aurora::server {

struct CustomRoute {
  std::string method;
  std::string path;
  RouteHandler handler;
};

struct ServerState {
  explicit ServerState(config::ServerConfig c);

  const config::ServerConfig config;
  HostPolicy hosts;  // from config.allowed_hosts and the bind address; set by start() before any session
  // config.max_connections, lowered by start() when the open-file limit cannot hold it.
  int32_t max_connections;
  const int64_t start_time_s;  // unix seconds, for `created` of /v1/models
  Metrics metrics;
  TaskGroup sessions;
  std::vector<CustomRoute> routes;
  std::atomic<bool> draining{false};

  // Descriptors the server plans to hold: the connections, the reserve and the spare.
  int64_t open_files_needed() const;

  std::shared_ptr<runtime::Engine> engine() const {
    std::lock_guard lock(engine_mutex_);
    return engine_;
  }
  // Whether the engine has had work and finished no step for at least `ms` (a wedged engine, not a
  // slow one: the no-progress timer of a request fires only then).
  bool engine_stalled_for(int64_t ms) const {
    auto e = engine();
    return e && e->progress().seconds_without_progress * 1000.0 >= static_cast<double>(ms);
  }
  void set_engine(std::shared_ptr<runtime::Engine> engine) {
    std::lock_guard lock(engine_mutex_);
    engine_ = std::move(engine);
  }

 private:
  mutable std::mutex engine_mutex_;
  std::shared_ptr<runtime::Engine> engine_;
};

}  // namespace aurora::server
