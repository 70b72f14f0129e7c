// Lower bounds on the time of one all-to-all (Aurora paper Thm 4.2 / 5.2), no latency.
//
// all_to_all_lower_bound_s: max over GPUs of (bytes sent to others / send bandwidth) and
//   (bytes received from others / receive bandwidth). No schedule of any kind can beat it.
// matching_lower_bound_s: the same with each transfer i->j weighted by 1 / min(send_i, recv_j), i.e.
//   the exact optimum among plans whose phases are matchings (each GPU talks to one peer at a time,
//   each transfer at the slower port's rate). Equal to the per-port bound when all bandwidths are equal.
// Pure functions; O(n^2).
#pragma once

#include "aurora/scheduler/cluster.hpp"
#include "aurora/scheduler/traffic.hpp"

namespace aurora::sched {

double all_to_all_lower_bound_s(const TrafficMatrix& traffic, const Cluster& cluster);
double matching_lower_bound_s(const TrafficMatrix& traffic, const Cluster& cluster);

}  // namespace aurora::sched
