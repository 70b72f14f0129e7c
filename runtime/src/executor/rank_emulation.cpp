// RankEmulation: flags and validation (aurora/runtime/rank_emulation.hpp). The pacing itself lives
// in the expert-parallel MoE block (expert_parallel.cpp).
#include "aurora/runtime/rank_emulation.hpp"

#include "util/flag_values.hpp"

namespace aurora::runtime {

namespace {

const std::vector<EmulationFlagHelp> kHelp = {
    {"--emulate-link-gbps", "CPU ranks: pace every all-to-all as links of this bandwidth would (0 = off; default)"},
    {"--emulate-phase-latency-us", "CPU ranks: with --emulate-link-gbps, the cost of one exchange phase (default 0)"},
    {"--emulate-expert-us", "CPU ranks: expert compute takes at least this many microseconds per routed row (0 = off)"},
    {"--emulate-rank-speeds", "CPU ranks: relative expert speed per rank for --emulate-expert-us, e.g. 1,1,1,0.5"},
};

}  // namespace

const std::vector<EmulationFlagHelp>& emulation_flag_help() { return kHelp; }

Result<bool> apply_emulation_flag(RankEmulation& e, const std::string& flag, const std::string& value) {
  auto set = [&](double& field, double lo, double hi) -> Result<bool> {
    auto v = parse_flag_number(flag, value, lo, hi);
    if (!v) return v.error();
    field = *v;
    return true;
  };
  if (flag == "--emulate-link-gbps") return set(e.link_gbps, 0, 1e6);
  if (flag == "--emulate-phase-latency-us") return set(e.phase_latency_us, 0, 1e6);
  if (flag == "--emulate-expert-us") return set(e.expert_us_per_row, 0, 1e6);
  if (flag == "--emulate-rank-speeds") {
    auto speeds = parse_flag_list(flag, value, 1e-3, 1e3, "relative speeds like 1,1,1,0.5");
    if (!speeds) return speeds.error();
    e.rank_speeds = std::move(*speeds);
    return true;
  }
  return false;
}

Result<void> validate_rank_emulation(const RankEmulation& e, int32_t num_ranks, bool cpu_backend) {
  auto bad = [](const std::string& field, const std::string& what) {
    return Error::invalid("engine.emulation." + field, what);
  };
  if (!(e.link_gbps >= 0)) return bad("link_gbps", "must be >= 0, got " + format_flag_number(e.link_gbps));
  if (!(e.phase_latency_us >= 0)) {
    return bad("phase_latency_us", "must be >= 0, got " + format_flag_number(e.phase_latency_us));
  }
  if (!(e.expert_us_per_row >= 0)) {
    return bad("expert_us_per_row", "must be >= 0, got " + format_flag_number(e.expert_us_per_row));
  }
  const bool any = e.paces_links() || e.paces_experts() || e.phase_latency_us > 0 || !e.rank_speeds.empty();
  if (any && !cpu_backend) {
    return bad("link_gbps",
               "rank emulation paces in-process CPU ranks; a GPU backend has real links and experts "
               "(emulate heterogeneity there with docs/multi_gpu.md's SM partitions)");
  }
  if (!e.rank_speeds.empty()) {
    if (static_cast<int32_t>(e.rank_speeds.size()) != num_ranks) {
      return bad("rank_speeds", "must list one speed per rank (" + std::to_string(num_ranks) + "), got " +
                                    std::to_string(e.rank_speeds.size()));
    }
    for (size_t r = 0; r < e.rank_speeds.size(); ++r) {
      if (!(e.rank_speeds[r] > 0)) {
        return bad("rank_speeds[" + std::to_string(r) + "]",
                   "must be > 0, got " + format_flag_number(e.rank_speeds[r]));
      }
    }
    if (!e.paces_experts()) return bad("rank_speeds", "needs expert pacing (--emulate-expert-us > 0)");
  }
  if (e.phase_latency_us > 0 && !e.paces_links()) {
    return bad("phase_latency_us", "needs link pacing (--emulate-link-gbps > 0)");
  }
  return {};
}

}  // namespace aurora::runtime
