// DeviceRunner: runs one model's engine steps on an accelerator backend (the CUDA backend: one
// GPU, bf16 weights, decode steps as CUDA graphs), in place of the CPU ModelExecutor. It owns the
// model's device weights and paged KV cache; the engine keeps the block tables (BlockAllocator
// over num_kv_blocks()) and hands it StepBatches.
//
// Thread safety: driven by one engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/kernels/sampling.hpp"
#include "aurora/runtime/backend.hpp"
#include "executor/step_batch.hpp"

namespace aurora::runtime {

struct Model;

struct DeviceRunnerOptions {
  int32_t max_tokens_per_step = 512;
  int32_t max_seqs_per_step = 64;
  int32_t kv_block_size = 16;
  int32_t max_context = 4096;
  int64_t kv_cache_tokens = 0;  // 0 = what gpu_memory_fraction leaves
  double gpu_memory_fraction = 0.90;
  bool random_weights = false;  // generate weights on the device from model.config
  uint64_t seed = 0;
  // Expert parallelism: spare expert slots per MoE layer and rank for online re-placement
  // (OnlineOptions::expert_spare_slots; -1 = auto, as memory allows).
  int32_t expert_spare_slots = 0;
};

class PlacementHost;

class DeviceRunner {
 public:
  virtual ~DeviceRunner() = default;
  // One step. With `rows`, logits row r is sampled on the device into tokens[r] (result.logits is
  // null); without, the logits rows come back in result.logits (host memory).
  virtual const StepResult& execute(const StepBatch& batch, const kernels::SamplingRow* rows, int32_t* tokens) = 0;
  virtual int32_t num_kv_blocks() const = 0;
  virtual std::string memory_report() const = 0;  // device, weights, activations, KV cache
  // The online planner's handle on this model's expert placement (expert-parallel runners that
  // can move experts), else null. Owned by the runner.
  virtual PlacementHost* placement_host() { return nullptr; }
};

// The runner of `model` on `backend` (a device backend from make_backend). Errors: kUnsupported
// (no device support built, or a model shape the kernels do not take), kResourceExhausted (memory).
Result<std::unique_ptr<DeviceRunner>> make_device_runner(const Model& model, const DeviceRunnerOptions& options,
                                                         Backend& backend);

// One step of one model of a colocated group (DeviceRunner::execute's arguments).
struct DeviceStep {
  const StepBatch* batch = nullptr;  // null: the model sits this step out
  const kernels::SamplingRow* rows = nullptr;
  int32_t* tokens = nullptr;
};

// Models that share devices and step together (colocation: their steps interleave on the GPUs).
class ColocatedDevice {
 public:
  virtual ~ColocatedDevice() = default;
  // results[m] is null for a model without a batch. Valid until the next call.
  virtual std::vector<const StepResult*> execute_together(std::span<const DeviceStep> steps) = 0;
};

// Expert parallelism over `num_ranks` GPUs (the backend's device and the next ones), for one
// model or two colocated models (both models' experts placed together on every GPU). One
// DeviceRunner per model (its chunks name their rank) and, for two models, the driver that steps
// them together. num_kv_blocks() is per rank. Errors as make_device_runner; kUnavailable when the
// machine has fewer GPUs.
struct DeviceGroup {
  std::vector<std::unique_ptr<DeviceRunner>> runners;
  std::shared_ptr<ColocatedDevice> together;  // null for one model
};
Result<DeviceGroup> make_expert_parallel_runners(const std::vector<const Model*>& models,
                                                 const DeviceRunnerOptions& options, int32_t num_ranks,
                                                 Backend& backend);

}  // namespace aurora::runtime
