// Private: the server's Prometheus metrics. vLLM's set under the `aurora:` prefix (per model, label
// model_name), the front end's own counters, and the engine's gauges and per-layer MoE statistics
// read from EngineStats at scrape time.
//
// Contract: every observe/add is lock-free (relaxed atomics) and may be called from engine threads
// (TokenSink callbacks) and io threads alike. model() returns a pointer that stays valid for the
// Metrics' lifetime.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "aurora/runtime/engine.hpp"

namespace aurora::server {

class Histogram {
 public:
  explicit Histogram(std::span<const double> upper_bounds);
  void observe(double value);
  // Appends the _bucket/_sum/_count lines; `labels` is `name="value",...` or "".
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // non-cumulative; +Inf is count_
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

struct ModelMetrics {
  ModelMetrics();
  Histogram time_to_first_token;
  Histogram inter_token_latency;
  Histogram e2e_request_latency;
  Histogram request_queue_time;
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> generation_tokens{0};
  // finished_reason: stop, length, abort, error
  std::array<std::atomic<uint64_t>, 4> request_success{};
};

enum class RejectReason { kQueueFull, kDraining, kLoading, kTooManyConnections, kWsInflight, kCount };

class Metrics {
 public:
  ModelMetrics* model(const std::string& name);

  std::atomic<int64_t> connections_open{0};
  std::atomic<int64_t> streams_open{0};
  std::atomic<uint64_t> client_disconnects{0};
  std::atomic<uint64_t> no_progress_cancels{0};  // requests ended for getting no token in time
  std::array<std::atomic<uint64_t>, static_cast<size_t>(RejectReason::kCount)> rejected{};
  // Responses by status class: 2xx, 3xx, 4xx, 5xx (index status / 100 - 2).
  std::array<std::atomic<uint64_t>, 4> responses{};

  void count_response(int status);
  void count_rejection(RejectReason reason) {
    rejected[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }

  // The Prometheus text exposition (format 0.0.4). `engine` may be null while loading.
  std::string render(const runtime::Engine* engine) const;

 private:
  mutable std::mutex mutex_;  // guards the map's shape only
  std::map<std::string, std::unique_ptr<ModelMetrics>> models_;
};

}  // namespace aurora::server
