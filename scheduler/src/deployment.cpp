#include "aurora/scheduler/deployment.hpp"

#include "aurora/config/check.hpp"

namespace aurora::sched {

ModelDeployment Deployment::single(const std::vector<std::vector<int32_t>>& gpu_of_expert) {
  ModelDeployment d;
  d.experts.resize(gpu_of_expert.size());
  for (size_t l = 0; l < gpu_of_expert.size(); ++l)
    for (int32_t g : gpu_of_expert[l]) d.experts[l].push_back({Replica{g, 1.0}});
  return d;
}

int32_t shard_gpu(const ModelStats& model, const ModelDeployment& deployment, int layer, int shard) {
  return model.shard_home == ShardHome::kOnGpu ? shard : deployment.gpu_of(layer, shard);
}

namespace {
// Calls fn(gpu, bytes) for the parts of `bytes` bound for a (possibly replicated) expert: each extra
// replica gets floor(bytes * share), the primary the rest, so the parts add up exactly.
template <class Fn>
void split_to_replicas(const std::vector<Replica>& replicas, int64_t bytes, Fn&& fn) {
  if (replicas.size() == 1) {
    fn(replicas[0].gpu, bytes);
    return;
  }
  int64_t given = 0;
  for (size_t r = 1; r < replicas.size(); ++r) {
    const auto part = static_cast<int64_t>(static_cast<double>(bytes) * replicas[r].share);
    fn(replicas[r].gpu, part);
    given += part;
  }
  fn(replicas[0].gpu, bytes - given);
}
}  // namespace

TrafficMatrix gpu_traffic(const ModelStats& model, const ModelDeployment& deployment, int layer, int num_gpus) {
  const LayerStats& ls = model.layers[static_cast<size_t>(layer)];
  TrafficMatrix m(num_gpus);
  for (int s = 0; s < ls.num_shards; ++s) {
    const int src = shard_gpu(model, deployment, layer, s);
    for (int e = 0; e < ls.num_experts; ++e) {
      const int64_t b = ls.bytes(s, e);
      if (b == 0) continue;
      split_to_replicas(deployment.experts[static_cast<size_t>(layer)][static_cast<size_t>(e)], b,
                        [&](int32_t dst, int64_t part) { m(src, dst) += part; });
    }
  }
  return m;
}

std::vector<int64_t> gpu_expert_bytes(const ModelStats& model, const ModelDeployment& deployment, int layer,
                                      int num_gpus) {
  const LayerStats& ls = model.layers[static_cast<size_t>(layer)];
  std::vector<int64_t> out(static_cast<size_t>(num_gpus), 0);
  for (int e = 0; e < ls.num_experts; ++e) {
    const int64_t b = ls.expert_bytes(e);
    split_to_replicas(deployment.experts[static_cast<size_t>(layer)][static_cast<size_t>(e)], b,
                      [&](int32_t g, int64_t part) { out[static_cast<size_t>(g)] += part; });
  }
  return out;
}

std::vector<int64_t> gpu_memory_bytes(const std::vector<ModelStats>& models, const Deployment& deployment,
                                      int num_gpus) {
  AURORA_CHECK(models.size() == deployment.models.size());
  std::vector<int64_t> out(static_cast<size_t>(num_gpus), 0);
  for (size_t m = 0; m < models.size(); ++m)
    for (const auto& layer : deployment.models[m].experts)
      for (const auto& replicas : layer)
        for (const Replica& r : replicas) out[static_cast<size_t>(r.gpu)] += models[m].expert_memory_bytes;
  return out;
}

}  // namespace aurora::sched
