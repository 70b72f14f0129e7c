// ExchangePlan: the order in which an expert-parallel all-to-all moves its bytes, as phases of
// point-to-point transfers, and ExchangePlanner, which makes one from a traffic matrix.
//
// A plan covers every off-diagonal byte of its traffic matrix exactly once; a (src, dst) pair may
// be split over several phases (its chunks go in order). Transfers inside a phase run together;
// phases run one after another. Local traffic (src == dst) never appears: it is a local copy.
// Planners are pure and deterministic (value in, value out), so every rank that plans the same
// matrix gets the same plan and no rank has to broadcast it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace aurora::runtime {

struct Transfer {
  int32_t src = 0;
  int32_t dst = 0;
  int64_t bytes = 0;
};

struct ExchangePlan {
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
  virtual ExchangePlan plan(const TrafficMatrix& traffic) const = 0;
};

// Lower bound of an all-to-all under the big-switch model: max over ranks of max(send, receive)
// bytes (off-diagonal) / bandwidth.
double exchange_lower_bound_seconds(const TrafficMatrix& traffic, double link_gbps);

// The fallback: everything in one phase ("all at once", as NCCL's all_to_all_v would issue it).
// Its estimate is the fluid big-switch time of that single phase, i.e. the lower bound.
std::unique_ptr<ExchangePlanner> make_all_at_once_planner(double link_gbps = 400.0);

// Checks that a plan covers the matrix exactly (for tests and debug builds); "" when it does.
std::string check_plan(const ExchangePlan& plan, const TrafficMatrix& traffic);

}  // namespace aurora::runtime
