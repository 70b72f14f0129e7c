#include "aurora/scheduler/cluster.hpp"

#include <algorithm>

namespace aurora::sched {

Cluster Cluster::homogeneous(int num_gpus, double gbps, double compute_speed, int64_t memory_bytes) {
  Cluster c;
  c.gpus.assign(static_cast<size_t>(num_gpus), GpuSpec::from_gbps(gbps, compute_speed, memory_bytes));
  return c;
}

bool Cluster::uniform_bandwidth() const {
  if (gpus.empty()) return true;
  const double b = gpus[0].send_bytes_per_s;
  return std::all_of(gpus.begin(), gpus.end(),
                     [b](const GpuSpec& g) { return g.send_bytes_per_s == b && g.recv_bytes_per_s == b; });
}

bool Cluster::homogeneous() const {
  if (!uniform_bandwidth()) return false;
  return std::all_of(gpus.begin(), gpus.end(), [this](const GpuSpec& g) {
    return g.compute_speed == gpus[0].compute_speed && g.memory_bytes == gpus[0].memory_bytes;
  });
}

double Cluster::pair_rate(int src, int dst) const {
  return std::min(gpus[static_cast<size_t>(src)].send_bytes_per_s, gpus[static_cast<size_t>(dst)].recv_bytes_per_s);
}

}  // namespace aurora::sched
