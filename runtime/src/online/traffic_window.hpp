// TrafficWindow: the live statistics of one served model, exponentially weighted in time: per MoE
// layer the tokens each rank sends to each expert per step (from which the rank x rank traffic
// matrix follows for any placement), per rank the measured expert-compute and exchange times,
// per layer the measured cost of planning the transfer order live against fitting the window's.
//
// Every value is a bias-corrected exponentially weighted mean of per-step values, with weight
// 2^(-age / half_life) for a step `age` seconds old: a shift of the traffic mix shows after about
// one half-life, whatever the step rate.
//
// Thread safety: record() is called by the engine thread; snapshot() from any thread (a mutex
// guards the state; snapshots are copies).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "executor/step_batch.hpp"

namespace aurora::runtime {

// A bias-corrected exponentially weighted mean.
struct Ewma {
  double sum = 0, weight = 0;
  void decay(double factor) {
    sum *= factor;
    weight *= factor;
  }
  void add(double value, double factor) {  // decay by factor, then add value with weight 1 - factor
    sum = sum * factor + value * (1.0 - factor);
    weight = weight * factor + (1.0 - factor);
  }
  double mean() const { return weight > 0 ? sum / weight : 0.0; }
  bool empty() const { return weight <= 0; }
};

struct WindowStats {
  int32_t num_layers = 0, num_ranks = 0, num_experts = 0;
  int64_t steps = 0;            // recorded, all time
  double steps_per_second = 0;  // 1 / weighted mean step duration (busy time)
  double step_seconds = 0;      // weighted mean step duration
  // [layer][rank * num_experts + expert]: tokens per step (empty for dense layers).
  std::vector<std::vector<double>> rank_expert;
  struct Rank {
    double expert_seconds = 0, exchange_seconds = 0, rows = 0;  // per step
  };
  std::vector<Rank> ranks;
  double expert_seconds_per_row = 0;  // all ranks together (0 until measured)
  struct Layer {
    double count_us = 0, plan_us = 0, fit_us = 0;         // per step, dispatch + combine
    double live_estimate_us = 0, window_estimate_us = 0;  // steps that costed both sources
    int64_t both_samples = 0;
    LayerExchangeCost last;  // the last step's
  };
  std::vector<Layer> layers;

  // Tokens per expert per step of one layer.
  std::vector<double> expert_load(int32_t layer) const;
};

class TrafficWindow {
 public:
  TrafficWindow(int32_t num_layers, int32_t num_ranks, int32_t num_experts, double half_life_s);

  // One step's result; `step_seconds` = the step's wall time, `now` its end.
  void record(const StepResult& step, double step_seconds, std::chrono::steady_clock::time_point now);
  WindowStats snapshot() const;

 private:
  double half_life_s_;
  mutable std::mutex mu_;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_;
  WindowStats stats_;                           // means materialised at snapshot time from the Ewmas below
  std::vector<std::vector<Ewma>> rank_expert_;  // [layer][rank * E + e]
  std::vector<Ewma> rank_expert_s_, rank_exchange_s_, rank_rows_;
  Ewma step_s_, expert_s_total_, rows_total_;
  struct LayerEwma {
    Ewma count_us, plan_us, fit_us, live_us, window_us;
  };
  std::vector<LayerEwma> layer_;
};

}  // namespace aurora::runtime
