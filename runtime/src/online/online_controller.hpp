// OnlineController: Online Aurora for one engine. It keeps the live statistics of every served
// model (TrafficWindow), runs the background planner on its own thread, and applies what the
// planner decides at step boundaries, through each model's PlacementHost.
//
//   engine thread                         planner thread (every replan_interval_ms, or triggered)
//   ─────────────                         ──────────────────────────────────────────────────────
//   step ─► on_step(): window.record      snapshot the windows and the owners in force
//   at_step_boundary():                   order templates per layer (window/auto) ─► mailbox
//     install order templates             placement: policy (budget, failures caught) ─► gate
//     commit staged layers ◄───────────── migration: stage a layer's moved experts (copies),
//     (k layers per boundary)               post it, wait for its commit, next layer ...
//
// The planner never touches a running step: a layer's new owners and weights and an order
// template take effect at a step boundary on the engine thread. A policy that throws, fails or
// runs past plan_budget_ms leaves everything in force. Stop order: the engine thread ends first
// (no more steps), then stop() joins the planner thread (it waits for a policy run in progress).
//
// Thread safety: on_step/at_step_boundary/commit_pending from the engine thread only; snapshot,
// control, plan_version and migrations_total from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "aurora/config/model_config.hpp"
#include "aurora/runtime/online.hpp"
#include "online/deployment_policy.hpp"
#include "online/placement_host.hpp"
#include "online/switch_gate.hpp"
#include "online/traffic_window.hpp"

namespace aurora::runtime {

struct OnlineModel {
  std::string name;
  const config::ModelConfig* config = nullptr;
  PlacementHost* host = nullptr;  // null: statistics and advice only (the backend cannot move experts)
  int32_t num_ranks = 1;
};

using PlacementPolicy = std::function<Result<Proposal>(const PolicyInput&)>;

class OnlineController {
 public:
  // `wake` makes the engine thread run a step boundary soon (it may be idle); `policy` is
  // propose_deployment unless a test injects another.
  OnlineController(OnlineOptions options, std::vector<OnlineModel> models, std::function<void()> wake,
                   PlacementPolicy policy = propose_deployment);
  ~OnlineController();
  OnlineController(const OnlineController&) = delete;
  OnlineController& operator=(const OnlineController&) = delete;

  void start();
  void stop();  // idempotent

  // Engine thread.
  void on_step(size_t model, const StepResult& result, double step_seconds);
  bool boundary_work() const { return boundary_work_.load(std::memory_order_acquire); }
  void at_step_boundary();

  // Any thread.
  PlanSnapshot snapshot() const;
  Result<void> control(ReplanAction action);
  int64_t plan_version() const { return plan_version_.load(); }
  int64_t migrations_total() const { return migrations_total_.load(); }

 private:
  struct Commit {
    size_t model = 0;
    int32_t layer = 0;
    std::vector<int32_t> owner;
    std::vector<std::unique_ptr<StagedExpert>> staged;
    int64_t final_version = 0;    // > 0 on the migration's last layer
    PlanSnapshot::Change change;  // the last layer's: what the switch records
  };
  struct PendingOrder {
    size_t model = 0;
    int32_t layer = 0;
    int64_t epoch = 0;
    std::shared_ptr<const OrderTemplate> dispatch, combine;
    bool use_window = false;
  };

  double now_s() const;
  void planner_loop();
  void run_once(bool triggered);
  void post_orders(const std::vector<WindowStats>& stats, const std::vector<std::vector<std::vector<int32_t>>>& owners,
                   const std::vector<std::vector<int64_t>>& epochs);
  void migrate(const Proposal& proposal, const std::vector<std::vector<std::vector<int32_t>>>& from, double before_s,
               const std::string& reason);
  void note(const std::string& decision);

  const OnlineOptions options_;
  std::vector<OnlineModel> models_;
  std::function<void()> wake_;
  PlacementPolicy policy_;
  const std::chrono::steady_clock::time_point start_;
  std::vector<std::unique_ptr<TrafficWindow>> windows_;
  std::vector<int64_t> steps_;  // engine thread: steps per model

  mutable std::mutex mu_;
  std::condition_variable cv_;  // planner: interval, trigger, stop, commits done
  bool stop_ = false;
  bool trigger_ = false;
  std::thread thread_;
  std::atomic<bool> boundary_work_{false};
  std::atomic<bool> frozen_{false};
  std::atomic<int64_t> plan_version_{1};
  std::atomic<int64_t> migrations_total_{0};

  // Guarded by mu_.
  std::vector<std::vector<std::vector<int32_t>>> owners_;  // [model][layer][expert] in force
  std::vector<std::vector<int64_t>> epochs_;               // [model][layer]: commits so far
  std::deque<Commit> commits_;
  std::vector<PendingOrder> orders_;
  SwitchGate gate_;
  int64_t runs_ = 0, failures_ = 0, overruns_ = 0, switches_ = 0;
  double last_plan_s_ = 0;
  std::string last_decision_ = "waiting for the first planner run";
  double current_s_ = 0, fresh_s_ = 0, migration_s_ = 0;
  int64_t candidate_moves_ = 0;
  bool migrating_ = false;
  int32_t layers_done_ = 0, layers_total_ = 0;
  double migration_bytes_per_s_ = 5e9;  // measured by migrations
  std::vector<double> measured_speeds_;
  std::vector<std::vector<std::string>> order_decisions_;  // [model][layer]: why that order source  // --rank-speeds
                                                           // measured: the last measurement per rank
  std::vector<PlanSnapshot::Change> history_;
  std::vector<PlanSnapshot::Sample> timeline_;
  std::vector<std::unique_ptr<ExchangePlanner>> order_planners_;  // planner thread
};

}  // namespace aurora::runtime
