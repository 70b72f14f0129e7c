#include "aurora/scheduler/all_to_all.hpp"

#include <catch2/catch.hpp>

#include "aurora/scheduler/lower_bound.hpp"
#include "plan_checker.hpp"

using namespace aurora::sched;
using namespace aurora::sched::testing;

namespace {
AllToAllOptions forced(OrderStrategy s, double latency = 0) {
  AllToAllOptions o;
  o.policy = ChoicePolicy::kForce;
  o.forced_strategy = s;
  o.phase_latency_s = latency;
  return o;
}
}  // namespace

TEST_CASE("lower bound is the heaviest port, diagonal excluded") {
  auto t = TrafficMatrix::from_rows({{100, 10, 20}, {0, 5, 30}, {40, 0, 7}});
  Cluster c = Cluster::homogeneous(3, 8e-9);  // 1 byte/s
  // sends: 30, 30, 40; receives: 40, 10, 50.
  CHECK(all_to_all_lower_bound_s(t, c) == Approx(50.0));
  CHECK(matching_lower_bound_s(t, c) == Approx(50.0));
}

TEST_CASE("matching plans meet the homogeneous bound exactly on thousands of random matrices") {
  std::mt19937_64 rng(42);
  AllToAllPlanner planner;
  const std::vector<int> sizes = {2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 24, 32, 48, 64};
  int checked = 0;
  for (TrafficKind kind : {TrafficKind::kUniform, TrafficKind::kZipf, TrafficKind::kSparse, TrafficKind::kHotReceiver}) {
    for (int n : sizes) {
      const int reps = n <= 8 ? 120 : n <= 16 ? 40 : n <= 32 ? 10 : 4;
      // 1 byte per second: the bound in seconds is the heaviest port's byte count, exactly.
      const Cluster cluster = Cluster::homogeneous(n, 8e-9);
      for (int r = 0; r < reps; ++r) {
        TrafficMatrix t = random_traffic(rng, n, kind);
        const auto& plan = planner.plan(t, cluster, forced(OrderStrategy::kMatching));
        INFO(traffic_kind_name(kind) << " n=" << n << " rep=" << r);
        REQUIRE(check_plan(plan, t) == "");
        int64_t heaviest = 0;
        for (int g = 0; g < n; ++g) heaviest = std::max({heaviest, t.network_send_bytes(g), t.network_recv_bytes(g)});
        // Integer arithmetic: the longest transfer of each phase, summed, equals the heaviest port.
        int64_t total = 0;
        for (size_t k = 0; k < plan.num_phases(); ++k) {
          int64_t longest = 0;
          for (const Transfer& tr : plan.phase_transfers(k)) longest = std::max(longest, tr.bytes);
          total += longest;
        }
        REQUIRE(total == heaviest);
        REQUIRE(plan.makespan_s == Approx(static_cast<double>(heaviest)).epsilon(1e-12));
        ++checked;
      }
    }
  }
  CHECK(checked > 2000);
}
