// ExpertParallelGroup: one model, or two colocated models, served with expert parallelism over
// this process's GPUs (docs/multi_gpu.md). Per model and GPU a CudaModelRunner (its own compute
// stream and its own communication stream), one NCCL communicator per model, one ComputeTurns per
// GPU when two models share it, and one thread per (model, GPU): the engine thread runs the first
// and a RankPool the others.
//
// Placement: the scheduler's deployment (plan_model_placements: exclusive, or both models' experts
// placed together when colocated) on ranks that may differ (RankSpec: measured speeds), unless
// the caller gives placements. Attention and dense layers are data parallel: every GPU holds them
// and runs them for the sequences the engine put on it (chunk.rank).
//
// Thread safety: execute() from one thread at a time. If a rank fails, every communicator and
// turn is aborted (no rank waits forever) and execute() throws; the group is unusable afterwards.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"
#include "aurora/config/model_config.hpp"
#include "cuda_runner.hpp"
#include "executor/compute_turns.hpp"
#include "executor/placement_planner.hpp"
#include "executor/rank_pool.hpp"
#include "nccl_communicator.hpp"

namespace aurora::runtime {
struct Model;
}

namespace aurora::runtime::cuda {

struct EpGroupModel {
  std::string name;
  config::ModelConfig config;
  const Model* weights = nullptr;  // a loaded checkpoint, or null: random weights from `seed`
  uint64_t seed = 0;
};

struct EpGroupOptions {
  std::vector<int> devices;  // one rank per GPU, in rank order
  // Spare expert slots per MoE layer and rank (online re-placement: copies of experts moving in
  // land there; cuda_placement_host.hpp), capped at the layer's expert count. -1 = auto: half the
  // experts a rank holds, fewer when they would take more than a quarter of the memory the weights
  // leave free.
  int32_t expert_spare_slots = 0;
  CudaRunnerOptions runner;          // per rank and model; kv_cache_tokens = 0: an even share of memory
  std::vector<RankSpec> rank_specs;  // for the placement (measured speeds); empty = identical ranks
  double link_gbps = 2400.0;         // the exchange planner's port bandwidth (NVLink-class default)
  double phase_latency_s = 20e-6;    // its per-phase cost (one grouped send/recv)
  bool all_at_once = false;          // baseline: every exchange in one phase (NCCL's plain all-to-all)
  NcclOptions nccl;
  std::vector<ExpertPlacement> placements;  // optional, one per model
  bool timeline = false;
  // Per model and rank, the compute stream to use (e.g. an SmPartition's: a slower GPU); empty or
  // null = the runner's own.
  std::vector<std::vector<cudaStream_t>> compute_streams;
};

struct GroupStep {
  const StepBatch* batch = nullptr;            // null: the model sits this step out
  const kernels::SamplingRow* rows = nullptr;  // as DeviceRunner::execute
  int32_t* tokens = nullptr;
};

struct GroupTimelineSpan {
  int32_t gpu = 0;
  int32_t model = 0;
  TimelineSpan span;
};

class ExpertParallelGroup {
 public:
  static Result<std::unique_ptr<ExpertParallelGroup>> create(std::vector<EpGroupModel> models,
                                                             const EpGroupOptions& options);
  ~ExpertParallelGroup();
  ExpertParallelGroup(const ExpertParallelGroup&) = delete;
  ExpertParallelGroup& operator=(const ExpertParallelGroup&) = delete;

  int32_t num_models() const { return static_cast<int32_t>(models_.size()); }
  int32_t num_ranks() const { return static_cast<int32_t>(options_.devices.size()); }
  bool colocated() const { return models_.size() == 2; }
  int32_t num_kv_blocks(int32_t model) const;  // per rank (the smallest over the ranks)
  const ExpertPlacement& placement(int32_t model) const { return *placements_[static_cast<size_t>(model)]; }
  // Online re-placement (between steps): the placement in force for `model` (its runners get theirs
  // through CudaModelRunner::set_expert_placement; see cuda_placement_host.hpp).
  void set_placement(int32_t model, std::shared_ptr<const ExpertPlacement> placement);
  int device(int32_t rank) const { return options_.devices[static_cast<size_t>(rank)]; }
  int32_t expert_spare_slots() const { return options_.expert_spare_slots; }  // resolved (never -1)
  std::string memory_report(int32_t model) const;
  CudaModelRunner& runner(int32_t model, int32_t rank) const;

  // One step of every model whose GroupStep has a batch, together. results[m] is null for a model
  // that sat out; valid until the next call. Chunks name their rank (the GPU holding their KV).
  // Results carry every rank's measured expert and exchange times (rank_timing) and, per layer,
  // the exchanges' measured time (the minimum over ranks, as the CPU executor reports it).
  std::vector<const StepResult*> execute(std::span<const GroupStep> steps);

  void enable_timeline(bool on);
  // The last step's spans per GPU and model, in ms after the step started on that GPU.
  std::vector<GroupTimelineSpan> last_timeline() const;

 private:
  struct RankSplit;
  ExpertParallelGroup() = default;
  void run_rank(int32_t model, int32_t rank);

  EpGroupOptions options_;
  std::vector<EpGroupModel> models_;
  std::vector<std::shared_ptr<const ExpertPlacement>> placements_;
  std::vector<std::unique_ptr<NcclCommunicator>> comms_;                // per model
  std::vector<std::vector<std::unique_ptr<CudaModelRunner>>> runners_;  // [model][rank]
  std::vector<std::unique_ptr<ComputeTurns>> turns_;                    // per GPU (colocated)
  std::vector<cudaStream_t> mark_streams_;                              // per GPU: step-start events
  std::vector<cudaEvent_t> step_start_;                                 // per GPU
  std::unique_ptr<RankPool> pool_;
  std::vector<std::vector<RankSplit>> splits_;  // [model][rank]
  std::vector<StepResult> results_;             // per model
  std::vector<std::vector<float>> logits_;      // per model, host rows when not sampled on the device
  std::span<const GroupStep> steps_;
  bool failed_ = false;
};

}  // namespace aurora::runtime::cuda
