// ModelInstance: everything the engine keeps for one served model: weights, tokenizer, the
// expert-parallel executor, the batch scheduler, routing statistics and per-step scratch.
// Built by create_engine; stepped by the engine thread only (stats readers take the engine's
// stats mutex or use RoutingStats' own lock).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "aurora/runtime/engine.hpp"
#include "aurora/runtime/routing_stats.hpp"
#include "aurora/runtime/tokenizer.hpp"
#include "engine/batch_scheduler.hpp"
#include "executor/device_runner.hpp"
#include "executor/model_executor.hpp"
#include "model/model.hpp"

namespace aurora::runtime {

struct ModelInstance {
  std::string name;
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::vector<int32_t> eos_ids;  // sorted, unique
  ModelInfo info;
  int32_t max_context = 0;
  std::unique_ptr<ModelExecutor> executor;  // CPU backend
  std::unique_ptr<DeviceRunner> device;     // device backend (CUDA): instead of the executor
  // Colocated models (device backend): the driver that steps them together, shared by both.
  std::shared_ptr<ColocatedDevice> together;
  std::unique_ptr<BatchScheduler> scheduler;
  std::unique_ptr<RoutingStats> routing;

  // Per-step scratch, reused (no allocation in the steady state).
  StepBatch batch;
  std::vector<ScheduledChunk> sampled_chunks;
  std::vector<kernels::SamplingRow> sampling_rows;
  std::vector<int32_t> sampled_tokens;
  DeviceBuffer sampling_workspace;
  std::vector<unsigned char> host_sampling_workspace;  // device runner, when logits come to the host
  std::vector<float> processed_logits;                 // host logits after the logits processors (penalties, ...)
  bool sample_on_device = false;                       // this step's choice (set when the batch is prepared)
  Clock::time_point step_start;                        // when this step was prepared (online statistics: step time)

  // Last step's all-to-all cost per layer (guarded by the engine's stats mutex).
  std::vector<LayerExchangeCost> last_exchange;

  bool is_eos(int32_t id) const;
};

}  // namespace aurora::runtime
