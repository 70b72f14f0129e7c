// planner_bench: how long the Aurora planner takes per all-to-all (the per-decode-step path), how its
// orders compare with the baselines under the shared cost model, how deployments compare on the example
// scenarios, and how close the colocated heterogeneous heuristic gets to the exhaustive optimum.
//
// usage: planner_bench [--scenarios DIR] [--quick] [--optimum-n8 K] [--planning-only]
//   --scenarios DIR   example scenarios (default config/scenarios, run from the repository root)
//   --quick           fewer repetitions and instances (smoke run)
//   --optimum-n8 K    also measure K heterogeneous colocated instances at n = 8 (~1 min each)
//   --planning-only   only the planning-time table
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "aurora/config/scenario.hpp"
#include "aurora/scheduler/all_to_all.hpp"
#include "aurora/scheduler/deployment_planner.hpp"
#include "aurora/scheduler/scenario_planner.hpp"
#include "instances.hpp"
#include "plan_checker.hpp"

using namespace aurora::sched;
using namespace aurora::sched::testing;
using Clock = std::chrono::steady_clock;

namespace {

struct Timing {
  double min_us = 0, median_us = 0;  // thread CPU time per run
  double wall_min_us = 0;
  int reps = 0;
};

double thread_cpu_us() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) * 1e-3;
}

// Repeats fn until at least min_reps runs and ~budget_s seconds of wall time. Reports min and median of
// the thread's CPU time per run (the machine is shared: CPU time is what one core spends), and the
// minimum wall time.
template <class Fn>
Timing time_it(Fn&& fn, int min_reps, double budget_s) {
  std::vector<double> us;
  double wall_min = 1e300;
  const auto start = Clock::now();
  while (static_cast<int>(us.size()) < min_reps ||
         std::chrono::duration<double>(Clock::now() - start).count() < budget_s) {
    const auto w0 = Clock::now();
    const double t0 = thread_cpu_us();
    fn();
    us.push_back(thread_cpu_us() - t0);
    wall_min = std::min(wall_min, std::chrono::duration<double, std::micro>(Clock::now() - w0).count());
    if (us.size() > 200000) break;
  }
  std::sort(us.begin(), us.end());
  return Timing{us.front(), us[us.size() / 2], wall_min, static_cast<int>(us.size())};
}

void planning_time(bool quick) {
  std::printf("\n## Planning time per all-to-all (thread CPU time, warm AllToAllPlanner, up to 1 MiB per pair)\n");
  std::printf("%4s %-6s %-13s %7s | %-20s %9s %9s %9s %6s | %-16s %9s %9s %6s\n", "n", "gpus", "traffic", "lat_us",
              "chosen (default)", "min_us", "median_us", "wall_min", "phases", "exact matching", "min_us", "median_us",
              "phases");
  for (bool hetero : {false, true}) {
    std::mt19937_64 rng(2024);  // the same matrices on both clusters
    for (int n : {8, 16, 64}) {
      // Heterogeneous: the paper's four GPU types (100/80/50/40 Gbps), equally many of each.
      const Cluster cluster = hetero ? paper_heterogeneous(n) : Cluster::homogeneous(n, 100);
      for (TrafficKind kind :
           {TrafficKind::kUniform, TrafficKind::kZipf, TrafficKind::kHotReceiver, TrafficKind::kDecode}) {
        // kDecode: decode-sized messages (Zipf-skewed, up to 16 KiB per pair).
        const TrafficMatrix t = kind == TrafficKind::kDecode ? random_traffic(rng, n, TrafficKind::kZipf, 16 << 10)
                                                             : random_traffic(rng, n, kind);
        for (double lat_us : {0.0, 10.0}) {
          AllToAllPlanner planner;
          AllToAllOptions o;
          o.phase_latency_s = lat_us * 1e-6;
          const double budget = quick ? 0.05 : (n == 64 ? 1.0 : 0.3);
          const int min_reps = quick ? 3 : (n == 64 ? 20 : 200);
          size_t phases = 0;
          const char* chosen = "";
          const Timing d = time_it(
              [&] {
                const auto& p = planner.plan(t, cluster, o);
                phases = p.num_phases();
                chosen = order_strategy_name(p.strategy);
              },
              min_reps, budget);
          AllToAllOptions exact = o;
          exact.policy = ChoicePolicy::kForce;
          exact.forced_strategy = OrderStrategy::kMatching;
          size_t exact_phases = 0;
          const Timing e =
              time_it([&] { exact_phases = planner.plan(t, cluster, exact).num_phases(); }, min_reps, budget);
          std::printf("%4d %-6s %-13s %7.0f | %-20s %9.1f %9.1f %9.1f %6zu | %-16s %9.1f %9.1f %6zu\n", n,
                      hetero ? "hetero" : "homo", traffic_kind_name(kind), lat_us, chosen, d.min_us, d.median_us,
                      d.wall_min_us, phases, "", e.min_us, e.median_us, exact_phases);
        }
      }
    }
  }
}

void fluid_accuracy() {
  std::printf("\n## All-at-once cost: bounded re-allocation (default above 64 flows) vs exact max-min fluid\n");
  std::printf("%4s %-13s %12s %12s %9s\n", "n", "traffic", "exact_ms", "bounded_ms", "rel_err");
  std::mt19937_64 rng(5);
  for (int n : {16, 64})
    for (TrafficKind kind : {TrafficKind::kUniform, TrafficKind::kZipf, TrafficKind::kHotReceiver}) {
      const Cluster cluster = Cluster::homogeneous(n, 100);
      const TrafficMatrix t = random_traffic(rng, n, kind);
      AllToAllOptions o;
      o.policy = ChoicePolicy::kForce;
      o.forced_strategy = OrderStrategy::kAllAtOnce;
      const double fast = plan_all_to_all(t, cluster, o).makespan_s;
      o.exact_fluid = true;
      const double exact = plan_all_to_all(t, cluster, o).makespan_s;
      std::printf("%4d %-13s %12.4f %12.4f %8.3f%%\n", n, traffic_kind_name(kind), exact * 1e3, fast * 1e3,
                  (fast / exact - 1) * 100);
    }
}

void order_table(bool quick) {
  std::printf("\n## Transmission order: mean predicted makespan / per-port lower bound (same cost model for all)\n");
  std::printf("%4s %-13s %7s %-8s", "n", "traffic", "lat_us", "cluster");
  for (int s = 0; s < kNumOrderStrategies; ++s)
    std::printf(" %18s", order_strategy_name(static_cast<OrderStrategy>(s)));
  std::printf(" %18s\n", "aurora(chosen)");
  std::mt19937_64 rng(77);
  const int reps = quick ? 2 : 20;
  for (int n : {8, 16}) {
    for (bool hetero : {false, true}) {
      const Cluster cluster = hetero ? paper_heterogeneous(n) : Cluster::homogeneous(n, 100);
      for (TrafficKind kind :
           {TrafficKind::kUniform, TrafficKind::kZipf, TrafficKind::kSparse, TrafficKind::kHotReceiver}) {
        for (double lat_us : {0.0, 10.0}) {
          double sum[kNumOrderStrategies + 1] = {};
          AllToAllPlanner planner;
          for (int r = 0; r < reps; ++r) {
            const TrafficMatrix t = random_traffic(rng, n, kind);
            AllToAllOptions o;
            o.phase_latency_s = lat_us * 1e-6;
            o.seed = static_cast<uint64_t>(r);
            o.exact_fluid = true;  // the same fluid model as evaluate_all below
            const double chosen = planner.plan(t, cluster, o).makespan_s;
            o.evaluate_all = true;
            const TransmissionPlan& all = planner.plan(t, cluster, o);
            for (int s = 0; s < kNumOrderStrategies; ++s)
              sum[s] += all.candidate_makespan_s[static_cast<size_t>(s)] / all.lower_bound_s;
            sum[kNumOrderStrategies] += chosen / all.lower_bound_s;
          }
          std::printf("%4d %-13s %7.0f %-8s", n, traffic_kind_name(kind), lat_us, hetero ? "hetero" : "homo");
          for (double v : sum) std::printf(" %18.4f", v / reps);
          std::printf("\n");
        }
      }
    }
  }
}

void scenario_tables(const std::string& dir) {
  std::printf("\n## Example scenarios (aurora plan --compare)\n");
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".json") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) {
    auto scenario = aurora::config::load_scenario(f);
    if (!scenario) {
      std::printf("%s: %s\n", f.c_str(), scenario.error().message.c_str());
      continue;
    }
    ScenarioPlanOptions o;
    o.compare = true;
    const auto t0 = Clock::now();
    auto plan = plan_scenario(*scenario, o);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!plan) {
      std::printf("%s: %s\n", f.c_str(), plan.error().message.c_str());
      continue;
    }
    std::printf("\n%s (planned and compared in %.0f ms)\n", scenario->name.c_str(), ms);
    std::printf("  %-34s %12s %12s %7s %8s\n", "plan", "inference_ms", "all2all_ms", "util", "speedup");
    for (const ComparisonRow& r : plan->comparison)
      std::printf("  %-34s %12.4f %12.4f %6.1f%% %7.3fx\n", r.name.c_str(), r.inference_time_s * 1e3,
                  r.all_to_all_time_s * 1e3, r.gpu_utilization * 100, r.speedup);
  }
}

void optimum_ratio(bool quick, int n8) {
  std::printf("\n## Colocated deployment: heuristic / exhaustive optimum (search objective, per layer)\n");
  std::printf("%4s %-8s %6s | %-28s | %-28s | %12s\n", "n", "cluster", "runs", "two-step matchings avg/max",
              "+ local search avg/max", "search_ms avg");
  std::mt19937_64 rng(99);
  struct Case {
    int n;
    bool hetero;
    int runs;
  };
  std::vector<Case> cases = {{8, false, quick ? 3 : 30}, {6, true, quick ? 3 : 40}};
  if (n8 > 0) cases.push_back({8, true, n8});
  for (const Case& c : cases) {
    const Cluster cluster = c.hetero ? paper_heterogeneous(c.n) : Cluster::homogeneous(c.n, 100);
    double sp = 0, mp = 0, sa = 0, ma = 0, ms = 0;
    for (int r = 0; r < c.runs; ++r) {
      std::vector<ModelStats> models{random_model(rng, "a", c.n, 1, 1.4), random_model(rng, "b", c.n, 1, 0.8)};
      DeploymentOptions o;
      o.mode = DeploymentMode::kColocated;
      o.consider_packing = false;  // compare within the searched space
      o.local_search = false;
      const double paper = deployment_cost_s(models, *plan_deployment(models, cluster, o), cluster, o.mode);
      o.local_search = true;
      const double aurora = deployment_cost_s(models, *plan_deployment(models, cluster, o), cluster, o.mode);
      const auto t0 = Clock::now();
      const double opt = exhaustive_deployment(models, cluster, o.mode)->cost_s;
      ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      sp += paper / opt;
      mp = std::max(mp, paper / opt);
      sa += aurora / opt;
      ma = std::max(ma, aurora / opt);
    }
    std::printf("%4d %-8s %6d | %13.4f / %-12.4f | %13.4f / %-12.4f | %12.1f\n", c.n, c.hetero ? "hetero" : "homo",
                c.runs, sp / c.runs, mp, sa / c.runs, ma, ms / c.runs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "config/scenarios";
  bool quick = false;
  int n8 = 0;
  bool planning_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--scenarios") && i + 1 < argc)
      dir = argv[++i];
    else if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--optimum-n8") && i + 1 < argc)
      n8 = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--planning-only"))
      planning_only = true;
    else {
      std::fprintf(stderr, "usage: planner_bench [--scenarios DIR] [--quick] [--optimum-n8 K] [--planning-only]\n");
      return 2;
    }
  }
  planning_time(quick);
  if (planning_only) return 0;
  fluid_accuracy();
  order_table(quick);
  scenario_tables(dir);
  optimum_ratio(quick, n8);
  return 0;
}
