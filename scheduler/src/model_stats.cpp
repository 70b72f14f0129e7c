#include "aurora/scheduler/model_stats.hpp"

namespace aurora::sched {

int64_t LayerStats::expert_bytes(int expert) const {
  int64_t sum = 0;
  for (int s = 0; s < num_shards; ++s) sum += bytes(s, expert);
  return sum;
}

int64_t LayerStats::shard_bytes(int shard) const {
  int64_t sum = 0;
  for (int e = 0; e < num_experts; ++e) sum += bytes(shard, e);
  return sum;
}

}  // namespace aurora::sched
