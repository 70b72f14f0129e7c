// RankEmulation: in-process CPU ranks paced like a cluster with slower links and expert compute, so
// that placement and transfer order cost on a 2-core machine what they cost on real hardware.
//
// Contract. The arithmetic still runs for real (tokens are exactly those of an unpaced run); only
// time is added, by sleeping (no CPU is burnt, so 4 ranks on 2 cores do not distort each other):
//  - expert compute: rank r's local experts of one MoE layer take at least
//      rows_r x expert_us_per_row / rank_speeds[r]
//    (the real compute counts towards it). A rank holding hot experts is slower, as on a GPU.
//  - links: each all-to-all takes, on top of its memory copies, the time the scheduler's network
//    model (sched::predict_makespan_s: fluid fair sharing of each rank's send and receive port at
//    link_gbps, phase_latency_us per phase) gives for the plan that ran: a contended all-at-once
//    exchange costs more than a well-ordered one, and traffic to a hot rank queues at its port.
//    The count exchange (all-gather of row counts) costs one phase latency.
// The measured times the engine reports (expert seconds, exchange seconds, step time) include the
// pacing, so the online planner sees the emulated cluster. Off (all zero) by default. CPU backend
// only. docs/online.md, "Emulated cluster".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

struct RankEmulation {
  double link_gbps = 0.0;           // 0 = links at memory speed (no pacing)
  double phase_latency_us = 0.0;    // per exchange phase, with link_gbps
  double expert_us_per_row = 0.0;   // 0 = expert compute unpaced
  std::vector<double> rank_speeds;  // relative expert speed per rank; empty = all 1

  bool paces_links() const { return link_gbps > 0.0; }
  bool paces_experts() const { return expert_us_per_row > 0.0; }
  double rank_speed(int32_t rank) const { return rank_speeds.empty() ? 1.0 : rank_speeds[static_cast<size_t>(rank)]; }
};

// Sets one emulation flag (`--emulate-link-gbps 2`, `--emulate-phase-latency-us 50`,
// `--emulate-expert-us 200`, `--emulate-rank-speeds 1,1,1,0.5`). Returns false when `flag` is not
// an emulation flag; errors name the flag and the value.
Result<bool> apply_emulation_flag(RankEmulation& emulation, const std::string& flag, const std::string& value);
struct EmulationFlagHelp {
  const char* flag;
  const char* help;
};
const std::vector<EmulationFlagHelp>& emulation_flag_help();
// Checks the emulation for `num_ranks` ranks on a host-memory (CPU) backend or not; errors name
// engine.emulation.<field>.
Result<void> validate_rank_emulation(const RankEmulation& emulation, int32_t num_ranks, bool cpu_backend);

}  // namespace aurora::runtime
