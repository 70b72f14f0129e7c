// Cluster: the GPUs the planner places experts on and orders transfers between.
//
// The network is a non-blocking big switch (the Aurora paper's model): a GPU is limited only by its
// own send and receive bandwidth. compute_speed is relative (1.0 = the reference GPU whose times
// the scenario gives); memory_bytes = 0 means "not limited". Plain value type.
#pragma once

#include <cstdint>
#include <vector>

namespace aurora::sched {

constexpr double gbps_to_bytes_per_s(double gbps) { return gbps * 1e9 / 8.0; }

struct GpuSpec {
  double send_bytes_per_s = 0;
  double recv_bytes_per_s = 0;
  double compute_speed = 1.0;
  int64_t memory_bytes = 0;

  static GpuSpec from_gbps(double gbps, double compute_speed = 1.0, int64_t memory_bytes = 0) {
    return GpuSpec{gbps_to_bytes_per_s(gbps), gbps_to_bytes_per_s(gbps), compute_speed, memory_bytes};
  }
};

struct Cluster {
  std::vector<GpuSpec> gpus;

  int num_gpus() const { return static_cast<int>(gpus.size()); }
  // n identical GPUs with symmetric bandwidth.
  static Cluster homogeneous(int num_gpus, double gbps, double compute_speed = 1.0, int64_t memory_bytes = 0);
  // True when every send and receive bandwidth is the same number (then every transfer runs at one rate).
  bool uniform_bandwidth() const;
  // True when bandwidths and compute speeds are all equal.
  bool homogeneous() const;
  // Rate of one transfer that has the sender and the receiver to itself (the phase model).
  double pair_rate(int src, int dst) const;
};

}  // namespace aurora::sched
