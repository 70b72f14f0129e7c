// ExchangePlan: the order in which an expert-parallel all-to-all moves its bytes, as phases of
// point-to-point transfers, and ExchangePlanner, which makes one from a traffic matrix.
//
// A plan covers every off-diagonal byte of its traffic matrix exactly once; a (src, dst) pair may
// be split over several phases (its chunks go in order). Transfers inside a phase run together;
// phases run one after another. Local traffic (src == dst) never appears: it is a local copy.
// Planners are deterministic, so every rank that plans the same matrix gets the same plan and no
// rank has to broadcast it. A planner keeps workspace between calls and is not thread-safe: each
// rank plans with its own instance (ExchangePlannerFactory).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "aurora/config/error.hpp"

namespace aurora::runtime {

struct Transfer {
  int32_t src = 0;
  int32_t dst = 0;
  int64_t bytes = 0;
};

struct ExchangePlan {
  const char* strategy = "all_at_once";  // the planner's name for the order it chose
  std::vector<std::vector<Transfer>> phases;
  double estimated_seconds = 0.0;    // the planner's cost model for this plan
  double lower_bound_seconds = 0.0;  // heaviest per-rank send or receive volume / bandwidth
};

// Row-major num_ranks x num_ranks byte matrix: bytes[src * num_ranks + dst].
struct TrafficMatrix {
  int32_t num_ranks = 0;
  std::vector<int64_t> bytes;

  int64_t at(int32_t src, int32_t dst) const { return bytes[static_cast<size_t>(src * num_ranks + dst)]; }
  TrafficMatrix transposed() const;
};

class ExchangePlanner {
 public:
  virtual ~ExchangePlanner() = default;
  virtual std::string name() const = 0;
  // The returned plan is valid until the next call on this planner.
  virtual const ExchangePlan& plan(const TrafficMatrix& traffic) = 0;
};

using ExchangePlannerFactory = std::function<std::unique_ptr<ExchangePlanner>()>;

// Lower bound of an all-to-all under the big-switch model: max over ranks of max(send, receive)
// bytes (off-diagonal) / bandwidth.
double exchange_lower_bound_seconds(const TrafficMatrix& traffic, double link_gbps);

// The fallback: everything in one phase ("all at once", as NCCL's all_to_all_v would issue it).
// Its estimate is the lower bound (it does not model incast).
std::unique_ptr<ExchangePlanner> make_all_at_once_planner(double link_gbps = 400.0);

// Aurora's planner (aurora::sched::plan_all_to_all) on a homogeneous big-switch cluster of
// `num_ranks` ports of `link_gbps`, each phase costing `phase_latency_s`: it picks the order with
// the smallest predicted time among Aurora's matching plans and the baselines (all-at-once
// included), so its estimate never exceeds the all-at-once estimate of the same model.
std::unique_ptr<ExchangePlanner> make_aurora_planner(int32_t num_ranks, double link_gbps = 400.0,
                                                     double phase_latency_s = 5e-6);

// The Aurora planner held to one order ("matching", "rotation", "all_at_once", ...), whatever its
// cost model predicts: for benchmarks that measure an order against NCCL's all-at-once exchange.
// An unknown name is an error naming it.
Result<std::unique_ptr<ExchangePlanner>> make_forced_order_planner(int32_t num_ranks, const std::string& strategy,
                                                                   double link_gbps = 400.0,
                                                                   double phase_latency_s = 5e-6);

// Checks that a plan covers the matrix exactly (for tests and debug builds); "" when it does.
std::string check_plan(const ExchangePlan& plan, const TrafficMatrix& traffic);

}  // namespace aurora::runtime
