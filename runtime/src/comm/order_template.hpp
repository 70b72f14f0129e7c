// OrderTemplate: a transfer order planned ahead of time (from the statistics window, off the
// step's critical path) and fitted to each step's actual counts in O(pieces).
//
// fit_order() splits every (src, dst) pair's actual bytes over that pair's pieces in the template
// in proportion to the pieces' window bytes (the last piece takes the rounding remainder), keeps
// the template's phase order, and sends pairs the window did not see in one last phase, all at
// once. The result covers the actual matrix exactly (check_plan() holds) and is a deterministic
// function of (template, counts), so every rank fits the same plan without exchanging it.
// Templates are immutable once built and shared between rank threads.
#pragma once

#include <cstdint>
#include <vector>

#include "aurora/runtime/exchange_plan.hpp"

namespace aurora::runtime {

struct OrderTemplate {
  int32_t num_ranks = 0;
  const char* strategy = "all_at_once";       // the strategy of the plan it was made from
  std::vector<std::vector<Transfer>> phases;  // bytes = the window's bytes of each piece
  // Per pair (src * n + dst): total window bytes and the index of its last piece (phase, slot).
  std::vector<int64_t> pair_total;
  std::vector<int32_t> pair_last_phase, pair_last_slot;
};

// The template of a plan made for the window's matrix.
OrderTemplate make_order_template(const ExchangePlan& plan, int32_t num_ranks);

// Fits the template to `traffic`; `out` (reused between calls) gets the phases. Its
// estimated_seconds is a cheap estimate: per phase, latency + the phase's per-port bound at
// link_gbps (exact for one-peer-per-phase phases, optimistic for the all-at-once tail).
void fit_order(const OrderTemplate& order, const TrafficMatrix& traffic, double link_gbps, double phase_latency_s,
               ExchangePlan& out);

// The scheduler's prediction (sched::predict_makespan_s: fluid fair sharing within a phase) of any
// runtime plan on `num_ranks` identical links.
double predict_exchange_seconds(const ExchangePlan& plan, int32_t num_ranks, double link_gbps, double phase_latency_s);

}  // namespace aurora::runtime
