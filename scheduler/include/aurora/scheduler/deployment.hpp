// Deployment: which GPU(s) hold each expert of each model, per layer, and the GPU-level traffic that
// results. Expert e of layer l of model m may have replicas; each replica serves a share of its tokens.
// Plain value type; helpers are pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/model_stats.hpp"
#include "aurora/scheduler/traffic.hpp"

namespace aurora::sched {

struct Replica {
  int32_t gpu = 0;
  double share = 1.0;  // fraction of the expert's tokens (shares of one expert sum to 1)
};

struct ModelDeployment {
  std::vector<std::vector<std::vector<Replica>>> experts;  // [layer][expert] -> replicas (primary first)

  int32_t gpu_of(int layer, int expert) const {
    return experts[static_cast<size_t>(layer)][static_cast<size_t>(expert)][0].gpu;
  }
};

struct Deployment {
  std::vector<ModelDeployment> models;  // parallel to the ModelStats list

  // One replica per expert: gpu_of_expert[layer][expert].
  static ModelDeployment single(const std::vector<std::vector<int32_t>>& gpu_of_expert);
};

// GPU of token shard s of a model layer under a deployment (the expert's primary GPU in experts form).
int32_t shard_gpu(const ModelStats& model, const ModelDeployment& deployment, int layer, int shard);

// The dispatch traffic between GPUs of one model layer (diagonal: tokens that stay local). Bytes bound
// for a replicated expert are split by share (extra replicas floor(bytes * share), the primary the rest).
TrafficMatrix gpu_traffic(const ModelStats& model, const ModelDeployment& deployment, int layer, int num_gpus);

// Bytes each GPU's experts of this model layer process (local tokens included).
std::vector<int64_t> gpu_expert_bytes(const ModelStats& model, const ModelDeployment& deployment, int layer,
                                      int num_gpus);

// Expert weight bytes held per GPU over all layers and models.
std::vector<int64_t> gpu_memory_bytes(const std::vector<ModelStats>& models, const Deployment& deployment,
                                      int num_gpus);

}  // namespace aurora::sched
