// The runtime's ExchangePlanner backed by the Aurora planner (aurora::sched::AllToAllPlanner).
#include "aurora/runtime/exchange_plan.hpp"
#include "aurora/scheduler/all_to_all.hpp"

#include <optional>

namespace aurora::runtime {
namespace {

class AuroraExchangePlanner final : public ExchangePlanner {
 public:
  AuroraExchangePlanner(int32_t num_ranks, double link_gbps, double phase_latency_s,
                        std::optional<sched::OrderStrategy> forced = std::nullopt)
      : cluster_(sched::Cluster::homogeneous(num_ranks, link_gbps)), traffic_(num_ranks) {
    options_.phase_latency_s = phase_latency_s;
    options_.policy = forced ? sched::ChoicePolicy::kForce : sched::ChoicePolicy::kBestPredicted;
    if (forced) options_.forced_strategy = *forced;
  }

  std::string name() const override { return "aurora"; }

  const ExchangePlan& plan(const TrafficMatrix& traffic) override {
    const int n = traffic.num_ranks;
    traffic_.assign_zero(n);
    for (int s = 0; s < n; ++s) {
      for (int d = 0; d < n; ++d) traffic_(s, d) = traffic.at(s, d);
    }
    const sched::TransmissionPlan& p = planner_.plan(traffic_, cluster_, options_);
    plan_.strategy = sched::order_strategy_name(p.strategy);
    plan_.phases.resize(p.num_phases());
    for (size_t k = 0; k < p.num_phases(); ++k) {
      auto& phase = plan_.phases[k];
      phase.clear();
      // Barrier-free plans (each GPU sends its transfers in order, no global phases) run here
      // with a barrier after each position in the order: same data, conservative timing.
      for (const auto& t : p.phase_transfers(k)) phase.push_back(Transfer{t.src_gpu, t.dst_gpu, t.bytes});
    }
    plan_.estimated_seconds = p.makespan_s;
    plan_.lower_bound_seconds = p.lower_bound_s;
    return plan_;
  }

 private:
  sched::Cluster cluster_;
  sched::AllToAllOptions options_;
  sched::AllToAllPlanner planner_;
  sched::TrafficMatrix traffic_;
  ExchangePlan plan_;
};

}  // namespace

std::unique_ptr<ExchangePlanner> make_aurora_planner(int32_t num_ranks, double link_gbps, double phase_latency_s) {
  return std::make_unique<AuroraExchangePlanner>(num_ranks, link_gbps, phase_latency_s);
}

Result<std::unique_ptr<ExchangePlanner>> make_forced_order_planner(int32_t num_ranks, const std::string& strategy,
                                                                   double link_gbps, double phase_latency_s) {
  for (int k = 0; k < sched::kNumOrderStrategies; ++k) {
    const auto candidate = static_cast<sched::OrderStrategy>(k);
    if (strategy == sched::order_strategy_name(candidate)) {
      return std::unique_ptr<ExchangePlanner>(
          std::make_unique<AuroraExchangePlanner>(num_ranks, link_gbps, phase_latency_s, candidate));
    }
  }
  return Error::invalid("strategy", "unknown transmission order '" + strategy + "'");
}

}  // namespace aurora::runtime
