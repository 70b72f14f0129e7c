#include "fluid_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "aurora/config/check.hpp"

namespace aurora::sched::detail {
namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

// Progressive filling: repeatedly take the port with the smallest fair share among its unfrozen flows,
// give those flows that share, and charge it to their other port. Send ports are 0..n-1, receive ports
// n..2n-1. Every flow in flows_ is active. (Shares only grow as flows freeze, so each port is taken once.)
void FluidSimulator::water_fill(const Cluster& cluster) {
  ++rate_allocations;
  const int n = cluster.num_gpus();
  const size_t ports = static_cast<size_t>(2 * n);
  cap_.resize(ports);
  count_.assign(ports, 0);
  for (int g = 0; g < n; ++g) {
    cap_[static_cast<size_t>(g)] = cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s;
    cap_[static_cast<size_t>(n + g)] = cluster.gpus[static_cast<size_t>(g)].recv_bytes_per_s;
  }
  // Flat adjacency (counting sort of flows by port).
  for (const Flow& f : flows_) {
    ++count_[static_cast<size_t>(f.src)];
    ++count_[static_cast<size_t>(n + f.dst)];
  }
  port_begin_.assign(ports + 1, 0);
  for (size_t p = 0; p < ports; ++p) port_begin_[p + 1] = port_begin_[p] + static_cast<uint32_t>(count_[p]);
  port_fill_.assign(port_begin_.begin(), port_begin_.end() - 1);
  port_flows_.resize(port_begin_[ports]);
  for (uint32_t i = 0; i < flows_.size(); ++i) {
    Flow& f = flows_[i];
    f.rate = -1;
    port_flows_[port_fill_[static_cast<size_t>(f.src)]++] = i;
    port_flows_[port_fill_[static_cast<size_t>(n + f.dst)]++] = i;
  }
  active_ports_.clear();
  share_.resize(ports);
  for (size_t p = 0; p < ports; ++p)
    if (count_[p] > 0) {
      active_ports_.push_back(static_cast<uint32_t>(p));
      share_[p] = cap_[p] / count_[p];
    }
  while (!active_ports_.empty()) {
    int best = -1;
    size_t best_at = 0;
    double best_share = kInf;
    for (size_t k = 0; k < active_ports_.size();) {
      const size_t p = active_ports_[k];
      if (count_[p] == 0) {  // all its flows were frozen by their other port
        active_ports_[k] = active_ports_.back();
        active_ports_.pop_back();
        continue;
      }
      const double share = share_[p];
      if (share < best_share) {
        best_share = share;
        best = static_cast<int>(p);
        best_at = k;
      }
      ++k;
    }
    if (best < 0) break;
    active_ports_[best_at] = active_ports_.back();
    active_ports_.pop_back();
    for (uint32_t k = port_begin_[static_cast<size_t>(best)]; k < port_begin_[static_cast<size_t>(best) + 1]; ++k) {
      Flow& flow = flows_[port_flows_[k]];
      if (flow.rate >= 0) continue;
      flow.rate = best_share;
      const size_t other = best < n ? static_cast<size_t>(n + flow.dst) : static_cast<size_t>(flow.src);
      cap_[other] -= best_share;
      if (--count_[other] > 0) share_[other] = std::max(0.0, cap_[other]) / count_[other];
    }
    count_[static_cast<size_t>(best)] = 0;
  }
}

// Max-min rates when every sender has at most one flow: each receiver splits its bandwidth fairly among
// its flows, each capped by its sender's bandwidth (smallest caps first).
void FluidSimulator::fill_receivers(const Cluster& cluster) {
  order_.resize(flows_.size());
  for (uint32_t i = 0; i < flows_.size(); ++i) order_[i] = i;
  std::sort(order_.begin(), order_.end(), [&](uint32_t a, uint32_t b) {
    const Flow& fa = flows_[a];
    const Flow& fb = flows_[b];
    if (fa.dst != fb.dst) return fa.dst < fb.dst;
    return cluster.gpus[static_cast<size_t>(fa.src)].send_bytes_per_s < cluster.gpus[static_cast<size_t>(fb.src)].send_bytes_per_s;
  });
  for (size_t begin = 0; begin < order_.size();) {
    size_t end = begin;
    const int dst = flows_[order_[begin]].dst;
    while (end < order_.size() && flows_[order_[end]].dst == dst) ++end;
    double cap = cluster.gpus[static_cast<size_t>(dst)].recv_bytes_per_s;
    for (size_t k = begin; k < end; ++k) {
      Flow& f = flows_[order_[k]];
      const double share = cap / static_cast<double>(end - k);
      f.rate = std::min(share, cluster.gpus[static_cast<size_t>(f.src)].send_bytes_per_s);
      cap -= f.rate;
    }
    begin = end;
  }
}

double FluidSimulator::all_at_once_s(std::span<const Transfer> transfers, const Cluster& cluster, double min_step_s) {
  const int n = cluster.num_gpus();
  pair_bytes_.assign(static_cast<size_t>(n) * n, 0);
  for (const Transfer& t : transfers) {
    if (t.src_gpu == t.dst_gpu) continue;
    pair_bytes_[static_cast<size_t>(t.src_gpu) * n + t.dst_gpu] += t.bytes;
  }
  flows_.clear();
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const int64_t b = pair_bytes_[static_cast<size_t>(i) * n + j];
      if (b > 0) flows_.push_back(Flow{i, j, static_cast<double>(b), 0});
    }
  double now = 0, last_end = 0;
  while (!flows_.empty()) {
    water_fill(cluster);
    double first = kInf, all = 0;
    for (const Flow& f : flows_) {
      AURORA_CHECK(f.rate > 0);
      const double t = f.remaining / f.rate;
      first = std::min(first, t);
      all = std::max(all, t);
    }
    const double dt = std::min(std::max(first, min_step_s), all);
    size_t kept = 0;
    for (Flow& f : flows_) {
      const double t = f.remaining / f.rate;
      // A flow within a billionth (relative) of its end at the step's end finishes in this step.
      if (t <= dt * (1 + 1e-9)) {
        last_end = std::max(last_end, now + std::min(t, dt));
      } else {
        f.remaining -= f.rate * dt;
        flows_[kept++] = f;
      }
    }
    flows_.resize(kept);
    now += dt;
  }
  return last_end;
}

double FluidSimulator::phase_s(std::span<const Transfer> transfers, const Cluster& cluster, bool exact, double latency_s) {
  double step = 0;
  if (!exact && transfers.size() > kExactFluidMaxFlows) {
    const int n = cluster.num_gpus();
    port_bytes_.assign(static_cast<size_t>(2 * n), 0.0);
    for (const Transfer& t : transfers) {
      port_bytes_[static_cast<size_t>(t.src_gpu)] += static_cast<double>(t.bytes);
      port_bytes_[static_cast<size_t>(n + t.dst_gpu)] += static_cast<double>(t.bytes);
    }
    double bound = 0;
    for (int g = 0; g < n; ++g) {
      bound = std::max(bound, port_bytes_[static_cast<size_t>(g)] / cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s);
      bound = std::max(bound, port_bytes_[static_cast<size_t>(n + g)] / cluster.gpus[static_cast<size_t>(g)].recv_bytes_per_s);
    }
    step = std::max(bound / kFluidStepsPerBound, latency_s / kStepsPerLatency);
  }
  return all_at_once_s(transfers, cluster, step);
}

double FluidSimulator::streams_s(std::span<const Transfer> transfers,
                                 const std::vector<std::vector<uint32_t>>& queue_of_src, const Cluster& cluster,
                                 double latency_s) {
  const int n = cluster.num_gpus();
  // Per sender: position in its queue, and when its current transfer may start sending (after latency).
  std::vector<size_t> next(static_cast<size_t>(n), 0);
  std::vector<double> ready_at(static_cast<size_t>(n), kInf);
  std::vector<int32_t> flow_of(static_cast<size_t>(n), -1);
  std::vector<Flow> waiting(static_cast<size_t>(n));
  auto start_next = [&](int g, double now) {
    const auto& q = queue_of_src[static_cast<size_t>(g)];
    size_t& k = next[static_cast<size_t>(g)];
    while (k < q.size()) {
      const Transfer& t = transfers[q[k]];
      ++k;
      if (t.bytes <= 0 || t.src_gpu == t.dst_gpu) continue;
      // Consecutive transfers to the same peer (one per model) go out as one send.
      double bytes = static_cast<double>(t.bytes);
      while (k < q.size() && transfers[q[k]].dst_gpu == t.dst_gpu) bytes += static_cast<double>(transfers[q[k++]].bytes);
      waiting[static_cast<size_t>(g)] = Flow{g, t.dst_gpu, bytes, 0};
      ready_at[static_cast<size_t>(g)] = now + latency_s;
      return;
    }
    ready_at[static_cast<size_t>(g)] = kInf;
  };
  flows_.clear();
  for (int g = 0; g < n; ++g) start_next(g, 0);
  double now = 0;
  for (;;) {
    // Senders whose latency has elapsed join the active flows.
    for (int g = 0; g < n; ++g) {
      if (ready_at[static_cast<size_t>(g)] <= now && flow_of[static_cast<size_t>(g)] < 0) {
        flow_of[static_cast<size_t>(g)] = static_cast<int32_t>(flows_.size());
        flows_.push_back(waiting[static_cast<size_t>(g)]);
        ready_at[static_cast<size_t>(g)] = kInf;
      }
    }
    double next_ready = kInf;
    for (double r : ready_at) next_ready = std::min(next_ready, r);
    if (flows_.empty() && next_ready == kInf) break;
    double dt = next_ready - now;
    if (!flows_.empty()) {
      fill_receivers(cluster);
      for (const Flow& f : flows_) {
        AURORA_CHECK(f.rate > 0);
        dt = std::min(dt, f.remaining / f.rate);
      }
    }
    now += dt;
    size_t kept = 0;
    for (size_t i = 0; i < flows_.size(); ++i) {
      Flow f = flows_[i];
      f.remaining -= f.rate * dt;
      if (f.remaining > 1e-6 * std::max(1.0, f.rate * dt)) {
        flow_of[static_cast<size_t>(f.src)] = static_cast<int32_t>(kept);
        flows_[kept++] = f;
      } else {
        flow_of[static_cast<size_t>(f.src)] = -1;
        start_next(f.src, now);
      }
    }
    flows_.resize(kept);
  }
  return now;
}

}  // namespace aurora::sched::detail
