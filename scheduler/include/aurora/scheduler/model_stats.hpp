// ModelStats: what the planner knows about a MoE model, per layer: routed traffic and compute times.
//
// Two forms of traffic, both in bytes of the dispatch all-to-all (combine is its transpose):
//  - experts form (the paper's): num_shards == num_experts and token shard s lives with expert s, so the
//    shard moves with its expert; traffic[s][e] is what the shard held with expert s sends to expert e.
//  - gpu form (modern serving): num_shards == number of GPUs and shard s lives on GPU s (data-parallel
//    attention); traffic[s][e] is what GPU s sends to expert e.
// Compute times are for a compute_speed 1.0 GPU: gate and aggregation per shard, expert FFN per byte of
// tokens it processes (local tokens included). top_k is already folded into the traffic.
// Plain value types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aurora::sched {

enum class ShardHome : uint8_t { kWithExpert, kOnGpu };

struct LayerStats {
  int num_shards = 0;
  int num_experts = 0;
  std::vector<int64_t> traffic;  // num_shards x num_experts, row-major, bytes
  double gate_s = 0;             // per shard
  double expert_s_per_byte = 0;  // expert FFN
  double aggregate_s = 0;        // per shard

  int64_t bytes(int shard, int expert) const { return traffic[static_cast<size_t>(shard) * num_experts + expert]; }
  int64_t expert_bytes(int expert) const;  // all bytes the expert processes (its column)
  int64_t shard_bytes(int shard) const;    // all bytes the shard sends (its row)
};

struct ModelStats {
  std::string name;
  ShardHome shard_home = ShardHome::kWithExpert;
  int64_t expert_memory_bytes = 0;  // weights of one expert (per layer)
  std::vector<LayerStats> layers;

  int num_experts() const { return layers.empty() ? 0 : layers[0].num_experts; }
};

}  // namespace aurora::sched
