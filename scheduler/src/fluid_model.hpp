// Internal: max-min fair-share fluid simulations of transfers sharing GPU ports (the cost model of
// all-at-once phases and of barrier-free stream orders). Not a public header.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/transmission_plan.hpp"

namespace aurora::sched::detail {

// Reusable buffers for the simulations (one per planner).
class FluidSimulator {
 public:
  // All transfers start at 0 and share ports max-min fairly; transfers with the same (src, dst) are one
  // flow. Returns the time the last one ends.
  double all_at_once_s(std::span<const Transfer> transfers, const Cluster& cluster);
  // Each GPU sends the transfers of queue order one at a time (waiting latency_s before each); receivers
  // share their port max-min fairly among the senders currently sending to them.
  // queue_of_src[g] = indices into transfers in send order.
  double streams_s(std::span<const Transfer> transfers, const std::vector<std::vector<uint32_t>>& queue_of_src,
                   const Cluster& cluster, double latency_s);

 private:
  void water_fill(const Cluster& cluster);

  struct Flow {
    int32_t src, dst;
    double remaining;
    double rate;
  };
  std::vector<Flow> flows_;
  std::vector<double> cap_;
  std::vector<int32_t> count_;
  std::vector<std::vector<uint32_t>> on_port_;
  std::vector<int64_t> pair_bytes_;
};

}  // namespace aurora::sched::detail
