// Internal: max-min fair-share fluid simulations of transfers sharing GPU ports (the cost model of
// all-at-once phases and of barrier-free stream orders). Not a public header.
//
// Contract: every simulation is deterministic; a give_up_s below infinity lets a simulation stop early
// and return infinity, which it does only when its result is certainly above give_up_s (a port's bytes
// still to move already need longer). Not thread-safe: one simulator per planner.
#pragma once

#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/transmission_plan.hpp"

namespace aurora::sched::detail {

// Reusable buffers for the simulations (one per planner).
class FluidSimulator {
 public:
  static constexpr double kNever = std::numeric_limits<double>::infinity();

  // All transfers start at 0 and share ports max-min fairly; transfers with the same (src, dst) are one
  // flow. Returns the time the last one ends. Rates are re-allocated whenever a flow ends, but at most
  // once per min_step_s (0 = at every end: the exact max-min fluid model); flows that end inside a step
  // leave their capacity unused until the step ends, so a positive step can only lengthen the result.
  double all_at_once_s(std::span<const Transfer> transfers, const Cluster& cluster, double min_step_s = 0,
                       double give_up_s = kNever);
  // The cost model of one barrier phase: exact (min_step 0) when `exact` or up to kExactFluidMaxFlows
  // flows, else rates re-allocated at most kFluidStepsPerBound times per per-port bound of the phase
  // (keeps per-step planning at n = 64 within budget; the error is bounded in docs/scheduler.md).
  static constexpr size_t kExactFluidMaxFlows = 64;
  static constexpr double kFluidStepsPerBound = 128;
  // With a phase latency, the step may also grow to latency / kStepsPerLatency: the error then stays a
  // small fraction of one phase latency, the unit in which the plans it is compared with differ.
  static constexpr double kStepsPerLatency = 20;
  double phase_s(std::span<const Transfer> transfers, const Cluster& cluster, bool exact, double latency_s = 0,
                 double give_up_s = kNever);
  // Each GPU sends the transfers of queue order one at a time (waiting latency_s before each; consecutive
  // transfers to the same GPU go as one send); receivers share their port max-min fairly among the
  // senders currently sending to them. queue_of_src[g] = indices into transfers in send order.
  double streams_s(std::span<const Transfer> transfers, const std::vector<std::vector<uint32_t>>& queue_of_src,
                   const Cluster& cluster, double latency_s, double give_up_s = kNever);
  // The max-min fair rates (bytes/s) of flows that are all active at once, one per distinct (src, dst)
  // pair with src != dst (transfer bytes are ignored): rates[k] is flows[k]'s. For tests and diagnostics.
  void max_min_rates(std::span<const Transfer> flows, const Cluster& cluster, std::vector<double>& rates);

  uint64_t rate_allocations = 0;  // water-fills performed (for benchmarks)

 private:
  void reset_ports(int n);
  void set_flow(int n, int src, int dst, bool on);
  void water_fill(const Cluster& cluster);
  void settle_receiver(int dst, double now, const Cluster& cluster);

  struct Flow {
    int32_t src, dst;
    double remaining;
    double rate;
    double time;  // to its end at the current rate
  };
  std::vector<Flow> flows_;
  std::vector<int64_t> pair_bytes_;
  std::vector<double> port_bytes_;
  // water_fill: per port (send 0..n-1, receive n..2n-1) a bitset of the other side's GPUs with an active
  // flow (words_ words each) and the active-flow count; per fill the residual capacity, unfrozen flows,
  // and the still open ports as a compact list of (port, share) with pos_ mapping a port to its slot.
  size_t words_ = 0;
  std::vector<uint64_t> adj_, open_;
  std::vector<uint32_t> degree_, unfrozen_, act_id_, pos_;
  std::vector<double> res_, level_, inv_level_, recip_, act_share_, port_left_;
  // streams_s: per sender its queue position and current send (receiver, bytes left as of `since`, rate)
  // or the send it starts next; key_ its next event (end of its send, or start of the next); per
  // receiver its current senders.
  struct Sender {
    size_t next = 0;
    int32_t dst = -1;       // receiver of the current send, -1 when none is running
    int32_t wait_dst = -1;  // receiver of the send that starts at ready_at
    double wait_bytes = 0;
    double left = 0, since = 0, rate = 0;  // of the current send
    size_t unstarted = 0;                  // transfers not started yet (for the give-up bound)
    double unstarted_bytes = 0;
  };
  std::vector<Sender> senders_;
  std::vector<int32_t> recv_senders_;  // n x n: receiver j's current senders, by send bandwidth
  std::vector<int32_t> recv_count_, dirty_list_;
  std::vector<double> key_;
  std::vector<double> recv_unstarted_, recv_left_;
  std::vector<uint8_t> recv_dirty_;
};

}  // namespace aurora::sched::detail
