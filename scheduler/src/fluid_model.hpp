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
  // flow. Returns the time the last one ends. Rates are re-allocated whenever a flow ends, but at most
  // once per min_step_s (0 = at every end: the exact max-min fluid model); flows that end inside a step
  // leave their capacity unused until the step ends, so a positive step can only lengthen the result.
  double all_at_once_s(std::span<const Transfer> transfers, const Cluster& cluster, double min_step_s = 0);
  // The cost model of one barrier phase: exact (min_step 0) when `exact` or up to kExactFluidMaxFlows
  // flows, else rates re-allocated at most kFluidStepsPerBound times per per-port bound of the phase
  // (keeps per-step planning at n = 64 within budget; the error is bounded in docs/scheduler.md).
  static constexpr size_t kExactFluidMaxFlows = 64;
  static constexpr double kFluidStepsPerBound = 128;
  // With a phase latency, the step may also grow to latency / kStepsPerLatency: the error then stays a
  // small fraction of one phase latency, the unit in which the plans it is compared with differ.
  static constexpr double kStepsPerLatency = 20;
  double phase_s(std::span<const Transfer> transfers, const Cluster& cluster, bool exact, double latency_s = 0);
  // Each GPU sends the transfers of queue order one at a time (waiting latency_s before each); receivers
  // share their port max-min fairly among the senders currently sending to them.
  // queue_of_src[g] = indices into transfers in send order.
  double streams_s(std::span<const Transfer> transfers, const std::vector<std::vector<uint32_t>>& queue_of_src,
                   const Cluster& cluster, double latency_s);

 uint64_t rate_allocations = 0;  // water-fills performed (for benchmarks)

 private:
  void water_fill(const Cluster& cluster);
  void fill_receivers(const Cluster& cluster);

  struct Flow {
    int32_t src, dst;
    double remaining;
    double rate;
  };
  std::vector<Flow> flows_;
  std::vector<double> cap_, share_;
  std::vector<int32_t> count_;
  std::vector<uint32_t> port_begin_, port_fill_, port_flows_, active_ports_, order_;
  std::vector<int64_t> pair_bytes_;
  std::vector<double> port_bytes_;
};

}  // namespace aurora::sched::detail
