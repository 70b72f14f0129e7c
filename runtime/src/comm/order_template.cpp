#include "comm/order_template.hpp"

#include <algorithm>

#include "aurora/config/check.hpp"
#include "aurora/scheduler/all_to_all.hpp"

namespace aurora::runtime {

OrderTemplate make_order_template(const ExchangePlan& plan, int32_t n) {
  OrderTemplate t;
  t.num_ranks = n;
  t.strategy = plan.strategy;
  const size_t pairs = static_cast<size_t>(n) * n;
  t.pair_total.assign(pairs, 0);
  t.pair_last_phase.assign(pairs, -1);
  t.pair_last_slot.assign(pairs, -1);
  for (const auto& phase : plan.phases) {
    std::vector<Transfer> kept;
    for (const auto& tr : phase) {
      if (tr.bytes <= 0 || tr.src == tr.dst) continue;
      AURORA_CHECK(tr.src >= 0 && tr.src < n && tr.dst >= 0 && tr.dst < n);
      kept.push_back(tr);
    }
    if (kept.empty()) continue;
    const int32_t k = static_cast<int32_t>(t.phases.size());
    for (size_t i = 0; i < kept.size(); ++i) {
      const size_t pair = static_cast<size_t>(kept[i].src) * n + kept[i].dst;
      t.pair_total[pair] += kept[i].bytes;
      t.pair_last_phase[pair] = k;
      t.pair_last_slot[pair] = static_cast<int32_t>(i);
    }
    t.phases.push_back(std::move(kept));
  }
  return t;
}

void fit_order(const OrderTemplate& t, const TrafficMatrix& traffic, double link_gbps, double phase_latency_s,
               ExchangePlan& out) {
  const int32_t n = t.num_ranks;
  AURORA_CHECK(traffic.num_ranks == n);
  const double bytes_per_s = link_gbps * 1e9 / 8.0;
  out.strategy = t.strategy;
  // phases: the template's, then the tail of pairs the window did not see.
  out.phases.resize(t.phases.size() + 1);
  // Scratch per rank thread: no allocation per step once warmed up.
  thread_local std::vector<int64_t> send, recv, assigned;
  send.assign(static_cast<size_t>(n), 0);
  recv.assign(static_cast<size_t>(n), 0);
  assigned.assign(static_cast<size_t>(n) * n, 0);
  double estimate = 0.0;
  size_t used = 0;
  auto close_phase = [&](std::vector<Transfer>& phase) {
    if (phase.empty()) return;
    std::fill(send.begin(), send.end(), 0);
    std::fill(recv.begin(), recv.end(), 0);
    for (const auto& tr : phase) {
      send[static_cast<size_t>(tr.src)] += tr.bytes;
      recv[static_cast<size_t>(tr.dst)] += tr.bytes;
    }
    const int64_t worst =
        std::max(*std::max_element(send.begin(), send.end()), *std::max_element(recv.begin(), recv.end()));
    estimate += phase_latency_s + static_cast<double>(worst) / bytes_per_s;
    ++used;
  };
  for (size_t k = 0; k < t.phases.size(); ++k) {
    auto& phase = out.phases[used];
    phase.clear();
    for (size_t i = 0; i < t.phases[k].size(); ++i) {
      const Transfer& piece = t.phases[k][i];
      const size_t pair = static_cast<size_t>(piece.src) * n + piece.dst;
      const int64_t actual = traffic.bytes[pair];
      if (actual <= 0) continue;
      int64_t bytes;
      if (t.pair_last_phase[pair] == static_cast<int32_t>(k) && t.pair_last_slot[pair] == static_cast<int32_t>(i)) {
        bytes = actual - assigned[pair];
      } else if (actual == t.pair_total[pair]) {
        bytes = piece.bytes;  // the window's own volume: the template's pieces exactly
      } else {
        // floor(actual * piece / total); long double keeps the product exact for realistic sizes.
        const long double share = static_cast<long double>(actual) * static_cast<long double>(piece.bytes) /
                                  static_cast<long double>(t.pair_total[pair]);
        bytes = std::min(actual - assigned[pair], static_cast<int64_t>(share));
      }
      if (bytes <= 0) continue;
      assigned[pair] += bytes;
      phase.push_back(Transfer{piece.src, piece.dst, bytes});
    }
    close_phase(phase);
  }
  auto& tail = out.phases[used];
  tail.clear();
  for (int32_t s = 0; s < n; ++s) {
    for (int32_t d = 0; d < n; ++d) {
      const size_t pair = static_cast<size_t>(s) * n + d;
      if (s == d || traffic.bytes[pair] <= 0 || t.pair_total[pair] > 0) continue;
      tail.push_back(Transfer{s, d, traffic.bytes[pair]});
    }
  }
  close_phase(tail);
  out.phases.resize(used);
  out.lower_bound_seconds = exchange_lower_bound_seconds(traffic, link_gbps);
  out.estimated_seconds = estimate;
}

double predict_exchange_seconds(const ExchangePlan& plan, int32_t n, double link_gbps, double phase_latency_s) {
  sched::TransmissionPlan p;
  p.strategy = sched::OrderStrategy::kMatching;
  p.barrier_between_phases = true;
  for (const auto& phase : plan.phases) {
    sched::Phase ph;
    ph.first_transfer = static_cast<uint32_t>(p.transfers.size());
    for (const auto& tr : phase) p.transfers.push_back(sched::Transfer{tr.src, tr.dst, tr.bytes, 0});
    ph.num_transfers = static_cast<uint32_t>(phase.size());
    p.phases.push_back(ph);
  }
  return sched::predict_makespan_s(p, sched::Cluster::homogeneous(n, link_gbps), phase_latency_s, /*exact_fluid=*/true);
}

}  // namespace aurora::runtime
