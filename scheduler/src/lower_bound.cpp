#include "aurora/scheduler/lower_bound.hpp"

#include <algorithm>

#include "aurora/config/check.hpp"

namespace aurora::sched {

double all_to_all_lower_bound_s(const TrafficMatrix& traffic, const Cluster& cluster) {
  const int n = traffic.num_gpus();
  AURORA_CHECK_MSG(cluster.num_gpus() == n, "traffic has " << n << " GPUs, cluster " << cluster.num_gpus());
  double bound = 0;
  for (int g = 0; g < n; ++g) {
    const GpuSpec& spec = cluster.gpus[static_cast<size_t>(g)];
    bound = std::max(bound, static_cast<double>(traffic.network_send_bytes(g)) / spec.send_bytes_per_s);
    bound = std::max(bound, static_cast<double>(traffic.network_recv_bytes(g)) / spec.recv_bytes_per_s);
  }
  return bound;
}

double matching_lower_bound_s(const TrafficMatrix& traffic, const Cluster& cluster) {
  const int n = traffic.num_gpus();
  AURORA_CHECK_MSG(cluster.num_gpus() == n, "traffic has " << n << " GPUs, cluster " << cluster.num_gpus());
  if (cluster.uniform_bandwidth()) return all_to_all_lower_bound_s(traffic, cluster);
  double bound = 0;
  std::vector<double> col(static_cast<size_t>(n), 0.0);
  for (int i = 0; i < n; ++i) {
    double row = 0;
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      const double t = static_cast<double>(traffic(i, j)) / cluster.pair_rate(i, j);
      row += t;
      col[static_cast<size_t>(j)] += t;
    }
    bound = std::max(bound, row);
  }
  for (double c : col) bound = std::max(bound, c);
  return bound;
}

}  // namespace aurora::sched
