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
// n..2n-1. Every flow in flows_ is active.
void FluidSimulator::water_fill(const Cluster& cluster) {
  const int n = cluster.num_gpus();
  cap_.resize(static_cast<size_t>(2 * n));
  count_.assign(static_cast<size_t>(2 * n), 0);
  if (on_port_.size() < static_cast<size_t>(2 * n)) on_port_.resize(static_cast<size_t>(2 * n));
  for (int p = 0; p < 2 * n; ++p) on_port_[static_cast<size_t>(p)].clear();
  for (int g = 0; g < n; ++g) {
    cap_[static_cast<size_t>(g)] = cluster.gpus[static_cast<size_t>(g)].send_bytes_per_s;
    cap_[static_cast<size_t>(n + g)] = cluster.gpus[static_cast<size_t>(g)].recv_bytes_per_s;
  }
  for (uint32_t f = 0; f < flows_.size(); ++f) {
    Flow& flow = flows_[f];
    flow.rate = -1;
    on_port_[static_cast<size_t>(flow.src)].push_back(f);
    on_port_[static_cast<size_t>(n + flow.dst)].push_back(f);
    ++count_[static_cast<size_t>(flow.src)];
    ++count_[static_cast<size_t>(n + flow.dst)];
  }
  for (;;) {
    int best = -1;
    double best_share = kInf;
    for (int p = 0; p < 2 * n; ++p) {
      if (count_[static_cast<size_t>(p)] == 0) continue;
      const double share = std::max(0.0, cap_[static_cast<size_t>(p)]) / count_[static_cast<size_t>(p)];
      if (share < best_share) {
        best_share = share;
        best = p;
      }
    }
    if (best < 0) break;
    for (uint32_t f : on_port_[static_cast<size_t>(best)]) {
      Flow& flow = flows_[f];
      if (flow.rate >= 0) continue;
      flow.rate = best_share;
      const int other = best < n ? n + flow.dst : flow.src;
      cap_[static_cast<size_t>(other)] -= best_share;
      --count_[static_cast<size_t>(other)];
    }
    count_[static_cast<size_t>(best)] = 0;
  }
}

double FluidSimulator::all_at_once_s(std::span<const Transfer> transfers, const Cluster& cluster) {
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
  double now = 0;
  while (!flows_.empty()) {
    water_fill(cluster);
    double dt = kInf;
    for (const Flow& f : flows_) {
      AURORA_CHECK(f.rate > 0);
      dt = std::min(dt, f.remaining / f.rate);
    }
    now += dt;
    size_t kept = 0;
    for (Flow& f : flows_) {
      f.remaining -= f.rate * dt;
      // A flow within a millionth of a byte (relative) of done finishes in this event.
      if (f.remaining > 1e-6 * std::max(1.0, f.rate * dt)) flows_[kept++] = f;
    }
    flows_.resize(kept);
  }
  return now;
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
      water_fill(cluster);
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
